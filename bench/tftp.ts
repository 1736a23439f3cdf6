/**
 * bench/tftp: TftpService against tftpd-hpa on loopback, same client (atftp).
 *   - throughput (MB/s) for a 100 MB file at blksize 1468 with windowsize 1 and 16
 *     (tftpd-hpa has no windowsize: it answers lock-step either way)
 *   - peak RSS (VmHWM) of our server process serving a 10 MB and a 200 MB file
 * Our server runs as a child process (this same bundle with --serve) so its RSS
 * is its own. Bounded in count and time; loopback only.
 * Run: node scripts/run-ts.mjs bench/tftp.ts   (env BENCH_TFTP_MB=100 sets the size)
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { chmodSync, createReadStream, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { silentLogger } from '../agent/log';
import { Metrics } from '../relay/metrics';
import { TftpService } from '../relay/tftp/service';
import { DirSource } from '../test/helpers/dir-source';

const MB = 1024 * 1024;
const SIZE_MB = Number(process.env.BENCH_TFTP_MB ?? 100);
const RSS_SIZES_MB = [10, 200];
const CLIENT_LIMIT_MS = 180_000;

async function serve(dir: string): Promise<void> {
  const svc = new TftpService({
    address: '127.0.0.1',
    port: 0,
    source: new DirSource(dir),
    config: { port: 0, maxBlksize: 1468, maxWindowsize: 64, timeout: 1, retries: 5, maxTransfers: 16, maxTransfersPerClient: 8 },
    log: silentLogger,
    metrics: new Metrics(),
    emit: () => {},
  });
  await svc.start();
  process.stdout.write(JSON.stringify({ port: svc.port }) + '\n');
  process.on('SIGTERM', () => void svc.stop().then(() => process.exit(0)));
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function makeFile(path: string, mb: number): void {
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(MB);
  for (let i = 0; i < mb; i++) {
    randomFillSync(buf);
    writeSync(fd, buf);
  }
  closeSync(fd);
}

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind({ address: '127.0.0.1', port: 0 }, () => r()));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

function sha(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

async function startOurs(dir: string): Promise<{ proc: ChildProcess; port: number }> {
  const proc = spawn(process.execPath, [process.argv[1], '--serve', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('server did not start')), 10_000);
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(t);
        resolve(JSON.parse(buf.slice(0, nl)).port as number);
      }
    });
    proc.once('exit', () => reject(new Error('server exited')));
  });
  return { proc, port };
}

async function startHpa(dir: string): Promise<{ proc: ChildProcess; port: number }> {
  const port = await freePort();
  const proc = spawn('in.tftpd', ['-L', '-s', dir, '-a', `127.0.0.1:${port}`], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 300)); // in.tftpd prints nothing when ready
  return { proc, port };
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}

function status(pid: number, field: string): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function atftp(port: number, file: string, out: string, windowsize: number): Promise<{ ms: number; ok: boolean; err: string }> {
  const args = ['--option', 'blksize 1468', ...(windowsize > 1 ? ['--option', `windowsize ${windowsize}`] : []), '-g', '-r', file, '-l', out, '127.0.0.1', String(port)];
  const t0 = process.hrtime.bigint();
  const r = await new Promise<{ code: number | null; err: string }>((resolve) => {
    const p = spawn('atftp', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d) => (err += d));
    const t = setTimeout(() => p.kill('SIGKILL'), CLIENT_LIMIT_MS);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, err });
    });
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, ok: r.code === 0, err: r.err.trim() };
}

async function main(): Promise<void> {
  if (process.argv[2] === '--serve') return serve(process.argv[3]);
  if (!has('atftp')) {
    console.log('bench tftp: atftp not installed, skipped');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-tftp-'));
  const outDir = mkdtempSync(join(tmpdir(), 'bench-tftp-out-'));
  const procs: ChildProcess[] = [];
  try {
    chmodSync(dir, 0o755); // in.tftpd drops to nobody inside its chroot
    const big = `big-${SIZE_MB}.bin`;
    makeFile(join(dir, big), SIZE_MB);
    for (const mb of RSS_SIZES_MB) makeFile(join(dir, `rss-${mb}.bin`), mb);
    for (const f of [big, ...RSS_SIZES_MB.map((mb) => `rss-${mb}.bin`)]) chmodSync(join(dir, f), 0o644);
    const want = await sha(join(dir, big));

    console.log(`TFTP throughput, ${SIZE_MB} MB file, blksize 1468, client atftp, loopback`);
    console.log('| server | windowsize asked | time s | MB/s | sha256 ok |');
    console.log('| --- | --- | --- | --- | --- |');
    const servers: Array<{ name: string; start: (d: string) => Promise<{ proc: ChildProcess; port: number }> }> = [
      { name: 'bootrelay', start: startOurs },
    ];
    if (has('in.tftpd')) servers.push({ name: 'tftpd-hpa', start: startHpa });
    for (const srv of servers) {
      const { proc, port } = await srv.start(dir);
      procs.push(proc);
      for (const w of [1, 16]) {
        const out = join(outDir, `${srv.name}-${w}.bin`);
        const r = await atftp(port, big, out, w);
        const ok = r.ok && (await sha(out)) === want;
        const mbps = (statSync(out, { throwIfNoEntry: false })?.size ?? 0) / MB / (r.ms / 1000);
        console.log(`| ${srv.name} | ${w} | ${(r.ms / 1000).toFixed(2)} | ${r.ok ? mbps.toFixed(1) : 'failed'} | ${ok ? 'yes' : 'NO ' + r.err} |`);
        rmSync(out, { force: true });
      }
      await stop(proc);
    }

    console.log('');
    console.log('Peak RSS of the bootrelay TFTP server process (VmHWM), atftp windowsize 16');
    console.log('| file | RSS before MB | peak RSS MB | time s |');
    console.log('| --- | --- | --- | --- |');
    for (const mb of RSS_SIZES_MB) {
      const { proc, port } = await startOurs(dir);
      procs.push(proc);
      const before = status(proc.pid!, 'VmRSS');
      const out = join(outDir, `rss-${mb}.bin`);
      const r = await atftp(port, `rss-${mb}.bin`, out, 16);
      const peak = status(proc.pid!, 'VmHWM');
      console.log(`| ${mb} MB | ${before.toFixed(1)} | ${peak.toFixed(1)} | ${r.ok ? (r.ms / 1000).toFixed(2) : 'failed ' + r.err} |`);
      rmSync(out, { force: true });
      await stop(proc);
    }
  } finally {
    for (const p of procs) await stop(p);
    rmSync(dir, { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
