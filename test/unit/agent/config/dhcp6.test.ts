import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../agent/config/load';
import { uciToConfigObject } from '../../../../agent/config/uci';

function base(lan: Record<string, unknown> = {}, dhcp6?: Record<string, unknown>): Record<string, any> {
  return {
    lan: { address: '10.99.0.1', prefix: 24, ...lan },
    ...(dhcp6 ? { dhcp6 } : {}),
    upstream: { url: 'http://10.99.1.2/boot/' },
    boot: { loaders: { 'uefi-x64': 'ipxe/snponly.efi' }, defaultProfile: 'd', profiles: { d: { kernel: 'd/vmlinuz' } } },
  };
}

function messages(obj: unknown): string[] {
  const r = parseConfig(obj);
  return r.ok ? [] : r.issues.map((i) => i.message);
}

describe('config: lan.address6 and dhcp6', () => {
  it('is off by default, with or without an IPv6 address', () => {
    const r = parseConfig(base());
    expect(r.ok && r.config.dhcp6.mode).toBe('off');
    expect(r.ok && r.config.lan.address6).toBeUndefined();
  });

  it('derives the range from lan.address6/prefix6 and canonicalises addresses', () => {
    const r = parseConfig(base({ address6: 'FD99:6:0:0::1' }, { mode: 'server' }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.lan).toMatchObject({ address6: 'fd99:6::1', prefix6: 64 });
    expect(r.config.dhcp6).toEqual({ mode: 'server', port: 547, range: ['fd99:6::1000', 'fd99:6::1fff'], leaseSeconds: 3600, preference: 255 });
  });

  it('takes an explicit range, stateless mode, lease time', () => {
    const r = parseConfig(base({ address6: 'fd99:6::1', prefix6: 64 }, { mode: 'stateless', range: ['fd99:6::100', 'fd99:6::1ff'], leaseSeconds: 600, port: 0 }));
    expect(r.ok && r.config.dhcp6).toMatchObject({ mode: 'stateless', range: ['fd99:6::100', 'fd99:6::1ff'], leaseSeconds: 600, port: 0 });
  });

  it('names the field of every mistake', () => {
    expect(messages(base({}, { mode: 'server' }))).toContain('lan.address6: expected an IPv6 address (dhcp6.mode is "server"), got nothing');
    expect(messages(base({ address6: 'fe80::1' }))).toEqual(['lan.address6: expected a global or unique-local IPv6 address (not link-local, multicast, loopback or ::), got "fe80::1"']);
    expect(messages(base({ address6: '10.99.0.1' }))[0]).toMatch(/^lan\.address6: expected an IPv6 address/);
    expect(messages(base({ prefix6: 64 }))[0]).toMatch(/^lan\.address6: expected an IPv6 address \(lan\.prefix6 is set\)/);
    expect(messages(base({ address6: 'fd99:6::1', prefix6: 129 }))[0]).toMatch(/^lan\.prefix6: expected a prefix length from 8 to 128, got 129/);
    expect(messages(base({ address6: 'fd99:6::1' }, { mode: 'dhcp' }))[0]).toMatch(/^dhcp6\.mode: expected one of "server", "stateless", "off"/);
    expect(messages(base({ address6: 'fd99:6::1' }, { mode: 'server', range: ['fd99:7::1', 'fd99:6::9'] }))).toEqual(['dhcp6.range[0]: expected an IPv6 address inside fd99:6::1/64, got "fd99:7::1"']);
    expect(messages(base({ address6: 'fd99:6::1' }, { mode: 'server', range: ['fd99:6::9', 'fd99:6::2'] }))).toEqual(['dhcp6.range: expected first address not after the last, got ["fd99:6::9","fd99:6::2"]']);
    expect(messages(base({ address6: 'fd99:6::1' }, { mode: 'server', range: ['fd99:6::0', 'fd99:6::9'] }))[0]).toMatch(/^dhcp6\.range: expected a range that leaves out lan\.address6 fd99:6::1/);
    expect(messages(base({ address6: 'fd99:6::1' }, { mode: 'server', range: 'fd99:6::9' }))[0]).toMatch(/^dhcp6\.range: expected a list of two IPv6 addresses/);
    expect(messages(base({ address6: 'fd99:6::1' }, { mode: 'server', leaseSeconds: 5 }))[0]).toMatch(/^dhcp6\.leaseSeconds: expected seconds from 60/);
    expect(messages(base({ address6: 'fd99:6::1' }, { mode: 'server', foo: 1 }))[0]).toMatch(/^dhcp6\.foo: expected one of the keys/);
  });

  it('has UCI forms', () => {
    const uci = `
config lan
	option address 10.99.0.1
	option address6 fd99:6::1
	option prefix6 64

config dhcp6
	option mode server
	option range_start fd99:6::100
	option range_end fd99:6::1ff
	option lease_seconds 900

config upstream
	option url http://10.99.1.2/boot/
`;
    const { config, issues } = uciToConfigObject(uci);
    expect(issues).toEqual([]);
    expect(config).toMatchObject({ lan: { address6: 'fd99:6::1', prefix6: 64 }, dhcp6: { mode: 'server', range: ['fd99:6::100', 'fd99:6::1ff'], leaseSeconds: 900 } });
    const list = uciToConfigObject("config dhcp6\n\toption mode stateless\n\tlist range 'fd99:6::100-fd99:6::1ff'\n");
    expect(list.config).toMatchObject({ dhcp6: { mode: 'stateless', range: ['fd99:6::100', 'fd99:6::1ff'] } });
    expect(uciToConfigObject('config dhcp6\n\toption lease_seconds abc\n').issues[0]).toMatch(/^bootrelay\.@dhcp6\[0\]\.lease_seconds: expected an integer/);
    expect(uciToConfigObject('config dhcp6\n\toption bogus 1\n').issues[0]).toMatch(/bootrelay\.@dhcp6\[0\]\.bogus/);
  });
});
