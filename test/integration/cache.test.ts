import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { FileCache, type FileCacheOptions } from '../../relay/cache/cache';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';
import type { RelayEvent } from '../../proto/events';
import { TestUpstream } from '../helpers/upstream';
import { isRoot, waitFor } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

let up: TestUpstream;
const caches: FileCache[] = [];
const dirs: string[] = [];

function tmpDir(): string {
  const d = fs.mkdtempSync(join(os.tmpdir(), 'br-cache-'));
  dirs.push(d);
  return d;
}

async function makeCache(over: Partial<FileCacheOptions> & { dir?: string; maxBytes?: number; ttlSeconds?: number } = {}) {
  const events: RelayEvent[] = [];
  const metrics = new Metrics();
  const cache = new FileCache({
    upstream: { url: up.url, headers: { 'x-test': '1' }, timeoutMs: 5000 },
    cache: { dir: over.dir ?? tmpDir(), maxBytes: over.maxBytes ?? 1e9, ttlSeconds: over.ttlSeconds ?? 3600, negativeTtlSeconds: 60 },
    log: silentLogger,
    metrics,
    emit: (e) => events.push({ ts: '', ...e } as RelayEvent),
    backoffMs: 20,
    ...over,
  });
  await cache.init();
  caches.push(cache);
  return { cache, events, metrics };
}

beforeAll(async () => {
  up = new TestUpstream();
  await up.start();
});

afterEach(async () => {
  up.rate = 0;
  up.cutOnce.clear();
  up.truncate.clear();
  up.alter.clear();
  up.fail500.clear();
  up.ignoreRange.clear();
  up.chunked.clear();
  while (caches.length) await caches.pop()!.close();
});

afterAll(async () => {
  await up.cleanup();
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
});

