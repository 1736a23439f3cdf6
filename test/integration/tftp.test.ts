/**
 * TftpService on 127.0.0.1 with real clients: tftp-hpa, atftp, curl, the `tftp`
 * npm package's client, and a scripted client of our own (loss, duplicates,
 * silence, probes). Every received file is checked by sha256.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { TftpConfig } from '../../agent/config/types';
import { silentLogger } from '../../agent/log';
import type { RelayEvent, RelayEventType } from '../../proto/events';
import { ofType } from '../helpers/events';
import { makeEvent } from '../../proto/events';
import { decodeTftp, encodeTftp, TftpErr, type TftpPacket } from '../../proto/tftp/packet';
import { Metrics } from '../../relay/metrics';
import { TftpService, TFTP_METRICS, type TftpServiceOptions } from '../../relay/tftp/service';
import { PacketTrace } from '../../relay/trace';
import { DirSource } from '../helpers/dir-source';
import type { FileSource } from '../../relay/source';
import { Readable } from 'node:stream';
import { hasCmd, waitFor } from '../helpers/netns';
import { describeSkipIf, itSkipIf, missingCmds } from '../helpers/skip';
import { FileCache } from '../../relay/cache/cache';
import { TestUpstream } from '../helpers/upstream';

const MAC = '52:54:00:aa:bb:01';

interface Received {
  pkt: TftpPacket;
  port: number;
  address: string;
}

class RawTftpClient {
  readonly socket = dgram.createSocket('udp4');
  private queue: Received[] = [];
  private waiters: Array<(r: Received) => void> = [];
  /** every packet received, in order */
  readonly log: Received[] = [];
  serverPort = 0;

  static async open(bindAddress = '127.0.0.1'): Promise<RawTftpClient> {
    const c = new RawTftpClient();
    await new Promise<void>((r) => c.socket.bind({ address: bindAddress, port: 0 }, () => r()));
    c.socket.on('message', (msg, rinfo) => {
      const r: Received = { pkt: decodeTftp(msg), port: rinfo.port, address: rinfo.address };
      c.log.push(r);
      const w = c.waiters.shift();
      if (w) w(r);
      else c.queue.push(r);
    });
    return c;
  }

  get port(): number {
    return (this.socket.address() as AddressInfo).port;
  }

  private pending = new Set<Promise<void>>();

  send(pkt: TftpPacket, port: number, host = '127.0.0.1'): void {
    this.sendRaw(encodeTftp(pkt), port, host);
  }

  sendRaw(buf: Buffer, port: number, host = '127.0.0.1'): void {
    const p = new Promise<void>((r) => this.socket.send(buf, port, host, () => r()));
    this.pending.add(p);
    void p.then(() => this.pending.delete(p));
  }

  /** The next packet, or undefined after timeoutMs. */
  next(timeoutMs = 3000): Promise<Received | undefined> {
    const q = this.queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve) => {
      const w = (r: Received) => {
        clearTimeout(t);
        resolve(r);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** The next DATA `block`, skipping retransmitted OACKs and earlier blocks (a slow machine may see them). */
  async nextData(block: number, timeoutMs = 3000): Promise<Received | undefined> {
    for (;;) {
      const r = await this.next(timeoutMs);
      if (!r) return r;
      if (r.pkt.op === 'oack' || (r.pkt.op === 'data' && r.pkt.block < block)) continue;
      return r;
    }
  }

  /** Closes once every datagram sent has left. */
  async close(): Promise<void> {
    await Promise.all(this.pending);
    try {
      this.socket.close();
    } catch {
      /* closed */
    }
  }
}

interface Server {
  svc: TftpService;
  metrics: Metrics;
  events: RelayEvent[];
  source: DirSource;
  trace: PacketTrace;
}

function makeServer(dir: string, cfg: Partial<TftpConfig> = {}, slow?: { chunkBytes: number; delayMs: number }, from?: FileSource, extra: Partial<TftpServiceOptions> = {}): Server {
  const metrics = new Metrics();
  const events: RelayEvent[] = [];
  const source = new DirSource(dir, { slow });
  const trace = new PacketTrace();
  const config: TftpConfig = {
    port: 0,
    maxBlksize: 1468,
    maxWindowsize: 64,
    timeout: 1,
    retries: 4,
    maxTransfers: 16,
    maxTransfersPerClient: 8,
    ...cfg,
  };
  const svc = new TftpService({
    address: '127.0.0.1',
    port: 0,
    source: from ?? source,
    config,
    log: silentLogger,
    metrics,
    emit: (ev) => events.push(makeEvent(ev)),
    macForIp: (ip) => (ip === '127.0.0.1' ? MAC : undefined),
    trace,
    ...extra,
  });
  return { svc, metrics, events, source, trace };
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const code: unknown = err ? (err as { code?: unknown }).code : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const shaFile = (p: string) => sha(readFileSync(p));

let dir: string;
let out: string;
const files: Record<string, Buffer> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'brtftp-src-'));
  out = mkdtempSync(join(tmpdir(), 'brtftp-out-'));
  files['small.bin'] = randomBytes(10_000);
  files['exact.bin'] = randomBytes(1468 * 3); // a multiple of blksize: ends with an empty DATA
  files['e512.bin'] = randomBytes(512 * 4);
  files['empty.bin'] = Buffer.alloc(0);
  files['big.bin'] = randomBytes(20 * 1024 * 1024);
  files['mid.bin'] = randomBytes(300_000);
  files['text.txt'] = Buffer.from('line one\nline two\r\nline three\n\nend', 'latin1');
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  writeFileSync(join(dir, 'sub dir.bin'), files['small.bin']);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
});

const byType = <T extends RelayEventType>(s: Server, type: T) => ofType(s.events, type);

