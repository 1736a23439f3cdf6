/** Issue 12's dnsmasq-style features in the DHCP policy, table-tested (no sockets). */
import { beforeEach, describe, expect, it } from 'vitest';
import type { BootConfig, DhcpConfig, LanConfig } from '../../../../agent/config/types';
import { MessageType, Opt, OptionMap } from '../../../../proto/dhcp/options';
import { decodeDhcp, messageType, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { classifyClient, decodePxeOptions } from '../../../../proto/dhcp/pxe';
import { encodeReply } from '../../../../proto/dhcp/reply';
import { LeaseStore } from '../../../../relay/dhcp/leases';
import { BootHistory, chooseProfile, decide, globMatch, macMatch, MENU_TYPE_BASE, type Decision, type PolicyContext } from '../../../../relay/dhcp/policy';

const lan: LanConfig = { interface: 'lan0', address: '10.99.0.1', prefix: 24 };
const base: DhcpConfig = { mode: 'server', port: 67, proxyPort: 4011, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 3600, router: '10.99.0.1', dns: ['10.99.0.1'], static: { '52:54:00:00:00:50': '10.99.0.50' }, ipxeNoProxyDhcp: true, netbootOnce: false };
const loaders = { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi'] };
const boot: BootConfig = {
  loaders,
  defaultProfile: 'debian',
  profiles: {
    debian: { kernel: 'd/vmlinuz' },
    lab: { kernel: 'l/vmlinuz', dhcpOptions: { domain: 'lab.example', ntp: ['10.99.0.9'] } },
    arm: { kernel: 'a/Image' },
    uefi: { kernel: 'u/vmlinuz' },
    guid: { kernel: 'g/vmlinuz' },
    ipxe: { kernel: 'i/vmlinuz' },
    menu: { kernel: 'm/vmlinuz', pxeMenu: { prompt: 'F8 for the menu', timeout: 5, items: [{ label: 'Network boot (iPXE)', loader: 'ipxe/undionly.kpxe' }, { label: 'Local disk', loader: 'local' }, { label: 'Memtest', loader: 'memtest/memtest.0' }] } },
  },
  assign: { '52:54:00:00:00:aa': 'debian', '52:54:00:00:00:50': 'menu' },
  match: [
    { profile: 'lab', mac: '52:54:00:12:*:*' },
    { profile: 'arm', arch: 11 },
    { profile: 'uefi', vendorClass: 'PXEClient:Arch:00007*' },
    { profile: 'guid', uuid: '11223344-5566-7788-99aa-bbccddeeff00' },
    { profile: 'ipxe', userClass: 'iPXE' },
  ],
};

type Opts = Array<[number, Buffer | string]>;
const BIOS: Opts = [[60, 'PXEClient:Arch:00000:UNDI:002001'], [93, Buffer.from([0, 0])]];
const UEFI: Opts = [[60, 'PXEClient:Arch:00007:UNDI:003000'], [93, Buffer.from([0, 7])]];
const ARM: Opts = [[60, 'PXEClient:Arch:00011:UNDI:003000'], [93, Buffer.from([0, 11])]];
const GUID = Buffer.from('00' + '44332211' + '6655' + '8877' + '99aa' + 'bbccddeeff00', 'hex');

function msg(type: number, mac: string, opts: Opts = [], f: Partial<DhcpMessage> = {}): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, type);
  for (const [c, v] of opts) options.set(c, typeof v === 'string' ? Buffer.from(v) : v);
  const chaddr = Buffer.alloc(16);
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(chaddr);
  return { op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x2000, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac, sname: '', file: '', options, ...f };
}

let leases: LeaseStore;
let subnetLeases: LeaseStore;
function ctx(over: Partial<PolicyContext> = {}, dhcp: Partial<DhcpConfig> = {}): PolicyContext {
  return { mode: 'server', via: 'dhcp', src: { address: '0.0.0.0', port: 68 }, lan, dhcp: { ...base, ...dhcp }, loaders, httpPort: 8080, tftpEnabled: true, leases, history: new BootHistory(), now: 1_000_000, boot, ...over };
}
function reply(d: Decision) {
  if (d.kind !== 'reply') throw new Error(`expected a reply, got ${JSON.stringify(d)}`);
  return d;
}
beforeEach(() => {
  leases = new LeaseStore({ range: base.range, static: base.static, leaseSeconds: 3600 });
  subnetLeases = new LeaseStore({ range: ['10.99.60.100', '10.99.60.110'], leaseSeconds: 3600 });
});

