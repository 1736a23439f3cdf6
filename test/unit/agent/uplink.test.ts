import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindUplinkEvents, isUplinkTransition, UplinkMonitor, uplinkEvent } from '../../../agent/uplink/monitor';
import {
  defaultExec,
  parseIpStatus,
  parseIwinfoInfo,
  parseUbusInterfaceStatus,
  readUplinkStatus,
  type Exec,
  type ExecResult,
  type UplinkStatus,
} from '../../../agent/uplink/status';
import { itSkipIf, missingCmds } from '../../helpers/skip';

const fx = (name: string): string => readFileSync(join(__dirname, '../../fixtures/uplink', name), 'utf8');
const now = () => new Date('2026-01-01T00:00:00Z');

/** A command runner answering from recorded outputs; records the calls. */
function recorded(table: Record<string, ExecResult | 'ENOENT'>): Exec & { calls: string[] } {
  const calls: string[] = [];
  const exec = (async (cmd: string, args: string[]) => {
    const key = [cmd, ...args].join(' ');
    calls.push(key);
    const r = table[key] ?? table[cmd];
    if (r === undefined || r === 'ENOENT') return { code: null, stdout: '', stderr: '', error: 'ENOENT' };
    return r;
  }) as Exec & { calls: string[] };
  exec.calls = calls;
  return exec;
}
const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' });
const notFound: ExecResult = { code: 4, stdout: '', stderr: fx('ubus-not-found.stderr') };

describe('parseUbusInterfaceStatus', () => {
  it('reads an up wwan: device, address, gateway, uptime', () => {
    expect(parseUbusInterfaceStatus(JSON.parse(fx('ubus-wwan-up.json')), 'wwan')).toEqual({
      up: true,
      network: 'wwan',
      interface: 'phy0-sta0',
      address: '192.168.8.123',
      prefix: 24,
      gateway: '192.168.8.1',
      uptimeSeconds: 1234,
    });
  });

  it.each([
    ['ubus-wwan-down.json', 'device not available'],
    ['ubus-wwan-pending.json', 'connecting'],
  ])('reads %s as down because %s', (file, reason) => {
    const st = parseUbusInterfaceStatus(JSON.parse(fx(file)), 'wwan');
    expect(st?.up).toBe(false);
    expect(st?.reason).toBe(reason);
  });

  it('rejects what is not a netifd status', () => {
    expect(parseUbusInterfaceStatus({ foo: 1 })).toBeUndefined();
    expect(parseUbusInterfaceStatus('x')).toBeUndefined();
  });
});

describe('parseIwinfoInfo', () => {
  it('reads an associated station', () => {
    expect(parseIwinfoInfo(fx('iwinfo-phy0-sta0-associated.txt'))).toEqual({
      ssid: 'HotelWiFi',
      bssid: '4c:5e:0c:11:22:33',
      signalDbm: -58,
      noiseDbm: -95,
      bitrateMbit: 72.2,
      quality: 74,
    });
  });

  it('reads a 5 GHz station with a non-ASCII SSID', () => {
    expect(parseIwinfoInfo(fx('iwinfo-phy1-sta0-5ghz.txt'))).toMatchObject({ ssid: 'Café Guest 5G', signalDbm: -49, bitrateMbit: 866.7, quality: 87 });
  });

  it('leaves out what iwinfo calls unknown', () => {
    expect(parseIwinfoInfo(fx('iwinfo-phy0-sta0-unassociated.txt'))).toEqual({ noiseDbm: -95 });
  });
});

