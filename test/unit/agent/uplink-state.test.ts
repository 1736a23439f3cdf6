import { describe, expect, it } from 'vitest';
import { UplinkState, type UplinkWord } from '../../../agent/uplink/state';
import type { UplinkStatus } from '../../../agent/uplink/status';
import type { EventInput } from '../../../proto/events';

describe('UplinkState (the one source of uplink.up / uplink.down)', () => {
  it('merges the link reading and the upstream word, announcing only changes, and a first "up" not at all', () => {
    let link: UplinkStatus | undefined;
    let upstream: UplinkWord = 'unknown';
    const events: EventInput[] = [];
    const u = new UplinkState({ link: () => link, upstream: () => upstream, emit: (e) => events.push(e) });
    u.changed();
    expect(u.state).toBe('unknown');
    upstream = 'up';
    u.changed();
    expect(u.state).toBe('up');
    expect(events).toEqual([]);
    upstream = 'down';
    u.changed('connect ECONNREFUSED');
    expect(events).toEqual([{ type: 'uplink.down', reason: 'connect ECONNREFUSED' }]);
    link = { up: false, interface: 'phy0-sta0', reason: 'connecting', source: 'ubus' } as UplinkStatus;
    u.changed();
    expect(events).toHaveLength(1); // still down: nothing new
    link = { up: true, interface: 'phy0-sta0', ssid: 'HotelWiFi', source: 'ubus' } as UplinkStatus;
    upstream = 'unknown'; // the cache forgets its word when the link comes back
    u.changed();
    expect(u.state).toBe('up');
    expect(events.at(-1)).toEqual({ type: 'uplink.up', interface: 'phy0-sta0', ssid: 'HotelWiFi' });
    link = { up: false, interface: 'phy0-sta0', reason: 'device not available', source: 'ubus' } as UplinkStatus;
    u.changed();
    expect(events.at(-1)).toEqual({ type: 'uplink.down', interface: 'phy0-sta0', reason: 'device not available' });
  });
});
