import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import WebSocket from 'ws';
import { FileCache } from '../../relay/cache/cache';
import { HttpService } from '../../relay/http/service';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';
import type { RelayEvent } from '../../proto/events';
import type { ProfileConfig } from '../../agent/config/types';
import type { FileSource, OpenedFile, OpenOptions } from '../../relay/source';
import { TestUpstream } from '../helpers/upstream';
import { isRoot, waitFor } from '../helpers/netns';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface CurlResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** onData: each piece of the body as it arrives. */
function curl(args: string[], timeoutMs = 20_000, onData?: (c: Buffer) => void): Promise<CurlResult> {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-sS', '--max-time', String(timeoutMs / 1000), ...args]);
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out.push(c), onData?.(c)));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
  });
}

function get(port: number, path: string, headers: Record<string, string> = {}, agent?: http.Agent, method = 'GET') {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer; reused: boolean }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent, method }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const MAC = '52:54:00:aa:bb:01';
const profiles: Record<string, ProfileConfig> = {
  debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.img'], cmdline: 'console=ttyS0 quiet' },
  menu: { script: 'menus/main.ipxe' },
};
const assign: Record<string, string> = { [MAC]: 'debian', '52:54:00:aa:bb:02': 'menu' };

let up: TestUpstream;
let cache: FileCache;
let svc: HttpService;
let base: string;
let cacheDir: string;
const events: RelayEvent[] = [];
const metrics = new Metrics();
const subscribers = new Set<(m: unknown) => void>();
const opened: OpenedFile[] = [];

const skip = missingCmds('curl');

