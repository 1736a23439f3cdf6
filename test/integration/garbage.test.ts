/**
 * The bundled agent (server-mode DHCP, TFTP, HTTP) on a namespace LAN, under
 * bounded, seeded garbage: random bytes, truncated and bit-flipped datagrams of
 * the lab captures, overlong and contradictory DHCP options, mangled RRQs at the
 * TFTP port and at a live transfer's own port (same TID and foreign TIDs), and
 * malformed HTTP requests. Afterwards the agent must still be running, must not
 * have logged a single uncaught exception or unhandled rejection, must answer a
 * real DHCP client (udhcpc), a real TFTP client (tftp-hpa) and curl, must have
 * freed every TFTP slot, and /metrics must have counted the drops.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundle } from '../helpers/bundle';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MessageType, Opt, OptionMap } from '../../proto/dhcp/options';
import { decodeDhcp, encodeDhcp, type DhcpMessage } from '../../proto/dhcp/packet';
import { encodeTftp } from '../../proto/tftp/packet';
import { NetLab, skipReason, waitFor } from '../helpers/netns';
import { dhcpDatagrams } from '../helpers/udp-frames';
import { startAgent } from '../helpers/agent-proc';
import { describeSkipIf } from '../helpers/skip';
import { mulberry32 } from '../helpers/prng';

const reason = skipReason('udhcpc', 'tftp', 'curl', 'python3');
const root = join(__dirname, '../..');
const RELAY = '10.99.61.1';
const PC = '10.99.61.50';
const PC_TFTP_FUZZ = '10.99.61.51';
const PC_LIVE = '10.99.61.52';
const MAC = '52:54:00:99:61:01';
const N = 2000; // datagrams per kind

class Gen {
  readonly r: () => number;
  constructor(seed: number) {
    this.r = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** flips 1..k random bytes at or after `from` */
  flip(b: Buffer, k: number, from = 0): Buffer {
    const c = Buffer.from(b);
    if (c.length <= from) return c;
    const n = 1 + this.int(k);
    for (let i = 0; i < n; i++) c[from + this.int(c.length - from)] = this.int(256);
    return c;
  }
}

const FUZZ_MACS = [...Array(8).keys()].map((i) => Buffer.from([0x02, 0xf0, 0, 0, 0, i]));

function dhcpRandom(g: Gen): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    if (i % 2 === 0) out.push(g.bytes(g.int(g.pick([8, 240, 600, 1472]) + 1)));
    else {
      // a plausible BOOTREQUEST header and cookie, then random option bytes
      const b = Buffer.concat([Buffer.alloc(240), g.bytes(g.int(1200))]);
      b[0] = 1;
      b[1] = 1;
      b[2] = 6;
      b.writeUInt32BE(g.int(2 ** 32), 4);
      g.pick(FUZZ_MACS).copy(b, 28);
      b.writeUInt32BE(0x63825363, 236);
      out.push(b);
    }
  }
  return out;
}

function dhcpMangledCaptures(g: Gen, captures: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const p = g.pick(captures);
    const k = g.int(3);
    if (k === 0) out.push(p.subarray(0, g.int(p.length)));
    else if (k === 1) out.push(g.flip(p, 8, 236));
    else out.push(g.flip(p, 4).subarray(0, 200 + g.int(Math.max(1, p.length - 200))));
  }
  return out;
}