describe('FileCache', () => {
  it('fetches a miss once, then serves hits from disk with configured headers', async () => {
    const body = await up.addFile('a/kernel', randomBytes(300_000));
    const { cache, events } = await makeCache();
    const f1 = await cache.open('a/kernel', { mac: '52:54:00:00:00:01' });
    expect(f1.cache).toBe('miss');
    expect(f1.size).toBe(body.length);
    expect(sha(await readAll(f1.stream))).toBe(sha(body));
    await waitFor(() => cache.list().find((e) => e.path === 'a/kernel' && e.complete), 5000, 'commit');
    const f2 = await cache.open('/a/kernel');
    expect(f2.cache).toBe('hit');
    expect(sha(await readAll(f2.stream))).toBe(sha(body));
    expect(up.count('a/kernel', 'GET')).toBe(1);
    expect(up.requests.find((r) => r.path === 'a/kernel')!.headers['x-test']).toBe('1');
    expect(events.filter((e) => e.type === 'cache.miss')[0]).toMatchObject({ file: 'a/kernel', mac: '52:54:00:00:00:01' });
    expect(events.some((e) => e.type === 'cache.hit')).toBe(true);
    const st = cache.stats();
    expect(st).toMatchObject({ entries: 1, bytes: body.length, hits: 1, misses: 1, upstreamBytes: body.length, uplink: 'up' });
    expect(cache.list()[0]).toMatchObject({ path: 'a/kernel', size: body.length, complete: true, pinned: false, sha256: sha(body) });
  });

  it('makes one upstream fetch for 20 concurrent clients, who all stream along long before the fill ends', async () => {
    const body = await up.addFile('slow/initrd', randomBytes(1_000_000));
    up.rate = 250_000; // ~4 s to fill
    // no clock asserted: each client notes whether the upstream had finished when its first bytes came
    let fillEnded = false;
    up.onDone = (r) => r.path === 'slow/initrd' && r.method === 'GET' && (fillEnded = true);
    const { cache } = await makeCache();
    const endedAtFirstByte: boolean[] = [];
    const results = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const f = await cache.open('slow/initrd');
        const parts: Buffer[] = [];
        for await (const c of f.stream as AsyncIterable<Buffer>) {
          if (parts.length === 0) endedAtFirstByte.push(fillEnded);
          parts.push(c);
        }
        return Buffer.concat(parts);
      }),
    ).finally(() => (up.onDone = undefined));
    for (const r of results) expect(sha(r)).toBe(sha(body));
    expect(up.count('slow/initrd', 'GET')).toBe(1);
    expect(endedAtFirstByte).toEqual(Array(20).fill(false));
  });

  it('resumes a cut upstream connection with Range + If-Range and still delivers the right bytes', async () => {
    const body = await up.addFile('cut/vmlinuz', randomBytes(700_000));
    up.cutOnce.set('cut/vmlinuz', 250_000);
    const { cache } = await makeCache();
    const f = await cache.open('cut/vmlinuz');
    expect(sha(await readAll(f.stream))).toBe(sha(body));
    const ranges = up.rangeRequests('cut/vmlinuz');
    expect(ranges.length).toBe(1);
    expect(ranges[0]!.headers.range).toMatch(/^bytes=\d+-$/);
    expect(ranges[0]!.headers['if-range']).toBeTruthy();
    expect(ranges[0]!.status).toBe(206);
  });

  it('fails the stream and commits nothing when the body does not match SHA256SUMS', async () => {
    const body = await up.addFile('sum/initrd.img', randomBytes(200_000));
    await up.writeSums('sum', ['initrd.img']);
    const bad = Buffer.from(body);
    bad[100_000] ^= 0xff;
    up.alter.set('sum/initrd.img', bad);
    const { cache, events } = await makeCache();
    const f = await cache.open('sum/initrd.img');
    const got: Buffer[] = [];
    await expect(
      (async () => {
        for await (const c of f.stream as AsyncIterable<Buffer>) got.push(c);
      })(),
    ).rejects.toMatchObject({ code: 'EINTEGRITY' });
    expect(Buffer.concat(got).length).toBeLessThan(body.length);
    expect(cache.list()).toEqual([]);
    const dir = (cache as unknown as { index: { dataDir: string; partialDir: string } }).index;
    await waitFor(async () => (await fsp.readdir(dir.partialDir)).length === 0, 2000, 'partial removed');
    expect(await fsp.readdir(dir.dataDir)).toEqual([]);
    expect(events.some((e) => e.type === 'cache.error' && e.reason === 'integrity')).toBe(true);
    // the right bytes, once the upstream is fixed, pass
    up.alter.clear();
    const f2 = await cache.open('sum/initrd.img');
    expect(sha(await readAll(f2.stream))).toBe(sha(body));
  });

  it('checks a profile sha256 from the expectedSha256 hook', async () => {
    await up.addFile('p/kernel', randomBytes(50_000));
    await up.addFile('p/empty', '');
    const { cache } = await makeCache({ plan: { expectedSha256: (p) => (p.startsWith('p/') ? '0'.repeat(64) : undefined) } });
    const f = await cache.open('p/kernel');
    await expect(readAll(f.stream)).rejects.toMatchObject({ code: 'EINTEGRITY' });
    // even an empty body is not a normal end when it fails verification
    const e = await cache.open('p/empty');
    await expect(readAll(e.stream)).rejects.toMatchObject({ code: 'EINTEGRITY' });
    expect(cache.list()).toEqual([]);
  });

  it('never commits a short body (fewer bytes than Content-Length)', async () => {
    await up.addFile('short/file', randomBytes(100_000));
    up.truncate.set('short/file', 60_000);
    const { cache } = await makeCache({ retries: 2 });
    const f = await cache.open('short/file');
    await expect(readAll(f.stream)).rejects.toThrow(/ended after 60000 of 100000/);
    expect(cache.list()).toEqual([]);
  });

  it('remembers a 404: twelve probes cost one upstream request, until negativeTtlSeconds pass', async () => {
    let t = Date.now();
    const { cache } = await makeCache({ now: () => t });
    for (let i = 0; i < 12; i++) {
      await expect(cache.open('pxelinux.cfg/01-52-54-00-00-00-09')).rejects.toMatchObject({ code: 'ENOENT', status: 404 });
    }
    expect(up.count('pxelinux.cfg/01-52-54-00-00-00-09')).toBe(1);
    t += 61_000;
    await expect(cache.open('pxelinux.cfg/01-52-54-00-00-00-09')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(up.count('pxelinux.cfg/01-52-54-00-00-00-09')).toBe(2);
  });

  it('resumes from an upstream that ignores Range by skipping the bytes it already has', async () => {
    const body = await up.addFile('norange/f', randomBytes(500_000));
    up.cutOnce.set('norange/f', 200_000);
    up.ignoreRange.add('norange/f');
    const { cache } = await makeCache();
    const f = await cache.open('norange/f');
    expect(sha(await readAll(f.stream))).toBe(sha(body));
    expect(up.count('norange/f', 'GET')).toBe(2);
    expect(up.rangeRequests('norange/f')[0]!.status).toBe(200);
  });

  it('serves an empty file and a file larger than the whole cache (not kept)', async () => {
    await up.addFile('e/empty', '');
    const big = await up.addFile('e/big', randomBytes(5000));
    const { cache } = await makeCache({ maxBytes: 1000 });
    const e = await cache.open('e/empty');
    expect(e.size).toBe(0);
    expect((await readAll(e.stream)).length).toBe(0);
    for (let i = 0; i < 2; i++) {
      const f = await cache.open('e/big');
      expect(sha(await readAll(f.stream))).toBe(sha(big));
    }
    expect(cache.list().map((x) => x.path)).toEqual(['e/empty']);
  });

  it('fails a miss at once while the uplink was just found down', async () => {
    const { cache, metrics } = await makeCache({ uplinkRetryMs: 60_000 });
    await up.stop();
    try {
      await expect(cache.open('fast/a')).rejects.toMatchObject({ code: 'EUPSTREAM' });
      const n = up.requests.length;
      await expect(cache.open('fast/b')).rejects.toThrow(/uplink down/);
      expect(up.requests.length).toBe(n);
      expect(metrics.get('bootrelay_cache_requests_total', { result: 'uplink-down' })).toBe(1);
    } finally {
      await up.start();
    }
  });

  it('follows a fill of unknown size (chunked upstream), including across a cut', async () => {
    const body = await up.addFile('chunk/f', randomBytes(600_000));
    up.chunked.add('chunk/f');
    up.cutOnce.set('chunk/f', 100_000);
    up.rate = 1_000_000;
    const { cache } = await makeCache();
    const [a, b] = await Promise.all([cache.open('chunk/f'), cache.open('chunk/f')]);
    expect(a.size).toBeUndefined();
    const [ra, rb] = await Promise.all([readAll(a.stream), readAll(b.stream)]);
    expect(sha(ra)).toBe(sha(body));
    expect(sha(rb)).toBe(sha(body));
    expect(up.rangeRequests('chunk/f').length).toBe(1);
    await waitFor(() => cache.list().find((e) => e.complete), 2000, 'commit');
    expect(cache.list()[0]!.size).toBe(600_000);
  });

  it('reads with syncReads (the TFTP path) the same bytes, following a fill and from a committed entry', async () => {
    const body = await up.addFile('sync/f', randomBytes(700_000));
    up.rate = 2_000_000;
    const { cache } = await makeCache();
    const filling = await cache.open('sync/f', { syncReads: true });
    expect(filling.cache).toBe('miss');
    expect(sha(await readAll(filling.stream))).toBe(sha(body));
    await waitFor(() => cache.list().find((e) => e.complete), 2000, 'commit');
    const hit = await cache.open('sync/f', { syncReads: true, start: 1000, end: 299_999 });
    expect(hit.cache).toBe('hit');
    expect((await readAll(hit.stream)).equals(body.subarray(1000, 300_000))).toBe(true);
  });

  it('reuses the chunks a consumer releases, and the bytes stay right', async () => {
    const body = await up.addFile('recycle/f', randomBytes(1_000_000));
    const { cache } = await makeCache();
    await readAll((await cache.open('recycle/f')).stream);
    await waitFor(() => cache.list().find((e) => e.complete), 2000, 'commit');
    const f = await cache.open('recycle/f');
    expect(f.release).toBeTypeOf('function');
    const copies: Buffer[] = [];
    const backing = new Set<ArrayBufferLike>();
    let chunks = 0;
    await new Promise<void>((resolve, reject) => {
      f.stream.on('data', (c: Buffer) => {
        chunks++;
        copies.push(Buffer.from(c)); // the consumer's own copy, then the chunk goes back
        backing.add(c.buffer);
        setImmediate(() => f.release!(c));
      });
      f.stream.on('end', resolve);
      f.stream.on('error', reject);
    });
    expect(Buffer.concat(copies).equals(body)).toBe(true);
    expect(chunks).toBeGreaterThan(10);
    expect(backing.size).toBeLessThan(chunks);
  });

  it('drops an entry the upstream no longer has on revalidation (404)', async () => {
    await up.addFile('gone/f', 'x');
    const { cache } = await makeCache({ ttlSeconds: 0 });
    await cache.prefetch('gone/f');
    await fsp.rm(join(up.dir, 'gone/f'));
    await expect(cache.open('gone/f')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(cache.list()).toEqual([]);
  });

  it('evicts least recently used entries within maxBytes, but keeps pinned ones', async () => {
    for (const n of ['l/a', 'l/b', 'l/c']) await up.addFile(n, randomBytes(1000));
    const { cache } = await makeCache({ maxBytes: 2500 });
    const a = await cache.prefetch('l/a', true);
    expect(a).toMatchObject({ pinned: true, complete: true });
    await cache.prefetch('l/b');
    await cache.prefetch('l/c');
    expect(cache.list().map((e) => e.path)).toEqual(['l/a', 'l/c']);
    expect(cache.stats().bytes).toBeLessThanOrEqual(2500);
  });

  it('revalidates after ttl with If-None-Match and takes a 304 as fresh', async () => {
    await up.addFile('ttl/f', 'hello');
    const { cache } = await makeCache({ ttlSeconds: 0 });
    expect((await readAll((await cache.open('ttl/f')).stream)).toString()).toBe('hello');
    await waitFor(() => cache.list()[0]?.complete, 2000, 'commit');
    const f = await cache.open('ttl/f');
    expect(f.cache).toBe('hit');
    expect((await readAll(f.stream)).toString()).toBe('hello');
    const cond = up.requests.filter((r) => r.path === 'ttl/f' && r.headers['if-none-match']);
    expect(cond.length).toBe(1);
    expect(cond[0]!.status).toBe(304);
    // changed upstream → refetched
    await up.addFile('ttl/f', 'hello, world', new Date(Date.now() + 5000));
    const g = await cache.open('ttl/f');
    expect(g.cache).toBe('miss');
    expect((await readAll(g.stream)).toString()).toBe('hello, world');
  });

  it('serves the cached copy as stale while the uplink is down, and notices when it is back', async () => {
    await up.addFile('down/f', randomBytes(10_000));
    const { cache, events } = await makeCache({ ttlSeconds: 0, uplinkRetryMs: 0 });
    await readAll((await cache.open('down/f')).stream);
    await waitFor(() => cache.list()[0]?.complete, 2000, 'commit');
    await up.stop();
    try {
      const f = await cache.open('down/f');
      expect(f.cache).toBe('stale');
      expect((await readAll(f.stream)).length).toBe(10_000);
      expect(events.find((e) => e.type === 'cache.stale')).toMatchObject({ file: 'down/f' });
      expect(events.find((e) => e.type === 'uplink.down')?.reason, JSON.stringify(events)).toBeTruthy();
      expect(cache.stats().uplink).toBe('down');
      await expect(cache.open('down/missing')).rejects.toMatchObject({ code: 'EUPSTREAM' });
    } finally {
      await up.start();
    }
    const g = await cache.open('down/f');
    expect(g.cache).toBe('hit');
    g.stream.destroy();
    expect(cache.stats().uplink).toBe('up');
    expect(events.some((e) => e.type === 'uplink.up')).toBe(true);
  });

  it('while the uplink monitor says the link is down, serves what it has without asking the upstream', async () => {
    await up.addFile('link/f', randomBytes(5_000));
    const { cache, events } = await makeCache({ ttlSeconds: 0 });
    await readAll((await cache.open('link/f')).stream);
    await waitFor(() => cache.list()[0]?.complete, 2000, 'commit');
    const before = up.requests.length;
    cache.setLinkState(false, 'wwan down');
    const f = await cache.open('link/f');
    expect(f.cache).toBe('stale');
    expect((await readAll(f.stream)).length).toBe(5_000);
    await expect(cache.open('link/missing')).rejects.toMatchObject({ code: 'EUPSTREAM' });
    expect(up.requests.length).toBe(before); // not one request over a dead uplink
    expect(cache.stats().uplink).toBe('down');
    expect(events.filter((e) => e.type === 'uplink.down')).toHaveLength(0); // the monitor emits its own
    cache.setLinkState(true);
    const g = await cache.open('link/f');
    g.stream.destroy();
    expect(up.requests.length).toBeGreaterThan(before); // revalidated again
    expect(cache.stats().uplink).toBe('up');
  });

  it('serves Range opens on cached files and on files still filling; a start beyond the end is ERANGE', async () => {
    const body = await up.addFile('r/big', randomBytes(400_000));
    up.rate = 400_000;
    const { cache } = await makeCache();
    const f = await cache.open('r/big', { start: 300_000, end: 300_099 });
    expect(f.cache).toBe('miss');
    expect((await readAll(f.stream)).equals(body.subarray(300_000, 300_100))).toBe(true);
    await waitFor(() => cache.list()[0]?.complete, 5000, 'commit');
    const g = await cache.open('r/big', { start: 10, end: 19 });
    expect((await readAll(g.stream)).equals(body.subarray(10, 20))).toBe(true);
    const h = await cache.open('r/big', { start: 399_990 });
    expect((await readAll(h.stream)).equals(body.subarray(399_990))).toBe(true);
    await expect(cache.open('r/big', { start: 400_000 })).rejects.toMatchObject({ code: 'ERANGE', size: 400_000 });
  });

  it('verify() re-hashes entries and drops a corrupt one; purge() removes entries', async () => {
    await up.addFile('v/a', randomBytes(1000));
    await up.addFile('v/b', randomBytes(1000));
    const { cache } = await makeCache();
    await cache.prefetch('v/a');
    await cache.prefetch('v/b');
    const idx = (cache as unknown as { index: { dataPath(id: string): string; entries: Map<string, { id: string }> } }).index;
    const p = idx.dataPath(idx.entries.get('v/b')!.id);
    const buf = await fsp.readFile(p);
    buf[0] ^= 1;
    await fsp.writeFile(p, buf);
    const r = await cache.verify();
    expect(r.find((x) => x.path === 'v/a')).toEqual({ path: 'v/a', ok: true });
    expect(r.find((x) => x.path === 'v/b')).toMatchObject({ ok: false });
    expect(cache.list().map((e) => e.path)).toEqual(['v/a']);
    expect(await cache.purge()).toBe(1);
    expect(cache.list()).toEqual([]);
  });

  it('after a crash mid-fill (partial file + index naming a missing file) serves no partial as whole', async () => {
    const dir = tmpDir();
    const body = await up.addFile('crash/k', randomBytes(50_000));
    await fsp.mkdir(join(dir, 'partial'), { recursive: true });
    await fsp.mkdir(join(dir, 'data'), { recursive: true });
    await fsp.writeFile(join(dir, 'partial', 'x-1'), body.subarray(0, 20_000));
    await fsp.writeFile(join(dir, 'data', 'orphan-1'), body.subarray(0, 20_000));
    const now = Date.now();
    const entry = { path: 'crash/k', id: 'gone-1', size: 50_000, sha256: sha(body), fetchedAt: now, validatedAt: now, lastUsedAt: now, hits: 0, pinned: false };
    await fsp.writeFile(join(dir, 'index.json'), JSON.stringify({ version: 1, entries: [entry] }));
    const { cache } = await makeCache({ dir });
    expect(cache.list()).toEqual([]);
    expect(await fsp.readdir(join(dir, 'partial'))).toEqual([]);
    expect(await fsp.readdir(join(dir, 'data'))).toEqual([]);
    const f = await cache.open('crash/k');
    expect(f.cache).toBe('miss');
    expect(sha(await readAll(f.stream))).toBe(sha(body));
  });
});