describe('match rules: relayctl assign > boot.assign > boot.match (in order) > defaultProfile', () => {
  it.each([
    ['a MAC pattern', '52:54:00:12:34:56', BIOS, 'lab', 'match'],
    ['option 93 arch', '52:54:00:99:00:01', ARM, 'arm', 'match'],
    ['a vendor class glob', '52:54:00:99:00:02', UEFI, 'uefi', 'match'],
    ['option 97 UUID', '52:54:00:99:00:03', [...BIOS, [97, GUID]] as Opts, 'guid', 'match'],
    ['user class iPXE', '52:54:00:99:00:04', [...BIOS, [77, 'iPXE']] as Opts, 'ipxe', 'match'],
    ['the first rule that matches (MAC before vendor class)', '52:54:00:12:00:01', UEFI, 'lab', 'match'],
    ['boot.assign before any rule', '52:54:00:00:00:aa', UEFI, 'debian', 'assign'],
    ['nothing: defaultProfile', '52:54:00:99:00:05', BIOS, 'debian', 'default'],
  ])('%s', (_what, mac, opts, profile, by) => {
    const m = msg(MessageType.DISCOVER, mac, opts);
    expect(chooseProfile(ctx(), classifyClient(m))).toMatchObject({ name: profile, by });
    expect(reply(decide(m, classifyClient(m), ctx()))).toMatchObject({ profile, profileBy: by });
  });

  it('a runtime assignment wins over everything', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:12:34:56', BIOS);
    expect(chooseProfile(ctx({ assigned: () => 'arm' }), classifyClient(m))).toMatchObject({ name: 'arm', by: 'runtime' });
  });

  it.each([
    ['52:54:00:*:*:*', '52:54:00:01:02:03', true],
    ['52-54-00-??-02-*', '52:54:00:ab:02:ff', true],
    ['52:54:00:1?:*:*', '52:54:00:21:00:00', false],
    ['52:54:00:*:*', '52:54:00:01:02:03', false],
  ])('macMatch(%s, %s) = %s', (p, mac, want) => expect(macMatch(p, mac)).toBe(want));

  it.each([
    ['PXEClient:Arch:00007*', 'PXEClient:Arch:00007:UNDI:003000', true],
    ['pxeclient*', 'PXEClient:Arch:00000', true],
    ['HTTPClient*', 'PXEClient:Arch:00016', false],
    ['a.b', 'axb', false],
  ])('globMatch(%s, %s) = %s', (p, t, want) => expect(globMatch(p, t)).toBe(want));
});

describe('known clients only (dhcp.knownClientsOnly)', () => {
  it.each([
    ['an unknown MAC: an address, no boot file, and the tracker told why', '52:54:00:99:01:01', false],
    ['a static MAC', '52:54:00:00:00:50', true],
    ['an assigned MAC', '52:54:00:00:00:aa', true],
    ['a MAC a boot.match rule names', '52:54:00:12:77:01', true],
  ])('%s', (_w, mac, known) => {
    const d = reply(decide(msg(MessageType.DISCOVER, mac, BIOS), classifyClient(msg(MessageType.DISCOVER, mac, BIOS)), ctx({}, { knownClientsOnly: true })));
    expect(d.event).toBe('dhcp.offer');
    expect(d.reply.file).toBe(known ? 'ipxe/undionly.kpxe' : '');
    expect(d.side.map((s) => s.type)).toEqual(known ? [] : ['dhcp.unknown-client']);
  });

  it('proxy mode says nothing to an unknown MAC (another server gives the address)', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:99:01:02', BIOS);
    expect(decide(m, classifyClient(m), ctx({ mode: 'proxy' }, { mode: 'proxy', knownClientsOnly: true }))).toMatchObject({ kind: 'ignore', reason: 'unknown-client' });
  });
});