describeSkipIf(skip)('HttpService over a real FileCache and upstream', () => {
  beforeAll(async () => {
    up = new TestUpstream();
    await up.start();
    cacheDir = fs.mkdtempSync(join(os.tmpdir(), 'br-httpcache-'));
    const emit = (e: Omit<RelayEvent, 'ts'>) => events.push({ ts: new Date().toISOString(), ...e } as RelayEvent);
    cache = new FileCache({
      upstream: { url: up.url, headers: {}, timeoutMs: 5000 },
      cache: { dir: cacheDir, maxBytes: 1e9, ttlSeconds: 3600, negativeTtlSeconds: 60 },
      log: silentLogger,
      metrics,
      emit,
      backoffMs: 20,
    });
    await cache.init();
    // Records every opened file so a test can see the source stream was torn down.
    const source: FileSource = {
      open: async (p: string, o?: OpenOptions) => {
        const f = await cache.open(p, o);
        opened.push(f);
        return f;
      },
    };
    svc = new HttpService({
      address: '127.0.0.1',
      port: 0,
      source,
      log: silentLogger,
      metrics,
      emit,
      macForIp: (ip) => (ip === '127.0.0.1' ? '52:54:00:00:00:7f' : undefined),
      plan: {
        profileFor: (mac) => {
          const name = (mac && assign[mac]) ?? 'debian';
          return mac === '52:54:00:ff:ff:ff' ? undefined : { name, profile: profiles[name]! };
        },
      },
      api: { status: () => ({ online: true, uplink: cache.stats().uplink }), clients: () => [{ mac: MAC, phase: 'kernel' }] },
      subscribe: (fn) => {
        subscribers.add(fn);
        return () => subscribers.delete(fn);
      },
      dashboardHtml: '<!doctype html><title>dash</title>',
    });
    await svc.start();
    base = `http://127.0.0.1:${svc.port}`;
  });

  afterEach(() => {
    up.rate = 0;
    up.cutOnce.clear();
    up.alter.clear();
    up.fail500.clear();
  });

  afterAll(async () => {
    await svc?.stop();
    await cache?.close();
    await up?.cleanup();
    if (cacheDir) await fsp.rm(cacheDir, { recursive: true, force: true });
  });

  it('serves /files/<path> with Content-Length, ETag and Accept-Ranges, and HEAD without a body', async () => {
    const body = await up.addFile('debian/vmlinuz', randomBytes(123_456));
    const r = await curl(['-D', '-', '-o', '/dev/null', `${base}/files/debian/vmlinuz`]);
    expect(r.code).toBe(0);
    const hdr = r.stdout.toString();
    expect(hdr).toMatch(/^HTTP\/1\.1 200/);
    expect(hdr).toMatch(/content-length: 123456/i);
    expect(hdr).toMatch(/accept-ranges: bytes/i);
    expect(hdr).toMatch(/etag: "/i);
    const g = await curl([`${base}/files/debian/vmlinuz`]);
    expect(sha(g.stdout)).toBe(sha(body));
    const h = await get(svc.port, '/files/debian/vmlinuz', {}, undefined, 'HEAD');
    expect(h.status).toBe(200);
    expect(h.headers['content-length']).toBe('123456');
    expect(h.body.length).toBe(0);
    expect(events.find((e) => e.type === 'http.start' && e.file === 'debian/vmlinuz')).toMatchObject({ mac: '52:54:00:00:00:7f', ip: '127.0.0.1', totalBytes: 123456 });
    expect(events.find((e) => e.type === 'http.done' && e.file === 'debian/vmlinuz')).toMatchObject({ bytes: 123456 });
  });

  it('answers Range with 206, a range past the end with 416, and If-None-Match with 304', async () => {
    const body = await up.addFile('r/file', randomBytes(10_000));
    const r = await get(svc.port, '/files/r/file', { range: 'bytes=100-199' });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe('bytes 100-199/10000');
    expect(r.body.equals(body.subarray(100, 200))).toBe(true);
    const s = await get(svc.port, '/files/r/file', { range: 'bytes=-50' });
    expect(s.status).toBe(206);
    expect(s.body.equals(body.subarray(9950))).toBe(true);
    const c = await curl(['-r', '9990-', `${base}/files/r/file`]);
    expect(c.stdout.equals(body.subarray(9990))).toBe(true);
    const t = await get(svc.port, '/files/r/file', { range: 'bytes=10000-' });
    expect(t.status).toBe(416);
    expect(t.headers['content-range']).toBe('bytes */10000');
    const etag = r.headers.etag!;
    const n = await get(svc.port, '/files/r/file', { 'if-none-match': etag });
    expect(n.status).toBe(304);
    expect(n.body.length).toBe(0);
    const lm = r.headers['last-modified']!;
    expect((await get(svc.port, '/files/r/file', { 'if-modified-since': lm })).status).toBe(304);
    expect((await get(svc.port, '/files/r/file', { 'if-modified-since': new Date(Date.parse(lm) - 60_000).toUTCString() })).status).toBe(200);
    // If-Range: the current strong ETag keeps the range; a weak or stale validator gets the whole file
    expect((await get(svc.port, '/files/r/file', { range: 'bytes=0-9', 'if-range': etag })).status).toBe(206);
    const weak = await get(svc.port, '/files/r/file', { range: 'bytes=0-9', 'if-range': `W/${etag}` });
    expect(weak.status).toBe(200);
    expect(weak.body.length).toBe(10_000);
    expect((await get(svc.port, '/files/r/file', { range: 'bytes=0-9', 'if-range': '"stale"' })).status).toBe(200);
  });

  it('keeps the connection alive for a second request', async () => {
    await up.addFile('ka/one', 'one');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await get(svc.port, '/files/ka/one', {}, agent);
      const b = await get(svc.port, '/files/ka/one', {}, agent);
      expect(a.body.toString()).toBe('one');
      expect(b.body.toString()).toBe('one');
      expect(b.reused).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  it('refuses path escapes (403), bad encoding (400) and counts them', async () => {
    const before = metrics.get('bootrelay_http_refused_total', { reason: 'path' });
    const a = await curl(['--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', `${base}/files/../etc/passwd`]);
    expect(a.stdout.toString()).toBe('403');
    const b = await curl(['-o', '/dev/null', '-w', '%{http_code}', `${base}/files/%2e%2e/%2e%2e/etc/passwd`]);
    expect(b.stdout.toString()).toBe('403');
    const c = await get(svc.port, '/files/a%zz');
    expect(c.status).toBe(400);
    expect(metrics.get('bootrelay_http_refused_total', { reason: 'path' })).toBe(before + 2);
    expect(up.requests.some((r) => r.path.includes('passwd'))).toBe(false);
  });

  it('accepts absolute-form targets (RFC 9112 §3.2.2), their authority over Host, and // as a plain separator', async () => {
    const body = await up.addFile('abs/ipxe.efi', randomBytes(5000));
    const raw = (target: string, host = 'ignored.example') =>
      new Promise<string>((resolve) => {
        const sock = net.connect(svc.port, '127.0.0.1', () => sock.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
        const parts: Buffer[] = [];
        sock.on('data', (c: Buffer) => parts.push(c));
        sock.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
        sock.on('error', () => resolve(Buffer.concat(parts).toString('latin1')));
      });
    const a = await raw(`http://10.99.0.1:${svc.port}/files/abs/ipxe.efi`);
    expect(a).toMatch(/^HTTP\/1\.1 200/);
    expect(a.endsWith(body.toString('latin1'))).toBe(true);
    const s = await raw(`HTTP://10.99.0.7/boot.ipxe?mac=${MAC}`);
    expect(s).toMatch(/^HTTP\/1\.1 200/);
    expect(s).toContain('kernel http://10.99.0.7/files/debian/vmlinuz');
    expect(s).not.toContain('ignored.example');
    // empty segments collapse: neither an authority nor a refused path
    expect(await raw('//files//abs///ipxe.efi')).toMatch(/^HTTP\/1\.1 200/);
    expect((await get(svc.port, '/files//abs//ipxe.efi')).status).toBe(200);
    expect(await raw('//evil.example/files/abs/ipxe.efi')).toMatch(/^HTTP\/1\.1 404/);
    expect(up.requests.some((r) => r.path.includes('evil'))).toBe(false);
  });

  it('serves .efi as application/efi and .iso/.img as EDK2 HTTP Boot types (it trusts Content-Type before the URL)', async () => {
    await up.addFile('types/shim.EFI', 'x');
    await up.addFile('types/live.iso', 'x');
    await up.addFile('types/disk.img', 'x');
    expect((await get(svc.port, '/files/types/shim.EFI?x=1')).headers['content-type']).toBe('application/efi');
    expect((await get(svc.port, '/files/types/live.iso')).headers['content-type']).toBe('application/vnd.efi-iso');
    expect((await get(svc.port, '/files/types/disk.img')).headers['content-type']).toBe('application/vnd.efi-img');
    expect((await get(svc.port, '/files/abs/ipxe.efi', {}, undefined, 'HEAD')).headers['content-type']).toBe('application/efi');
  });

  it('maps upstream 404 to 404 and upstream failure to 502', async () => {
    const a = await get(svc.port, '/files/nope/missing');
    expect(a.status).toBe(404);
    await up.addFile('err/x', 'x');
    up.fail500.add('err/x');
    const b = await get(svc.port, '/files/err/x');
    expect(b.status).toBe(502);
  });

  it('says why a transfer failed in a closed reason the tracker switches on', async () => {
    const n = events.length;
    await get(svc.port, '/files/nope/reason');
    await up.addFile('err/reason', 'x');
    up.fail500.add('err/reason');
    await get(svc.port, '/files/err/reason');
    const errs = events.slice(n).filter((e) => e.type === 'http.error');
    expect(errs.map((e) => [e.file, e.reason, e.status])).toEqual([
      ['nope/reason', 'not-found', 404],
      ['err/reason', 'upstream-error', 502],
    ]);
  });

  it('gives 20 concurrent curl clients of a cold file one upstream fetch and their first bytes long before the fill ends', async () => {
    const body = await up.addFile('cold/initrd.img', randomBytes(1_500_000));
    // a 15 s fill: every client must have bytes while the upstream is still sending (no clock
    // asserted: what counts is that the fill had not ended when the last client got its first bytes)
    up.rate = 100_000;
    let fillEnded = false;
    up.onDone = (r) => r.path === 'cold/initrd.img' && r.method === 'GET' && (fillEnded = true);
    const got = Array.from({ length: 20 }, () => ({ bytes: 0 }));
    const t0 = Date.now();
    const runs = got.map((g) => curl([`${base}/files/cold/initrd.img`], 60_000, (c) => (g.bytes += c.length)));
    try {
      await waitFor(() => got.every((g) => g.bytes > 0), 30_000, 'first bytes at every client');
      expect(fillEnded, 'the upstream fill ended before every client had its first bytes').toBe(false);
      // progress is reported while bytes move (at most 4/s per transfer): see one before the
      // upstream is let go (then the rest of the file can arrive within a single progress interval)
      await waitFor(() => events.some((e) => e.type === 'http.progress' && e.file === 'cold/initrd.img'), 20_000, 'an http.progress during the fill');
    } finally {
      up.rate = 0;
      up.onDone = undefined;
    }
    const rs = await Promise.all(runs);
    const total = Date.now() - t0;
    for (const r of rs) {
      expect(r.code, r.stderr).toBe(0);
      expect(sha(r.stdout)).toBe(sha(body));
    }
    expect(up.count('cold/initrd.img', 'GET')).toBe(1);
    // http.progress: some, but at most 4 per second per transfer
    const progress = events.filter((e) => e.type === 'http.progress' && e.file === 'cold/initrd.img').length;
    expect(progress).toBeGreaterThan(0);
    expect(progress).toBeLessThanOrEqual(20 * Math.ceil((total / 1000) * 4 + 1));
  });

  it('delivers the right bytes when the uplink is cut mid-file (resumed with Range)', async () => {
    const body = await up.addFile('cut/kernel', randomBytes(900_000));
    up.cutOnce.set('cut/kernel', 400_000);
    const r = await curl([`${base}/files/cut/kernel`]);
    expect(r.code).toBe(0);
    expect(sha(r.stdout)).toBe(sha(body));
    expect(up.rangeRequests('cut/kernel').length).toBeGreaterThanOrEqual(1);
  });

  it('fails the transfer (never a complete 200 with wrong bytes) when SHA256SUMS disagrees, and commits nothing', async () => {
    const body = await up.addFile('bad/initrd.img', randomBytes(300_000));
    await up.writeSums('bad', ['initrd.img']);
    const alt = Buffer.from(body);
    alt[5] ^= 0x55;
    up.alter.set('bad/initrd.img', alt);
    const r = await curl([`${base}/files/bad/initrd.img`]);
    expect(r.code).not.toBe(0);
    expect(r.stdout.length).toBeLessThan(body.length);
    expect(cache.list().some((e) => e.path === 'bad/initrd.img')).toBe(false);
    await waitFor(() => events.find((e) => e.type === 'http.error' && e.file === 'bad/initrd.img'), 3000, 'http.error');
  });

  it('aborts the source when the client goes away', async () => {
    await up.addFile('abort/big', randomBytes(2_000_000));
    up.rate = 400_000;
    const n = opened.length;
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${base}/files/abort/big`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      setTimeout(() => reject(new Error('no data')), 5000).unref();
    });
    const f = opened[n]!;
    await waitFor(() => (f.stream as Readable).destroyed, 3000, 'source destroyed');
    await waitFor(() => events.find((e) => e.type === 'http.error' && e.file === 'abort/big' && e.reason === 'aborted'), 3000, 'http.error aborted');
  });

  it('serves /boot.ipxe for the client profile, an upstream script for a script profile, and a fail script otherwise', async () => {
    const a = await get(svc.port, `/boot.ipxe?mac=${MAC}`, { host: '10.99.0.1' });
    expect(a.status).toBe(200);
    const text = a.body.toString();
    expect(text.startsWith('#!ipxe\n')).toBe(true);
    expect(text).toContain('kernel http://10.99.0.1/files/debian/vmlinuz initrd=initrd.img console=ttyS0 quiet');
    expect(text).toContain('initrd http://10.99.0.1/files/debian/initrd.img');
    expect(text).toMatch(/\nboot /);
    await up.addFile('menus/main.ipxe', '#!ipxe\nmenu upstream\n');
    const b = await get(svc.port, '/boot.ipxe?mac=52-54-00-AA-BB-02');
    expect(b.body.toString()).toBe('#!ipxe\nmenu upstream\n');
    const c = await get(svc.port, '/boot.ipxe?mac=52:54:00:ff:ff:ff');
    expect(c.body.toString()).toMatch(/^#!ipxe\necho bootrelay: no boot profile/);
    expect(events.find((e) => e.type === 'http.done' && e.file === '/boot.ipxe')).toMatchObject({ mac: MAC, profile: 'debian' });
  });

  it('/booted emits client.booted (GET and POST); without a mac it is 400', async () => {
    const a = await get(svc.port, `/booted?mac=${MAC}`);
    expect(a.status).toBe(200);
    expect(events.filter((e) => e.type === 'client.booted').at(-1)).toMatchObject({ mac: MAC, ip: '127.0.0.1' });
    const b = await curl(['-X', 'POST', '-d', 'x=1', '-o', '/dev/null', '-w', '%{http_code}', `${base}/booted?mac=52:54:00:aa:bb:03`]);
    expect(b.stdout.toString()).toBe('200');
    expect(events.filter((e) => e.type === 'client.booted').at(-1)).toMatchObject({ mac: '52:54:00:aa:bb:03' });
    const c = await get(svc.port, '/booted?mac=zz');
    expect(c.status).toBe(400);
  });

  it('serves /metrics as Prometheus text that parses, /api JSON, and the dashboard', async () => {
    const m = await get(svc.port, '/metrics');
    expect(m.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const lines = m.body.toString().trim().split('\n');
    for (const l of lines) {
      if (l.startsWith('#')) expect(l).toMatch(/^# (HELP|TYPE) \w+ /);
      else expect(l).toMatch(/^[a-zA-Z_:][\w:]*(\{[a-zA-Z_]\w*="[^"]*"(,[a-zA-Z_]\w*="[^"]*")*\})? -?[\d.e+]+$/);
    }
    expect(m.body.toString()).toMatch(/bootrelay_http_requests_total\{path="files",status="200"\} \d+/);
    expect(JSON.parse((await get(svc.port, '/api/status')).body.toString())).toMatchObject({ online: true });
    expect(JSON.parse((await get(svc.port, '/api/clients')).body.toString())).toEqual([{ mac: MAC, phase: 'kernel' }]);
    const d = await get(svc.port, '/dashboard');
    expect(d.status).toBe(301);
    expect(d.headers.location).toBe('/dashboard/');
    expect((await get(svc.port, '/dashboard/')).body.toString()).toContain('<title>dash</title>');
    expect((await get(svc.port, '/api/status', {}, undefined, 'DELETE')).status).toBe(405);
  });

  it('answers malformed requests with 400, counts them, and keeps serving', async () => {
    const before = metrics.get('bootrelay_http_refused_total', { reason: 'bad-request' });
    const garbage = ['\x00\x01\x02garbage\r\n\r\n', 'GET /files/x HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n', 'G'.repeat(20_000) + '\r\n\r\n'];
    for (const g of garbage) {
      const reply = await new Promise<string>((resolve) => {
        const sock = net.connect(svc.port, '127.0.0.1', () => sock.end(g));
        let got = '';
        sock.on('data', (c) => (got += c.toString()));
        sock.on('close', () => resolve(got));
        sock.on('error', () => resolve(got));
      });
      expect(reply === '' || reply.startsWith('HTTP/1.1 4')).toBe(true);
    }
    expect(metrics.get('bootrelay_http_refused_total', { reason: 'bad-request' })).toBeGreaterThanOrEqual(before + 2);
    expect((await get(svc.port, '/api/status')).status).toBe(200);
  });

  it('pushes messages published through subscribe to /api/events WebSocket clients', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${svc.port}/api/events`);
    await new Promise((r, j) => {
      ws.once('open', r);
      ws.once('error', j);
    });
    const got = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
    for (const fn of subscribers) fn({ type: 'tftp.done', mac: MAC, bytes: 5 });
    expect(JSON.parse(await got)).toEqual({ type: 'tftp.done', mac: MAC, bytes: 5 });
    ws.close();
  });
});

describe('HttpService that cannot bind its port', () => {
  it('rejects start() and keeps no live-feed subscription behind', async () => {
    const subs = new Set<(m: unknown) => void>();
    const mk = (port: number) =>
      new HttpService({
        address: '127.0.0.1',
        port,
        source: { open: () => Promise.reject(new Error('unused')) },
        log: silentLogger,
        metrics: new Metrics(),
        emit: () => {},
        macForIp: () => undefined,
        plan: { profileFor: () => undefined },
        api: { status: () => ({}), clients: () => [] },
        subscribe: (fn) => {
          subs.add(fn);
          return () => subs.delete(fn);
        },
      });
    const a = mk(0);
    await a.start();
    try {
      expect(subs.size).toBe(1);
      await expect(mk(a.port).start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
      expect(subs.size).toBe(1);
    } finally {
      await a.stop();
    }
    expect(subs.size).toBe(0);
  });
});

describe('HttpService connection limit', () => {
  it('closes connections beyond maxConnections at once, and serves again when one is gone', async () => {
    const s = new HttpService({
      address: '127.0.0.1',
      port: 0,
      source: { open: () => Promise.reject(new Error('none')) },
      log: silentLogger,
      metrics: new Metrics(),
      emit: () => {},
      macForIp: () => undefined,
      plan: { profileFor: () => undefined },
      api: { status: () => ({ ok: 1 }), clients: () => [] },
      subscribe: () => () => {},
      maxConnections: 2,
    });
    await s.start();
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const c = net.connect(s.port, '127.0.0.1');
        await new Promise((r) => c.once('connect', r));
        idle.push(c);
      }
      // two idle connections (a slow or hostile client) hold every slot: a third is refused
      const third = net.connect(s.port, '127.0.0.1');
      third.on('error', () => {});
      third.write('GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n');
      let got = '';
      third.on('data', (d) => (got += d));
      await new Promise((r) => third.once('close', r));
      expect(got).toBe('');
      const gone = idle.pop()!;
      gone.destroy();
      await waitFor(async () => (await get(s.port, '/api/status').catch(() => ({ status: 0 }))).status === 200, 3000, 'a free slot');
    } finally {
      for (const c of idle) c.destroy();
      await s.stop();
    }
  });
});

describe('HttpService /api/events client limit', () => {
  it('answers 503 beyond wsMaxClients live-feed clients, and accepts again once one left', async () => {
    const s = new HttpService({
      address: '127.0.0.1',
      port: 0,
      source: { open: () => Promise.reject(new Error('none')) },
      log: silentLogger,
      metrics: new Metrics(),
      emit: () => {},
      macForIp: () => undefined,
      plan: { profileFor: () => undefined },
      api: { status: () => ({}), clients: () => [] },
      subscribe: () => () => {},
      wsMaxClients: 2,
    });
    await s.start();
    const all: WebSocket[] = [];
    const connect = () =>
      new Promise<{ ws: WebSocket; status: number }>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${s.port}/api/events`);
        all.push(ws);
        ws.once('open', () => resolve({ ws, status: 101 }));
        ws.once('unexpected-response', (_req, res) => resolve({ ws, status: res.statusCode ?? 0 }));
        ws.once('error', () => resolve({ ws, status: -1 }));
      });
    try {
      expect((await connect()).status).toBe(101);
      const second = await connect();
      expect(second.status).toBe(101);
      expect((await connect()).status).toBe(503);
      const gone = new Promise((r) => second.ws.once('close', r));
      second.ws.close();
      await gone;
      await waitFor(async () => (await connect()).status === 101, 3000, 'a free slot');
    } finally {
      for (const ws of all) ws.terminate();
      await s.stop();
    }
  });
});

describe('HttpService /api/events with a slow client', () => {
  it('drops a WebSocket client that stops reading, and keeps serving the others', async () => {
    const subs = new Set<(m: unknown) => void>();
    const m = new Metrics();
    const s = new HttpService({
      address: '127.0.0.1',
      port: 0,
      source: { open: () => Promise.reject(new Error('none')) },
      log: silentLogger,
      metrics: m,
      emit: () => {},
      macForIp: () => undefined,
      plan: { profileFor: () => undefined },
      api: { status: () => ({}), clients: () => [] },
      subscribe: (fn) => {
        subs.add(fn);
        return () => subs.delete(fn);
      },
      wsMaxBuffered: 64 * 1024,
    });
    await s.start();
    try {
      const open = (ws: WebSocket) =>
        new Promise((r, j) => {
          ws.once('open', r);
          ws.once('error', j);
        });
      const slow = new WebSocket(`ws://127.0.0.1:${s.port}/api/events`);
      const fast = new WebSocket(`ws://127.0.0.1:${s.port}/api/events`);
      await Promise.all([open(slow), open(fast)]);
      (slow as unknown as { _socket: import('node:net').Socket })._socket.pause();
      let closed = false;
      slow.on('close', () => (closed = true));
      slow.on('error', () => {});
      let fastGot = 0;
      fast.on('message', () => fastGot++);
      const blob = 'x'.repeat(16 * 1024);
      // bounded: at most 4000 × 16 KiB, stops as soon as the server dropped the slow client
      for (let i = 0; i < 4000 && m.get('bootrelay_http_ws_dropped_total') === 0; i++) {
        for (const fn of subs) fn({ type: 'tftp.progress', i, blob });
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      expect(m.get('bootrelay_http_ws_dropped_total')).toBe(1);
      (slow as unknown as { _socket: import('node:net').Socket })._socket.resume();
      await waitFor(() => closed, 5000, 'slow client closed');
      await waitFor(() => fastGot > 0, 5000, 'fast client messages');
      fast.close();
    } finally {
      await s.stop();
    }
  });
});

describeSkipIf(skip ?? (isRoot ? undefined : 'needs root to mount a tmpfs'))('HttpService when the cache disk is full', () => {
  let mnt: string;
  let upF: TestUpstream;
  let c: FileCache;
  let s: HttpService;
  beforeAll(async () => {
    mnt = fs.mkdtempSync(join(os.tmpdir(), 'br-httpfull-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
    if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
    upF = new TestUpstream();
    await upF.start();
    c = new FileCache({
      upstream: { url: upF.url, headers: {}, timeoutMs: 5000 },
      cache: { dir: join(mnt, 'cache'), maxBytes: 1e9, ttlSeconds: 3600, negativeTtlSeconds: 60 },
      log: silentLogger,
      metrics: new Metrics(),
      emit: () => {},
    });
    await c.init();
    s = new HttpService({
      address: '127.0.0.1',
      port: 0,
      source: c,
      log: silentLogger,
      metrics: new Metrics(),
      emit: () => {},
      macForIp: () => undefined,
      plan: { profileFor: () => undefined },
      api: { status: () => ({}), clients: () => [] },
      subscribe: () => () => {},
    });
    await s.start();
  });
  afterAll(async () => {
    await s?.stop();
    await c?.close();
    await upF?.cleanup();
    spawnSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it('streams the whole file through to curl without caching it', async () => {
    const body = await upF.addFile('iso/big.img', randomBytes(3_000_000));
    const a = await curl([`http://127.0.0.1:${s.port}/files/iso/big.img`]);
    expect(a.code).toBe(0);
    expect(sha(a.stdout)).toBe(sha(body));
    const b = await curl([`http://127.0.0.1:${s.port}/files/iso/big.img`]);
    expect(b.code).toBe(0);
    expect(sha(b.stdout)).toBe(sha(body));
    const h = await get(s.port, '/files/iso/big.img', {}, undefined, 'HEAD');
    expect(h.headers['x-cache']).toBe('bypass');
    expect(h.headers['content-length']).toBe('3000000');
    expect(c.list()).toEqual([]);
  });
});
