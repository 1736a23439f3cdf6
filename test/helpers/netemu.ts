/**
 * netemu (bench/_lib/netemu.c): a user-space delay/rate link between two
 * namespaces, for kernels without sch_netem. Compiled once per work dir,
 * started inside the first namespace (NetLab kills it by PID), ready when it
 * says so. Used by test/integration/uplink-faults.test.ts and the benchmarks.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { hasCmd, waitFor, type NetLab } from './netns';
import { repoRoot } from './repo';

export interface LinkEnd {
  ns: string;
  dev: string;
}

export interface NetemuOptions {
  /** added each way, µs */
  delayUs: number;
  /** kbit/s each way, 0 for no limit */
  rateKbit: number;
  /** tail-drop queue, packets */
  limit?: number;
  /** where the binary is compiled */
  workDir: string;
}

/** Why netemu cannot be built here, or undefined. */
export function netemuSkipReason(): string | undefined {
  if (!hasCmd('gcc')) return 'no gcc to build bench/_lib/netemu.c';
  if (!existsSync(join(repoRoot(), 'bench/_lib/netemu.c'))) return 'bench/_lib/netemu.c missing';
  return undefined;
}

/** Compiles netemu into workDir (once) and returns the binary. */
export function buildNetemu(workDir: string): string {
  const bin = join(workDir, 'netemu');
  if (existsSync(bin)) return bin;
  const r = spawnSync('gcc', ['-O2', '-o', bin, join(repoRoot(), 'bench/_lib/netemu.c')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc netemu.c failed: ${r.stderr}`);
  return bin;
}

/** Starts the link a ↔ b; the devices exist (down, no address) once this resolves. */
export async function startNetemu(lab: NetLab, a: LinkEnd, b: LinkEnd, o: NetemuOptions): Promise<ChildProcess> {
  const bin = buildNetemu(o.workDir);
  const p = lab.spawn(a.ns, bin, [`${a.ns}:${a.dev}`, `${b.ns}:${b.dev}`, String(o.delayUs), String(o.rateKbit), String(o.limit ?? 1000)]);
  let out = '';
  let err = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (err += d));
  await waitFor(() => {
    if (p.exitCode !== null) throw new Error(`netemu exited: ${err}`);
    return out.includes('ready');
  }, 5000, 'netemu ready');
  return p;
}