describe('extra options (dhcp.options, a profile\'s dhcpOptions)', () => {
  const opts = { ntp: ['10.99.0.5'], domain: 'boot.lab', mtu: 1400, searchList: ['boot.lab', 'example.org'], classlessRoutes: [{ network: '0.0.0.0/0', gateway: '10.99.0.1' }, { network: '10.0.0.0/8', gateway: '10.99.0.254' }], vendorEncapsulated: '01:04:0a:63:00:01' };

  it('sends what the parameter request list asks for, encoded per its RFC', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:99:02:01', [[55, Buffer.from([1, 3, 6, 15, 26, 42, 43, 119, 121])]]);
    const o = reply(decide(m, classifyClient(m), ctx({}, { options: opts }))).reply.options;
    expect(o.ips(Opt.NtpServers)).toEqual(['10.99.0.5']);
    expect(o.str(Opt.DomainName)).toBe('boot.lab');
    expect(o.u16(Opt.InterfaceMtu)).toBe(1400);
    expect(o.get(Opt.DomainSearch)!.toString('hex')).toBe('04626f6f74036c616200' + '076578616d706c65036f726700'); // RFC 3397 §2 (RFC 1035 labels)
    expect(o.get(Opt.ClasslessStaticRoute)!.toString('hex')).toBe('00' + '0a630001' + '080a' + '0a6300fe'); // RFC 3442 §3
    expect(o.get(Opt.VendorSpecific)!.toString('hex')).toBe('01040a630001');
  });

  it('leaves out what was not asked for; a client without a PRL gets everything', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:99:02:02', [[55, Buffer.from([1, 3, 6, 42])]]);
    const o = reply(decide(m, classifyClient(m), ctx({}, { options: opts }))).reply.options;
    expect(o.has(Opt.NtpServers)).toBe(true);
    expect([Opt.DomainName, Opt.InterfaceMtu, Opt.DomainSearch, Opt.ClasslessStaticRoute].filter((c) => o.has(c))).toEqual([]);
    const n = msg(MessageType.DISCOVER, '52:54:00:99:02:03');
    expect(reply(decide(n, classifyClient(n), ctx({}, { options: opts }))).reply.options.has(Opt.DomainSearch)).toBe(true);
  });

  it('a profile\'s options win over the global ones; PXE option 43 wins over vendorEncapsulated', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:12:00:09', [...BIOS, [55, Buffer.from([15, 42, 43])]]); // the lab profile by MAC
    const o = reply(decide(m, classifyClient(m), ctx({}, { options: opts }))).reply.options;
    expect(o.str(Opt.DomainName)).toBe('lab.example');
    expect(o.ips(Opt.NtpServers)).toEqual(['10.99.0.9']);
    expect(decodePxeOptions(o.get(Opt.VendorSpecific)!).discoveryControl).toBe(8);
  });
});

