/**
 * The tracker's words: file names as a person reads them, byte counts and durations, and what a
 * failure means. Pure functions over plain values (the phase machine is in tracker.ts, the
 * sentences about one client in explain.ts).
 */
import type { ArchKey, FileRole, HttpErrorEvent, TftpErrorEvent } from '../../proto/events';

export const ARCH_NAMES: Record<string, string> = {
  bios: 'BIOS',
  'uefi-ia32': 'UEFI x86 (32-bit)',
  'uefi-x64': 'UEFI x64',
  'uefi-arm32': 'UEFI ARM (32-bit)',
  'uefi-arm64': 'UEFI ARM64',
  'uefi-riscv64': 'UEFI RISC-V 64',
  unknown: 'unknown-architecture',
};

/** `/files/debian/vmlinuz?x`, `http://h/files/debian/vmlinuz`, `debian/vmlinuz` → `debian/vmlinuz`; `/boot.ipxe?mac=…` → `/boot.ipxe`. */
export function cleanFile(f: unknown): string | undefined {
  if (typeof f !== 'string' || f === '') return undefined;
  let p = f;
  const url = /^[a-z]+:\/\/[^/]*(\/.*)?$/i.exec(p);
  if (url) p = url[1] ?? '/';
  p = p.replace(/[?#].*$/, '').replace(/\\/g, '/');
  if (/(^|\/)boot\.ipxe$/.test(p)) return '/boot.ipxe';
  if (p.startsWith('/files/')) p = p.slice(7);
  return p.replace(/^\/+/, '');
}

export function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

export function agoText(ms: number): string {
  return ms < 1000 ? 'just now' : `${fmtDuration(ms)} ago`;
}

export function fmtDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A loader offered or fetched by a client of another architecture. */
export function wrongArchText(arch: ArchKey, loaderArchs: ArchKey[], file: string, verb: 'was offered' | 'loaded'): string {
  return `a ${ARCH_NAMES[arch] ?? arch} client ${verb} the ${loaderArchs.join('/')} loader ${file}, which it cannot run`;
}

/** No request followed the ACK that named a boot file. */
export function noRequestText(kind: 'tftp' | 'http' | 'script', file: string, secs: number): string {
  return kind === 'tftp'
    ? `no TFTP request within ${secs} s of the ACK: the firmware rejected the offer`
    : kind === 'http'
      ? `no HTTP request for ${file} within ${secs} s of the ACK: the firmware rejected the offer`
      : `no HTTP request for /boot.ipxe within ${secs} s of the ACK: iPXE could not fetch its script`;
}

/** A transfer that stopped moving. */
export function stallText(file: string, proto: 'tftp' | 'http', bytes: number, total: number | null, secs: number): string {
  const got = total ? `${fmtBytes(bytes)} of ${fmtBytes(total)}` : fmtBytes(bytes);
  return `no progress for ${secs} s while loading ${file} over ${proto.toUpperCase()} (${got})`;
}

/**
 * What a failed transfer means for the client, in words; undefined when the client stopped it
 * itself (a PXE ROM's tsize probe sends ERROR 8 after the OACK; iPXE closes a TFTP transfer it
 * does not want), which is normal.
 */
export function transferFailure(ev: TftpErrorEvent | HttpErrorEvent, file: string, role: FileRole, mac: string): string | undefined {
  const what = role === 'script' && file !== '/boot.ipxe' ? `the iPXE script ${file}` : file;
  if (ev.type === 'tftp.error') {
    switch (ev.reason) {
      case 'aborted':
        return undefined;
      case 'not-found':
        return `upstream 404 for ${file}`;
      case 'refused':
        return `TFTP request for ${what} refused: ${ev.error}`;
      case 'timeout':
        return `the TFTP transfer of ${what} timed out: ${ev.error}`;
      case 'upstream-error':
        return `TFTP transfer of ${what} failed: ${ev.error}`;
    }
  }
  switch (ev.reason) {
    case 'no-profile':
      return `no boot profile for ${mac}: set boot.defaultProfile or use relayctl assign`;
    case 'not-found':
      return `upstream 404 for ${file}`;
    case 'refused':
    case 'upstream-error':
      return ev.status !== undefined ? `upstream ${ev.status} for ${file}` : `HTTP transfer of ${what} failed: ${ev.error}`;
    case 'aborted':
      // an HTTP client that hangs up mid-file did not get it (firmware gives up; iPXE retries as a new request)
      return `HTTP transfer of ${what} failed: ${ev.error}`;
  }
}

