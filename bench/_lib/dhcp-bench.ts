/** Shared parts of bench/dhcp.ts and bench/dhcp6.ts: dnsmasq as the baseline server, and the summary statistics. */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor, type NetLab } from '../../test/helpers/netns';

/**
 * Starts dnsmasq in `ns` with the config lines `conf` (written to `<tmp>/<name>.conf`; `<name>.leases`
 * and `<name>.pid` beside it, removed first) and waits (10 s) for its pid file. `conf` is given
 * the lease file's path. Returns the stop function.
 */
export async function startDnsmasq(lab: NetLab, ns: string, tmp: string, name: string, conf: (leaseFile: string) => string[]): Promise<() => Promise<void>> {
  const confFile = join(tmp, `${name}.conf`);
  const leases = join(tmp, `${name}.leases`);
  const pid = join(tmp, `${name}.pid`);
  rmSync(leases, { force: true });
  rmSync(pid, { force: true });
  writeFileSync(confFile, [...conf(leases), ''].join('\n'));
  const proc = lab.spawn(ns, 'dnsmasq', ['-k', '-C', confFile, `--pid-file=${pid}`]);
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error('dnsmasq exited');
    return existsSync(pid);
  }, 10_000, 'dnsmasq');
  return () => lab.kill(proc);
}

/** The median of the finite values; NaN when there are none. */
export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
}

/** "min–median–max" of a few repetitions (finite values only, `d` decimals); '-' when there are none. */
export function spread(xs: number[], d = 0): string {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return '-';
  const n = (x: number) => x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
  return s.length === 1 ? n(s[0]!) : `${n(s[0]!)}–${n(median(s))}–${n(s[s.length - 1]!)}`;
}