describe('parseIpStatus', () => {
  it('finds the default-route interface in the outputs captured on this machine', () => {
    const st = parseIpStatus(JSON.parse(fx('ip-route-default.json')), JSON.parse(fx('ip-addr.json')));
    expect(st).toEqual({ up: true, interface: 'eth0', gateway: '192.0.2.1', address: '192.0.2.2', prefix: 24 });
  });

  it('is down without a default route', () => {
    expect(parseIpStatus(JSON.parse(fx('ip-route-default-none.json')), JSON.parse(fx('ip-addr-isolated.json')))).toEqual({
      up: false,
      reason: 'no default route',
    });
  });

  it('is down when the route points at a link that is down or gone', () => {
    const addrs = JSON.parse(fx('ip-addr.json')) as Array<Record<string, unknown>>;
    const eth0 = addrs.find((l) => l.ifname === 'eth0')!;
    eth0.operstate = 'DOWN';
    eth0.flags = ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP'];
    const route = JSON.parse(fx('ip-route-default.json'));
    expect(parseIpStatus(route, addrs)).toMatchObject({ up: false, interface: 'eth0', reason: 'link down' });
    expect(parseIpStatus([{ dst: 'default', dev: 'wlan9' }], addrs)).toMatchObject({ up: false, reason: 'interface wlan9 not found' });
  });

  it('prefers the default route with the lowest metric', () => {
    const addrs = JSON.parse(fx('ip-addr.json'));
    const st = parseIpStatus(
      [
        { dst: 'default', gateway: '10.0.0.1', dev: 'lo', metric: 600 },
        { dst: 'default', gateway: '192.0.2.1', dev: 'eth0', metric: 100 },
      ],
      addrs,
    );
    expect(st.interface).toBe('eth0');
  });
});

