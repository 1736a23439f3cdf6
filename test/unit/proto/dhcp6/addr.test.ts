import { describe, expect, it } from 'vitest';
import { bigIntToIp6, canonicalIp6, formatIp6, inPrefix6, ip6ToBigInt, isLinkLocal6, linkLocalFromMac, macFromEui64, parseIp6, urlHost } from '../../../../proto/dhcp6/addr';

describe('IPv6 addresses', () => {
  it('formats as RFC 5952 says', () => {
    const cases: Array<[string, string]> = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['FD99:6::100', 'fd99:6::100'],
      ['::', '::'],
      ['::1', '::1'],
      ['fe80::', 'fe80::'],
      ['::ffff:10.99.0.1', '::ffff:a63:1'],
      ['[fe80::1%eth0]', 'fe80::1'],
    ];
    for (const [i, o] of cases) expect(canonicalIp6(i), i).toBe(o);
  });

  it('refuses what is not an address', () => {
    for (const s of ['', ':', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::1', '10.0.0.1', '1:2:3:4:5:6:7']) expect(parseIp6(s), s).toBeUndefined();
  });

  it('arithmetic, prefixes, EUI-64', () => {
    expect(bigIntToIp6(ip6ToBigInt('fd99:6::1ff') + 1n)).toBe('fd99:6::200');
    expect(inPrefix6('fd99:6::100', 'fd99:6::', 64)).toBe(true);
    expect(inPrefix6('fd99:7::100', 'fd99:6::', 64)).toBe(false);
    expect(isLinkLocal6('fe80::5054:ff:fe6a:1')).toBe(true);
    expect(macFromEui64('fe80::5054:ff:fe6a:1')).toBe('52:54:00:6a:00:01');
    expect(macFromEui64('fe80::1')).toBeUndefined();
    expect(linkLocalFromMac('52:54:00:6a:00:01')).toBe('fe80::5054:ff:fe6a:1');
    expect(formatIp6(parseIp6('fd99::1')!)).toBe('fd99::1');
    expect(urlHost('fd99::1')).toBe('[fd99::1]');
    expect(urlHost('10.99.0.1')).toBe('10.99.0.1');
  });
});