const tmpfsSkip = !isRoot ? 'needs root to mount a tmpfs' : undefined;
describeSkipIf(tmpfsSkip)('FileCache on a full disk', () => {
  let mnt: string;
  beforeAll(() => {
    mnt = fs.mkdtempSync(join(os.tmpdir(), 'br-tmpfs-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
  });
  afterAll(() => {
    spawnSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('streams a file larger than the disk through without caching, whole and verified', async () => {
    const body = await up.addFile('full/big', randomBytes(2_500_000));
    await up.writeSums('full', ['big']);
    const { cache, events } = await makeCache({ dir: join(mnt, 'c') });
    // five clients follow the fill; when the disk fills up each continues from the upstream
    const fs5 = await Promise.all(Array.from({ length: 5 }, () => cache.open('full/big')));
    const got = await Promise.all(fs5.map((f) => readAll(f.stream)));
    for (const g of got) expect(sha(g)).toBe(sha(body));
    expect(events.some((e) => e.type === 'cache.error' && e.reason === 'disk full')).toBe(true);
    const ranges = up.rangeRequests('full/big');
    expect(ranges.length).toBe(5);
    expect(new Set(ranges.map((r) => r.headers.range)).size).toBe(1);
    const g = await cache.open('full/big');
    expect(g.cache).toBe('bypass');
    expect(sha(await readAll(g.stream))).toBe(sha(body));
    expect(cache.list()).toEqual([]);
  });

  it('a pinned prefetch that failed on the full disk does not pin the file when it is cached later', async () => {
    await up.addFile('full/pinme', randomBytes(2_500_000));
    const { cache } = await makeCache({ dir: join(mnt, 'c4'), diskFullHoldMs: 0 });
    await expect(cache.prefetch('full/pinme', true)).rejects.toThrow();
    // the disk has room again, and the file is smaller now
    await up.addFile('full/pinme', randomBytes(1000));
    const f = await cache.open('full/pinme');
    expect((await readAll(f.stream)).length).toBe(1000);
    const e = await waitFor(() => cache.list().find((x) => x.path === 'full/pinme' && x.complete), 5000, 'committed');
    expect(e.pinned).toBe(false);
  });

  /** An upstream whose bodies are long enough that only a closed connection ends them; `open`: responses not yet closed. */
  async function endlessUpstream() {
    const open = new Set<http.ServerResponse>();
    const srv = http.createServer((req, res) => {
      if (!req.url?.startsWith('/boot/f/') || req.url.endsWith('SHA256SUMS')) {
        res.writeHead(404, { 'content-length': 0 });
        return void res.end();
      }
      open.add(res);
      res.on('close', () => open.delete(res));
      const size = 64 * 1024 * 1024;
      // f/changed*: a Range request finds another version of the file (answered 200, new ETag)
      const etag = req.headers.range && req.url.includes('changed') ? '"other"' : '"big"';
      res.writeHead(200, { 'content-length': size, etag });
      let sent = 0;
      Readable.from(
        (function* () {
          while (sent < size) {
            sent += 65536;
            yield Buffer.alloc(65536, 1);
          }
        })(),
      ).pipe(res);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const close = async () => {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    };
    return { open, url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/boot/`, close };
  }

  it('a bypass stream dropped before it is read releases its upstream connection', async () => {
    const { open, url, close } = await endlessUpstream();
    try {
      const { cache, events } = await makeCache({ dir: join(mnt, 'c2'), upstream: { url, headers: {}, timeoutMs: 60_000 }, diskFullHoldMs: 60_000 });
      const f = await cache.open('f/one');
      f.stream.on('error', () => {});
      await waitFor(() => events.some((e) => e.type === 'cache.error' && e.reason === 'disk full'), 5000, 'disk full');
      f.stream.destroy();
      await waitFor(() => open.size === 0, 5000, 'fill connections closed');
      const g = await cache.open('f/two');
      expect(g.cache).toBe('bypass');
      expect(open.size).toBe(1);
      g.stream.destroy(); // e.g. a HEAD, a 304, a client gone before the first byte
      await waitFor(() => open.size === 0, 3000, 'bypass upstream connection released');
    } finally {
      await close();
    }
  });

  it('a bypass continuation refused (file changed upstream) fails the reader and releases the connection', async () => {
    const { open, url, close } = await endlessUpstream();
    try {
      const { cache, events } = await makeCache({ dir: join(mnt, 'c3'), upstream: { url, headers: {}, timeoutMs: 60_000 } });
      const f = await cache.open('f/changed');
      const failed = new Promise<Error>((r) => f.stream.on('error', r));
      f.stream.resume();
      await waitFor(() => events.some((e) => e.type === 'cache.error' && e.reason === 'disk full'), 5000, 'disk full');
      expect((await failed).message).toMatch(/changed upstream/);
      await waitFor(() => open.size === 0, 3000, 'refused continuation connection released');
    } finally {
      await close();
    }
  });
});
