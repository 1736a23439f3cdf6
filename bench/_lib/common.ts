/**
 * Shared parts of the benchmarks: a namespace lab that cleans up even when the
 * bench dies (exit/signal handlers kill our PIDs and delete our namespaces),
 * the user-space delay/rate link (bench/_lib/netemu.c, compiled at bench time),
 * the real agent bundle started in a namespace, the tests' upstream file server
 * counting bytes, curl/atftp clients and table printing. Namespaces, netemu,
 * the upstream and the bundle path are the test helpers' (test/helpers/).
 *
 * Helper processes are this same bundle started with a mode argument
 * (`--upstream …`); every bench calls helperMode() first.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasCmd, isRoot as runAsRoot, NetLab, waitFor } from '../../test/helpers/netns';
import { onJsonLines } from '../../test/helpers/jsonl';
import { startNetemu } from '../../test/helpers/netemu';
import { distAgent, repoRoot } from '../../test/helpers/repo';
import { TestUpstream } from '../../test/helpers/upstream';
import { serveBareTftp } from './bare-tftp';

export const MB = 1024 * 1024;
export { waitFor, hasCmd as has, repoRoot, distAgent as agentBundle };

/** Wall-clock ms with sub-ms resolution, comparable between processes on this machine. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export function machineLine(): string {
  return `machine: ${cpus().length}-core shared box (other engineers' jobs run beside this bench; numbers are noisy), ${cpus()[0]?.model ?? '?'}, node ${process.version}`;
}

export function isRoot(): boolean {
  return runAsRoot;
}

export function makeFile(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(MB);
  try {
    for (let left = bytes; left > 0; left -= MB) {
      randomFillSync(buf);
      writeSync(fd, buf, 0, Math.min(MB, left));
    }
  } finally {
    closeSync(fd);
  }
}

/** Peak (VmHWM) or current (VmRSS) resident set of a process, MiB. */
export function rssMb(pid: number, field: 'VmHWM' | 'VmRSS' = 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

export function fx(n: number | undefined, d = 1): string {
  return n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(d);
}

/** A markdown table, columns padded. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(w[i]!)).join(' | ') + ' |';
  return [line(head), '|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|', ...rows.map(line)].join('\n');
}

/**
 * NetLab plus netemu links and a synchronous last-resort cleanup on exit /
 * SIGINT / SIGTERM.
 */
export class BenchLab {
  readonly net: NetLab;
  readonly tmp: string;
  private done = false;
  private readonly onExit = () => this.cleanupSync();
  private readonly onSignal = () => {
    this.cleanupSync();
    process.exit(130);
  };

  constructor(prefix: string) {
    this.net = new NetLab(prefix);
    this.tmp = mkdtempSync(join(tmpdir(), `${prefix}-`));
    process.on('exit', this.onExit);
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  /**
   * A link between two of our namespaces through netemu: DELAY each way and a
   * rate (0 = none). Devices come up with the given addresses.
   */
  async netemuLink(a: { ns: string; dev: string; cidr: string }, b: { ns: string; dev: string; cidr: string }, delayUs: number, rateKbit: number): Promise<ChildProcess> {
    const p = await startNetemu(this.net, a, b, { delayUs, rateKbit, limit: 2000, workDir: this.tmp });
    for (const s of [a, b]) {
      this.net.ip(s.ns, 'link', 'set', s.dev, 'up');
      this.net.addr(s.ns, s.dev, s.cidr);
    }
    return p;
  }

  /** A plain veth with addresses. */
  veth(a: { ns: string; dev: string; cidr: string }, b: { ns: string; dev: string; cidr: string }): void {
    this.net.veth(a.ns, a.dev, b.ns, b.dev);
    this.net.addr(a.ns, a.dev, a.cidr);
    this.net.addr(b.ns, b.dev, b.cidr);
  }

  async cleanup(): Promise<void> {
    await this.net.cleanup();
    this.cleanupSync();
  }

  /** Kills what is left by PID, deletes our namespaces and temp dir. Safe to call twice. */
  cleanupSync(): void {
    if (this.done) return;
    this.done = true;
    for (const ns of [...this.net.namespaces]) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.split(/\s+/).filter(Boolean) ?? [];
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    this.net.namespaces.length = 0;
    rmSync(this.tmp, { recursive: true, force: true });
    process.off('exit', this.onExit);
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }
}

// ---------------------------------------------------------------- the agent

export interface AgentOpts {
  ns: string;
  dir: string;
  lanIf: string;
  lanIp: string;
  /** LAN prefix length; default 24 */
  lanPrefix?: number;
  /** extra environment for the agent process */
  env?: NodeJS.ProcessEnv;
  /** files written into the fresh stateDir before the start (name → content) */
  stateFiles?: Record<string, string>;
  upstreamUrl: string;
  dhcp?: Record<string, unknown>;
  /** IPv6: lan.address6/prefix6 and the dhcp6 section */
  lan6?: { address6: string; prefix6: number };
  dhcp6?: Record<string, unknown>;
  mqttUrl?: string;
  tftp?: Record<string, unknown>;
  boot?: Record<string, unknown>;
  logLevel?: string;
  /** node options before the bundle (default: the launcher's, image/files/usr/bin/bootrelay) */
  nodeArgs?: string[];
}

/**
 * The node options the product starts the agent with: those on the `exec node …`
 * line of the OpenWrt launcher (image/files/usr/bin/bootrelay), so the benches
 * measure what routers run. BENCH_NODE_FLAGS (space-separated) overrides them.
 */
export function launcherNodeArgs(): string[] {
  if (process.env.BENCH_NODE_FLAGS !== undefined) return process.env.BENCH_NODE_FLAGS.split(/\s+/).filter(Boolean);
  try {
    const m = /^exec node (.*?)\s*\/usr\/lib\/bootrelay\/bootrelay\.js/m.exec(readFileSync(join(repoRoot(), 'image/files/usr/bin/bootrelay'), 'utf8'));
    return m?.[1] ? m[1].split(/\s+/).filter(Boolean) : [];
  } catch {
    return [];
  }
}

export interface Agent {
  proc: ChildProcess;
  pid: number;
  /** stdout lines (JSON log lines), kept only if keepLines */
  lines: string[];
  stop(): Promise<void>;
}

/** Runs dist/bootrelay.js in a namespace with a fresh state and cache dir; resolves once /api/status answers. */
export async function startAgent(lab: BenchLab, o: AgentOpts, keepLines = false): Promise<Agent> {
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true });
  const cfg = {
    agentId: 'bench-relay',
    stateDir: join(o.dir, 'state'),
    lan: { interface: o.lanIf, address: o.lanIp, prefix: o.lanPrefix ?? 24, ...(o.lan6 ?? {}) },
    dhcp: o.dhcp ?? { mode: 'off' },
    ...(o.dhcp6 ? { dhcp6: o.dhcp6 } : {}),
    tftp: { port: 69, maxBlksize: 1468, maxWindowsize: 64, maxTransfers: 64, maxTransfersPerClient: 8, ...(o.tftp ?? {}) },
    http: { port: 80 },
    upstream: { url: o.upstreamUrl, timeoutMs: 30_000 },
    cache: { dir: join(o.dir, 'cache'), maxBytes: 4_000_000_000 },
    boot: o.boot ?? { loaders: { bios: 'ipxe/undionly.kpxe' }, defaultProfile: 'b', profiles: { b: { kernel: 'k/vmlinuz', initrd: ['k/initrd'] } } },
    ...(o.mqttUrl ? { mqtt: { url: o.mqttUrl, prefix: 'bootrelay' } } : {}),
    control: { socket: join(o.dir, 'ctl.sock') },
    log: { level: o.logLevel ?? 'warn' },
  };
  if (o.stateFiles) {
    mkdirSync(cfg.stateDir, { recursive: true });
    for (const [name, text] of Object.entries(o.stateFiles)) writeFileSync(join(cfg.stateDir, name), text);
  }
  const cfgPath = join(o.dir, 'relay.json');
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  // `ip netns exec` execs: the PID is node's own (VmHWM is the agent's)
  const proc = lab.net.spawn(o.ns, process.execPath, [...(o.nodeArgs ?? launcherNodeArgs()), distAgent(), '--config', cfgPath], o.env ? { env: { ...process.env, ...o.env } } : {});
  const lines: string[] = [];
  let err = '';
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    if (!keepLines) return;
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode}: ${err}`);
      return (await lab.net.exec(o.ns, 'curl', ['-sf', '-o', '/dev/null', '--max-time', '2', `http://${o.lanIp}/api/status`])).code === 0;
    },
    20_000,
    'agent /api/status',
  );
  return { proc, pid: proc.pid!, lines, stop: () => lab.net.kill(proc, 'SIGTERM', 5000) };
}

