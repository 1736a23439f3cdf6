/**
 * Network-namespace test hosts. Everything created here is named with this
 * lab's own prefix and removed by cleanup(): namespaces (which takes their
 * veths, taps and bridges along) and the processes we spawned (by PID only).
 * Only 10.99.x.y addresses are used inside them.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export function hasCmd(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Why a root/tool-dependent suite cannot run here, or undefined when it can. */
export function skipReason(...cmds: string[]): string | undefined {
  if (!isRoot) return 'needs root (network namespaces)';
  const missing = cmds.filter((c) => !hasCmd(c));
  if (missing.length) return `missing tools: ${missing.join(', ')} (scripts/install-deps.sh installs them)`;
  return undefined;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class NetLab {
  readonly namespaces: string[] = [];
  private procs = new Set<ChildProcess>();

  /** prefix: short and unique per test file, e.g. `brd${process.pid}` */
  constructor(readonly prefix: string) {}

  ns(name: string): string {
    return `${this.prefix}-${name}`;
  }

  addNs(name: string): string {
    const ns = this.ns(name);
    run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    return ns;
  }

  /** A veth pair between two of our namespaces (never in the caller's). */
  veth(nsA: string, devA: string, nsB: string, devB: string): void {
    run('ip', ['-n', nsA, 'link', 'add', devA, 'type', 'veth', 'peer', 'name', devB, 'netns', nsB]);
    run('ip', ['-n', nsA, 'link', 'set', devA, 'up']);
    run('ip', ['-n', nsB, 'link', 'set', devB, 'up']);
  }

  bridge(ns: string, br: string, ...ports: string[]): void {
    run('ip', ['-n', ns, 'link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    for (const p of ports) run('ip', ['-n', ns, 'link', 'set', p, 'master', br]);
    run('ip', ['-n', ns, 'link', 'set', br, 'up']);
  }

  addr(ns: string, dev: string, cidr: string): void {
    run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
  }

  ip(ns: string, ...args: string[]): void {
    run('ip', ['-n', ns, ...args]);
  }

  /** Runs a command to completion inside a namespace. */
  exec(ns: string, cmd: string, args: string[] = [], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
    return new Promise((resolve) => {
      const p = this.spawn(ns, cmd, args, { env: opts.env });
      let stdout = '';
      let stderr = '';
      p.stdout?.on('data', (d) => (stdout += d));
      p.stderr?.on('data', (d) => (stderr += d));
      const t = setTimeout(() => p.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
      if (opts.input !== undefined) p.stdin?.end(opts.input);
      else p.stdin?.end();
      p.on('close', (code) => {
        clearTimeout(t);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Starts a long-running process inside a namespace; cleanup() kills it by PID. */
  spawn(ns: string, cmd: string, args: string[] = [], opts: SpawnOptions = {}): ChildProcess {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    this.procs.add(p);
    p.on('exit', () => this.procs.delete(p));
    return p;
  }

  /**
   * Signals a process and resolves on its `close` (its pipes drained), so what
   * the caller collected from stdout/stderr is whole. A grandchild that keeps
   * the pipes open does not hold this up for more than a moment after the exit.
   */
  async kill(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', waitMs = 5000): Promise<void> {
    const exited = p.exitCode !== null || p.signalCode !== null;
    if (exited && [p.stdout, p.stderr].every((s) => !s || s.closed)) return;
    const done = new Promise<void>((r) => p.once('close', () => r()));
    let drain: NodeJS.Timeout | undefined;
    const letGo = () => (drain = setTimeout(() => [p.stdin, p.stdout, p.stderr].forEach((s) => s?.destroy()), 2000));
    if (exited) letGo();
    else p.once('exit', letGo);
    const t = exited ? undefined : setTimeout(() => p.kill('SIGKILL'), waitMs);
    if (!exited) p.kill(signal);
    await done;
    clearTimeout(t);
    clearTimeout(drain);
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.procs].map((p) => this.kill(p, 'SIGTERM', 2000)));
    for (const ns of this.namespaces.reverse()) {
      // anything still inside one of our namespaces was started by this lab
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    this.namespaces.length = 0;
  }
}

/** Polls fn until it returns a truthy value or the time runs out (no fixed sleeps). */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs: number, what = 'condition'): Promise<NonNullable<T>> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
