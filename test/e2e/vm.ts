/**
 * A QEMU VM on a BootLab's LAN with firmware and NIC of the test's choosing (Secure Boot
 * OVMF, USB-only NICs …), watched until a condition on the agent's events holds.
 * BootLab.boot() covers the plain BIOS/UEFI cases; this is the general form.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from '../helpers/netns';
import type { AgentLine, BootLab } from './lab';

export interface VmOptions {
  name: string;
  mac: string;
  /** firmware and machine arguments; `NETDEV` in any argument is replaced by the tap netdev id (n0) */
  args: string[];
  /** the NIC device arguments (use netdev=n0) */
  nic: string[];
  timeoutMs: number;
  /** done when this holds for the VM's events (default: client.booted) */
  until?: (events: AgentLine[]) => boolean;
  /** serial output that means the boot failed (default: firmware dead ends) */
  failRe?: RegExp;
}

export interface VmResult {
  ok: boolean;
  seconds: number;
  reason?: string;
  serial: string;
  serialTail: string;
}

const DEAD_ENDS = /No bootable device|No more network devices|Kernel panic|LAB: FAILED|Shell> |No bootable option or device was found/;

/** Secure Boot OVMF (q35 + SMM, secure pflash) with a fresh copy of the vars; `sb` false: the same code without keys. */
export function ovmfSecureBootArgs(work: string, name: string, sb: boolean): string[] {
  const dir = '/usr/share/OVMF';
  const code = sb ? `${dir}/OVMF_CODE_4M.secboot.fd` : `${dir}/OVMF_CODE_4M.fd`;
  const vars = join(work, `vars-${name}.fd`);
  copyFileSync(sb ? `${dir}/OVMF_VARS_4M.ms.fd` : `${dir}/OVMF_VARS_4M.fd`, vars);
  return [
    '-machine', 'q35,smm=on,graphics=off',
    '-global', 'driver=cfi.pflash01,property=secure,value=on',
    '-global', 'ICH9-LPC.disable_s3=1',
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${code}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${vars}`,
  ];
}

export async function runVm(lab: BootLab, o: VmOptions): Promise<VmResult> {
  const tap = `tv${o.mac.slice(-5).replace(':', '')}`;
  const n = lab.net;
  const work = lab.opts.work;
  n.ip(lab.nsSw, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
  n.ip(lab.nsSw, 'link', 'set', tap, 'master', 'br0');
  n.ip(lab.nsSw, 'link', 'set', tap, 'up');
  mkdirSync(work, { recursive: true });
  const serialFile = join(work, `serial-${o.name}.log`);
  writeFileSync(serialFile, '');
  const args = [
    '-accel', 'tcg', '-m', '512', '-smp', '1', '-display', 'none', '-monitor', 'none', '-serial', `file:${serialFile}`, '-no-reboot', '-nodefaults',
    ...o.args,
    '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`,
    ...o.nic,
  ];
  const t0 = Date.now();
  const qemu = n.spawn(lab.nsSw, 'qemu-system-x86_64', args);
  let qerr = '';
  qemu.stderr?.on('data', (d) => (qerr += d));
  const serial = () => readFileSync(serialFile, 'latin1').replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').replace(/\r/g, '');
  const until = o.until ?? ((ev: AgentLine[]) => ev.some((e) => e.type === 'client.booted'));
  const failRe = o.failRe ?? DEAD_ENDS;
  let reason: string | undefined;
  try {
    await waitFor(
      () => {
        if (until(lab.events(o.mac))) return true;
        if (qemu.exitCode !== null && Date.now() - t0 > 1000) throw new Error(`qemu exited (${qemu.exitCode}): ${qerr.slice(-500)}`);
        const m = failRe.exec(serial());
        if (m) throw new Error(`guest says: ${m[0]}`);
        return false;
      },
      o.timeoutMs,
      `VM ${o.name} (${o.mac})`,
    );
  } catch (e) {
    reason = (e as Error).message;
  }
  const seconds = (Date.now() - t0) / 1000;
  await n.kill(qemu, 'SIGTERM', 3000);
  spawnSync('ip', ['-n', lab.nsSw, 'link', 'del', tap]);
  const text = serial();
  return { ok: !reason, seconds, reason, serial: text, serialTail: text.split('\n').filter(Boolean).slice(-25).join('\n') };
}

/** The relay's client state for a MAC, read from its /api/clients inside the relay namespace. */
export async function clientState(lab: BootLab, mac: string): Promise<Record<string, any> | undefined> {
  const r = await lab.net.exec(lab.nsRelay, 'curl', ['-sf', 'http://10.99.1.1/api/clients']);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as Array<Record<string, any>>).find((c) => c.mac === mac);
}

/** Seconds from the VM's first DHCPDISCOVER to its client.booted, from the agent's event times. */
export function discoverToBooted(events: AgentLine[]): number | undefined {
  const d = events.find((e) => e.type === 'dhcp.discover');
  const b = events.find((e) => e.type === 'client.booted');
  if (!d?.time || !b?.time) return undefined;
  return (Date.parse(String(b.time)) - Date.parse(String(d.time))) / 1000;
}

/** A FAT "disk" from a directory, for OVMF's removable-media path (QEMU's vvfat). */
export function espDir(work: string, name: string, files: Record<string, string>): string {
  const d = join(work, `esp-${name}`);
  rmSync(d, { recursive: true, force: true });
  for (const [to, from] of Object.entries(files)) {
    mkdirSync(join(d, to, '..'), { recursive: true });
    copyFileSync(from, join(d, to));
  }
  return d;
}

/** Debian's signed shim + GRUB and the Secure Boot initrd (test/e2e/lab/signed.sh, cached in the lab base dir) into this lab's upstream. */
export function installSignedPayload(lab: BootLab, baseDir: string, script: string): void {
  const r = spawnSync('bash', [script, baseDir], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error('signed.sh failed');
  mkdirSync(join(lab.www, 'sb'), { recursive: true });
  for (const f of ['sb/shimx64.efi', 'sb/grubnetx64.efi.signed', 'debian/initrd-sb.gz']) copyFileSync(join(baseDir, 'www', f), join(lab.www, f));
}

/** The agent config of a lab whose UEFI clients get the signed chain and the Secure Boot initrd. */
export function useSignedChain(cfg: Record<string, any>, cmdlineExtra = ''): void {
  cfg.boot.loaders = { bios: 'ipxe/undionly.kpxe', 'uefi-x64': { shim: 'sb/shimx64.efi', grub: 'sb/grubnetx64.efi.signed' } };
  cfg.boot.profiles.lab = { kernel: 'debian/vmlinuz', initrd: ['debian/initrd-sb.gz'], cmdline: `console=ttyS0 panic=1 lab.report=http://10.99.1.1/booted${cmdlineExtra ? ' ' + cmdlineExtra : ''}` };
}