// ---------------------------------------------------------------- upstream file server

export interface UpstreamReq {
  path: string;
  status: number;
  bytes: number;
  range?: string;
}

/**
 * Starts `<this bundle> --upstream DIR IP PORT` in a namespace: the tests' TestUpstream serving
 * DIR at `/`, printing one JSON line per finished request (path with its leading /, bytes sent).
 */
export async function startUpstream(lab: BenchLab, ns: string, dir: string, ip: string, port: number): Promise<{ proc: ChildProcess; reqs: UpstreamReq[]; reset(): void; bytes(): number }> {
  const proc = lab.net.spawn(ns, process.execPath, [process.argv[1]!, '--upstream', dir, ip, String(port)]);
  const reqs: UpstreamReq[] = [];
  let ready = false;
  onJsonLines(proc.stdout!, (obj, raw) => {
    if (raw === 'ready') ready = true;
    else if (obj) reqs.push(obj as unknown as UpstreamReq);
  });
  proc.stderr!.on('data', (d) => process.stderr.write(d));
  await waitFor(() => {
    if (proc.exitCode !== null) throw new Error('upstream exited');
    return ready;
  }, 10_000, 'upstream');
  return { proc, reqs, reset: () => (reqs.length = 0), bytes: () => reqs.reduce((s, r) => s + r.bytes, 0) };
}