function dhcpOverlong(g: Gen, base: DhcpMessage): Buffer[] {
  const out: Buffer[] = [];
  const withOpts = (raw: Buffer, mac: Buffer, tweak?: (h: Buffer) => void): Buffer => {
    const m: DhcpMessage = { ...base, chaddr: Buffer.concat([mac, Buffer.alloc(10)]), options: new OptionMap(), xid: g.int(2 ** 32) };
    const h = encodeDhcp(m, { minSize: 240 }).subarray(0, 240);
    tweak?.(h);
    return Buffer.concat([h, raw]);
  };
  const tlv = (code: number, v: Buffer) => Buffer.concat([Buffer.from([code, v.length & 255]), v]);
  const mt = (t: number) => tlv(Opt.MessageType, Buffer.from([t]));
  const makers: Array<() => Buffer> = [
    // a length byte running past the end
    () => Buffer.concat([mt(MessageType.DISCOVER), Buffer.from([Opt.VendorClassIdentifier, 255]), Buffer.from('PXEClient')]),
    // no End option
    () => Buffer.concat([mt(MessageType.DISCOVER), tlv(Opt.HostName, Buffer.from('x'))]),
    // thousands of bytes of options: one option split into 255-byte pieces (RFC 3396), many times
    () => Buffer.concat([mt(MessageType.DISCOVER), ...Array.from({ length: 4 + g.int(20) }, () => tlv(g.pick([Opt.VendorClassIdentifier, Opt.ParameterRequestList, Opt.ClientIdentifier, Opt.UserClass, Opt.VendorSpecific, 224]), g.bytes(255))), Buffer.from([255])]),
    // option overload with garbage in file and sname
    () => Buffer.concat([mt(MessageType.DISCOVER), tlv(Opt.OptionOverload, Buffer.from([g.pick([0, 1, 2, 3, 4, 255])])), Buffer.from([255])]),
    // PXE option 43 with broken sub-options, odd option 93 and 97, PXEClient
    () =>
      Buffer.concat([
        mt(g.pick([MessageType.DISCOVER, MessageType.REQUEST, MessageType.INFORM])),
        tlv(Opt.VendorClassIdentifier, Buffer.from(g.pick(['PXEClient', 'PXEClient:Arch:00007:UNDI:003016', 'HTTPClient:Arch:00016', 'PXEClient:Arch:99999']))),
        tlv(Opt.ClientSystemArch, g.bytes(g.pick([0, 1, 2, 3, 4]))),
        tlv(Opt.ClientMachineId, g.bytes(g.pick([0, 1, 16, 17, 40]))),
        tlv(Opt.VendorSpecific, Buffer.concat([Buffer.from([g.pick([6, 8, 9, 10, 71]), g.int(40)]), g.bytes(g.int(20))])),
        tlv(Opt.UserClass, g.pick([Buffer.from('iPXE'), Buffer.from([4, 0x69, 0x50, 0x58, 0x45]), Buffer.from([200, 1]), g.bytes(30)])),
        tlv(Opt.IpxeEncapsulated, g.bytes(g.int(30))),
        Buffer.from([255]),
      ]),
    // odd message types and option 53 of the wrong size
    () => Buffer.concat([g.pick([mt(0), mt(9), mt(255), tlv(Opt.MessageType, Buffer.from([1, 3])), tlv(Opt.MessageType, Buffer.alloc(0))]), Buffer.from([255])]),
    // REQUEST / DECLINE / RELEASE naming odd servers and addresses
    () =>
      Buffer.concat([
        mt(g.pick([MessageType.REQUEST, MessageType.DECLINE, MessageType.RELEASE])),
        tlv(Opt.ServerIdentifier, g.pick([Buffer.from([10, 99, 61, 1]), g.bytes(4), g.bytes(3)])),
        tlv(Opt.RequestedIpAddress, g.pick([Buffer.from([10, 99, 61, 100 + g.int(151)]), g.bytes(4), g.bytes(5)])),
        tlv(Opt.MaxMessageSize, g.bytes(g.pick([1, 2]))),
        Buffer.from([255]),
      ]),
  ];
  for (let i = 0; i < N; i++) {
    const raw = g.pick(makers)();
    out.push(
      withOpts(raw, g.pick(FUZZ_MACS), (h) => {
        const k = g.int(8);
        if (k === 0) h[2] = g.pick([0, 16, 17, 255]); // hlen
        if (k === 1) h.writeUInt32BE(g.int(2 ** 32), 24); // giaddr
        if (k === 2) Buffer.from([10, 99, 61, 100 + g.int(151)]).copy(h, 12); // ciaddr
        if (k === 3) h[0] = g.pick([0, 2, 3]); // op
        if (k === 4) h.writeUInt16BE(0x8000, 10); // broadcast flag
      }),
    );
  }
  return out;
}

function tftpRandom(g: Gen): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const b = g.bytes(g.int(g.pick([4, 40, 600])));
    if (b.length >= 2 && i % 2 === 0) b.writeUInt16BE(g.int(8), 0);
    out.push(b);
  }
  return out;
}

