/** Issue 12: UCI forms of the DHCP features (extra options, known clients, relay subnets, match rules, PXE menu). */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../agent/config/load';
import { uciToConfigObject } from '../../../agent/config/uci';

const TEXT = `
config lan
\toption address '10.99.0.1'
\toption prefix '24'
config dhcp
\toption known_clients_only '1'
\tlist ntp '10.99.0.5'
\toption domain 'boot.lab'
\toption mtu '1400'
\tlist search 'boot.lab'
\tlist search 'example.org'
\tlist classless_route '0.0.0.0/0 10.99.0.1'
\tlist classless_route '10.0.0.0/8 10.99.0.254'
\toption vendor_encapsulated '01:04:0a:63:00:01'
config relay_subnet
\toption network '10.99.60.0/24'
\toption range_start '10.99.60.100'
\toption range_end '10.99.60.199'
\toption router '10.99.60.1'
config upstream
\toption url 'http://10.99.1.2/boot/'
config loader
\toption arch 'bios'
\tlist path 'ipxe/undionly.kpxe'
config boot
\toption default_profile 'debian'
config profile 'debian'
\toption kernel 'debian/vmlinuz'
config profile 'lab'
\toption kernel 'lab/vmlinuz'
\toption domain 'lab.example'
\toption menu_prompt 'F8 for the menu'
\toption menu_timeout '5'
\tlist menu_item 'ipxe/undionly.kpxe Network boot (iPXE)'
\tlist menu_item 'local Local disk'
config match
\toption profile 'lab'
\toption vendor_class 'PXEClient:Arch:00007*'
config match
\toption profile 'lab'
\toption mac '52:54:00:*:*:*'
\toption arch '0'
`;

describe('UCI: issue 12 DHCP features', () => {
  it('maps every new section and option onto the validated config', () => {
    const { config, issues } = uciToConfigObject(TEXT);
    expect(issues).toEqual([]);
    const r = parseConfig(config);
    expect(r.ok ? [] : r.issues.map((i) => i.message)).toEqual([]);
    if (!r.ok) return;
    expect(r.config.dhcp).toMatchObject({
      knownClientsOnly: true,
      options: {
        ntp: ['10.99.0.5'],
        domain: 'boot.lab',
        mtu: 1400,
        searchList: ['boot.lab', 'example.org'],
        classlessRoutes: [
          { network: '0.0.0.0/0', gateway: '10.99.0.1' },
          { network: '10.0.0.0/8', gateway: '10.99.0.254' },
        ],
        vendorEncapsulated: '01:04:0a:63:00:01',
      },
      relaySubnets: [{ network: '10.99.60.0/24', range: ['10.99.60.100', '10.99.60.199'], router: '10.99.60.1' }],
    });
    expect(r.config.boot.match).toEqual([
      { profile: 'lab', vendorClass: 'PXEClient:Arch:00007*' },
      { profile: 'lab', mac: '52:54:00:*:*:*', arch: 0 },
    ]);
    expect(r.config.boot.profiles.lab).toMatchObject({
      dhcpOptions: { domain: 'lab.example' },
      pxeMenu: { prompt: 'F8 for the menu', timeout: 5, items: [{ loader: 'ipxe/undionly.kpxe', label: 'Network boot (iPXE)' }, { loader: 'local', label: 'Local disk' }] },
    });
  });

  it('names the UCI option of a malformed route, and the config field of a bad value', () => {
    const { issues } = uciToConfigObject("config dhcp\n\tlist classless_route '10.0.0.0/8'\n");
    expect(issues.join('\n')).toMatch(/classless_route: expected "NETWORK\/PREFIX GATEWAY"/);
    const { config } = uciToConfigObject(TEXT.replace("option mtu '1400'", "option mtu '20'"));
    const r = parseConfig(config);
    expect(r.ok ? '' : r.issues.map((i) => i.message).join('\n')).toMatch(/dhcp\.options\.mtu: expected an MTU from 68 to 65535, got 20/);
  });
});
