/** Human output for relayctl: tables, sizes, durations, progress bars. */

export function fmtBytes(n: unknown): string {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-';
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

export function fmtSeconds(s: unknown): string {
  if (typeof s !== 'number' || !Number.isFinite(s)) return '-';
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

/** "12 s ago" from an ISO time. */
export function ago(iso: unknown, now = Date.now()): string {
  if (typeof iso !== 'string') return '-';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '-';
  return `${fmtSeconds(Math.max(0, (now - t) / 1000))} ago`;
}

export function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (Array.isArray(v)) return v.length ? v.map(cell).join(',') : '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v).replace(/[\r\n\t]+/g, ' ');
}

/** A plain-text table with a header row; columns sized to their widest cell, the last one not padded. */
export function table(headers: string[], rows: unknown[][]): string {
  const cells = rows.map((r) => r.map(cell));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

export function bar(fraction: number, width = 24): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.round(f * width);
  return '[' + '#'.repeat(full) + '.'.repeat(width - full) + ']';
}

export interface ClientView {
  mac: string;
  ip?: string | null;
  ip6?: string;
  arch?: string | null;
  firmware?: string | null;
  profile?: string | null;
  phase: string;
  file?: string | null;
  bytes?: number;
  totalBytes?: number | null;
  etaSeconds?: number;
  rate?: number;
  error?: string | null;
  updatedAt?: string;
  startedAt?: string;
  nic?: { bus: string; vendor: string; device: string; name?: string };
  uuid?: string;
  secureBoot?: boolean;
}

/** "USB 0b95:772a ASIX AX88772A", or '-' */
export function nicCell(c: ClientView): string {
  const n = c.nic;
  if (!n) return '-';
  return `${String(n.bus).toUpperCase()} ${n.vendor}:${n.device}${n.name ? ` ${n.name}` : ''}`;
}

export function progressText(c: ClientView): string {
  if (!c.file) return '-';
  if (c.totalBytes) return `${Math.floor(((c.bytes ?? 0) / c.totalBytes) * 100)}% of ${fmtBytes(c.totalBytes)}`;
  if (c.bytes) return fmtBytes(c.bytes);
  return '-';
}

/** One live line of `relayctl watch` on a terminal. */
export function watchLine(c: ClientView, cols = 120): string {
  const head = `${c.mac}  ${(c.ip ?? c.ip6 ?? '-').padEnd(15)}  ${(c.arch ?? '-').padEnd(10)}  ${c.phase.padEnd(7)}`;
  let tail: string;
  if (c.phase === 'failed') tail = `FAILED: ${c.error ?? ''}`;
  else if (c.phase === 'booted') tail = `booted${c.profile ? ` (${c.profile})` : ''}`;
  else if (c.file && c.totalBytes) {
    const f = (c.bytes ?? 0) / c.totalBytes;
    const eta = c.etaSeconds !== undefined && c.etaSeconds > 0 ? ` ETA ${fmtSeconds(c.etaSeconds)}` : '';
    tail = `${bar(f)} ${String(Math.floor(f * 100)).padStart(3)}% ${fmtBytes(c.bytes)}/${fmtBytes(c.totalBytes)}${eta}  ${c.file}`;
  } else if (c.file) tail = `${bar(0).replace(/\./g, '?')} ${fmtBytes(c.bytes ?? 0)}  ${c.file}`;
  else tail = c.phase === 'handoff' ? 'kernel started; waiting for /booted' : '';
  const line = `${head}  ${tail}`;
  return line.length > cols ? line.slice(0, cols - 1) + '…' : line;
}