describe('TftpService with real clients', () => {
  let s: Server;
  beforeAll(async () => {
    s = makeServer(dir);
    await s.svc.start();
  });
  afterAll(async () => {
    await s.svc.stop();
  });

  it('binds port 0 to a real port', () => {
    expect(s.svc.port).toBeGreaterThan(0);
  });

  itSkipIf(missingCmds('tftp'))('serves tftp-hpa in binary mode (plain RFC 1350, 512-byte blocks)', async () => {
    for (const name of ['small.bin', 'e512.bin', 'empty.bin']) {
      const dest = join(out, `hpa-${name}`);
      const r = await run('tftp', ['-m', 'binary', '127.0.0.1', String(s.svc.port), '-c', 'get', name, dest]);
      expect(r.stderr).toBe('');
      expect(shaFile(dest)).toBe(sha(files[name]));
    }
    const done = byType(s, 'tftp.done').filter((e) => e.file === 'small.bin');
    expect(done.at(-1)).toMatchObject({ mac: MAC, ip: '127.0.0.1', bytes: 10_000, blksize: 512, windowsize: 1, retransmits: 0 });
  });

  itSkipIf(missingCmds('tftp'))('serves tftp-hpa in netascii mode (LF → CR LF on the wire, back to LF at the client)', async () => {
    const dest = join(out, 'hpa-text.txt');
    const r = await run('tftp', ['-m', 'netascii', '127.0.0.1', String(s.svc.port), '-c', 'get', 'text.txt', dest]);
    expect(r.stderr).toBe('');
    expect(readFileSync(dest).toString('latin1')).toBe(files['text.txt'].toString('latin1'));
  });

  itSkipIf(missingCmds('atftp'))('serves atftp a 20 MB file with blksize 1468, tsize and windowsize 8', async () => {
    const dest = join(out, 'atftp-big.bin');
    const before = byType(s, 'tftp.start').length;
    const r = await run('atftp', ['--option', 'blksize 1468', '--option', 'tsize 0', '--option', 'windowsize 8', '-g', '-r', 'big.bin', '-l', dest, '127.0.0.1', String(s.svc.port)]);
    expect(r.code, r.stderr).toBe(0);
    expect(shaFile(dest)).toBe(sha(files['big.bin']));
    const start = byType(s, 'tftp.start').slice(before).find((e) => e.file === 'big.bin');
    expect(start).toMatchObject({ mac: MAC, totalBytes: files['big.bin'].length, blksize: 1468, windowsize: 8 });
    const done = byType(s, 'tftp.done').filter((e) => e.file === 'big.bin').at(-1);
    expect(done).toMatchObject({ bytes: files['big.bin'].length, blksize: 1468, windowsize: 8 });
    // progress is throttled: at most ~4 per second
    const prog = s.events.filter((e) => e.type === 'tftp.progress' && e.file === 'big.bin');
    expect(prog.length).toBeLessThanOrEqual(Math.ceil((done!.ms as number) / 250) + 1);
  });

  itSkipIf(missingCmds('atftp'))('serves atftp with no options, and with blksize on a file that ends on a block boundary', async () => {
    const d1 = join(out, 'atftp-small.bin');
    expect((await run('atftp', ['-g', '-r', 'small.bin', '-l', d1, '127.0.0.1', String(s.svc.port)])).code).toBe(0);
    expect(shaFile(d1)).toBe(sha(files['small.bin']));
    const d2 = join(out, 'atftp-exact.bin');
    expect((await run('atftp', ['--option', 'blksize 1468', '-g', '-r', 'exact.bin', '-l', d2, '127.0.0.1', String(s.svc.port)])).code).toBe(0);
    expect(shaFile(d2)).toBe(sha(files['exact.bin']));
  });

  // (not empty.bin: curl 7.88 fails an empty file with "getpeername() failed" against tftpd-hpa too)
  itSkipIf(missingCmds('curl'))('serves curl with --tftp-blksize 1468, names with a leading / and spaces', async () => {
    for (const [name, url] of [
      ['small.bin', 'small.bin'],
      ['exact.bin', 'exact.bin'],
      ['mid.bin', '/mid.bin'],
    ]) {
      const dest = join(out, `curl-${name}`);
      const r = await run('curl', ['-sS', '--tftp-blksize', '1468', `tftp://127.0.0.1:${s.svc.port}/${url}`, '-o', dest]);
      expect(r.code, r.stderr).toBe(0);
      expect(shaFile(dest)).toBe(sha(files[name]));
    }
    const dest = join(out, 'curl-space.bin');
    const r = await run('curl', ['-sS', `tftp://127.0.0.1:${s.svc.port}/sub%20dir.bin`, '-o', dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(shaFile(dest)).toBe(sha(files['small.bin']));
  });

  itSkipIf(missingCmds('curl'))('answers a missing file with ERROR 1 (curl exit 68) and a tftp.error event', async () => {
    const r = await run('curl', ['-sS', `tftp://127.0.0.1:${s.svc.port}/nope/missing.efi`, '-o', join(out, 'x')]);
    expect(r.code).toBe(68); // CURLE_TFTP_NOTFOUND
    const ev = await waitFor(() => byType(s, 'tftp.error').find((e) => e.file === 'nope/missing.efi'), 3000, 'tftp.error');
    expect(ev).toMatchObject({ reason: 'not-found', error: 'file not found', mac: MAC, code: 1 });
    expect(s.metrics.get(TFTP_METRICS.transfers, { result: 'not-found' })).toBeGreaterThanOrEqual(1);
  });

  it('serves the tftp npm client (blksize 1468, windowsize 4)', async () => {
    const tftp = createRequire(import.meta.url)('tftp') as {
      createClient(o: object): { get(remote: string, local: string, cb: (err?: Error) => void): void };
    };
    const client = tftp.createClient({ host: '127.0.0.1', port: s.svc.port, blockSize: 1468, windowSize: 4 });
    const dest = join(out, 'npm-mid.bin');
    await new Promise<void>((resolve, reject) => client.get('mid.bin', dest, (err) => (err ? reject(err) : resolve())));
    expect(shaFile(dest)).toBe(sha(files['mid.bin']));
  });

  it('records the exchange in the packet trace for a known MAC', () => {
    expect(s.trace.count(MAC)).toBeGreaterThan(10);
    const pcap = s.trace.toPcap(MAC);
    expect(pcap.readUInt32LE(0)).toBe(0xa1b2c3d4);
  });

  it('counts bytes and transfers in metrics, and ends with no transfer active', async () => {
    await waitFor(() => s.svc.active === 0, 3000, 'no active transfers');
    expect(s.metrics.get(TFTP_METRICS.transfers, { result: 'ok' })).toBeGreaterThanOrEqual(10);
    expect(s.metrics.get(TFTP_METRICS.bytes)).toBeGreaterThanOrEqual(files['big.bin'].length);
    expect(s.metrics.render()).toContain('bootrelay_tftp_active_transfers 0');
    expect(s.source.openStreams).toBe(0);
  });
});

describe('TftpService refusals and protocol corners (scripted client)', () => {
  let s: Server;
  let c: RawTftpClient;
  beforeAll(async () => {
    s = makeServer(dir, { timeout: 0.2, retries: 2, maxTransfers: 3, maxTransfersPerClient: 2 });
    await s.svc.start();
  });
  afterAll(async () => {
    await c?.close();
    await s.svc.stop();
  });
  beforeEach(async () => {
    await c?.close();
    c = await RawTftpClient.open();
  });

  const rrq = (file: string, options: Record<string, string> = {}): TftpPacket => ({ op: 'rrq', file, mode: 'octet', options });

  it.each(['../etc/passwd', '/../x', 'a/../../b', 'C:\\windows\\x'])('refuses %s with ERROR 2 and counts it', async (name) => {
    const before = s.metrics.get(TFTP_METRICS.dropped, { reason: 'path' });
    c.send(rrq(name), s.svc.port);
    const r = await c.next();
    expect(r?.pkt).toEqual({ op: 'error', code: TftpErr.AccessViolation, message: 'access violation' });
    expect(r?.port).not.toBe(s.svc.port); // from a fresh TID
    expect(s.metrics.get(TFTP_METRICS.dropped, { reason: 'path' })).toBe(before + 1);
    expect(s.source.opened.some((o) => o.path.includes('..') || o.path.includes('passwd'))).toBe(false);
  });

  it('refuses a write request with ERROR 2', async () => {
    c.send({ op: 'wrq', file: 'up.bin', mode: 'octet', options: {} }, s.svc.port);
    const r = await c.next();
    expect(r?.pkt).toMatchObject({ op: 'error', code: TftpErr.AccessViolation });
    expect(s.metrics.get(TFTP_METRICS.dropped, { reason: 'wrq' })).toBe(1);
  });

  it('answers ERROR 1 without server paths for a missing file', async () => {
    c.send(rrq('missing.bin'), s.svc.port);
    const r = await c.next();
    expect(r?.pkt).toEqual({ op: 'error', code: TftpErr.FileNotFound, message: 'file not found' });
  });

  it('refuses the mail mode with ERROR 0', async () => {
    c.send({ op: 'rrq', file: 'small.bin', mode: 'mail', options: {} }, s.svc.port);
    expect((await c.next())?.pkt).toMatchObject({ op: 'error', code: 0 });
  });

  it('drops garbage on the listening port and counts it, and keeps serving', async () => {
    const before = s.metrics.get(TFTP_METRICS.dropped, { reason: 'decode' });
    c.sendRaw(Buffer.from([0, 1, 0x41]), s.svc.port);
    c.sendRaw(Buffer.from([0xff]), s.svc.port);
    c.sendRaw(Buffer.from([0, 4, 0, 1]), s.svc.port); // an ACK to port 69
    await waitFor(() => s.metrics.get(TFTP_METRICS.dropped, { reason: 'decode' }) === before + 2, 2000, 'decode drops');
    await waitFor(() => s.metrics.get(TFTP_METRICS.dropped, { reason: 'unexpected-opcode' }) >= 1, 2000, 'opcode drop');
    c.send(rrq('small.bin', { tsize: '0' }), s.svc.port);
    expect((await c.next())?.pkt).toEqual({ op: 'oack', options: { tsize: '10000' } });
    c.send({ op: 'error', code: 0, message: '' }, (c.log.at(-1) as Received).port);
  });

  it('drops an oversized request (thousands of options) unread, and serves one of 4 KB', async () => {
    const opts: Record<string, string> = {};
    for (let i = 0; i < 6000; i++) opts[`x${i}`] = '1';
    c.send({ op: 'rrq', file: 'small.bin', mode: 'octet', options: opts }, s.svc.port);
    await waitFor(() => s.metrics.get(TFTP_METRICS.dropped, { reason: 'oversize' }) === 1, 2000, 'oversize drop');
    const fits: Record<string, string> = { tsize: '0' };
    for (let i = 0; i < 400; i++) fits[`y${i}`] = '1'; // ~3.7 KB: unknown options are left out of the OACK
    c.send({ op: 'rrq', file: 'small.bin', mode: 'octet', options: fits }, s.svc.port);
    const r = await c.next();
    expect(r?.pkt).toEqual({ op: 'oack', options: { tsize: '10000' } });
    c.send({ op: 'error', code: 8, message: '' }, r!.port);
    expect(s.metrics.get(TFTP_METRICS.dropped, { reason: 'oversize' })).toBe(1);
  });

  it('treats ERROR 8 after the OACK as a tsize probe: quiet, counted, slot freed', async () => {
    const errorsBefore = byType(s, 'tftp.error').length;
    const startsBefore = byType(s, 'tftp.start').length;
    c.send(rrq('big.bin', { tsize: '0', blksize: '1468' }), s.svc.port);
    const r = await c.next();
    expect(r?.pkt).toEqual({ op: 'oack', options: { tsize: String(files['big.bin'].length), blksize: '1468' } });
    const probesBefore = s.metrics.get(TFTP_METRICS.transfers, { result: 'tsize-probe' });
    c.send({ op: 'error', code: TftpErr.OptionRefused, message: 'tsize only' }, r!.port);
    await waitFor(() => s.metrics.get(TFTP_METRICS.transfers, { result: 'tsize-probe' }) === probesBefore + 1, 2000, 'probe counted');
    await waitFor(() => s.svc.active === 0, 2000, 'slot freed');
    expect(byType(s, 'tftp.error').length).toBe(errorsBefore);
    expect(byType(s, 'tftp.start').length).toBe(startsBefore);
    // then the real request, as a PXE ROM does
    c.send(rrq('small.bin', { blksize: '1468' }), s.svc.port);
    const o = await c.next();
    expect(o?.pkt).toEqual({ op: 'oack', options: { blksize: '1468' } });
    let got = Buffer.alloc(0);
    c.send({ op: 'ack', block: 0 }, o!.port);
    for (let b = 1; ; b++) {
      const d = await c.nextData(b);
      expect(d?.pkt).toMatchObject({ op: 'data', block: b });
      const data = (d!.pkt as { data: Buffer }).data;
      got = Buffer.concat([got, data]);
      c.send({ op: 'ack', block: b }, d!.port);
      if (data.length < 1468) break;
    }
    expect(sha(got)).toBe(sha(files['small.bin']));
  });

  it('replaces a probe by a new RRQ from the same port, and ignores a repeated identical RRQ', async () => {
    const errorsBefore = byType(s, 'tftp.error').length;
    const doneBefore = byType(s, 'tftp.done').length;
    const probes = s.metrics.get(TFTP_METRICS.transfers, { result: 'tsize-probe' });
    const dups = s.metrics.get(TFTP_METRICS.dropped, { reason: 'duplicate-rrq' });
    c.send(rrq('small.bin', { tsize: '0' }), s.svc.port);
    const o1 = await c.next();
    expect(o1?.pkt).toEqual({ op: 'oack', options: { tsize: '10000' } });
    c.send(rrq('small.bin', { tsize: '0' }), s.svc.port); // a retransmitted RRQ
    await waitFor(() => s.metrics.get(TFTP_METRICS.dropped, { reason: 'duplicate-rrq' }) === dups + 1, 2000, 'duplicate dropped');
    c.send(rrq('small.bin', { blksize: '1468' }), s.svc.port); // the real request, no ERROR in between
    const o2 = await c.next();
    expect(o2?.pkt).toEqual({ op: 'oack', options: { blksize: '1468' } });
    expect(o2?.port).not.toBe(o1?.port);
    expect(s.metrics.get(TFTP_METRICS.transfers, { result: 'tsize-probe' })).toBe(probes + 1);
    c.send({ op: 'ack', block: 0 }, o2!.port);
    for (let b = 1; b <= 7; b++) {
      const d = await c.nextData(b);
      expect(d?.pkt).toMatchObject({ op: 'data', block: b });
      c.send({ op: 'ack', block: b }, d!.port);
    }
    await waitFor(() => byType(s, 'tftp.done').slice(doneBefore).find((e) => e.file === 'small.bin' && e.blksize === 1468), 2000, 'done');
    expect(byType(s, 'tftp.error').length).toBe(errorsBefore);
  });

  it('times out a silent client after its retries, with an ERROR and a tftp.error, and frees the slot', async () => {
    const t0 = Date.now();
    c.send(rrq('small.bin'), s.svc.port);
    // timeout 0.2 s, retries 2: DATA 1 at 0, 0.2, 0.6; gives up at 1.4 s
    const got: TftpPacket[] = [];
    for (;;) {
      const r = await c.next(4000);
      if (!r) break;
      got.push(r.pkt);
      if (r.pkt.op === 'error') break;
    }
    expect(got.map((p) => p.op)).toEqual(['data', 'data', 'data', 'error']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1300);
    await waitFor(() => byType(s, 'tftp.error').find((e) => e.reason === 'timeout'), 2000, 'timeout event');
    await waitFor(() => s.svc.active === 0, 2000, 'slot freed');
    expect(s.metrics.get(TFTP_METRICS.transfers, { result: 'timeout' })).toBe(1);
  });

  it('counts a transfer whose final ACK never comes as done, unconfirmed, without an error', async () => {
    const errorsBefore = byType(s, 'tftp.error').length;
    c.send(rrq('exact.bin', { blksize: '1468' }), s.svc.port);
    const o = await c.next();
    c.send({ op: 'ack', block: 0 }, o!.port);
    for (let b = 1; b <= 4; b++) {
      const d = await c.nextData(b);
      expect(d?.pkt).toMatchObject({ op: 'data', block: b });
      if (b < 4) c.send({ op: 'ack', block: b }, d!.port); // the final (empty) block is never acknowledged
    }
    const done = await waitFor(() => byType(s, 'tftp.done').find((e) => e.file === 'exact.bin' && e.confirmed === false), 4000, 'unconfirmed done');
    expect(done.bytes).toBe(files['exact.bin'].length);
    expect(byType(s, 'tftp.error').length).toBe(errorsBefore);
    expect(s.metrics.get(TFTP_METRICS.transfers, { result: 'ok-unconfirmed' })).toBe(1);
  });

  it('caps transfers per client and in total with ERROR 0 "too many transfers"', async () => {
    const clients: RawTftpClient[] = [];
    const other: RawTftpClient[] = [];
    try {
      for (let i = 0; i < 3; i++) clients.push(await RawTftpClient.open('127.0.0.1'));
      for (let i = 0; i < 2; i++) other.push(await RawTftpClient.open('127.0.0.2'));
      // two from 127.0.0.1 are served (they stay silent, so the transfers stay open)
      for (const x of clients.slice(0, 2)) x.send(rrq('big.bin'), s.svc.port);
      for (const x of clients.slice(0, 2)) expect((await x.next())?.pkt).toMatchObject({ op: 'data', block: 1 });
      clients[2].send(rrq('big.bin'), s.svc.port);
      expect((await clients[2].next())?.pkt).toEqual({ op: 'error', code: 0, message: 'too many transfers' });
      // a third transfer from another address fits the total (3); the fourth does not
      other[0].send(rrq('big.bin'), s.svc.port);
      expect((await other[0].next())?.pkt).toMatchObject({ op: 'data', block: 1 });
      other[1].send(rrq('big.bin'), s.svc.port);
      const r = await other[1].next();
      expect(r?.pkt).toEqual({ op: 'error', code: 0, message: 'too many transfers' });
      expect(s.metrics.get(TFTP_METRICS.dropped, { reason: 'too-many-transfers' })).toBe(2);
      // when they time out, the slots are free again
      await waitFor(() => s.svc.active === 0, 5000, 'slots freed');
      other[1].send(rrq('small.bin'), s.svc.port);
      let p = await other[1].next();
      while (p && p.pkt.op === 'error') p = await other[1].next(); // any late reply to the refused one
      expect(p?.pkt).toMatchObject({ op: 'data', block: 1 });
      other[1].send({ op: 'error', code: 0, message: 'bye' }, p!.port);
    } finally {
      for (const x of [...clients, ...other]) await x.close();
    }
  });

  it('answers a packet from a foreign port with ERROR 5 and goes on', async () => {
    c.send(rrq('small.bin', { blksize: '4000' }), s.svc.port);
    const first = await c.next();
    expect(first?.pkt).toEqual({ op: 'oack', options: { blksize: '1468' } });
    const stranger = await RawTftpClient.open();
    try {
      stranger.send({ op: 'ack', block: 0 }, first!.port);
      expect((await stranger.next())?.pkt).toMatchObject({ op: 'error', code: TftpErr.UnknownTid });
    } finally {
      await stranger.close();
    }
    c.send({ op: 'ack', block: 0 }, first!.port);
    expect((await c.nextData(1))?.pkt).toMatchObject({ op: 'data', block: 1 });
    c.send({ op: 'error', code: 0, message: 'enough' }, first!.port);
    await waitFor(() => byType(s, 'tftp.error').find((e) => e.reason === 'aborted'), 2000, 'aborted event');
  });
});

describe('TftpService under loss and duplication (scripted client)', () => {
  let s: Server;
  beforeAll(async () => {
    s = makeServer(dir, { timeout: 1, retries: 4 });
    await s.svc.start();
  });
  afterAll(async () => {
    await s.svc.stop();
  });

  /** Fetches a file, dropping the first copy of DATA `loseBlock` and sending every ACK `dupAcks` times. */
  async function fetch(file: string, opts: { loseBlock?: number; dupAcks?: number; options?: Record<string, string> }) {
    const c = await RawTftpClient.open();
    const dataSeen = new Map<number, number>();
    let got = Buffer.alloc(0);
    let expected = 1;
    let lost = false;
    let blksize = 512;
    let window = 1;
    try {
      c.send({ op: 'rrq', file, mode: 'octet', options: opts.options ?? {} }, s.svc.port);
      let inWindow = 0;
      for (;;) {
        const r = await c.next(5000);
        if (!r) throw new Error('server went silent');
        const ack = (block: number) => {
          for (let i = 0; i < (opts.dupAcks ?? 1); i++) c.send({ op: 'ack', block }, r.port);
        };
        if (r.pkt.op === 'oack') {
          blksize = Number(r.pkt.options.blksize ?? 512);
          window = Number(r.pkt.options.windowsize ?? 1);
          ack(0);
          continue;
        }
        if (r.pkt.op !== 'data') throw new Error(`unexpected ${r.pkt.op}`);
        const { block, data } = r.pkt;
        dataSeen.set(block, (dataSeen.get(block) ?? 0) + 1);
        if (block === opts.loseBlock && !lost) {
          lost = true;
          continue; // dropped on the way
        }
        if (block !== (expected & 0xffff)) {
          // RFC 7440 §4: a gap: ACK the last block in order (once per gap)
          if (inWindow !== -1) ack((expected - 1) & 0xffff);
          inWindow = -1;
          continue;
        }
        got = Buffer.concat([got, data]);
        expected++;
        inWindow = inWindow === -1 ? 1 : inWindow + 1;
        const last = data.length < blksize;
        if (last || inWindow >= window) {
          ack(block);
          inWindow = 0;
        }
        if (last) break;
      }
    } finally {
      await c.close();
    }
    return { got, dataSeen, packets: [...dataSeen.values()].reduce((a, b) => a + b, 0), blocks: expected - 1 };
  }

  it('costs exactly one retransmission for one lost DATA in lock-step, even with every ACK duplicated', async () => {
    const r0 = s.metrics.get(TFTP_METRICS.retransmits);
    const r = await fetch('mid.bin', { loseBlock: 7, dupAcks: 3, options: { blksize: '1468' } });
    expect(sha(r.got)).toBe(sha(files['mid.bin']));
    expect(r.packets).toBe(r.blocks + 1);
    expect(r.dataSeen.get(7)).toBe(2);
    expect(s.metrics.get(TFTP_METRICS.retransmits) - r0).toBe(1);
    const done = await waitFor(() => byType(s, 'tftp.done').find((e) => e.file === 'mid.bin'), 2000, 'tftp.done');
    expect(done).toMatchObject({ retransmits: 1 });
  });

  it('sends every block once with duplicated ACKs and no loss (no Sorcerer’s Apprentice)', async () => {
    const r0 = s.metrics.get(TFTP_METRICS.retransmits);
    const n0 = byType(s, 'tftp.done').length;
    const r = await fetch('mid.bin', { dupAcks: 4 });
    expect(sha(r.got)).toBe(sha(files['mid.bin']));
    expect(r.packets).toBe(r.blocks);
    expect(s.metrics.get(TFTP_METRICS.retransmits) - r0).toBe(0);
    const done = await waitFor(() => byType(s, 'tftp.done')[n0], 2000, 'tftp.done');
    expect(done).toMatchObject({ file: 'mid.bin', retransmits: 0, blksize: 512 });
  });

  it('recovers a loss inside a window with at most one window resent', async () => {
    const r0 = s.metrics.get(TFTP_METRICS.retransmits);
    const r = await fetch('mid.bin', { loseBlock: 10, dupAcks: 2, options: { blksize: '1468', windowsize: '8' } });
    expect(sha(r.got)).toBe(sha(files['mid.bin']));
    const extra = s.metrics.get(TFTP_METRICS.retransmits) - r0;
    expect(extra).toBeGreaterThanOrEqual(1);
    expect(extra).toBeLessThanOrEqual(8);
    expect(r.packets).toBe(r.blocks + extra);
  });
});

describe('TftpService window recovery (RFC 7440 §4, scripted client)', () => {
  let s: Server;
  beforeAll(async () => {
    // a retransmission timer far longer than the client waits: only the gap ACK can bring the block back
    s = makeServer(dir, { timeout: 30, retries: 2 });
    await s.svc.start();
  });
  afterAll(async () => {
    await s.svc.stop();
  });

  /** Fetches with windowsize `ws`, dropping the first copy of each block in `lose`; ACKs the last in-order block on a gap, once per gap. */
  async function fetch(file: string, ws: number, lose: number[], dupAcks = 1) {
    const c = await RawTftpClient.open();
    const dataSeen = new Map<number, number>();
    const chunks: Buffer[] = [];
    let expected = 1;
    const lost = new Set<number>();
    try {
      c.send({ op: 'rrq', file, mode: 'octet', options: { blksize: '1468', windowsize: String(ws) } }, s.svc.port);
      let inWindow = 0;
      for (;;) {
        const r = await c.next(5000);
        if (!r) throw new Error(`server went silent waiting for block ${expected}`);
        const ack = (block: number) => {
          for (let i = 0; i < dupAcks; i++) c.send({ op: 'ack', block }, r.port);
        };
        if (r.pkt.op === 'oack') {
          ack(0);
          continue;
        }
        if (r.pkt.op !== 'data') throw new Error(`unexpected ${r.pkt.op}`);
        const { block, data } = r.pkt;
        dataSeen.set(block, (dataSeen.get(block) ?? 0) + 1);
        if (lose.includes(block) && !lost.has(block)) {
          lost.add(block);
          continue;
        }
        if (block !== expected) {
          if (block > expected && inWindow !== -1) ack(expected - 1);
          inWindow = -1;
          continue;
        }
        chunks.push(data);
        expected++;
        inWindow = inWindow === -1 ? 1 : inWindow + 1;
        const last = data.length < 1468;
        if (last || inWindow >= ws) {
          ack(block);
          inWindow = 0;
        }
        if (last) break;
      }
    } finally {
      await c.close();
    }
    return { got: Buffer.concat(chunks), dataSeen, blocks: expected - 1 };
  }

  it('resends a window at once when the client ACKs the block before it (its first block was lost)', async () => {
    const r0 = s.metrics.get(TFTP_METRICS.retransmits);
    // windows of 4: 1-4, 5-8, 9-12 …; the first blocks of the 3rd and 20th windows are lost
    const r = await fetch('mid.bin', 4, [9, 77]);
    expect(sha(r.got)).toBe(sha(files['mid.bin']));
    expect(r.dataSeen.get(9)).toBe(2);
    expect(r.dataSeen.get(77)).toBe(2);
    // each loss costs the rest of its window once, no more
    expect(s.metrics.get(TFTP_METRICS.retransmits) - r0).toBe(8);
    const done = await waitFor(() => byType(s, 'tftp.done').find((e) => e.file === 'mid.bin'), 2000, 'tftp.done');
    expect(done).toMatchObject({ retransmits: 8 });
  });

  it('resends nothing for ACKs the client sends twice when nothing is lost', async () => {
    const r0 = s.metrics.get(TFTP_METRICS.retransmits);
    const r = await fetch('mid.bin', 4, [], 2);
    expect(sha(r.got)).toBe(sha(files['mid.bin']));
    expect([...r.dataSeen.values()].every((n) => n === 1)).toBe(true);
    expect(s.metrics.get(TFTP_METRICS.retransmits) - r0).toBe(0);
  });
});

describe('TftpService answering tsize for a file of unknown size (chunked upstream, cold cache)', () => {
  let up: TestUpstream;
  let cacheDir: string;
  let cache: FileCache;
  let s: Server;
  let bounded: Server;
  let body: Buffer;
  beforeAll(async () => {
    up = new TestUpstream();
    await up.start();
    body = await up.addFile('chunked/loader.efi', randomBytes(400_000));
    up.chunked.add('chunked/loader.efi');
    up.rate = 2_000_000; // the fill takes ~200 ms: the RRQ arrives long before its end
    cacheDir = mkdtempSync(join(tmpdir(), 'brtftp-cache-'));
    const metrics = new Metrics();
    cache = new FileCache({
      upstream: { url: up.url, headers: {}, timeoutMs: 5000 },
      cache: { dir: cacheDir, maxBytes: 1e9, ttlSeconds: 3600, negativeTtlSeconds: 60 },
      log: silentLogger,
      metrics,
      emit: () => {},
    });
    await cache.init();
    s = makeServer(dir, {}, undefined, cache);
    bounded = makeServer(dir, {}, undefined, cache, { tsizeWaitMs: 100 });
    await bounded.svc.start();
    await s.svc.start();
  });
  afterAll(async () => {
    await s.svc.stop();
    await bounded.svc.stop();
    await cache.close();
    await up.cleanup();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('waits for the fill and puts tsize in the OACK, then serves the file', async () => {
    expect(cache.sizeOf('chunked/loader.efi')).toBeUndefined();
    const c = await RawTftpClient.open();
    try {
      c.send({ op: 'rrq', file: 'chunked/loader.efi', mode: 'octet', options: { tsize: '0', blksize: '1468' } }, s.svc.port);
      const first = await c.next(8000);
      expect(first?.pkt.op).toBe('oack');
      if (first?.pkt.op !== 'oack') return;
      expect(first.pkt.options).toMatchObject({ tsize: String(body.length), blksize: '1468' });
      const chunks: Buffer[] = [];
      c.send({ op: 'ack', block: 0 }, first.port);
      for (let b = 1; ; b++) {
        const r = await c.nextData(b, 5000);
        if (r?.pkt.op !== 'data') throw new Error(`no DATA ${b}`);
        chunks.push(r.pkt.data);
        c.send({ op: 'ack', block: b }, r.port);
        if (r.pkt.data.length < 1468) break;
      }
      expect(sha(Buffer.concat(chunks))).toBe(sha(body));
    } finally {
      await c.close();
    }
    // the cache now knows the size (DHCP option 13)
    expect(cache.sizeOf('chunked/loader.efi')).toBe(body.length);
    expect(cache.sizeOf('/chunked//loader.efi')).toBe(body.length);
    expect(cache.sizeOf('chunked/none')).toBeUndefined();
  });

  it('waits a bounded time only: a fill slower than tsizeWaitMs gets an OACK without tsize, and the file', async () => {
    const slow = await up.addFile('chunked/slow.efi', randomBytes(300_000));
    up.chunked.add('chunked/slow.efi');
    up.rate = 200_000; // ~1.5 s of fill against a 100 ms wait
    const c = await RawTftpClient.open();
    try {
      c.send({ op: 'rrq', file: 'chunked/slow.efi', mode: 'octet', options: { tsize: '0', blksize: '1468' } }, bounded.svc.port);
      const first = await c.next(5000);
      expect(first?.pkt.op).toBe('oack');
      if (first?.pkt.op !== 'oack') return;
      expect(first.pkt.options.tsize).toBeUndefined();
      expect(first.pkt.options.blksize).toBe('1468');
      const chunks: Buffer[] = [];
      c.send({ op: 'ack', block: 0 }, first.port);
      for (let b = 1; ; b++) {
        const r = await c.nextData(b, 5000);
        if (r?.pkt.op !== 'data') throw new Error(`no DATA ${b}`);
        chunks.push(r.pkt.data);
        c.send({ op: 'ack', block: b }, r.port);
        if (r.pkt.data.length < 1468) break;
      }
      expect(sha(Buffer.concat(chunks))).toBe(sha(slow));
    } finally {
      up.rate = 2_000_000;
      await c.close();
    }
  });
});

describe('TftpService serving a file while it still arrives', () => {
  let s: Server;
  beforeAll(async () => {
    s = makeServer(dir, {}, { chunkBytes: 5000, delayMs: 5 });
    await s.svc.start();
  });
  afterAll(async () => {
    await s.svc.stop();
  });

  itSkipIf(missingCmds('curl'))('streams a slow source to curl block by block', async () => {
    const dest = join(out, 'slow-mid.bin');
    const r = await run('curl', ['-sS', '--tftp-blksize', '1468', `tftp://127.0.0.1:${s.svc.port}/mid.bin`, '-o', dest]);
    expect(r.code, r.stderr).toBe(0);
    expect(shaFile(dest)).toBe(sha(files['mid.bin']));
  });

  itSkipIf(missingCmds('atftp'))('streams a slow source to atftp with windowsize 16', async () => {
    const dest = join(out, 'slow-atftp.bin');
    const r = await run('atftp', ['--option', 'blksize 1468', '--option', 'windowsize 16', '-g', '-r', 'mid.bin', '-l', dest, '127.0.0.1', String(s.svc.port)]);
    expect(r.code, r.stderr).toBe(0);
    expect(shaFile(dest)).toBe(sha(files['mid.bin']));
  });
});


describe('TftpService when the source fails mid-stream', () => {
  it('sends ERROR 0 "upstream error", emits tftp.error and frees the slot', async () => {
    const metrics = new Metrics();
    const events: RelayEvent[] = [];
    const source: FileSource = {
      async open(path) {
        async function* gen() {
          yield Buffer.alloc(3000, 1);
          await new Promise((r) => setTimeout(r, 20));
          throw new Error('upstream cut');
        }
        return { path, size: 100_000, stream: Readable.from(gen(), { objectMode: false }), cache: 'miss' };
      },
    };
    const svc = new TftpService({
      address: '127.0.0.1',
      port: 0,
      source,
      config: { port: 0, maxBlksize: 1468, maxWindowsize: 8, timeout: 1, retries: 2, maxTransfers: 4, maxTransfersPerClient: 4 },
      log: silentLogger,
      metrics,
      emit: (ev) => events.push(makeEvent(ev)),
    });
    await svc.start();
    const c = await RawTftpClient.open();
    try {
      c.send({ op: 'rrq', file: 'x.bin', mode: 'octet', options: {} }, svc.port);
      const seen: TftpPacket[] = [];
      for (;;) {
        const r = await c.next(3000);
        if (!r) break;
        seen.push(r.pkt);
        if (r.pkt.op === 'data') c.send({ op: 'ack', block: r.pkt.block }, r.port);
        if (r.pkt.op === 'error') break;
      }
      expect(seen.at(-1)).toEqual({ op: 'error', code: 0, message: 'upstream error' });
      expect(seen.filter((p) => p.op === 'data').length).toBeGreaterThanOrEqual(1);
      const ev = await waitFor(() => events.find((e) => e.type === 'tftp.error'), 2000, 'tftp.error');
      expect(ev).toMatchObject({ reason: 'upstream-error', file: 'x.bin', totalBytes: 100_000 });
      expect(String(ev.error)).toContain('upstream cut');
      await waitFor(() => svc.active === 0, 2000, 'slot freed');
      expect(metrics.get(TFTP_METRICS.transfers, { result: 'upstream-error' })).toBe(1);
    } finally {
      await c.close();
      await svc.stop();
    }
  });
});

describe('TftpService with sources of any stream shape', () => {
  itSkipIf(missingCmds('curl'))('serves an object-mode stream of odd chunk sizes with no known size (tsize left out)', async () => {
    const data = randomBytes(50_000);
    const chunks: Buffer[] = [];
    const sizes = [1, 1467, 1468, 1469, 7, 3000, 65_536];
    for (let off = 0, i = 0; off < data.length; i++) {
      const n = sizes[i % sizes.length];
      chunks.push(data.subarray(off, off + n));
      off += n;
    }
    const source: FileSource = {
      async open(path) {
        return { path, stream: Readable.from(chunks), cache: 'bypass' }; // objectMode, no size
      },
    };
    const events: RelayEvent[] = [];
    const svc = new TftpService({
      address: '127.0.0.1',
      port: 0,
      source,
      config: { port: 0, maxBlksize: 1468, maxWindowsize: 8, timeout: 1, retries: 2, maxTransfers: 4, maxTransfersPerClient: 4 },
      log: silentLogger,
      metrics: new Metrics(),
      emit: (ev) => events.push(makeEvent(ev)),
    });
    await svc.start();
    try {
      const dest = join(out, 'objmode.bin');
      const r = await run('curl', ['-sS', '--tftp-blksize', '1468', `tftp://127.0.0.1:${svc.port}/any.bin`, '-o', dest]);
      expect(r.code, r.stderr).toBe(0);
      expect(shaFile(dest)).toBe(sha(data));
      const c = await RawTftpClient.open();
      c.send({ op: 'rrq', file: 'any.bin', mode: 'octet', options: { tsize: '0', blksize: '1000' } }, svc.port);
      expect((await c.next())?.pkt).toEqual({ op: 'oack', options: { blksize: '1000' } });
      await c.close();
      const done = await waitFor(() => events.find((e) => e.type === 'tftp.done'), 2000, 'done');
      expect(done).toMatchObject({ bytes: data.length });
    } finally {
      await svc.stop();
    }
  });
});

/** Sends one UDP datagram with source port 0 through a raw socket (root + python3). */
function sendFromPort0(payload: Buffer, dstPort: number): Promise<void> {
  const py = [
    'import socket, struct, sys',
    'p = bytes.fromhex(sys.argv[2]); d = int(sys.argv[1])',
    's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)',
    "s.sendto(struct.pack('!HHHH', 0, d, 8 + len(p), 0) + p, ('127.0.0.1', 0))",
  ].join('\n');
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', py, String(dstPort), payload.toString('hex')], { timeout: 10_000 }, (err) => (err ? reject(err) : resolve()));
  });
}

const rawReason = process.getuid?.() !== 0 ? 'needs root for a raw socket' : !hasCmd('python3') ? 'needs python3' : undefined;

describeSkipIf(rawReason)('TftpService and datagrams from source port 0 (a raw-socket client)', () => {
  let s: Server;
  const errors: unknown[] = [];
  const onErr = (e: unknown) => errors.push(e);
  beforeAll(async () => {
    process.on('uncaughtException', onErr);
    process.on('unhandledRejection', onErr);
    s = makeServer(dir, { timeout: 0.2, retries: 1, maxTransfers: 2, maxTransfersPerClient: 2 });
    await s.svc.start();
  });
  afterAll(async () => {
    process.off('uncaughtException', onErr);
    process.off('unhandledRejection', onErr);
    await s.svc.stop();
  });

  it('drops RRQs, WRQs and refusals from port 0 and counts them: no leaked slot, no exception, still serving', async () => {
    const rrq = (file: string, mode = 'octet') => encodeTftp({ op: 'rrq', file, mode, options: {} });
    // a served file, a missing file, a refused mode, a write: each would answer to port 0
    for (const p of [rrq('small.bin'), rrq('small.bin'), rrq('missing.bin'), rrq('small.bin', 'mail'), encodeTftp({ op: 'wrq', file: 'x', mode: 'octet', options: {} })]) {
      await sendFromPort0(p, s.svc.port);
    }
    await waitFor(() => s.metrics.get(TFTP_METRICS.dropped, { reason: 'bad-port' }) === 5, 3000, 'port-0 drops counted');
    expect(errors).toEqual([]);
    expect(s.svc.active).toBe(0);
    // both slots are still there: two real transfers at once
    const a = await RawTftpClient.open();
    const b = await RawTftpClient.open();
    try {
      for (const c of [a, b]) c.send({ op: 'rrq', file: 'small.bin', mode: 'octet', options: {} }, s.svc.port);
      for (const c of [a, b]) expect((await c.next())?.pkt).toMatchObject({ op: 'data', block: 1 });
      for (const c of [a, b]) c.send({ op: 'error', code: 0, message: 'enough' }, c.log[0]!.port);
    } finally {
      await a.close();
      await b.close();
    }
    expect(errors).toEqual([]);
  });
});

describe('TftpService cutting blocks from a stream', () => {
  itSkipIf(missingCmds('curl'))('copies each byte into blocks once: no re-concatenation of whole chunks at chunk boundaries', async () => {
    const s = makeServer(dir);
    await s.svc.start();
    const spy = vi.spyOn(Buffer, 'concat');
    try {
      const dest = join(out, 'mid-concat.bin');
      // fs streams come in 64 KiB chunks; 1468 does not divide them, so a block straddles every boundary
      const r = await run('curl', ['-sS', '--tftp-blksize', '1468', `tftp://127.0.0.1:${s.svc.port}/mid.bin`, '-o', dest]);
      expect(r.code, r.stderr).toBe(0);
      expect(shaFile(dest)).toBe(sha(files['mid.bin']));
      const concatenated = spy.mock.calls.reduce((n, [list]) => n + (list as readonly Uint8Array[]).reduce((m, b) => m + b.length, 0), 0);
      // at most a block per chunk boundary (before: the whole 64 KiB chunk each time, ~the file size)
      expect(concatenated).toBeLessThan(files['mid.bin'].length / 10);
    } finally {
      spy.mockRestore();
      await s.svc.stop();
    }
  });
});

describe('TftpService start() on a port in use', () => {
  it('fails and leaves no socket behind (a config reload retrying a taken port would leak one each time)', async () => {
    const taken = dgram.createSocket('udp4');
    await new Promise<void>((r) => taken.bind({ address: '127.0.0.1', port: 0, exclusive: true }, () => r()));
    const port = (taken.address() as AddressInfo).port;
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    try {
      for (let i = 0; i < 20; i++) {
        const s = makeServer(dir);
        const svc = new TftpService({ ...(s.svc.deps as TftpServiceOptions), port });
        await expect(svc.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
      }
      expect(fds() - before).toBeLessThan(5);
    } finally {
      taken.close();
    }
  });
});
