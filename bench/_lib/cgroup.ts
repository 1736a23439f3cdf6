/**
 * cgroup v1 helpers for the benches: per-server CPU time (cpuacct.usage) and a
 * CPU quota (cpu.cfs_quota_us), plus CPU pinning (taskset). A group is created
 * under /sys/fs/cgroup/{cpuacct,cpu}/<name>, processes are moved in by PID (their
 * later children inherit it: tftpd-hpa's per-transfer forks are counted), and
 * removed at cleanup after moving whatever is left back to the root group.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';

export function cgroupV1(): string | undefined {
  if (!existsSync(join(ROOT, 'cpuacct/cpuacct.usage'))) return 'no cgroup v1 cpuacct hierarchy';
  if (!existsSync(join(ROOT, 'cpu/cpu.cfs_quota_us'))) return 'no cgroup v1 cpu hierarchy (cfs quota)';
  return undefined;
}

export class CpuGroup {
  private readonly dirs: string[];
  private closed = false;

  constructor(readonly name: string) {
    this.dirs = ['cpuacct', 'cpu'].map((h) => join(ROOT, h, name));
    for (const d of this.dirs) mkdirSync(d, { recursive: true });
  }

  /** Moves a process (all its threads) into the group. */
  add(pid: number): void {
    for (const d of this.dirs) writeFileSync(join(d, 'cgroup.procs'), String(pid));
  }

  /** CPU time of everything in the group since it was made, in ms. */
  cpuMs(): number {
    return Number(readFileSync(join(this.dirs[0]!, 'cpuacct.usage'), 'utf8')) / 1e6;
  }

  /** Limits the group to `fraction` of one CPU (undefined: no limit). */
  quota(fraction: number | undefined): void {
    const period = 100_000;
    writeFileSync(join(this.dirs[1]!, 'cpu.cfs_period_us'), String(period));
    writeFileSync(join(this.dirs[1]!, 'cpu.cfs_quota_us'), fraction === undefined ? '-1' : String(Math.round(period * fraction)));
  }

  /** Moves what is left back to the root groups and removes ours. Safe to call twice. */
  remove(): void {
    if (this.closed) return;
    this.closed = true;
    for (const d of this.dirs) {
      const h = join(d, '..');
      try {
        for (const pid of readFileSync(join(d, 'cgroup.procs'), 'utf8').split(/\s+/).filter(Boolean)) {
          try {
            writeFileSync(join(h, 'cgroup.procs'), pid);
          } catch {
            /* exited meanwhile */
          }
        }
        rmdirSync(d);
      } catch {
        /* already gone */
      }
    }
  }
}

/** Pins every thread of a process to one CPU. */
export function pin(pid: number, cpu: number): void {
  spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' });
}
