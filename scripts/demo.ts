/**
 * `make demo`: builds the lab (upstream, router, LAN), starts the agent, boots
 * one UEFI virtual machine through it and shows each step as it happens, then
 * tears everything down. Needs root (network namespaces) and the Debian
 * packages scripts/install-deps.sh installs (`make demo` runs it first).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { BootLab, labWorkDir, type AgentLine } from '../test/e2e/lab';
import { skipReason } from '../test/helpers/netns';

const kind = (process.argv[2] === 'bios' ? 'bios' : 'uefi') as 'bios' | 'uefi';
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

const lab = new BootLab({ prefix: `brdemo${process.pid % 1000}`, work: labWorkDir('demo'), agentJs, onLine: show });
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
  console.log(`[${secs()}s] relay up; booting a ${kind === 'uefi' ? 'UEFI (OVMF)' : 'BIOS (SeaBIOS + iPXE)'} VM under QEMU (TCG: 20-40 s)`);
  // relayctl shows the client's phase from the agent's control socket, as an operator would
  const watch = spawn(process.execPath, [join(process.cwd(), 'dist', 'relayctl.js'), '--socket', lab.socketPath, 'watch', '--timeout', '240'], { stdio: ['ignore', 'pipe', 'pipe'] });
  watch.stdout.on('data', (d) => process.stdout.write(String(d).split('\n').filter(Boolean).map((x) => `           relayctl: ${x}\n`).join('')));
  const r = await lab.boot(kind, kind === 'uefi' ? '52:54:00:99:de:01' : '52:54:00:99:de:02', 240_000);
  watch.kill();
  if (r.ok) console.log(`[${secs()}s] BOOTED: ${r.mac} reached "booted" after ${r.seconds.toFixed(1)} s of VM time`);
  else console.log(`[${secs()}s] FAILED: ${r.reason}\n--- serial ---\n${r.serialTail}`);
  await teardown(r.ok ? 0 : 1);
}

main().catch(async (e) => {
  console.error(`demo: ${(e as Error).message}`);
  await teardown(1);
});