function serveUpstream(dir: string, ip: string, port: number): void {
  const up = new TestUpstream(dir, undefined, '/');
  up.onDone = (r) => {
    process.stdout.write(JSON.stringify({ path: `/${r.path}`, status: r.status, bytes: r.bytes, range: r.headers.range }) + '\n');
    up.requests.length = 0; // reported: not kept (a bench makes many)
  };
  up.start(port, ip).then(
    () => process.stdout.write('ready\n'),
    (err: Error) => (console.error(`upstream: ${err.message}`), process.exit(1)),
  );
  process.on('SIGTERM', () => process.exit(0));
}

/** Call first in every bench: true when this process is a helper and must not run the bench. */
export function helperMode(): boolean {
  if (process.argv[2] === '--upstream') {
    serveUpstream(process.argv[3]!, process.argv[4]!, Number(process.argv[5]));
    return true;
  }
  if (process.argv[2] === '--bare-tftp') {
    serveBareTftp(process.argv[3]!, process.argv[4]!);
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- clients

export interface CurlResult {
  code: number | null;
  http: number;
  /** seconds from this client's start */
  firstByte: number;
  total: number;
  bytes: number;
  err: string;
}

/** One curl in a namespace; -w gives first-byte and total time. */
export function curl(lab: BenchLab, ns: string, url: string, args: string[] = [], timeoutMs = 600_000): Promise<CurlResult> {
  return lab.net
    .exec(ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_starttransfer} %{time_total} %{size_download}', ...args, url], { timeoutMs })
    .then((r) => {
      const [h, fb, tot, sz] = r.stdout.trim().split(/\s+/).map(Number);
      return { code: r.code, http: h ?? 0, firstByte: fb ?? NaN, total: tot ?? NaN, bytes: sz ?? 0, err: r.stderr.trim().slice(0, 200) };
    });
}

export async function runMain(main: () => Promise<void>): Promise<void> {
  if (helperMode()) return;
  try {
    await main();
    process.exit(0);
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
}
