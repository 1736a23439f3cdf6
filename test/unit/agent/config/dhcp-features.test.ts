/** Issue 12: the dnsmasq-style config fields, validated at load with the field named. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../agent/config/load';

function base(): Record<string, any> {
  return {
    lan: { address: '10.99.0.1', prefix: 24 },
    upstream: { url: 'http://10.99.1.2/boot/' },
    boot: {
      loaders: { bios: 'ipxe/undionly.kpxe' },
      defaultProfile: 'debian',
      profiles: { debian: { kernel: 'debian/vmlinuz' }, lab: { kernel: 'lab/vmlinuz' } },
    },
  };
}
function messages(obj: unknown): string[] {
  const r = parseConfig(obj);
  return r.ok ? [] : r.issues.map((i) => i.message);
}
function withDhcp(d: Record<string, unknown>) {
  const c = base();
  c.dhcp = d;
  return c;
}
function withBoot(f: (b: Record<string, any>) => void) {
  const c = base();
  f(c.boot);
  return c;
}

describe('config: issue 12 DHCP features', () => {
  it('accepts the full set and keeps it', () => {
    const c = base();
    c.dhcp = {
      options: { ntp: ['10.99.0.5'], domain: 'lab', mtu: 1400, searchList: ['lab', 'example.org'], classlessRoutes: [{ network: '0.0.0.0/0', gateway: '10.99.0.1' }], vendorEncapsulated: '01:02:03' },
      knownClientsOnly: true,
      relaySubnets: [{ network: '10.99.60.0/24', range: ['10.99.60.100', '10.99.60.199'], router: '10.99.60.1', dns: ['10.99.0.1'] }],
    };
    c.boot.match = [{ profile: 'lab', mac: '52:54:00:*:*:*' }, { profile: 'lab', vendorClass: 'PXEClient:Arch:00007*', arch: 7 }];
    c.boot.profiles.lab.dhcpOptions = { domain: 'lab.example' };
    c.boot.profiles.lab.pxeMenu = { prompt: 'F8', timeout: 5, items: [{ label: 'iPXE', loader: 'ipxe/undionly.kpxe' }, { label: 'disk', loader: 'local' }] };
    const r = parseConfig(c);
    expect(r.ok ? [] : r.issues.map((i) => i.message)).toEqual([]);
    if (!r.ok) return;
    expect(r.config.dhcp).toMatchObject({ knownClientsOnly: true, options: { mtu: 1400 }, relaySubnets: [{ network: '10.99.60.0/24' }] });
    expect(r.config.boot.match).toHaveLength(2);
    expect(r.config.boot.profiles.lab!.pxeMenu!.items[1]).toEqual({ label: 'disk', loader: 'local' });
  });

  it.each([
    [{ options: { ntp: ['10.99.0.300'] } }, 'dhcp.options.ntp[0]: expected an IPv4 address'],
    [{ options: { mtu: 40 } }, 'dhcp.options.mtu: expected an MTU from 68 to 65535'],
    [{ options: { domain: 'bad_domain!' } }, 'dhcp.options.domain: expected a domain name'],
    [{ options: { searchList: [] } }, 'dhcp.options.searchList: expected a list of domain names'],
    [{ options: { classlessRoutes: [{ network: '10.0.0.1/8', gateway: '10.99.0.1' }] } }, 'dhcp.options.classlessRoutes[0].network: expected a network in CIDR form (10.0.0.1/8 has host bits set)'],
    [{ options: { classlessRoutes: [{ network: '10.0.0.0/8' }] } }, 'dhcp.options.classlessRoutes[0].gateway: expected an IPv4 address'],
    [{ options: { vendorEncapsulated: 'xyz' } }, 'dhcp.options.vendorEncapsulated: expected hex bytes'],
    [{ options: { wins: '1.2.3.4' } }, 'dhcp.options.wins: expected one of the keys'],
    [{ knownClientsOnly: 'yes' }, 'dhcp.knownClientsOnly: expected true or false'],
    [{ relaySubnets: [{ network: '10.99.60.1/24', range: ['10.99.60.10', '10.99.60.20'] }] }, 'dhcp.relaySubnets[0].network: expected a network in CIDR form'],
    [{ relaySubnets: [{ network: '10.99.0.0/24', range: ['10.99.0.10', '10.99.0.20'] }] }, 'dhcp.relaySubnets[0].network: expected a network other than the LAN'],
    [{ relaySubnets: [{ network: '10.99.60.0/24', range: ['10.99.61.10', '10.99.60.20'] }] }, 'dhcp.relaySubnets[0].range[0]: expected an IPv4 address inside 10.99.60.0/24'],
  ])('dhcp %j → %s', (d, msg) => {
    expect(messages(withDhcp(d)).join('\n')).toContain(msg);
  });

  it.each([
    [(b: any) => (b.match = [{ profile: 'nope', mac: '52:54:00:*:*:*' }]), 'boot.match[0].profile: expected a profile name (debian, lab)'],
    [(b: any) => (b.match = [{ profile: 'lab', mac: '52:54:*' }]), 'boot.match[0].mac: expected a MAC pattern'],
    [(b: any) => (b.match = [{ profile: 'lab' }]), 'boot.match[0]: expected at least one of mac, vendorClass, userClass, arch, uuid'],
    [(b: any) => (b.match = [{ profile: 'lab', arch: 'x64' }]), 'boot.match[0].arch: expected an option 93 architecture code'],
    [(b: any) => (b.match = [{ profile: 'lab', uuid: 'abc' }]), 'boot.match[0].uuid: expected a GUID'],
    [(b: any) => (b.profiles.lab.pxeMenu = { items: [] }), 'boot.profiles.lab.pxeMenu.items: expected a list of 1 to 32'],
    [(b: any) => (b.profiles.lab.pxeMenu = { items: [{ label: 'x', loader: 'a/' + 'b'.repeat(130) }] }), 'boot.profiles.lab.pxeMenu.items[0].loader: expected a path of at most 127 bytes'],
    [(b: any) => (b.profiles.lab.dhcpOptions = { mtu: 'big' }), 'boot.profiles.lab.dhcpOptions.mtu: expected an MTU'],
    [(b: any) => (b.profiles.lab.cmdline = 'console=ttyS0 ip=${ip}'), 'boot.profiles.lab.cmdline: expected a command line without ${…}'],
    [(b: any) => (b.loaders.bios = 'x/' + 'y'.repeat(130)), 'boot.loaders.bios: expected a path of at most 127 bytes (BIOS PXE ROMs read the 128-byte BOOTP file field)'],
  ])('boot field %# named in the error', (f, msg) => {
    expect(messages(withBoot(f)).join('\n')).toContain(msg);
  });

  it('warns when classless routes leave out the default route (RFC 3442: option 3 is then ignored)', () => {
    const r = parseConfig(withDhcp({ options: { classlessRoutes: [{ network: '10.0.0.0/8', gateway: '10.99.0.254' }] } }));
    expect(r.warnings.join('\n')).toMatch(/dhcp\.options\.classlessRoutes: clients that use option 121 ignore the router/);
  });
});
