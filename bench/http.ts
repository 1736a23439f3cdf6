/**
 * bench/http: the read-through cache + HTTP service delivering a large file.
 *   - cold and warm delivery of one file to 1, 5 and 20 concurrent clients through a
 *     rate-limited upstream on loopback: total time vs the physical limit size/rate,
 *     first-byte latency per client, upstream bytes fetched (single-flight: ≈ 1× size)
 *   - peak RSS (VmHWM) of the relay process for a 10 MB and a large file (memory must
 *     not grow with the file size: readers follow the file on disk)
 * The relay (FileCache + HttpService) runs as a child process (this same bundle with
 * --serve) so its RSS is its own. Loopback only; bounded in size and time.
 * Run: node scripts/run-ts.mjs bench/http.ts
 * Env: BENCH_HTTP_MB (default 100), BENCH_HTTP_MBIT (upstream rate, default 80),
 *      BENCH_HTTP_RSS_MB (large file(s) for the RSS rows, comma list, default 500),
 *      BENCH_HTTP_CLIENTS (comma list, default 1,5,20; empty skips the delivery table).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, writeSync, mkdtempSync, rmSync, readFileSync, mkdirSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../agent/log';
import { Metrics } from '../relay/metrics';
import { FileCache } from '../relay/cache/cache';
import { HttpService } from '../relay/http/service';
import { TestUpstream } from '../test/helpers/upstream';

const MB = 1024 * 1024;
const SIZE_MB = Number(process.env.BENCH_HTTP_MB ?? 100);
const MBIT = Number(process.env.BENCH_HTTP_MBIT ?? 80);
const RSS_MB = (process.env.BENCH_HTTP_RSS_MB ?? '500').split(',').filter(Boolean).map(Number);
const CLIENTS = (process.env.BENCH_HTTP_CLIENTS ?? '1,5,20').split(',').filter(Boolean).map(Number);
const CLIENT_LIMIT_MS = 300_000;

async function serve(url: string, dir: string): Promise<void> {
  const metrics = new Metrics();
  const cache = new FileCache({
    upstream: { url, headers: {}, timeoutMs: 15_000 },
    cache: { dir, maxBytes: 4 * 1024 * MB, ttlSeconds: 3600, negativeTtlSeconds: 60 },
    log: silentLogger,
    metrics,
    emit: () => {},
  });
  await cache.init();
  const svc = new HttpService({
    address: '127.0.0.1',
    port: 0,
    source: cache,
    log: silentLogger,
    metrics,
    emit: () => {},
    macForIp: () => undefined,
    resolveProfile: () => undefined,
    api: { status: () => cache.stats(), clients: () => [] },
    subscribe: () => () => {},
  });
  await svc.start();
  process.stdout.write(JSON.stringify({ port: svc.port }) + '\n');
  process.on('SIGTERM', () => void svc.stop().then(() => cache.close()).then(() => process.exit(0)));
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

interface Relay {
  child: ChildProcess;
  port: number;
  dir: string;
}

async function startRelay(url: string): Promise<Relay> {
  const dir = mkdtempSync(join(tmpdir(), 'br-bench-cache-'));
  const child = spawn(process.execPath, [process.argv[1]!, '--serve', url, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
    });
    child.once('exit', (c) => reject(new Error(`relay exited ${c}`)));
  });
  return { child, port, dir };
}

async function stopRelay(r: Relay): Promise<number> {
  const hwm = peakRssMb(r.child.pid!);
  const exited = new Promise((res) => r.child.once('exit', res));
  r.child.kill('SIGTERM');
  await Promise.race([exited, new Promise((res) => setTimeout(res, 5000))]);
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  rmSync(r.dir, { recursive: true, force: true });
  return hwm;
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function fetchOne(port: number, path: string, t0: number): Promise<{ firstByteMs: number; bytes: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let first = -1;
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        if (first < 0) first = Date.now() - t0;
        bytes += c.length;
      });
      res.on('end', () => resolve({ firstByteMs: first, bytes, ms: Date.now() - t0 }));
      res.on('error', reject);
    });
    req.setTimeout(CLIENT_LIMIT_MS, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

async function upstreamBytes(port: number): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let s = '';
        res.on('data', (c) => (s += c));
        res.on('end', () => resolve(s));
      })
      .on('error', reject);
  });
  const m = /^bootrelay_cache_upstream_bytes_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function round(port: number, path: string, n: number, size: number) {
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: n }, () => fetchOne(port, path, t0)));
  const total = Date.now() - t0;
  for (const r of rs) if (r.bytes !== size) throw new Error(`client got ${r.bytes} of ${size} bytes`);
  const fb = rs.map((r) => r.firstByteMs).sort((a, b) => a - b);
  return { totalMs: total, fbMin: fb[0]!, fbMed: fb[Math.floor(fb.length / 2)]!, fbMax: fb[fb.length - 1]! };
}

async function main(): Promise<void> {
  const up = new TestUpstream();
  await up.start();
  const rate = (MBIT * 1e6) / 8;
  try {
    mkdirSync(join(up.dir, 'bench'), { recursive: true });
    makeFile(join(up.dir, 'bench/big.img'), SIZE_MB);
    const size = SIZE_MB * MB;
    const limitS = size / rate;
    if (CLIENTS.length) console.log(`file ${SIZE_MB} MiB, upstream ${MBIT} Mbit/s: physical limit ${limitS.toFixed(1)} s\n`);
    if (CLIENTS.length) console.log('clients | cold total s | vs limit | first byte ms min/med/max | upstream MiB | warm total s | warm MB/s/client | relay peak RSS MiB');
    for (const n of CLIENTS) {
      up.rate = rate;
      const relay = await startRelay(up.url);
      try {
        const cold = await round(relay.port, '/files/bench/big.img', n, size);
        const upB = await upstreamBytes(relay.port);
        up.rate = 0;
        const warm = await round(relay.port, '/files/bench/big.img', n, size);
        const hwm = await stopRelay(relay);
        console.log(
          [
            String(n).padStart(7),
            (cold.totalMs / 1000).toFixed(2).padStart(12),
            `${((cold.totalMs / 1000 / limitS) * 100).toFixed(0)}%`.padStart(8),
            `${cold.fbMin}/${cold.fbMed}/${cold.fbMax}`.padStart(25),
            (upB / MB).toFixed(1).padStart(12),
            (warm.totalMs / 1000).toFixed(2).padStart(12),
            (size / MB / (warm.totalMs / 1000)).toFixed(0).padStart(16),
            hwm.toFixed(0).padStart(18),
          ].join(' | '),
        );
      } catch (err) {
        await stopRelay(relay);
        throw err;
      }
    }
    rmSync(join(up.dir, 'bench/big.img'), { force: true });

    console.log('\npeak RSS of the relay vs file size (5 clients, cold, unthrottled upstream):');
    up.rate = 0;
    for (const mb of [10, ...RSS_MB]) {
      makeFile(join(up.dir, `bench/rss-${mb}.img`), mb);
      const relay = await startRelay(up.url);
      let r;
      try {
        r = await round(relay.port, `/files/bench/rss-${mb}.img`, 5, mb * MB);
      } finally {
        const hwm = await stopRelay(relay);
        rmSync(join(up.dir, `bench/rss-${mb}.img`), { force: true });
        console.log(`  ${String(mb).padStart(5)} MiB file: peak RSS ${hwm.toFixed(0)} MiB${r ? ` (delivered in ${(r.totalMs / 1000).toFixed(2)} s)` : ''}`);
      }
    }
  } finally {
    await up.cleanup();
  }
}

if (process.argv[2] === '--serve') {
  void serve(process.argv[3]!, process.argv[4]!);
} else {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