describe('readUplinkStatus', () => {
  it('on OpenWrt reads netifd wwan and iwinfo for its device', async () => {
    const exec = recorded({
      'ubus call network.interface.wwan status': ok(fx('ubus-wwan-up.json')),
      'iwinfo phy0-sta0 info': ok(fx('iwinfo-phy0-sta0-associated.txt')),
    });
    const st = await readUplinkStatus(exec, { now });
    expect(st).toEqual({
      up: true,
      network: 'wwan',
      interface: 'phy0-sta0',
      address: '192.168.8.123',
      prefix: 24,
      gateway: '192.168.8.1',
      uptimeSeconds: 1234,
      ssid: 'HotelWiFi',
      bssid: '4c:5e:0c:11:22:33',
      signalDbm: -58,
      noiseDbm: -95,
      bitrateMbit: 72.2,
      quality: 74,
      source: 'ubus',
      checkedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(exec.calls).toEqual(['ubus call network.interface.wwan status', 'iwinfo phy0-sta0 info']);
  });

  it('falls back to wan when wwan is down, and reports wwan when nothing is up', async () => {
    const wired = recorded({
      'ubus call network.interface.wwan status': ok(fx('ubus-wwan-down.json')),
      'ubus call network.interface.wan status': ok(fx('ubus-wan-up.json')),
      'iwinfo eth1 info': { code: 1, stdout: '', stderr: 'No such wireless device: eth1' },
    });
    expect(await readUplinkStatus(wired, { now })).toMatchObject({ up: true, network: 'wan', interface: 'eth1', address: '10.20.30.44', prefix: 22 });

    const none = recorded({
      'ubus call network.interface.wwan status': ok(fx('ubus-wwan-pending.json')),
      'ubus call network.interface.wan status': notFound,
      'iwinfo phy0-sta0 info': ok(fx('iwinfo-phy0-sta0-unassociated.txt')),
    });
    expect(await readUplinkStatus(none, { now })).toMatchObject({ up: false, network: 'wwan', interface: 'phy0-sta0', reason: 'connecting', source: 'ubus' });
  });

  it('says so when none of the networks exists', async () => {
    const exec = recorded({ ubus: notFound });
    expect(await readUplinkStatus(exec, { now })).toMatchObject({ up: false, source: 'ubus', reason: 'no uplink network (wwan, wan)' });
  });

  it('uses ip -j where there is no ubus', async () => {
    const exec = recorded({
      ubus: 'ENOENT',
      'ip -j route show default': ok(fx('ip-route-default.json')),
      'ip -j addr show': ok(fx('ip-addr.json')),
    });
    expect(await readUplinkStatus(exec, { now })).toEqual({
      up: true,
      interface: 'eth0',
      gateway: '192.0.2.1',
      address: '192.0.2.2',
      prefix: 24,
      source: 'ip',
      checkedAt: '2026-01-01T00:00:00.000Z',
    });
  });

  it('never throws when nothing can be run', async () => {
    const st = await readUplinkStatus(recorded({}), { now });
    expect(st).toMatchObject({ up: false, source: 'none', reason: 'ip route failed: ENOENT' });
  });

  itSkipIf(missingCmds('ip'))('reads this machine with the real ip command', async () => {
    const st = await readUplinkStatus(defaultExec, { prefer: 'ip' });
    expect(st.source).toBe('ip');
    expect(typeof st.up).toBe('boolean');
    if (st.up) expect(st.address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  });

  it('reports a missing program as ENOENT through the default runner', async () => {
    // ENOENT; EACCES when run unprivileged with a PATH entry it may not read
    const r = await defaultExec('bootrelay-no-such-program', []);
    expect(r.code).toBeNull();
    expect(r.error).toMatch(/^(ENOENT|EACCES)$/);
  });
});

describe('UplinkMonitor', () => {
  const status = (up: boolean, extra: Partial<UplinkStatus> = {}): UplinkStatus => ({
    up,
    source: 'ubus',
    interface: 'phy0-sta0',
    checkedAt: now().toISOString(),
    ...extra,
  });

  it('reports the first reading and each transition, not signal changes', async () => {
    const readings = [
      status(true, { ssid: 'HotelWiFi', signalDbm: -58 }),
      status(true, { ssid: 'HotelWiFi', signalDbm: -61 }),
      status(false, { reason: 'connecting' }),
      status(false, { reason: 'connecting' }),
      status(true, { ssid: 'HotelWiFi' }),
      status(true, { ssid: 'LobbyWiFi' }),
    ];
    let i = 0;
    const changes: Array<[boolean, string | undefined]> = [];
    const events: unknown[] = [];
    const m = new UplinkMonitor({
      read: async () => readings[i++]!,
      onChange: (s, prev) => {
        const ev = uplinkEvent(prev, s);
        if (ev) events.push(ev);
      },
    });
    m.on('change', (s) => changes.push([s.up, s.ssid]));
    for (let k = 0; k < readings.length; k++) await m.poll();
    expect(changes).toEqual([
      [true, 'HotelWiFi'],
      [false, undefined],
      [true, 'HotelWiFi'],
      [true, 'LobbyWiFi'],
    ]);
    expect(events).toEqual([
      { type: 'uplink.down', interface: 'phy0-sta0', reason: 'connecting' },
      { type: 'uplink.up', interface: 'phy0-sta0', ssid: 'HotelWiFi' },
    ]);
    expect(m.current()?.ssid).toBe('LobbyWiFi');
  });

  it('polls on its own until stopped', async () => {
    let n = 0;
    const m = new UplinkMonitor({ intervalMs: 5, read: async () => status(++n % 2 === 0) });
    const seen: boolean[] = [];
    m.on('change', (s) => seen.push(s.up));
    await m.start();
    await new Promise<void>((resolve) => {
      m.on('change', () => {
        if (seen.length >= 3) resolve();
      });
    });
    m.stop();
    expect(seen.slice(0, 3)).toEqual([false, true, false]);
  });

  it('turns a failing reader into a down reading and survives a failing listener', async () => {
    const m = new UplinkMonitor({
      read: async () => {
        throw new Error('boom');
      },
    });
    m.on('change', () => {
      throw new Error('listener');
    });
    const st = await m.poll();
    expect(st).toMatchObject({ up: false, source: 'none', reason: 'uplink check failed: boom' });
  });

  it('counts a first down reading as an event but not a first up one', () => {
    expect(uplinkEvent(undefined, status(true))).toBeUndefined();
    expect(uplinkEvent(undefined, status(false))?.type).toBe('uplink.down');
    expect(isUplinkTransition(status(true, { signalDbm: -1 }), status(true, { signalDbm: -80 }))).toBe(false);
  });

  it('emits uplink events and calls the cache hooks through bindUplinkEvents', async () => {
    const readings = [status(true), status(false, { reason: 'device not available' }), status(true, { ssid: 'HotelWiFi' })];
    let i = 0;
    const m = new UplinkMonitor({ read: async () => readings[i++]! });
    const emitted: unknown[] = [];
    const hooks: string[] = [];
    const off = bindUplinkEvents(m, (ev) => emitted.push(ev), { down: () => hooks.push('serve-what-we-have'), up: () => hooks.push('fetch-again') });
    await m.poll();
    await m.poll();
    await m.poll();
    off();
    expect(emitted).toEqual([
      { type: 'uplink.down', interface: 'phy0-sta0', reason: 'device not available' },
      { type: 'uplink.up', interface: 'phy0-sta0', ssid: 'HotelWiFi' },
    ]);
    expect(hooks).toEqual(['serve-what-we-have', 'fetch-again']);
  });
});