describe('relay agents (dhcp.relaySubnets)', () => {
  const relaySubnets = () => [{ cfg: { network: '10.99.60.0/24', range: ['10.99.60.100', '10.99.60.110'] as [string, string], router: '10.99.60.1' }, net: '10.99.60.0', prefix: 24, leases: subnetLeases }];

  it('serves a giaddr of a configured subnet from its range, mask and router, back to the relay on 67, option 82 echoed last', () => {
    const rai = Buffer.from('0103616263', 'hex');
    const m = msg(MessageType.DISCOVER, '52:54:00:99:03:01', [[82, rai], [55, Buffer.from([1, 3])]], { giaddr: '10.99.60.1', hops: 1 });
    const d = reply(decide(m, classifyClient(m), ctx({ relaySubnets: relaySubnets() })));
    expect(d.ip).toBe('10.99.60.100');
    expect(d.to).toEqual({ address: '10.99.60.1', port: 67 });
    expect(d.reply.options.ip(Opt.SubnetMask)).toBe('255.255.255.0');
    expect(d.reply.options.ip(Opt.Router)).toBe('10.99.60.1');
    expect(d.reply.giaddr).toBe('10.99.60.1');
    const wire = encodeReply(d.reply, m).buf;
    expect(decodeDhcp(wire).options.get(Opt.RelayAgentInformation)).toEqual(rai);
    expect(decodeDhcp(wire).options.codes().at(-1)).toBe(Opt.RelayAgentInformation);
    // REQUEST → ACK commits into the subnet's own store
    const r = reply(decide(msg(MessageType.REQUEST, '52:54:00:99:03:01', [[54, Buffer.from([10, 99, 0, 1])], [50, Buffer.from([10, 99, 60, 100])]], { giaddr: '10.99.60.1' }), classifyClient(m), ctx({ relaySubnets: relaySubnets() })));
    expect(r.commit?.leases).toBe(subnetLeases);
  });

  it('still ignores a giaddr of no configured subnet, and NAKs an INIT-REBOOT for an address outside the relay\'s subnet', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:99:03:02', [], { giaddr: '10.99.61.1' });
    expect(decide(m, classifyClient(m), ctx({ relaySubnets: relaySubnets() }))).toMatchObject({ kind: 'ignore', reason: 'outside-lan' });
    const n = msg(MessageType.REQUEST, '52:54:00:99:03:02', [[50, Buffer.from([10, 99, 0, 105])]], { giaddr: '10.99.60.1' });
    const d = reply(decide(n, classifyClient(n), ctx({ relaySubnets: relaySubnets() })));
    expect(d.event).toBe('dhcp.nak');
    expect(d.reply.flags & 0x8000).toBe(0x8000); // RFC 2131 §4.3.2: the relay broadcasts it
  });
});

describe('PXE boot menu for BIOS PXE ROMs (option 43 sub-options 6, 8, 9, 10)', () => {
  const mac = '52:54:00:00:00:50'; // static, assigned the menu profile

  it('offers the menu with our boot servers and the prompt; discovery by broadcast to 67 in server mode, unicast to 4011 in proxy mode', () => {
    const m = msg(MessageType.DISCOVER, mac, BIOS);
    for (const [mode, dc] of [
      ['server', 2],
      ['proxy', 3],
    ] as const) {
      const d = reply(decide(m, classifyClient(m), ctx({ mode }, { mode })));
      const p = decodePxeOptions(d.reply.options.get(Opt.VendorSpecific)!);
      expect(p.discoveryControl).toBe(dc);
      expect(p.bootMenu).toEqual([
        { type: MENU_TYPE_BASE, description: 'Network boot (iPXE)' },
        { type: 0, description: 'Local disk' },
        { type: MENU_TYPE_BASE + 2, description: 'Memtest' },
      ]);
      expect(p.bootServers).toEqual([
        { type: MENU_TYPE_BASE, ips: ['10.99.0.1'] },
        { type: MENU_TYPE_BASE + 2, ips: ['10.99.0.1'] },
      ]);
      expect(p.menuPrompt).toEqual({ timeout: 5, prompt: 'F8 for the menu' });
      expect(d.reply.options.str(Opt.VendorClassIdentifier)).toBe('PXEClient');
    }
  });

  it('answers the boot server discovery REQUEST for an item with its loader and the item echoed', () => {
    const item = Buffer.from([71, 4, 0x80, 0x03, 0, 0, 255]);
    const m = msg(MessageType.REQUEST, mac, [...BIOS, [43, item]], { ciaddr: '10.99.0.50' });
    const d = reply(decide(m, classifyClient(m), ctx()));
    expect(d.event).toBe('proxy.ack');
    expect(messageType(d.reply)).toBe(MessageType.ACK);
    expect(d.reply.file).toBe('memtest/memtest.0');
    expect(decodePxeOptions(d.reply.options.get(Opt.VendorSpecific)!).bootItem).toEqual({ type: MENU_TYPE_BASE + 2, layer: 0 });
    expect(d.to).toEqual({ address: '10.99.0.50', port: 68 });
    // proxy mode: the same on 4011, back to where it came from
    const p = reply(decide(m, classifyClient(m), ctx({ mode: 'proxy', via: 'proxy', src: { address: '10.99.0.50', port: 4011 } }, { mode: 'proxy' })));
    expect(p).toMatchObject({ event: 'proxy.ack', to: { address: '10.99.0.50', port: 4011 } });
    expect(p.reply.file).toBe('memtest/memtest.0');
  });

  it('gives UEFI and iPXE clients of the same profile no menu', () => {
    const u = msg(MessageType.DISCOVER, mac, UEFI);
    expect(reply(decide(u, classifyClient(u), ctx())).reply.options.has(Opt.VendorSpecific)).toBe(false);
  });
});