function tftpMangledRrqs(g: Gen): Buffer[] {
  const names = ['ipxe/undionly.kpxe', '../../etc/passwd', '/big.bin', 'C:\\x\\..\\..\\y', 'a'.repeat(600), '', 'big.bin', 'nope/missing.bin', '%2e%2e/x'];
  const modes = ['octet', 'netascii', 'mail', 'OCTET', '', 'x'.repeat(100)];
  const opts: Array<Record<string, string>> = [
    {},
    { blksize: g.pick(['0', '7', '8', '65464', '65465', '99999999999', '-1', 'abc', ' 1468 ']) },
    { tsize: g.pick(['0', 'x', '-5']) },
    { windowsize: g.pick(['0', '1', '64', '65536', 'z']) },
    { timeout: g.pick(['0', '1', '255', '256']) },
    { rollover: g.pick(['0', '1', '2']) },
    { constructor: '1', ['__proto__']: '2', toString: '3', blksize: '512' },
    { BLKSIZE: '1024', BlkSize: '512', tsize: '0', windowsize: '4' },
  ];
  const out: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const p = encodeTftp({ op: g.pick(['rrq', 'rrq', 'rrq', 'wrq'] as const), file: g.pick(names), mode: g.pick(modes), options: g.pick(opts) });
    const k = g.int(4);
    if (k === 0) out.push(p.subarray(0, g.int(p.length)));
    else if (k === 1) out.push(g.flip(p, 4, 2));
    else if (k === 2) out.push(Buffer.concat([p, g.bytes(g.int(20))]));
    else out.push(p);
  }
  return out;
}

function tftpToTransfer(g: Gen): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < N; i++) {
    const k = g.int(4);
    if (k === 0) out.push(g.bytes(g.int(40)));
    else if (k === 1) out.push(encodeTftp({ op: 'ack', block: 2 + g.int(65534) })); // stale or future ACKs
    else if (k === 2) out.push(Buffer.concat([encodeTftp({ op: 'ack', block: 0 }), g.bytes(g.int(10))])); // padded ACK 0
    else out.push(g.pick([encodeTftp({ op: 'data', block: 1, data: g.bytes(20) }), encodeTftp({ op: 'oack', options: { blksize: '8' } }), Buffer.from([0, 9]), Buffer.from([0, 1, 0x61])]));
  }
  return out;
}

