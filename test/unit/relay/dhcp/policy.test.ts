import { describe, expect, it, beforeEach } from 'vitest';
import type { DhcpConfig, LanConfig } from '../../../../agent/config/types';
import { MessageType, Opt, OptionMap } from '../../../../proto/dhcp/options';
import { messageType, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { classifyClient, decodeIpxeOptions, decodePxeOptions } from '../../../../proto/dhcp/pxe';
import { LeaseStore } from '../../../../relay/dhcp/leases';
import { BootHistory, decide, type Decision, type PolicyContext } from '../../../../relay/dhcp/policy';

const lan: LanConfig = { interface: 'lan0', address: '10.99.0.1', prefix: 24 };
const dhcpCfg: DhcpConfig = {
  mode: 'server',
  port: 67,
  proxyPort: 4011,
  range: ['10.99.0.100', '10.99.0.102'],
  leaseSeconds: 3600,
  router: '10.99.0.1',
  dns: ['10.99.0.1'],
  static: { '52:54:00:00:00:50': '10.99.0.50' },
  ipxeNoProxyDhcp: true,
  netbootOnce: false,
};
const loaders = { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] };

const BIOS: Array<[number, Buffer | string]> = [[60, 'PXEClient:Arch:00000:UNDI:002001'], [93, Buffer.from([0, 0])]];
const UEFI: Array<[number, Buffer | string]> = [[60, 'PXEClient:Arch:00007:UNDI:003000'], [93, Buffer.from([0, 7])]];
const ARM: Array<[number, Buffer | string]> = [[60, 'PXEClient:Arch:00011:UNDI:003000'], [93, Buffer.from([0, 11])]];
const IPXE: Array<[number, Buffer | string]> = [...UEFI, [77, 'iPXE']];
const HTTP: Array<[number, Buffer | string]> = [[60, 'HTTPClient:Arch:00016:UNDI:003001'], [93, Buffer.from([0, 16])]];

function msg(type: number, mac: string, opts: Array<[number, Buffer | string]> = [], f: Partial<DhcpMessage> = {}): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, type);
  for (const [c, v] of opts) options.set(c, typeof v === 'string' ? Buffer.from(v) : v);
  const chaddr = Buffer.alloc(16);
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(chaddr);
  return { op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x1000, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac, sname: '', file: '', options, ...f };
}
const ip = (s: string) => Buffer.from(s.split('.').map(Number));

let t = 1_000_000;
let leases: LeaseStore;
let history: BootHistory;
let booted: Set<string>;
function ctx(over: Partial<PolicyContext> = {}): PolicyContext {
  return { mode: 'server', via: 'dhcp', src: { address: '0.0.0.0', port: 68 }, lan, dhcp: dhcpCfg, loaders, httpPort: 8080, tftpEnabled: true, leases, history, now: t, bootedOnce: (m) => booted.has(m), ...over };
}
function run(m: DhcpMessage, over: Partial<PolicyContext> = {}): Decision {
  return decide(m, classifyClient(m), ctx(over));
}
function reply(d: Decision) {
  if (d.kind !== 'reply') throw new Error(`expected a reply, got ${JSON.stringify(d)}`);
  return d;
}
async function dora(mac: string, opts: Array<[number, Buffer | string]>, xid = 0x1000, over: Partial<PolicyContext> = {}) {
  const o = reply(run(msg(MessageType.DISCOVER, mac, opts, { xid }), over));
  const a = reply(run(msg(MessageType.REQUEST, mac, [...opts, [54, ip(lan.address)], [50, ip(o.ip!)]], { xid }), over));
  if (a.commit) await leases.commit(mac, a.commit.ip);
  return { o, a };
}

beforeEach(() => {
  t = 1_000_000;
  leases = new LeaseStore({ range: dhcpCfg.range, static: dhcpCfg.static, leaseSeconds: 3600, now: () => t });
  history = new BootHistory();
  booted = new Set();
});