describe('option 13 and the UEFI HTTP Boot URL', () => {
  it('sends the boot file size in 512-byte blocks when the cache knows it (RFC 2132 §3.7)', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:99:04:01', BIOS);
    const d = reply(decide(m, classifyClient(m), ctx({ bootFileSize: (p) => (p === 'ipxe/undionly.kpxe' ? 70_001 : undefined) })));
    expect(d.reply.options.u16(Opt.BootFileSize)).toBe(137);
    const n = reply(decide(m, classifyClient(m), ctx()));
    expect(n.reply.options.has(Opt.BootFileSize)).toBe(false);
  });

  it('percent-encodes the loader path in option 67 for UEFI HTTP Boot (RFC 3986)', () => {
    const m = msg(MessageType.DISCOVER, '52:54:00:99:04:02', [[60, 'HTTPClient:Arch:00016:UNDI:003001'], [93, Buffer.from([0, 16])]]);
    const d = reply(decide(m, classifyClient(m), ctx({ loaders: { 'uefi-x64': ['efi boot/ipxe#1.efi'] } })));
    expect(d.reply.options.str(Opt.BootFileName)).toBe('http://10.99.0.1:8080/files/efi%20boot/ipxe%231.efi');
    expect(() => new URL(d.reply.options.str(Opt.BootFileName)!)).not.toThrow();
  });
});

describe('loader fallback (issue 12 item 3)', () => {
  const GUID2 = Buffer.from('00' + 'aabbccdd' + '0011' + '2233' + '4455' + '66778899aabb', 'hex');
  const loaders2 = { 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] };
  function ackLoader(c: PolicyContext, mac: string, opts: Opts, xid: number) {
    const o = reply(decide(msg(MessageType.DISCOVER, mac, opts, { xid }), classifyClient(msg(MessageType.DISCOVER, mac, opts)), c));
    const rq = msg(MessageType.REQUEST, mac, [...opts, [54, Buffer.from([10, 99, 0, 1])], [50, Buffer.from(o.ip!.split('.').map(Number))]], { xid });
    return reply(decide(rq, classifyClient(rq), c));
  }

  it.each([
    ['iPXE on the same MAC', '52:54:00:99:05:01', [...UEFI] as Opts],
    ['iPXE on another NIC of the same machine (same option 97 GUID)', '52:54:00:99:05:99', [...UEFI, [97, GUID2]] as Opts],
  ])('no fallback after %s asked for an address', (_w, ipxeMac, ipxeOpts) => {
    const history = new BootHistory();
    let now = 1_000_000;
    const c = () => ctx({ loaders: loaders2, history, now });
    const fw: Opts = [...UEFI, [97, GUID2]];
    expect(ackLoader(c(), '52:54:00:99:05:01', fw, 1).reply.file).toBe('ipxe/snponly.efi');
    now += 5_000;
    const ipxe = msg(MessageType.DISCOVER, ipxeMac, [...ipxeOpts, [77, 'iPXE']], { xid: 2 });
    expect(reply(decide(ipxe, classifyClient(ipxe), c())).boot?.role).toBe('script');
    now += 5_000;
    const again = msg(MessageType.DISCOVER, '52:54:00:99:05:01', fw, { xid: 3 });
    const d = reply(decide(again, classifyClient(again), c()));
    expect(d.reply.file).toBe('ipxe/snponly.efi');
    expect(d.side).toEqual([]);
    // and the same without iPXE in between: the fallback (the check can fail)
    const h2 = new BootHistory();
    const c2 = () => ctx({ loaders: loaders2, history: h2, now });
    ackLoader(c2(), '52:54:00:99:05:02', UEFI, 4);
    const next = msg(MessageType.DISCOVER, '52:54:00:99:05:02', UEFI, { xid: 5 });
    expect(reply(decide(next, classifyClient(next), c2())).side.map((s) => s.type)).toEqual(['dhcp.loader-fallback']);
  });
});
