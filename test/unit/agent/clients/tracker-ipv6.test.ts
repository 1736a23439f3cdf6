/** The tracker over DHCPv6 and IPv6 transfers: same phases, the IPv6 address in `ip6`, one client per MAC. */
import { describe, expect, it } from 'vitest';
import { ClientTracker, type ClientState } from '../../../../agent/clients/tracker';
import type { BootConfig } from '../../../../agent/config/types';
import type { RelayEventType } from '../../../../proto/events';
import { BootPlan } from '../../../../relay/boot/plan';
import { scripted, type EventFields } from '../../../helpers/events';

const BOOT: BootConfig = {
  loaders: { 'uefi-x64': ['ipxe/snponly.efi'] },
  defaultProfile: 'debian',
  profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'] } },
  assign: {},
};
const MAC = '52:54:00:66:00:01';
const IP6 = 'fd99:60::1000';

function setup() {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const t = new ClientTracker({ plan: new BootPlan({ boot: BOOT }), now: () => now });
  const states: ClientState[] = [];
  t.on('client', (u) => states.push(u.state));
  const ev = <T extends RelayEventType>(type: T, f: EventFields<T> = {}) => {
    now += 100;
    return t.apply(scripted(type, { mac: MAC, ...f }));
  };
  return { t, ev, states };
}

describe('ClientTracker with IPv6', () => {
  it('PXEv6 → loader over TFTP/IPv6 → iPXE over DHCPv6 → kernel over HTTP/IPv6: phases in order, ip6 kept', () => {
    const { t, ev } = setup();
    const pxe = { firmware: 'uefi', arch: 'uefi-x64' } as const;
    ev('dhcp6.solicit', { ...pxe, xid: '0x000001' });
    expect(t.get(MAC)?.phase).toBe('dhcp');
    ev('dhcp6.advertise', { ...pxe, ip6: IP6, file: 'ipxe/snponly.efi', role: 'loader', url: 'tftp://[fd99:60::1]/ipxe/snponly.efi' });
    ev('dhcp6.request', pxe);
    ev('dhcp6.reply', { ...pxe, ip6: IP6, file: 'ipxe/snponly.efi', role: 'loader', url: 'tftp://[fd99:60::1]/ipxe/snponly.efi' });
    expect(t.get(MAC)).toMatchObject({ phase: 'bound', ip6: IP6, ip: null, bootFile: 'ipxe/snponly.efi' });
    ev('tftp.start', { ip: IP6, file: 'ipxe/snponly.efi', role: 'loader' });
    ev('tftp.done', { ip: IP6, file: 'ipxe/snponly.efi', role: 'loader', bytes: 100 });
    expect(t.get(MAC)?.phase).toBe('loader');
    ev('dhcp6.solicit', { firmware: 'ipxe', arch: 'uefi-x64' });
    expect(t.get(MAC)?.phase).toBe('ipxe');
    ev('dhcp6.reply', { firmware: 'ipxe', ip6: IP6, file: '/boot.ipxe', role: 'script', url: `http://[fd99:60::1]/boot.ipxe?mac=${MAC}` });
    ev('http.start', { ip: IP6, file: 'debian/vmlinuz', role: 'kernel' });
    expect(t.get(MAC)).toMatchObject({ phase: 'kernel', ip6: IP6, ip: null });
    // TFTP/HTTP events without a MAC find the client by its IPv6 address
    expect(t.macForIp(IP6)).toBe(MAC);
  });

  it('a dual-stack client shows both addresses in one state', () => {
    const { t, ev } = setup();
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-x64' });
    ev('dhcp.ack', { firmware: 'uefi', arch: 'uefi-x64', ip: '10.99.60.100', file: 'ipxe/snponly.efi' });
    ev('dhcp6.reply', { firmware: 'other', ip6: IP6 });
    expect(t.list()).toHaveLength(1);
    expect(t.get(MAC)).toMatchObject({ ip: '10.99.60.100', ip6: IP6 });
  });

  it('a DHCPv6 pool exhausted or no loader fails the client with a sentence', () => {
    const { t, ev } = setup();
    ev('dhcp6.solicit', { firmware: 'uefi', arch: 'uefi-x64' });
    ev('dhcp6.pool-exhausted', { firmware: 'uefi', range: ['fd99:60::1000', 'fd99:60::1003'] });
    expect(t.get(MAC)).toMatchObject({ phase: 'failed' });
    expect(t.get(MAC)?.error).toMatch(/DHCPv6 pool is exhausted/);
  });

  it('a phone doing DHCPv6 is not a boot', () => {
    const { t, ev } = setup();
    ev('dhcp6.solicit', { firmware: 'other', arch: 'unknown' });
    ev('dhcp6.reply', { firmware: 'other', arch: 'unknown', ip6: IP6 });
    expect(t.list()).toEqual([]);
  });
});
