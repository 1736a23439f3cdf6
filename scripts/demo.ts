/**
 * `make demo`: builds the lab (upstream, router, LAN), starts the agent, boots
 * one UEFI virtual machine through it and shows each step as it happens, then
 * tears everything down. Needs root (network namespaces) and the Debian
 * packages scripts/install-deps.sh installs (`make demo` runs it first).
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { BootLab, labBaseDir, labWorkDir, type AgentLine } from '../test/e2e/lab';
import { clientState, installSignedPayload, ovmfSecureBootArgs, runVm, useSignedChain } from '../test/e2e/vm';
import { skipReason } from '../test/helpers/netns';

type Kind = 'bios' | 'uefi' | 'secureboot' | 'usb';
const KINDS: Kind[] = ['bios', 'uefi', 'secureboot', 'usb'];
const kind: Kind = KINDS.includes(process.argv[2] as Kind) ? (process.argv[2] as Kind) : 'uefi';
const IPXE_BIN = [join(process.cwd(), '..', 'shared', 'ipxe', 'bin'), join(process.cwd(), '..', '..', 'shared', 'ipxe', 'bin')].find((d) => existsSync(join(d, 'ipxe.usb')));
if (kind === 'usb' && !IPXE_BIN) {
  console.error('demo: FW=usb needs iPXE 2.0 with USB NIC drivers in ../shared/ipxe/bin (ipxe.usb); Debian 12\'s iPXE has none');
  process.exit(1);
}
const why = skipReason('qemu-system-x86_64', 'dnsmasq', 'python3', 'curl');
if (why) {
  console.error(`demo: cannot run: ${why}`);
  process.exit(1);
}
const agentJs = join(process.cwd(), 'dist', 'bootrelay.js');
if (!existsSync(agentJs)) {
  console.error('demo: dist/bootrelay.js missing (make build)');
  process.exit(1);
}

const t0 = Date.now();
const secs = () => ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
const fmtBytes = (n: unknown) => (typeof n === 'number' ? `${(n / 1e6).toFixed(2)} MB` : '');

function show(l: AgentLine): void {
  if (!l.type || l.type.endsWith('.progress')) return;
  const bits = [l.type.padEnd(16), l.mac ?? '', l.ip ? `ip=${l.ip}` : '', l.arch ? `arch=${l.arch}` : '', l.file ? `file=${l.file}` : '', l.type.endsWith('.done') ? fmtBytes(l.bytes) : '', l.error ? `error=${l.error}` : ''];
  console.log(`[${secs()}s] ${bits.filter(Boolean).join('  ')}`);
}

const lab = new BootLab({
  prefix: `brdemo${process.pid % 1000}`,
  work: labWorkDir('demo'),
  agentJs,
  onLine: show,
  // FW=secureboot: UEFI clients get Debian's signed shim + GRUB; the kernel is Debian's signed one
  ...(kind === 'secureboot'
    ? { beforeAgent: async (l: BootLab) => installSignedPayload(l, labBaseDir(), join(process.cwd(), 'test', 'e2e', 'lab', 'signed.sh')), configure: (cfg: Record<string, any>) => useSignedChain(cfg) }
    : {}),
});

const WHAT: Record<Kind, string> = {
  bios: 'a BIOS (SeaBIOS + iPXE) VM',
  uefi: 'a UEFI (OVMF) VM',
  secureboot: 'a UEFI VM with Secure Boot enforced (OVMF secboot, Microsoft keys) through shim and GRUB',
  usb: 'a BIOS VM whose only NIC is a USB dongle (usb-net on xHCI), iPXE 2.0 on a USB stick',
};

async function bootIt(): Promise<{ ok: boolean; mac: string; seconds: number; reason?: string; serialTail: string }> {
  if (kind === 'bios' || kind === 'uefi') return lab.boot(kind, kind === 'uefi' ? '52:54:00:99:de:01' : '52:54:00:99:de:02', 240_000);
  const mac = kind === 'secureboot' ? '52:54:00:99:de:03' : '52:54:00:99:de:04';
  const opts =
    kind === 'secureboot'
      ? { args: ovmfSecureBootArgs(lab.opts.work, 'demo', true), nic: ['-device', `virtio-net-pci,netdev=n0,mac=${mac},bootindex=1,romfile=`] }
      : (() => {
          const stick = join(lab.opts.work, 'stick.img');
          copyFileSync(join(IPXE_BIN!, 'ipxe.usb'), stick);
          return {
            args: ['-machine', 'pc,graphics=off', '-device', 'qemu-xhci,id=hc', '-drive', `if=none,id=stick,format=raw,file=${stick}`, '-device', 'usb-storage,bus=hc.0,drive=stick,bootindex=1'],
            nic: ['-device', `usb-net,bus=hc.0,netdev=n0,mac=${mac}`],
          };
        })();
  const r = await runVm(lab, { name: `demo-${kind}`, mac, timeoutMs: 300_000, ...opts });
  const st = await clientState(lab, mac);
  if (st?.nic) console.log(`[${secs()}s] client state: NIC ${String(st.nic.bus).toUpperCase()} ${st.nic.vendor}:${st.nic.device} ${st.nic.name ?? ''}`);
  if (st?.secureBoot !== undefined) console.log(`[${secs()}s] client state: Secure Boot ${st.secureBoot ? 'on' : 'off'} (reported by the booted system)`);
  return { ...r, mac };
}
let stopping = false;
async function teardown(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    console.log(`[${secs()}s] tearing the lab down`);
    await lab.stopAgent().catch(() => undefined);
    await lab.cleanup();
  }
  process.exit(code);
}
process.on('SIGINT', () => void teardown(130));
process.on('SIGTERM', () => void teardown(143));

async function main(): Promise<void> {
  console.log(`[${secs()}s] setting up: upstream 10.99.2.1 -- wan [relay] lan 10.99.1.1 -- switch -- VM`);
  await lab.up();
  console.log(`[${secs()}s] relay up; booting ${WHAT[kind]} under QEMU (TCG: 20-90 s)`);
  // relayctl shows the client's phase from the agent's control socket, as an operator would
  const watch = spawn(process.execPath, [join(process.cwd(), 'dist', 'relayctl.js'), '--socket', lab.socketPath, 'watch', '--timeout', '240'], { stdio: ['ignore', 'pipe', 'pipe'] });
  watch.stdout.on('data', (d) => process.stdout.write(String(d).split('\n').filter(Boolean).map((x) => `           relayctl: ${x}\n`).join('')));
  const r = await bootIt();
  watch.kill();
  if (r.ok) console.log(`[${secs()}s] BOOTED: ${r.mac} reached "booted" after ${r.seconds.toFixed(1)} s of VM time`);
  else console.log(`[${secs()}s] FAILED: ${r.reason}\n--- serial ---\n${r.serialTail}`);
  await teardown(r.ok ? 0 : 1);
}

main().catch(async (e) => {
  console.error(`demo: ${(e as Error).message}`);
  await teardown(1);
});