function httpGarbage(g: Gen): Buffer[] {
  const reqs = [
    () => g.bytes(1 + g.int(2000)),
    () => Buffer.from('GET /files/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n'),
    () => Buffer.from('GET /files/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n'),
    () => Buffer.from('GET /files/%zz HTTP/1.1\r\nHost: x\r\n\r\n'),
    () => Buffer.from(`GET /files/${'a/'.repeat(4000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
    () => Buffer.from(`GET / HTTP/1.1\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`),
    () => Buffer.from('BREW /coffee HTCPCP/1.0\r\n\r\n'),
    () => Buffer.from('GET /files/debian/vmlinuz HTTP/1.1\r\nHost: x\r\nRange: bytes=abc-\r\n\r\n'),
    () => Buffer.from('GET /files/debian/vmlinuz HTTP/1.1\r\nHost: x\r\nRange: bytes=999999999-\r\n\r\n'),
    () => Buffer.from('POST /booted?mac=zz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello'),
    () => Buffer.from('GET /boot.ipxe?mac=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n'),
    () => Buffer.from('GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!\r\n\r\n'),
    () => Buffer.from('GET /api/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81\xff' + 'x'.repeat(40)),
    () => Buffer.from('GET /\x00\x01 HTTP/1.1\r\n\r\n'),
    () => Buffer.from('GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n'),
  ];
  return Array.from({ length: 300 }, () => g.pick(reqs)());
}

/** Datagrams as [u32 length][bytes]… */
function pack(list: Buffer[]): Buffer {
  return Buffer.concat(
    list.flatMap((b) => {
      const h = Buffer.alloc(4);
      h.writeUInt32BE(b.length);
      return [h, b];
    }),
  );
}

/** The sender, run inside the client namespace (plain Node, no dependencies). */
const FUZZER = String.raw`
const dgram = require('node:dgram');
const net = require('node:net');
const fs = require('node:fs');
const [relay, tftpFuzzAddr, liveAddr, dir] = process.argv.slice(2);
const unpack = (f) => { const b = fs.readFileSync(f); const out = []; for (let o = 0; o < b.length; ) { const n = b.readUInt32BE(o); out.push(b.subarray(o + 4, o + 4 + n)); o += 4 + n; } return out; };
// pacing, not synchronisation: a 1 ms pause every 10 datagrams keeps the burst inside the receiver's socket buffer
const tick = () => new Promise((r) => setTimeout(r, 1));
async function sock(addr, port) { const s = dgram.createSocket({ type: 'udp4', reuseAddr: true }); s.on('error', () => {}); await new Promise((r) => s.bind({ address: addr, port }, r)); s.setBroadcast(true); return s; }
async function blast(s, list, port) {
  let sent = 0;
  for (let i = 0; i < list.length; i++) {
    const b = list[i].length > 65507 ? list[i].subarray(0, 65507) : list[i];
    await new Promise((r) => s.send(b, port, relay, () => r()));
    sent++;
    if (i % 10 === 9) await tick();
  }
  return sent;
}
const withTimeout = (p, ms) => Promise.race([p, new Promise((r) => setTimeout(() => r(undefined), ms))]);
(async () => {
  const res = {};
  const d = await sock('0.0.0.0', 68);
  res.dhcp = 0;
  for (const f of ['dhcp-random', 'dhcp-captures', 'dhcp-overlong']) res.dhcp += await blast(d, unpack(dir + '/' + f + '.bin'), 67);
  d.close();
  const t = await sock(tftpFuzzAddr, 0);
  res.tftp = await blast(t, unpack(dir + '/tftp-random.bin'), 69);
  // mangled RRQs from 16 source ports: transfers start, get refused, replace each other
  const rs = [];
  for (let i = 0; i < 16; i++) rs.push(await sock(tftpFuzzAddr, 0));
  const rrqs = unpack(dir + '/tftp-rrqs.bin');
  for (let i = 0; i < rrqs.length; i++) { await new Promise((r) => rs[i % 16].send(rrqs[i], 69, relay, () => r())); res.tftp++; if (i % 10 === 9) await tick(); }
  // a live transfer: garbage at its own port from its own TID and from foreign ones
  // (from its own address: the fuzzed RRQs may hold that one's per-client slots; the RRQ is
  // repeated until DATA 1 comes, since the burst above may still fill the port's receive buffer)
  const x = await sock(liveAddr, 0);
  const first = new Promise((r) => x.on('message', (m, ri) => { if (m.readUInt16BE(0) === 3) r(ri.port); }));
  const again = setInterval(() => x.send(Buffer.from('\x00\x01big.bin\x00octet\x00'), 69, relay), 300);
  x.send(Buffer.from('\x00\x01big.bin\x00octet\x00'), 69, relay);
  const eph = await withTimeout(first, 10000);
  clearInterval(again);
  res.ephemeralPort = eph;
  res.unknownTid = 0;
  if (eph) {
    const foreign = await sock(liveAddr, 0);
    foreign.on('message', (m) => { if (m.readUInt16BE(0) === 5 && m.readUInt16BE(2) === 5) res.unknownTid++; });
    const junk = unpack(dir + '/tftp-transfer.bin');
    for (let i = 0; i < junk.length; i++) {
      const s = i % 4 === 0 ? foreign : x;
      await new Promise((r) => s.send(junk[i], eph, relay, () => r()));
      res.tftp++;
      if (i % 10 === 9) await tick();
    }
    x.send(Buffer.from('\x00\x05\x00\x00bye\x00'), eph, relay);
    await tick();
    foreign.close();
  }
  // HTTP: each payload on its own connection, 8 at a time, each bounded to 3 s
  const reqs = unpack(dir + '/http.bin');
  res.http = 0;
  res.httpStatus = {};
  const one = (b) => new Promise((resolve) => {
    const c = net.connect({ host: relay, port: 80 });
    let first = '';
    const done = () => { clearTimeout(tm); c.destroy(); resolve(); };
    const tm = setTimeout(done, 3000);
    c.on('error', done);
    c.on('close', done);
    c.on('data', (chunk) => { if (!first) { first = chunk.toString('latin1', 0, 12); const st = first.slice(9, 12); res.httpStatus[st] = (res.httpStatus[st] || 0) + 1; c.end(); } });
    c.on('connect', () => { c.write(b); res.http++; });
  });
  for (let i = 0; i < reqs.length; i += 8) await Promise.all(reqs.slice(i, i + 8).map(one));
  for (const s of [t, x, ...rs]) s.close();
  process.stdout.write(JSON.stringify(res) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
`;

function metricSums(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of text.split('\n')) {
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(l);
    if (!m) continue;
    out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[3]);
    if (m[2]) out[m[1]! + m[2]] = Number(m[3]);
  }
  return out;
}

describeSkipIf(reason)('the agent under garbage (namespace LAN, seeded)', () => {
  const work = mkdtempSync(join(tmpdir(), 'brgb-'));
  const AGENT = join(work, 'bootrelay.js');
  const lab = new NetLab(`brg${process.pid % 10000}`);
  let nsR: string;
  let nsC: string;
  const lines: Array<Record<string, unknown>> = [];
  let agent: ReturnType<NetLab['spawn']>;

  const metrics = async (): Promise<Record<string, number>> => {
    const r = await lab.exec(nsC, 'curl', ['-sf', '--max-time', '5', `http://${RELAY}/metrics`]);
    if (r.code !== 0) throw new Error(`metrics: curl ${r.code}`);
    return metricSums(r.stdout);
  };
  /** UDP counters of the relay namespace's kernel (InDatagrams, RcvbufErrors, …). */
  const udpStats = async (): Promise<Record<string, number>> => {
    const r = await lab.exec(nsR, 'cat', ['/proc/net/snmp']);
    const udp = r.stdout.split('\n').filter((l) => l.startsWith('Udp:'));
    const names = udp[0]!.split(/\s+/).slice(1);
    const vals = udp[1]!.split(/\s+/).slice(1).map(Number);
    return Object.fromEntries(names.map((n, i) => [n, vals[i]!]));
  };
  const vmStatus = (key: string): number => {
    try {
      return Number(new RegExp(`${key}:\\s+(\\d+)`).exec(readFileSync(`/proc/${agent.pid}/status`, 'utf8'))![1]);
    } catch {
      return -1;
    }
  };

  beforeAll(async () => {
    await bundle('agent/main.ts', AGENT);
    const www = join(work, 'www');
    mkdirSync(join(www, 'ipxe'), { recursive: true });
    mkdirSync(join(www, 'debian'), { recursive: true });
    writeFileSync(join(www, 'ipxe/undionly.kpxe'), Buffer.alloc(68_000, 0x55));
    writeFileSync(join(www, 'debian/vmlinuz'), Buffer.alloc(500_000, 1));
    writeFileSync(join(www, 'big.bin'), Buffer.alloc(3_000_000, 3));
    const script = join(work, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\necho "$1 ip=$ip boot_file=$boot_file siaddr=$siaddr"\n');
    chmodSync(script, 0o755);

    // the seeded garbage
    const g = new Gen(0x5eed);
    const fixtures = join(root, 'test/fixtures/pcap');
    const captures = ['bios-boot.dhcp.pcap', 'proxydhcp-bios-boot.dhcp.pcap', 'proxydhcp-uefi-boot.dhcp.pcap', 'uefi-boot-full.dhcp.pcap'].flatMap((f) => dhcpDatagrams(join(fixtures, f)).map((d) => Buffer.from(d.payload)));
    const discover = captures.map((c) => decodeDhcp(c)).find((m) => m.op === 1 && m.options.u8(Opt.MessageType) === MessageType.DISCOVER)!;
    writeFileSync(join(work, 'dhcp-random.bin'), pack(dhcpRandom(g)));
    writeFileSync(join(work, 'dhcp-captures.bin'), pack(dhcpMangledCaptures(g, captures)));
    writeFileSync(join(work, 'dhcp-overlong.bin'), pack(dhcpOverlong(g, discover)));
    writeFileSync(join(work, 'tftp-random.bin'), pack(tftpRandom(g)));
    writeFileSync(join(work, 'tftp-rrqs.bin'), pack(tftpMangledRrqs(g)));
    writeFileSync(join(work, 'tftp-transfer.bin'), pack(tftpToTransfer(g)));
    writeFileSync(join(work, 'http.bin'), pack(httpGarbage(g)));
    writeFileSync(join(work, 'fuzz.cjs'), FUZZER);

    nsR = lab.addNs('relay');
    nsC = lab.addNs('pc');
    lab.veth(nsR, 'lan', nsC, 'eth0');
    lab.ip(nsC, 'link', 'set', 'eth0', 'address', MAC);
    lab.addr(nsR, 'lan', `${RELAY}/24`);
    lab.addr(nsC, 'eth0', `${PC}/24`);
    lab.addr(nsC, 'eth0', `${PC_TFTP_FUZZ}/24`);
    lab.addr(nsC, 'eth0', `${PC_LIVE}/24`);
    lab.spawn(nsR, 'python3', ['-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', www]);
    await waitFor(async () => (await lab.exec(nsR, 'curl', ['-sf', '-o', '/dev/null', 'http://127.0.0.1:8080/debian/vmlinuz'])).code === 0, 10_000, 'upstream');

    const cfg = join(work, 'relay.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        agentId: 'garbage',
        stateDir: join(work, 'state'),
        lan: { interface: 'lan', address: RELAY, prefix: 24 },
        dhcp: { mode: 'server', range: ['10.99.61.100', '10.99.61.250'], leaseSeconds: 600 },
        tftp: { port: 69, timeout: 1, retries: 2 },
        upstream: { url: 'http://127.0.0.1:8080/', timeoutMs: 5000 },
        cache: { dir: join(work, 'cache') },
        boot: {
          loaders: { bios: 'ipxe/undionly.kpxe', 'uefi-x64': 'ipxe/undionly.kpxe' },
          profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/vmlinuz'], cmdline: 'console=ttyS0' } },
        },
        control: { socket: join(work, 'ctl.sock') },
        log: { level: 'info' },
      }),
    );
    agent = await startAgent(lab, nsR, AGENT, cfg, lines, true);
  }, 90_000);

  afterAll(async () => {
    await lab.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('survives the garbage, still serves DHCP, TFTP and HTTP, and counted the drops', async () => {
    const before = await metrics();
    const rssBefore = vmStatus('VmRSS');
    const udpBefore = await udpStats();
    const t0 = Date.now();
    const fz = await lab.exec(nsC, process.execPath, [join(work, 'fuzz.cjs'), RELAY, PC_TFTP_FUZZ, PC_LIVE, work], { timeoutMs: 120_000 });
    expect(fz.code, fz.stderr).toBe(0);
    const sent = JSON.parse(fz.stdout.trim().split('\n').at(-1)!) as { dhcp: number; tftp: number; http: number; ephemeralPort?: number; unknownTid: number; httpStatus: Record<string, number> };
    // forged source port 0 (raw socket): nothing may be sent back to it, nothing may leak
    const rrqs = [encodeTftp({ op: 'rrq', file: 'ipxe/undionly.kpxe', mode: 'octet', options: {} }), encodeTftp({ op: 'rrq', file: 'missing.bin', mode: 'octet', options: { tsize: '0' } }), encodeTftp({ op: 'wrq', file: 'x', mode: 'octet', options: {} })];
    const py = [
      'import socket, struct, sys',
      's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)',
      'for i, h in enumerate(sys.argv[3:] * 50):',
      '    p = bytes.fromhex(h); d = int(sys.argv[2])',
      "    s.sendto(struct.pack('!HHHH', 0, d, 8 + len(p), 0) + p, (sys.argv[1], 0))",
    ].join('\n');
    const p0 = await lab.exec(nsC, 'python3', ['-c', py, RELAY, '69', ...rrqs.map((b) => b.toString('hex'))]);
    expect(p0.code, p0.stderr).toBe(0);
    const fuzzMs = Date.now() - t0;
    expect(sent.dhcp).toBe(3 * N);
    expect(sent.ephemeralPort).toBeGreaterThan(0);
    expect(sent.tftp).toBe(3 * N);

    // alive, and nothing escaped a handler
    expect(agent.exitCode).toBe(null);
    const escaped = lines.filter((l) => /uncaught exception|unhandled rejection|handler failed|handling failed/.test(String(l.msg)));
    expect(escaped.map((l) => `${l.msg}: ${JSON.stringify(l.err)}`)).toEqual([]);

    // every TFTP slot comes back (timeout 1 s, 2 retries)
    await waitFor(async () => (await metrics()).bootrelay_tftp_active_transfers === 0, 30_000, 'TFTP slots freed');

    // a real DHCP client
    // (8 tries 2 s apart: on a loaded machine the agent may still be working through the flood's backlog)
    const dh = await lab.exec(nsC, 'udhcpc', ['-i', 'eth0', '-f', '-q', '-n', '-t', '8', '-T', '2', '-s', join(work, 'udhcpc.sh'), '-V', 'PXEClient:Arch:00000:UNDI:002001'], { timeoutMs: 40_000 });
    const dhcpSeen = () =>
      ['dhcp.offer', 'dhcp.ack'].map((t) => `${t}: ${lines.filter((l) => l.type === t).length} events, ${new Set(lines.filter((l) => l.type === t).map((l) => `${l.mac}/${l.ip}`)).size} mac/ip pairs`).join('; ') +
      '\n' +
      lines.filter((l) => /pool|exhaust|dhcp\.(offer|ack|nak)/.test(JSON.stringify(l))).slice(-5).map((l) => JSON.stringify(l)).join('\n');
    expect(dh.stdout, `udhcpc got no lease; the agent's last DHCP lines:\n${dhcpSeen()}`).toMatch(/bound ip=10\.99\.61\.\d+ boot_file=ipxe\/undionly\.kpxe siaddr=10\.99\.61\.1/);
    // a real TFTP client
    const loader = join(work, 'loader');
    const tf = await lab.exec(nsC, 'tftp', ['-m', 'binary', RELAY, '-c', 'get', 'ipxe/undionly.kpxe', loader], { timeoutMs: 20_000 });
    expect(tf.code, tf.stderr + tf.stdout).toBe(0);
    expect(readFileSync(loader).length).toBe(68_000);
    // HTTP
    const ht = await lab.exec(nsC, 'curl', ['-sf', '--max-time', '10', '-o', '/dev/null', '-w', '%{size_download}', `http://${RELAY}/files/debian/vmlinuz`]);
    expect(ht.stdout).toBe('500000');

    const after = await metrics();
    const udpAfter = await udpStats();
    const d = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    const report = {
      fuzzMs,
      sent,
      dhcp: { dropped: d('bootrelay_dhcp_dropped_total'), ignored: d('bootrelay_dhcp_ignored_total'), received: d('bootrelay_dhcp_received_total'), sent: d('bootrelay_dhcp_sent_total') },
      dhcpDropReasons: Object.fromEntries(Object.keys(after).filter((k) => k.startsWith('bootrelay_dhcp_dropped_total{')).map((k) => [k.slice(29), after[k]])),
      tftpDropReasons: Object.fromEntries(Object.keys(after).filter((k) => k.startsWith('bootrelay_tftp_dropped_total{')).map((k) => [k.slice(29), after[k]])),
      tftpTransfers: Object.fromEntries(Object.keys(after).filter((k) => k.startsWith('bootrelay_tftp_transfers_total{')).map((k) => [k.slice(31), after[k]])),
      httpRefused: d('bootrelay_http_refused_total'),
      kernelUdp: { inDatagrams: udpAfter.InDatagrams! - udpBefore.InDatagrams!, rcvbufErrors: udpAfter.RcvbufErrors! - udpBefore.RcvbufErrors! },
      rssKiB: { before: rssBefore, after: vmStatus('VmRSS'), hwm: vmStatus('VmHWM') },
    };
    console.log('garbage report', JSON.stringify(report));
    expect(report.dhcp.dropped).toBeGreaterThan(N); // random + truncated are mostly undecodable
    expect(report.dhcp.dropped + report.dhcp.ignored + report.dhcp.received).toBeGreaterThan(0);
    expect(after['bootrelay_dhcp_dropped_total{reason="internal"}'] ?? 0).toBe(0);
    expect(d('bootrelay_tftp_dropped_total')).toBeGreaterThan(N);
    expect(after['bootrelay_tftp_dropped_total{reason="internal"}'] ?? 0).toBe(0);
    expect(report.httpRefused).toBeGreaterThan(0);
    expect(after['bootrelay_tftp_dropped_total{reason="bad-port"}']).toBeGreaterThan(0);
    // every datagram was counted somewhere, or lost in the kernel's receive buffer
    expect(report.dhcp.dropped + report.dhcp.received + report.kernelUdp.rcvbufErrors).toBeGreaterThanOrEqual(sent.dhcp);
    expect(sent.unknownTid).toBeGreaterThan(0);
    // still nothing escaped, and the agent is still there
    expect(lines.filter((l) => /uncaught exception|unhandled rejection/.test(String(l.msg)))).toEqual([]);
    expect(agent.exitCode).toBe(null);
    expect(spawnSync('kill', ['-0', String(agent.pid)]).status).toBe(0);
  }, 240_000);
});
