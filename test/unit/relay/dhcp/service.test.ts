/** DhcpService over real UDP sockets on loopback (port 0, replies to our client socket). */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import dgram, { type Socket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BootConfig, DhcpConfig } from '../../../../agent/config/types';
import { BootPlan } from '../../../../relay/boot/plan';
import { silentLogger } from '../../../../agent/log';
import { decodePcap } from '../../../../proto/pcap';
import type { RelayEvent } from '../../../../proto/events';
import { MessageType, Opt, OptionMap } from '../../../../proto/dhcp/options';
import { decodeDhcp, encodeDhcp, messageType, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { Metrics } from '../../../../relay/metrics';
import { PacketTrace } from '../../../../relay/trace';
import { DhcpService } from '../../../../relay/dhcp/service';
import { hasCmd, waitFor } from '../../../helpers/netns';
import { describeSkipIf } from '../../../helpers/skip';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function dhcpCfg(over: Partial<DhcpConfig> = {}): DhcpConfig {
  return { mode: 'server', port: 0, proxyPort: 0, range: ['10.99.0.100', '10.99.0.150'], leaseSeconds: 600, router: '10.99.0.1', dns: [], static: {}, ipxeNoProxyDhcp: true, netbootOnce: false, ...over };
}

async function setup(over: Partial<DhcpConfig> = {}, more: { boot?: Partial<BootConfig>; prefix?: number; relayPort?: number; bootFileSize?: (p: string) => number | undefined } = {}) {
  const stateDir = mkdtempSync(join(tmpdir(), 'brd-svc-'));
  const client = dgram.createSocket('udp4');
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  const replies: Array<{ msg: DhcpMessage; port: number }> = [];
  client.on('message', (b, rinfo) => replies.push({ msg: decodeDhcp(b), port: rinfo.port }));
  const events: RelayEvent[] = [];
  const metrics = new Metrics();
  const trace = new PacketTrace();
  const plan = new BootPlan({ boot: { loaders: { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi'] }, defaultProfile: 'x', profiles: {}, assign: {}, ...more.boot }, netbootOnce: over.netbootOnce });
  const svc = new DhcpService({
    lan: { interface: 'lo', address: '127.0.0.1', prefix: more.prefix ?? 8 },
    dhcp: dhcpCfg({ range: ['127.0.0.100', '127.0.0.150'], ...over }),
    plan,
    relayPort: more.relayPort,
    bootFileSize: more.bootFileSize,
    httpPort: 8080,
    tftpEnabled: true,
    stateDir,
    log: silentLogger,
    metrics,
    emit: (e) => events.push(e as RelayEvent),
    listenAddress: '127.0.0.1',
    clientPort: client.address().port,
    broadcastAddress: '127.0.0.1',
    trace,
  });
  await svc.start();
  cleanups.push(async () => {
    await svc.stop();
    client.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  return { svc, plan, client, replies, events, metrics, trace, stateDir };
}

function req(type: number, mac: string, opts: Array<[number, Buffer | string]> = [], xid = 0xabcd): Buffer {
  const options = new OptionMap().setU8(Opt.MessageType, type);
  for (const [c, v] of opts) options.set(c, typeof v === 'string' ? Buffer.from(v) : v);
  const chaddr = Buffer.alloc(16);
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(chaddr);
  return encodeDhcp({ op: 1, htype: 1, hlen: 6, hops: 0, xid, secs: 0, flags: 0x8000, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac, sname: '', file: '', options });
}
const ip = (s: string) => Buffer.from(s.split('.').map(Number));
const BIOS: Array<[number, Buffer | string]> = [[60, 'PXEClient:Arch:00000:UNDI:002001'], [93, Buffer.from([0, 0])]];

function send(s: Socket, b: Buffer, port: number): void {
  s.send(b, port, '127.0.0.1');
}

describe('DhcpService on loopback', () => {
  it('does DISCOVER/OFFER/REQUEST/ACK, commits before the ACK, emits events and traces', async () => {
    const { svc, client, replies, events, metrics, trace, stateDir } = await setup();
    const mac = '52:54:00:12:34:56';
    send(client, req(MessageType.DISCOVER, mac, BIOS), svc.port);
    const offer = await waitFor(() => replies.find((r) => messageType(r.msg) === MessageType.OFFER), 5000, 'offer');
    expect(offer.port).toBe(svc.port);
    expect(offer.msg.xid).toBe(0xabcd);
    expect(offer.msg.file).toBe('ipxe/undionly.kpxe');
    const yi = offer.msg.yiaddr;
    send(client, req(MessageType.REQUEST, mac, [...BIOS, [54, ip('127.0.0.1')], [50, ip(yi)]]), svc.port);
    const ack = await waitFor(() => replies.find((r) => messageType(r.msg) === MessageType.ACK), 5000, 'ack');
    expect(ack.msg.yiaddr).toBe(yi);
    // durable before it left
    expect(readFileSync(join(stateDir, 'leases.jsonl'), 'utf8')).toContain(yi);
    expect(svc.leases()).toMatchObject([{ mac, ip: yi, static: false, active: true }]);
    expect(svc.macForIp(yi)).toBe(mac);
    expect(events.map((e) => e.type)).toEqual(['dhcp.discover', 'dhcp.offer', 'dhcp.request', 'dhcp.ack']);
    expect(events[3]).toMatchObject({ mac, xid: '0x0000abcd', ip: yi, arch: 'bios', firmware: 'bios', file: 'ipxe/undionly.kpxe', role: 'loader' });
    expect(metrics.get('bootrelay_dhcp_received_total', { type: 'DISCOVER' })).toBe(1);
    expect(metrics.get('bootrelay_dhcp_sent_total', { type: 'ACK' })).toBe(1);
    expect(trace.count(mac)).toBe(4);
    expect(decodePcap(trace.toPcap(mac)).records.length).toBe(4);
  });

  it('drops malformed datagrams, counts them by reason, and keeps serving', async () => {
    const { svc, client, replies, metrics } = await setup();
    const good = req(MessageType.DISCOVER, '52:54:00:00:00:01');
    send(client, Buffer.from('hello'), svc.port);
    send(client, good.subarray(0, 242), svc.port); // inside option 53
    const bad = Buffer.from(good);
    bad.writeUInt32BE(0, 236);
    send(client, bad, svc.port);
    send(client, good, svc.port);
    await waitFor(() => replies.length === 1, 5000, 'offer after junk');
    expect(metrics.get('bootrelay_dhcp_dropped_total', { reason: 'short' })).toBe(1);
    expect(metrics.get('bootrelay_dhcp_dropped_total', { reason: 'option-overrun' })).toBe(1);
    expect(metrics.get('bootrelay_dhcp_dropped_total', { reason: 'magic' })).toBe(1);
  });

  it('ignores a REQUEST for another server and counts it, without an event', async () => {
    const { svc, client, events, metrics } = await setup();
    send(client, req(MessageType.REQUEST, '52:54:00:00:00:02', [[54, ip('127.0.0.9')], [50, ip('127.0.0.100')]]), svc.port);
    await waitFor(() => metrics.get('bootrelay_dhcp_ignored_total', { reason: 'other-server' }) === 1, 5000, 'ignored count');
    expect(events).toEqual([]);
  });

  it('proxy mode: offers PXE clients on the DHCP port, ACKs on the boot-server port, ignores others', async () => {
    const { svc, client, replies, events, metrics } = await setup({ mode: 'proxy' });
    expect(svc.proxyPort).toBeGreaterThan(0);
    send(client, req(MessageType.DISCOVER, '52:54:00:00:00:03', [[12, 'laptop']]), svc.port);
    await waitFor(() => metrics.get('bootrelay_dhcp_ignored_total', { reason: 'not-pxe' }) === 1, 5000, 'not-pxe');
    send(client, req(MessageType.DISCOVER, '52:54:00:00:00:04', BIOS), svc.port);
    const offer = await waitFor(() => replies.find((r) => messageType(r.msg) === MessageType.OFFER), 5000, 'proxy offer');
    expect(offer.msg.yiaddr).toBe('0.0.0.0');
    expect(offer.msg.options.str(Opt.VendorClassIdentifier)).toBe('PXEClient');
    send(client, req(MessageType.REQUEST, '52:54:00:00:00:04', BIOS), svc.proxyPort);
    const ack = await waitFor(() => replies.find((r) => messageType(r.msg) === MessageType.ACK), 5000, 'proxy ack');
    expect(ack.port).toBe(svc.proxyPort);
    expect(ack.msg.file).toBe('ipxe/undionly.kpxe');
    expect(events.filter((e) => e.type.startsWith('proxy.')).map((e) => e.type)).toEqual(['proxy.offer', 'proxy.ack']);
    expect(svc.leases()).toEqual([]);
  });

  it('netboot-once: no boot file once booted, until rearmed', async () => {
    const { svc, plan, client, replies } = await setup({ netbootOnce: true });
    plan.noteBooted('52:54:00:00:00:05');
    send(client, req(MessageType.DISCOVER, '52:54:00:00:00:05', BIOS, 1), svc.port);
    const a = await waitFor(() => replies.find((r) => r.msg.xid === 1), 5000, 'offer 1');
    expect(a.msg.file).toBe('');
    svc.rearm('52:54:00:00:00:05');
    send(client, req(MessageType.DISCOVER, '52:54:00:00:00:05', BIOS, 2), svc.port);
    const b = await waitFor(() => replies.find((r) => r.msg.xid === 2), 5000, 'offer 2');
    expect(b.msg.file).toBe('ipxe/undionly.kpxe');
  });
});

const rawReason = process.getuid?.() !== 0 ? 'needs root for a raw socket' : !hasCmd('python3') ? 'needs python3' : undefined;

describeSkipIf(rawReason)('DhcpService and datagrams from source port 0', () => {
  it('drops a proxy REQUEST from port 0 as bad-port (no reply can go there), not as an internal failure', async () => {
    const { svc, metrics } = await setup({ mode: 'proxy' });
    const p = req(MessageType.REQUEST, '52:54:00:12:34:99', BIOS);
    const py = ['import socket, struct, sys', 'p = bytes.fromhex(sys.argv[2])', 's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)', "s.sendto(struct.pack('!HHHH', 0, int(sys.argv[1]), 8 + len(p), 0) + p, ('127.0.0.1', 0))"].join('\n');
    for (const port of [svc.proxyPort, svc.port]) execFileSync('python3', ['-c', py, String(port), p.toString('hex')]);
    await waitFor(() => metrics.get('bootrelay_dhcp_dropped_total', { reason: 'bad-port' }) === 2, 3000, 'bad-port drops');
    expect(metrics.get('bootrelay_dhcp_dropped_total', { reason: 'internal' })).toBe(0);
  });
});

/** A request with header fields and raw trailing option bytes under the test's control. */
function reqWith(type: number, mac: string, opts: Array<[number, Buffer | string]>, f: Partial<DhcpMessage> = {}, xid = 0xabcd): Buffer {
  const options = new OptionMap().setU8(Opt.MessageType, type);
  for (const [c, v] of opts) options.set(c, typeof v === 'string' ? Buffer.from(v) : v);
  const chaddr = Buffer.alloc(16);
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(chaddr);
  return encodeDhcp({ op: 1, htype: 1, hlen: 6, hops: 0, xid, secs: 0, flags: 0x8000, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac, sname: '', file: '', options, ...f });
}
const UEFI: Array<[number, Buffer | string]> = [[60, 'PXEClient:Arch:00007:UNDI:003000'], [93, Buffer.from([0, 7])]];

describe('DhcpService on loopback: issue 12', () => {
  it('item 3: no dhcp.loader-fallback after iPXE (user class iPXE) asked for an address: the loader ran', async () => {
    const { svc, client, replies, events } = await setup({}, { boot: { loaders: { 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] } } });
    const mac = '52:54:00:12:00:03';
    const dora = async (xid: number, opts: Array<[number, Buffer | string]>) => {
      send(client, reqWith(MessageType.DISCOVER, mac, opts, {}, xid), svc.port);
      const o = await waitFor(() => replies.find((r) => r.msg.xid === xid && messageType(r.msg) === MessageType.OFFER), 5000, `offer ${xid}`);
      send(client, reqWith(MessageType.REQUEST, mac, [...opts, [54, ip('127.0.0.1')], [50, ip(o.msg.yiaddr)]], {}, xid), svc.port);
      return (await waitFor(() => replies.find((r) => r.msg.xid === xid && messageType(r.msg) === MessageType.ACK), 5000, `ack ${xid}`)).msg;
    };
    expect((await dora(1, UEFI)).file).toBe('ipxe/snponly.efi');
    svc.noteLoaderFetched(mac);
    // the loader runs: iPXE's own DHCP (user class iPXE) gets the script URL
    expect((await dora(2, [...UEFI, [77, 'iPXE']])).options.str(Opt.BootFileName)).toMatch(/boot\.ipxe/);
    // the kernel 404s, the script exits, the firmware DISCOVERs again: the same loader, nothing blamed
    expect((await dora(3, UEFI)).file).toBe('ipxe/snponly.efi');
    expect(events.filter((e) => e.type === 'dhcp.loader-fallback')).toEqual([]);
    // without iPXE in between, the fallback still happens (the check can fail)
    const other = '52:54:00:12:00:04';
    send(client, reqWith(MessageType.DISCOVER, other, UEFI, {}, 10), svc.port);
    const o = await waitFor(() => replies.find((r) => r.msg.xid === 10), 5000, 'offer 10');
    send(client, reqWith(MessageType.REQUEST, other, [...UEFI, [54, ip('127.0.0.1')], [50, ip(o.msg.yiaddr)]], {}, 10), svc.port);
    await waitFor(() => replies.find((r) => r.msg.xid === 10 && messageType(r.msg) === MessageType.ACK), 5000, 'ack 10');
    send(client, reqWith(MessageType.DISCOVER, other, UEFI, {}, 11), svc.port);
    const again = await waitFor(() => replies.find((r) => r.msg.xid === 11), 5000, 'offer 11');
    expect(again.msg.file).toBe('ipxe/ipxe.efi');
    expect(events.filter((e) => e.type === 'dhcp.loader-fallback').map((e) => e.mac)).toEqual([other]);
  });

  it('item 5: OFFER, ACK and NAK echo option 61 byte for byte; leases keyed by it; hostname and FQDN kept', async () => {
    const { svc, client, replies } = await setup();
    const mac = '52:54:00:12:00:05';
    const idA = Buffer.from('ff00000001000100012c3a4f5e525400120005', 'hex'); // RFC 4361 style IAID+DUID
    const idB = Buffer.from('00' + Buffer.from('other-os').toString('hex'), 'hex');
    const fqdn = Buffer.concat([Buffer.from([0x05, 0, 0]), Buffer.from([4]), Buffer.from('host'), Buffer.from([3]), Buffer.from('lab'), Buffer.from([0])]);
    send(client, reqWith(MessageType.DISCOVER, mac, [[61, idA], [12, 'pxe-host']], {}, 21), svc.port);
    const oa = await waitFor(() => replies.find((r) => r.msg.xid === 21), 5000, 'offer A');
    expect(oa.msg.options.get(Opt.ClientIdentifier)).toEqual(idA);
    send(client, reqWith(MessageType.REQUEST, mac, [[61, idA], [12, 'pxe-host'], [81, fqdn], [54, ip('127.0.0.1')], [50, ip(oa.msg.yiaddr)]], {}, 21), svc.port);
    const aa = await waitFor(() => replies.find((r) => r.msg.xid === 21 && messageType(r.msg) === MessageType.ACK), 5000, 'ack A');
    expect(aa.msg.options.get(Opt.ClientIdentifier)).toEqual(idA);
    // the same MAC with another identifier (another OS on the machine) is another client (RFC 2131 §4.2)
    send(client, reqWith(MessageType.DISCOVER, mac, [[61, idB]], {}, 22), svc.port);
    const ob = await waitFor(() => replies.find((r) => r.msg.xid === 22), 5000, 'offer B');
    expect(ob.msg.yiaddr).not.toBe(oa.msg.yiaddr);
    expect(ob.msg.options.get(Opt.ClientIdentifier)).toEqual(idB);
    // B asks for A's address: NAK, with B's identifier echoed
    send(client, reqWith(MessageType.REQUEST, mac, [[61, idB], [50, ip(oa.msg.yiaddr)]], {}, 23), svc.port);
    const nak = await waitFor(() => replies.find((r) => r.msg.xid === 23), 5000, 'nak');
    expect(messageType(nak.msg)).toBe(MessageType.NAK);
    expect(nak.msg.options.get(Opt.ClientIdentifier)).toEqual(idB);
    expect(svc.leases()).toMatchObject([{ mac, ip: oa.msg.yiaddr, hostname: 'pxe-host', fqdn: 'host.lab', clientId: idA.toString('hex') }]);
    // iPXE's identifier is its hardware type and MAC (RFC 2132 §9.14): the same interface as chaddr,
    // so it keeps the lease firmware PXE (no option 61) got, and still sees its identifier echoed
    const fw = '52:54:00:12:00:09';
    send(client, reqWith(MessageType.DISCOVER, fw, BIOS, {}, 24), svc.port);
    const of = await waitFor(() => replies.find((r) => r.msg.xid === 24), 5000, 'offer firmware');
    send(client, reqWith(MessageType.REQUEST, fw, [...BIOS, [54, ip('127.0.0.1')], [50, ip(of.msg.yiaddr)]], {}, 24), svc.port);
    await waitFor(() => replies.find((r) => r.msg.xid === 24 && messageType(r.msg) === MessageType.ACK), 5000, 'ack firmware');
    const hwId = Buffer.from('01525400120009', 'hex');
    send(client, reqWith(MessageType.DISCOVER, fw, [...BIOS, [77, 'iPXE'], [61, hwId]], {}, 25), svc.port);
    const oi = await waitFor(() => replies.find((r) => r.msg.xid === 25), 5000, 'offer iPXE');
    expect(oi.msg.yiaddr).toBe(of.msg.yiaddr);
    expect(oi.msg.options.get(Opt.ClientIdentifier)).toEqual(hwId);
  });

  it('item 6: NAKs a REBINDING request from another network (broadcast); serves a DISCOVER without End', async () => {
    const { svc, client, replies, metrics } = await setup({}, { prefix: 24 });
    send(client, reqWith(MessageType.REQUEST, '52:54:00:12:00:06', [], { ciaddr: '10.1.2.3', flags: 0 }, 31), svc.port);
    const nak = await waitFor(() => replies.find((r) => r.msg.xid === 31), 5000, 'nak');
    expect(messageType(nak.msg)).toBe(MessageType.NAK);
    expect(nak.msg.options.str(Opt.Message)).toMatch(/10\.1\.2\.3 is not on this network/);
    // a DISCOVER whose options stop at the datagram's end, no End option, no padding
    const full = reqWith(MessageType.DISCOVER, '52:54:00:12:00:07', BIOS, {}, 32);
    let end = 240;
    while (full[end] !== 255) end += 2 + full[end + 1]!;
    send(client, full.subarray(0, end), svc.port);
    const offer = await waitFor(() => replies.find((r) => r.msg.xid === 32), 5000, 'offer without End');
    expect(offer.msg.file).toBe('ipxe/undionly.kpxe');
    expect(metrics.get('bootrelay_dhcp_dropped_total', { reason: 'no-end' })).toBe(0);
  });

  it('match rules: the profile DHCP matched is the one the plan (and so /boot.ipxe) gives the client', async () => {
    const { svc, plan, client, replies, events } = await setup(
      {},
      { boot: { profiles: { x: { kernel: 'x/k' }, lab: { kernel: 'lab/k' } }, match: [{ profile: 'lab', userClass: 'iPXE' }] } },
    );
    const mac = '52:54:00:12:00:08';
    expect(plan.profileName(mac)).toBe('x');
    send(client, reqWith(MessageType.DISCOVER, mac, [...UEFI, [77, 'iPXE']], {}, 41), svc.port);
    await waitFor(() => replies.find((r) => r.msg.xid === 41), 5000, 'offer');
    expect(plan.profileName(mac)).toBe('lab');
    expect(events.find((e) => e.type === 'dhcp.offer' && e.mac === mac)).toMatchObject({ profile: 'lab' });
    // a later exchange no rule matches forgets it
    send(client, reqWith(MessageType.DISCOVER, mac, UEFI, {}, 42), svc.port);
    await waitFor(() => replies.find((r) => r.msg.xid === 42), 5000, 'offer 2');
    expect(plan.profileName(mac)).toBe('x');
  });
});