describe('decide: server mode (RFC 2131 §4.3)', () => {
  it('offers an address and the BIOS loader over TFTP to a BIOS PXE client', () => {
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:01', BIOS)));
    expect(d.event).toBe('dhcp.offer');
    expect(d.ip).toBe('10.99.0.100');
    expect(d.to).toEqual({ address: '255.255.255.255', port: 68 });
    const r = d.reply;
    expect(messageType(r)).toBe(MessageType.OFFER);
    expect(r.yiaddr).toBe('10.99.0.100');
    expect(r.siaddr).toBe('10.99.0.1');
    expect(r.file).toBe('ipxe/undionly.kpxe');
    expect(r.options.str(Opt.BootFileName)).toBe('ipxe/undionly.kpxe');
    expect(r.options.str(Opt.TftpServerName)).toBe('10.99.0.1');
    expect(r.options.ip(Opt.ServerIdentifier)).toBe('10.99.0.1');
    expect(r.options.u32(Opt.LeaseTime)).toBe(3600);
    expect(r.options.ip(Opt.SubnetMask)).toBe('255.255.255.0');
    expect(r.options.ips(Opt.Router)).toEqual(['10.99.0.1']);
    expect(r.options.ips(Opt.DomainNameServer)).toEqual(['10.99.0.1']);
    expect(r.options.str(Opt.VendorClassIdentifier)).toBe('PXEClient');
    expect(decodePxeOptions(r.options.get(Opt.VendorSpecific)!).discoveryControl).toBe(8);
  });

  it('offers the UEFI x64 loader without option 43', () => {
    const r = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:02', UEFI))).reply;
    expect(r.file).toBe('ipxe/snponly.efi');
    expect(r.options.str(Opt.BootFileName)).toBe('ipxe/snponly.efi');
    // a PXEClient offer without option 43 would send EDK2 to port 4011 (BINL): plain DHCP offer
    expect(r.options.has(Opt.VendorClassIdentifier)).toBe(false);
    expect(r.options.has(Opt.VendorSpecific)).toBe(false);
  });

  it('hands iPXE the boot script URL with no-pxedhcp, never the loader again', () => {
    const r = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:03', IPXE))).reply;
    expect(r.file).toBe('http://10.99.0.1:8080/boot.ipxe?mac=52:54:00:00:00:03');
    expect(decodeIpxeOptions(r.options.get(Opt.IpxeEncapsulated)!).get(176)).toEqual(Buffer.from([1]));
    expect(r.options.has(Opt.TftpServerName)).toBe(false);
    expect(r.options.has(Opt.VendorClassIdentifier)).toBe(false);
    const r80 = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:03', IPXE), { httpPort: 80 })).reply;
    expect(r80.file).toBe('http://10.99.0.1/boot.ipxe?mac=52:54:00:00:00:03');
  });

  it('gives UEFI HTTP boot an http:// URL to the loader and echoes HTTPClient', () => {
    const r = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:04', HTTP))).reply;
    expect(r.file).toBe('http://10.99.0.1:8080/files/ipxe/snponly.efi');
    expect(r.options.str(Opt.VendorClassIdentifier)).toBe('HTTPClient');
  });

  it('gives a non-PXE client an address and no boot file', () => {
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:05', [[12, 'laptop']])));
    expect(d.reply.yiaddr).toBe('10.99.0.100');
    expect(d.reply.file).toBe('');
    expect(d.reply.options.has(Opt.BootFileName)).toBe(false);
    expect(d.reply.options.has(Opt.VendorClassIdentifier)).toBe(false);
  });

  it('gives a PXE client whose arch has no loader an address, no file, and a dhcp.no-loader event', () => {
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:06', ARM)));
    expect(d.reply.yiaddr).not.toBe('0.0.0.0');
    expect(d.reply.file).toBe('');
    expect(d.side.map((s) => s.type)).toEqual(['dhcp.no-loader']);
  });

  it('gives the static address to its MAC and keeps it out of the pool', () => {
    expect(reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:50'))).ip).toBe('10.99.0.50');
    expect(reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:99', [[50, ip('10.99.0.50')]]))).event).toBe('dhcp.nak');
  });

  it('ACKs a SELECTING request naming us, and commits the lease', () => {
    const { o, a } = { o: reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:07', BIOS))), a: undefined };
    void a;
    const d = reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:07', [...BIOS, [54, ip('10.99.0.1')], [50, ip(o.ip!)], [12, Buffer.from('pxe1')]])));
    expect(d.event).toBe('dhcp.ack');
    expect(d.commit).toEqual({ ip: o.ip, hostname: 'pxe1', uuid: undefined });
    expect(d.reply.yiaddr).toBe(o.ip);
    expect(d.reply.file).toBe('ipxe/undionly.kpxe');
  });

  it('SELECTING without option 50 means the address we offered', () => {
    const o = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:17')));
    const d = reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:17', [[54, ip('10.99.0.1')]])));
    expect(d.event).toBe('dhcp.ack');
    expect(d.ip).toBe(o.ip);
    expect(run(msg(MessageType.REQUEST, '52:54:00:00:00:18', [[54, ip('10.99.0.1')]]))).toMatchObject({ kind: 'ignore', reason: 'no-requested-ip' });
    // no server id, no option 50, no ciaddr (the dhcp npm client): only right after our OFFER
    const o2 = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:19')));
    expect(reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:19'))).ip).toBe(o2.ip);
    expect(run(msg(MessageType.REQUEST, '52:54:00:00:00:1a'))).toMatchObject({ kind: 'ignore', reason: 'no-requested-ip' });
  });

  it('ignores a REQUEST naming another server', () => {
    const d = run(msg(MessageType.REQUEST, '52:54:00:00:00:08', [[54, ip('10.99.0.2')], [50, ip('10.99.0.100')]]));
    expect(d).toMatchObject({ kind: 'ignore', reason: 'other-server' });
  });

  it('INIT-REBOOT: ACKs a right address, NAKs another network and an address held by someone else', async () => {
    await dora('52:54:00:00:00:09', []);
    const mine = leases.get('52:54:00:00:00:09')!.ip;
    expect(reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:09', [[50, ip(mine)]]))).event).toBe('dhcp.ack');
    const wrongNet = reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:09', [[50, ip('192.168.1.20')]])));
    expect(wrongNet.event).toBe('dhcp.nak');
    expect(messageType(wrongNet.reply)).toBe(MessageType.NAK);
    expect(wrongNet.to.address).toBe('255.255.255.255');
    const taken = reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:0a', [[50, ip(mine)]])));
    expect(taken.event).toBe('dhcp.nak');
  });

  it('RENEWING: ACKs to ciaddr:68 without a broadcast', async () => {
    await dora('52:54:00:00:00:0b', []);
    const mine = leases.get('52:54:00:00:00:0b')!.ip;
    const d = reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:0b', [], { ciaddr: mine })));
    expect(d.event).toBe('dhcp.ack');
    expect(d.to).toEqual({ address: mine, port: 68 });
    expect(d.reply.ciaddr).toBe(mine);
  });

  it('answers a relayed request at giaddr:67, and ignores giaddr/ciaddr outside the LAN', () => {
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:0c', [], { giaddr: '10.99.0.254' })));
    expect(d.to).toEqual({ address: '10.99.0.254', port: 67 });
    expect(run(msg(MessageType.DISCOVER, '52:54:00:00:00:0c', [], { giaddr: '10.98.0.1' }))).toMatchObject({ kind: 'ignore', reason: 'outside-lan' });
    expect(run(msg(MessageType.INFORM, '52:54:00:00:00:0c', [], { ciaddr: '10.99.7.5' }))).toMatchObject({ kind: 'ignore', reason: 'outside-lan' });
  });

  it('NAKs (broadcast) a RENEWING/REBINDING request whose ciaddr is on another network (issue 12 item 6)', () => {
    const d = reply(run(msg(MessageType.REQUEST, '52:54:00:00:00:0c', [], { ciaddr: '10.99.7.5', flags: 0 })));
    expect(d.event).toBe('dhcp.nak');
    expect(messageType(d.reply)).toBe(MessageType.NAK);
    expect(d.to).toEqual({ address: '255.255.255.255', port: 68 });
    expect(d.reply.options.ip(Opt.ServerIdentifier)).toBe(lan.address);
    // proxy mode never NAKs (another server owns the addresses)
    expect(run(msg(MessageType.REQUEST, '52:54:00:00:00:0c', BIOS, { ciaddr: '10.99.7.5' }), { mode: 'proxy', via: 'proxy' })).toMatchObject({ kind: 'ignore', reason: 'outside-lan' });
  });

  it('reports pool exhaustion as an ignore with a dhcp.pool-exhausted event', async () => {
    for (let i = 1; i <= 3; i++) await dora(`52:54:00:00:01:0${i}`, []);
    const d = run(msg(MessageType.DISCOVER, '52:54:00:00:01:09'));
    expect(d).toMatchObject({ kind: 'ignore', reason: 'pool-exhausted' });
    expect(d.side[0]?.type).toBe('dhcp.pool-exhausted');
    // the range travels as a field of its own (the tracker names it in the client's error)
    expect(d.side[0]).toEqual({ type: 'dhcp.pool-exhausted', range: dhcpCfg.range });
  });

  it('reuses expired leases and never gives one address to two clients', async () => {
    for (let i = 1; i <= 3; i++) await dora(`52:54:00:00:01:0${i}`, []);
    t += 3601_000;
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:01:09')));
    expect(['10.99.0.100', '10.99.0.101', '10.99.0.102']).toContain(d.ip);
    // the old owner asking for it again is refused now
    await leases.commit('52:54:00:00:01:09', d.ip!);
    const old = leases.list().find((l) => l.ip === d.ip && l.mac !== '52:54:00:00:01:09');
    expect(old).toBeUndefined();
  });

  it('RELEASE frees the address; DECLINE keeps it out of the pool for a while', async () => {
    await dora('52:54:00:00:00:0d', []);
    const mine = leases.get('52:54:00:00:00:0d')!.ip;
    const r = run(msg(MessageType.RELEASE, '52:54:00:00:00:0d', [[54, ip('10.99.0.1')]], { ciaddr: mine }));
    expect(r).toMatchObject({ kind: 'release', ip: mine });
    await leases.release('52:54:00:00:00:0d', mine);
    expect(leases.macForIp(mine)).toBeUndefined();
    expect(run(msg(MessageType.DECLINE, '52:54:00:00:00:0e', [[54, ip('10.99.0.1')], [50, ip('10.99.0.101')]]))).toMatchObject({ kind: 'ignore', reason: 'not-our-lease' });
    expect(reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:0e'))).ip).toBe('10.99.0.101');
    const dcl = run(msg(MessageType.DECLINE, '52:54:00:00:00:0e', [[54, ip('10.99.0.1')], [50, ip('10.99.0.101')]]));
    expect(dcl).toMatchObject({ kind: 'decline', ip: '10.99.0.101' });
    await leases.decline('52:54:00:00:00:0e', '10.99.0.101');
    expect(leases.canAssign('52:54:00:00:00:0f', '10.99.0.101')).toBe(false);
    t += 601_000;
    expect(leases.canAssign('52:54:00:00:00:0f', '10.99.0.101')).toBe(true);
  });

  it('INFORM: ACK without yiaddr or lease time, to ciaddr', () => {
    const d = reply(run(msg(MessageType.INFORM, '52:54:00:00:00:10', [], { ciaddr: '10.99.0.77' })));
    expect(messageType(d.reply)).toBe(MessageType.ACK);
    expect(d.reply.yiaddr).toBe('0.0.0.0');
    expect(d.reply.options.has(Opt.LeaseTime)).toBe(false);
    expect(d.to).toEqual({ address: '10.99.0.77', port: 68 });
  });

  it('ignores BOOTREPLYs and plain BOOTP', () => {
    expect(run(msg(MessageType.OFFER, '52:54:00:00:00:11', [], { op: 2 }))).toMatchObject({ kind: 'ignore', reason: 'not-request' });
    const b = msg(1, '52:54:00:00:00:11');
    b.options.delete(Opt.MessageType);
    expect(run(b)).toMatchObject({ kind: 'ignore', reason: 'bootp' });
    expect(run(msg(1, '', [], { hlen: 0 }))).toMatchObject({ kind: 'ignore', reason: 'no-mac' });
  });

  it('falls back to the next loader when firmware PXE comes back within 60 s of an ACK', async () => {
    const mac = '52:54:00:00:00:12';
    const first = await dora(mac, UEFI, 0x1);
    expect(first.a.reply.file).toBe('ipxe/snponly.efi');
    t += 20_000;
    const again = reply(run(msg(MessageType.DISCOVER, mac, UEFI, { xid: 0x2 })));
    expect(again.reply.file).toBe('ipxe/ipxe.efi');
    expect(again.side).toMatchObject([{ type: 'dhcp.loader-fallback', file: 'ipxe/ipxe.efi', from: 'ipxe/snponly.efi' }]);
    // its REQUEST gets the same fallback loader
    const ack = reply(run(msg(MessageType.REQUEST, mac, [...UEFI, [54, ip('10.99.0.1')], [50, ip(again.ip!)]], { xid: 0x2 })));
    expect(ack.reply.file).toBe('ipxe/ipxe.efi');
    // a retransmitted DISCOVER (same xid) does not fall back further
    expect(reply(run(msg(MessageType.DISCOVER, mac, UEFI, { xid: 0x2 }))).reply.file).toBe('ipxe/ipxe.efi');
    // much later: back to the preferred loader
    t += 120_000;
    const later = reply(run(msg(MessageType.DISCOVER, mac, UEFI, { xid: 0x3 })));
    expect(later.reply.file).toBe('ipxe/snponly.efi');
    expect(later.side).toEqual([]);
  });

  it('does not fall back when iPXE (the loader working) asks next', async () => {
    const mac = '52:54:00:00:00:13';
    await dora(mac, UEFI, 0x1);
    t += 5_000;
    const d = reply(run(msg(MessageType.DISCOVER, mac, IPXE, { xid: 0x5 })));
    expect(d.side).toEqual([]);
    expect(d.reply.file).toContain('/boot.ipxe');
  });

  it('tracks the fallback by a non-zero GUID when the MAC changes', async () => {
    const guid = Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 7)]);
    await dora('52:54:00:00:00:14', [...UEFI, [97, guid]], 0x1);
    t += 10_000;
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:15', [...UEFI, [97, guid]], { xid: 0x9 })));
    expect(d.reply.file).toBe('ipxe/ipxe.efi');
  });

  it('netboot-once: a booted client gets an address but no boot file', () => {
    booted.add('52:54:00:00:00:16');
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:16', BIOS), { dhcp: { ...dhcpCfg, netbootOnce: true } }));
    expect(d.reply.yiaddr).not.toBe('0.0.0.0');
    expect(d.reply.file).toBe('');
    const off = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:00:16', BIOS)));
    expect(off.reply.file).toBe('ipxe/undionly.kpxe');
  });
});

describe('decide: proxy mode (PXE 2.1 §2.2)', () => {
  const proxy = (over: Partial<PolicyContext> = {}) => ({ mode: 'proxy' as const, dhcp: { ...dhcpCfg, mode: 'proxy' as const }, ...over });

  it('answers a BIOS PXE DISCOVER with a proxy offer: no yiaddr, PXEClient, option 43 discovery control', () => {
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:02:01', BIOS), proxy()));
    expect(d.event).toBe('proxy.offer');
    const r = d.reply;
    expect(r.yiaddr).toBe('0.0.0.0');
    expect(r.options.has(Opt.LeaseTime)).toBe(false);
    expect(r.options.str(Opt.VendorClassIdentifier)).toBe('PXEClient');
    expect(r.options.ip(Opt.ServerIdentifier)).toBe('10.99.0.1');
    expect(decodePxeOptions(r.options.get(Opt.VendorSpecific)!).discoveryControl).toBe(8);
    expect(r.file).toBe('ipxe/undionly.kpxe');
    expect(d.to).toEqual({ address: '255.255.255.255', port: 68 });
    expect(leases.list()).toEqual([]);
  });

  it('offers UEFI without option 43, and answers its 4011 REQUEST unicast with the loader', () => {
    const o = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:02:02', UEFI), proxy())).reply;
    expect(o.options.has(Opt.VendorSpecific)).toBe(false);
    const d = reply(run(msg(MessageType.REQUEST, '52:54:00:00:02:02', UEFI, { ciaddr: '10.99.0.171' }), proxy({ via: 'proxy', src: { address: '10.99.0.171', port: 4011 } })));
    expect(d.event).toBe('proxy.ack');
    expect(d.to).toEqual({ address: '10.99.0.171', port: 4011 });
    expect(messageType(d.reply)).toBe(MessageType.ACK);
    expect(d.reply.yiaddr).toBe('0.0.0.0');
    expect(d.reply.file).toBe('ipxe/snponly.efi');
  });

  it('echoes the PXE boot item (43.71) in the 4011 ACK', () => {
    const req = msg(MessageType.REQUEST, '52:54:00:00:02:03', [...BIOS, [43, Buffer.from([71, 4, 0x80, 0, 0, 0, 255])]], { ciaddr: '10.99.0.108' });
    const d = reply(run(req, proxy({ via: 'proxy', src: { address: '10.99.0.108', port: 68 } })));
    const p = decodePxeOptions(d.reply.options.get(Opt.VendorSpecific)!);
    expect(p.bootItem).toEqual({ type: 0x8000, layer: 0 });
  });

  it('gives UEFI HTTP boot a proxy offer with HTTPClient and the loader URL', () => {
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:02:07', HTTP), proxy()));
    expect(d.reply.yiaddr).toBe('0.0.0.0');
    expect(d.reply.options.str(Opt.VendorClassIdentifier)).toBe('HTTPClient');
    expect(d.reply.options.str(Opt.BootFileName)).toBe('http://10.99.0.1:8080/files/ipxe/snponly.efi');
  });

  it('ignores non-PXE clients, and REQUESTs on port 67', () => {
    expect(run(msg(MessageType.DISCOVER, '52:54:00:00:02:04', [[12, 'laptop']]), proxy())).toMatchObject({ kind: 'ignore', reason: 'not-pxe' });
    expect(run(msg(MessageType.REQUEST, '52:54:00:00:02:04', BIOS), proxy())).toMatchObject({ kind: 'ignore', reason: 'proxy-not-discover' });
  });

  it('ignores a PXE client with no loader for its arch (and says so)', () => {
    const d = run(msg(MessageType.DISCOVER, '52:54:00:00:02:05', ARM), proxy());
    expect(d).toMatchObject({ kind: 'ignore', reason: 'no-loader' });
    expect(d.side[0]?.type).toBe('dhcp.no-loader');
  });

  it('gives iPXE the script URL without no-pxedhcp (it needs our proxy offer)', () => {
    const d = reply(run(msg(MessageType.DISCOVER, '52:54:00:00:02:06', IPXE), proxy()));
    expect(d.reply.file).toBe('http://10.99.0.1:8080/boot.ipxe?mac=52:54:00:00:02:06');
    expect(d.reply.options.has(Opt.IpxeEncapsulated)).toBe(false);
  });
});

describe('BootHistory', () => {
  it('stays within its bound when every client also sends a GUID (a flood of random MACs and UUIDs)', () => {
    const h = new BootHistory(100);
    for (let i = 0; i < 5000; i++) {
      const mac = `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
      h.set(mac, `uuid-${i}`, { index: 0, xid: i, ackedAt: 0, arch: 'bios' });
    }
    expect(h.size).toBeLessThanOrEqual(100);
    expect(h.get('52:54:00:00:13:87', 'uuid-4999')?.xid).toBe(4999);
  });
});
