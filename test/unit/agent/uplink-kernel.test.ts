import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { addressBytes, parseProcIpv6Route, parseProcRoute, pickRoute, readKernelUplink, TargetResolver, type KernelSources } from '../../../agent/uplink/kernel';
import { UplinkReader, type Exec, type ExecResult } from '../../../agent/uplink/status';

// captured with `cat /proc/net/route` / `cat /proc/net/ipv6_route` in a namespace (x86_64, little
// endian) with: default via 10.99.2.1 dev wan metric 100, default via 10.99.8.1 dev wwan metric 600,
// 10.99.2.0/24 dev wan, 10.99.8.0/22 dev wwan, 10.99.64.0/18 via 10.99.2.1 dev wan,
// 10.99.64.128/25 via 10.99.8.1 dev wwan, unreachable 10.99.100.0/24, blackhole 10.99.101.0/24;
// fd99:2::/64 dev wan, fd99:8::/64 dev wwan, fd99:40::/48 via fd99:2::1 dev wan,
// fd99:40:0:7::/64 via fd99:8::1 dev wwan, default via fd99:8::1 dev wwan, unreachable fd99:66::/48
const fx = (name: string): string => readFileSync(join(__dirname, '../../fixtures/uplink', name), 'utf8');
const route4 = fx('proc-net-route.txt');
const route6 = fx('proc-net-ipv6_route.txt');

const v4 = (address: string, cidr: string): NetworkInterfaceInfo => ({ address, netmask: '', family: 'IPv4', mac: '00:00:00:00:00:00', internal: false, cidr });
const v6 = (address: string, cidr: string): NetworkInterfaceInfo => ({ address, netmask: '', family: 'IPv6', mac: '00:00:00:00:00:00', internal: false, cidr, scopeid: 0 });

/** /proc and /sys as files in a table; a missing file is ENOENT. */
function kernel(files: Record<string, string>, ifs: NodeJS.Dict<NetworkInterfaceInfo[]>): KernelSources & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    littleEndian: true,
    interfaces: () => ifs,
    readFile: async (p) => {
      reads.push(p);
      const s = files[p];
      if (s === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
      return s;
    },
  };
}
const lab = (over: Record<string, string> = {}) =>
  kernel(
    {
      '/proc/net/route': route4,
      '/proc/net/ipv6_route': route6,
      '/sys/class/net/wan/operstate': 'up\n',
      '/sys/class/net/wan/carrier': '1\n',
      '/sys/class/net/wwan/operstate': 'up\n',
      '/sys/class/net/wwan/carrier': '1\n',
      '/sys/class/net/lo/operstate': 'unknown\n',
      '/sys/class/net/lo/carrier': '1\n',
      ...over,
    },
    {
      lo: [v4('127.0.0.1', '127.0.0.1/8'), v6('::1', '::1/128')],
      wan: [v4('10.99.2.2', '10.99.2.2/24'), v6('fd99:2::2', 'fd99:2::2/64'), v6('fe80::1', 'fe80::1/64')],
      wwan: [v6('fe80::2', 'fe80::2/64'), v6('fd99:8::5', 'fd99:8::5/64'), v4('10.99.8.5', '10.99.8.5/22')],
    },
  );

describe('parseProcRoute', () => {
  it('reads the captured table, unreachable and blackhole routes marked', () => {
    expect(parseProcRoute(route4, true)).toEqual([
      { family: 4, dev: 'wan', dst: '0.0.0.0', prefix: 0, gateway: '10.99.2.1', metric: 100 },
      { family: 4, dev: 'wwan', dst: '0.0.0.0', prefix: 0, gateway: '10.99.8.1', metric: 600 },
      { family: 4, dev: 'wan', dst: '10.99.2.0', prefix: 24, metric: 0 },
      { family: 4, dev: 'wwan', dst: '10.99.8.0', prefix: 22, metric: 0 },
      { family: 4, dev: 'wan', dst: '10.99.64.0', prefix: 18, gateway: '10.99.2.1', metric: 0 },
      { family: 4, dev: 'wwan', dst: '10.99.64.128', prefix: 25, gateway: '10.99.8.1', metric: 0 },
      { family: 4, dev: '*', dst: '10.99.100.0', prefix: 24, metric: 0, reject: true },
      { family: 4, dev: '*', dst: '10.99.101.0', prefix: 24, metric: 0, reject: true },
    ]);
  });

  it('reads a big-endian machine (MIPS routers) the other way round', () => {
    const be = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\nwan\t0A630200\t00000000\t0001\t0\t0\t0\tFFFFFF00\t0\t0\t0\n';
    expect(parseProcRoute(be, false)).toEqual([{ family: 4, dev: 'wan', dst: '10.99.2.0', prefix: 24, metric: 0 }]);
  });

  it('drops lines it cannot read', () => {
    expect(parseProcRoute('Iface\tDestination\nwan\tzz\t0\t0001\t0\t0\t0\t00FFFFFF\ngarbage\n', true)).toEqual([]);
  });
});

describe('parseProcIpv6Route', () => {
  it('reads the captured table: no local routes, reject ones marked', () => {
    const r = parseProcIpv6Route(route6);
    expect(r.filter((x) => !x.dst.startsWith('fe80') && !x.dst.startsWith('ff00') && x.metric !== 0xffffffff)).toEqual([
      { family: 6, dev: 'wan', dst: 'fd99:2::', prefix: 64, metric: 256 },
      { family: 6, dev: 'wwan', dst: 'fd99:8::', prefix: 64, metric: 256 },
      { family: 6, dev: 'wwan', dst: 'fd99:40:0:7::', prefix: 64, gateway: 'fd99:8::1', metric: 1024 },
      { family: 6, dev: 'wan', dst: 'fd99:40::', prefix: 48, gateway: 'fd99:2::1', metric: 1024 },
      { family: 6, dev: 'lo', dst: 'fd99:66::', prefix: 48, metric: 1024, reject: true },
      { family: 6, dev: 'wwan', dst: '::', prefix: 0, gateway: 'fd99:8::1', metric: 1024 },
    ]);
    expect(r.filter((x) => x.dev === 'lo' && !x.reject)).toEqual([]); // ::1 and the own addresses are local
  });
});

describe('pickRoute (what `ip route get` answered in the same namespace)', () => {
  const r4 = parseProcRoute(route4, true);
  const r6 = parseProcIpv6Route(route6);
  it.each([
    ['10.99.64.200', 'wwan', '10.99.8.1'], // the /25 inside the /18
    ['10.99.64.5', 'wan', '10.99.2.1'],
    ['10.99.9.1', 'wwan', undefined], // connected /22
    ['1.2.3.4', 'wan', '10.99.2.1'], // the default route with the lower metric
  ])('%s → %s via %s', (t, dev, gw) => {
    const r = pickRoute(r4, t);
    expect(r?.dev).toBe(dev);
    expect(r?.gateway).toBe(gw);
  });
  it.each([
    ['fd99:40:0:7::9', 'wwan'],
    ['fd99:40::1', 'wan'],
    ['2001:db8::1', 'wwan'],
  ])('%s → %s', (t, dev) => expect(pickRoute(r6, t)?.dev).toBe(dev));

  it('an unreachable /24 inside a routed /18 wins; without a target only a default route counts', () => {
    expect(pickRoute(r4, '10.99.100.1')?.reject).toBe(true); // ip route get: No route to host
    expect(pickRoute(r4, '10.99.101.1')?.reject).toBe(true); // blackhole
    expect(pickRoute(r6, 'fd99:66::1')?.reject).toBe(true);
    const noDefault = r4.filter((r) => r.prefix > 0);
    expect(pickRoute(noDefault, '10.99.200.1')).toBeUndefined();
    expect(pickRoute(noDefault)).toBeUndefined();
    expect(pickRoute(r4)?.dev).toBe('wan');
  });

  it('parses addresses to bytes', () => {
    expect(addressBytes('10.99.2.1')).toEqual([10, 99, 2, 1]);
    expect(addressBytes('fd99:40::7')).toEqual([0xfd, 0x99, 0, 0x40, ...Array(10).fill(0), 0, 7]);
    expect(addressBytes('::ffff:10.0.0.1')?.slice(10)).toEqual([0xff, 0xff, 10, 0, 0, 1]);
    expect(addressBytes('boot.example')).toBeUndefined();
  });
});

describe('readKernelUplink', () => {
  it('is up through the interface that routes to the target, with its address and gateway', async () => {
    expect(await readKernelUplink('10.99.64.200', lab())).toEqual({ up: true, interface: 'wwan', gateway: '10.99.8.1', address: '10.99.8.5', prefix: 22, source: 'kernel' });
    expect(await readKernelUplink(undefined, lab())).toMatchObject({ up: true, interface: 'wan', address: '10.99.2.2' });
    expect(await readKernelUplink('fd99:40::1', lab())).toEqual({ up: true, interface: 'wan', gateway: 'fd99:2::1', address: 'fd99:2::2', prefix: 64, source: 'kernel' });
  });

  it('takes a local or loopback target as lo, like `ip route get`', async () => {
    expect(await readKernelUplink('127.0.0.1', lab())).toMatchObject({ up: true, interface: 'lo', address: '127.0.0.1', prefix: 8 });
    expect(await readKernelUplink('10.99.2.2', lab())).toMatchObject({ up: true, interface: 'lo' });
  });

  it('is down without a route, without carrier, with a gone interface, without an address', async () => {
    const noDefault = route4.split('\n').filter((l) => !/^\S+\t00000000\t/.test(l)).join('\n');
    expect(await readKernelUplink('10.99.100.1', lab({ '/proc/net/route': noDefault }))).toEqual({ up: false, source: 'kernel', reason: 'no route to 10.99.100.1' });
    expect(await readKernelUplink('10.99.100.1', lab())).toEqual({ up: false, source: 'kernel', reason: 'no route to 10.99.100.1' });
    expect(await readKernelUplink('10.99.200.1', lab({ '/proc/net/route': noDefault }))).toEqual({ up: false, source: 'kernel', reason: 'no route to 10.99.200.1' });
    expect(await readKernelUplink(undefined, lab({ '/proc/net/route': noDefault }))).toMatchObject({ up: false, reason: 'no default route' });
    expect(await readKernelUplink('10.99.2.1', lab({ '/sys/class/net/wan/operstate': 'down\n', '/sys/class/net/wan/carrier': '0\n' }))).toMatchObject({
      up: false,
      interface: 'wan',
      reason: 'link down',
    });
    expect(await readKernelUplink('10.99.2.1', lab({ '/sys/class/net/wan/carrier': '0\n' }))).toMatchObject({ up: false, reason: 'no carrier' });
    const gone = lab();
    gone.readFile = async (p) => {
      if (p.startsWith('/sys/class/net/wan/')) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
      return lab().readFile(p);
    };
    expect(await readKernelUplink('10.99.2.1', gone)).toMatchObject({ up: false, reason: 'interface wan not found' });
    const bare = lab();
    bare.interfaces = () => ({ wan: [v6('fe80::1', 'fe80::1/64')] });
    expect(await readKernelUplink('10.99.2.1', bare)).toMatchObject({ up: false, interface: 'wan', reason: 'no IPv4 address' });
  });

  it('says what it could not read', async () => {
    expect(await readKernelUplink('10.99.2.1', kernel({}, {}))).toEqual({ up: false, source: 'none', reason: 'cannot read /proc/net/route: ENOENT' });
  });
});

describe('TargetResolver', () => {
  it('resolves a name once, then answers from its cache while it refreshes in the background', async () => {
    let t = 0;
    const asked: string[] = [];
    let answer = '10.99.2.1';
    const r = new TargetResolver('boot.example', {
      now: () => t,
      ttlMs: 60_000,
      lookup: async (h) => {
        asked.push(h);
        return { address: answer };
      },
    });
    expect(await r.address()).toBe('10.99.2.1');
    t = 30_000;
    expect(await r.address()).toBe('10.99.2.1');
    expect(asked).toHaveLength(1);
    t = 61_000;
    answer = '10.99.2.7';
    expect(await r.address()).toBe('10.99.2.1'); // the old answer now, the new one later
    await new Promise((res) => setImmediate(res));
    expect(await r.address()).toBe('10.99.2.7');
    expect(asked).toEqual(['boot.example', 'boot.example']);
  });

  it('does not wait long for a name that does not answer, and keeps the last good answer on failure', async () => {
    const never = new TargetResolver('slow.example', { firstWaitMs: 5, lookup: () => new Promise(() => {}) });
    expect(await never.address()).toBeUndefined();
    let t = 0;
    let fail = false;
    const r = new TargetResolver('boot.example', {
      now: () => t,
      lookup: async () => {
        if (fail) throw new Error('EAI_AGAIN');
        return { address: '10.99.2.1' };
      },
    });
    await r.address();
    fail = true;
    t = 120_000;
    await r.address();
    await new Promise((res) => setImmediate(res));
    expect(await r.address()).toBe('10.99.2.1');
  });

  it('takes a literal address as it is, with no lookup', async () => {
    const r = new TargetResolver('10.99.2.1', { lookup: () => Promise.reject(new Error('asked')) });
    expect(await r.address()).toBe('10.99.2.1');
  });
});

describe('UplinkReader', () => {
  const ok = (stdout: string): ExecResult => ({ code: 0, stdout, stderr: '' });
  function recorded(table: Record<string, ExecResult>): Exec & { calls: string[] } {
    const calls: string[] = [];
    const exec = (async (cmd: string, args: string[]) => {
      const key = [cmd, ...args].join(' ');
      calls.push(key);
      return table[key] ?? { code: null, stdout: '', stderr: '', error: 'ENOENT' };
    }) as Exec & { calls: string[] };
    exec.calls = calls;
    return exec;
  }

  it('without ubus: tries it once, then reads only the kernel files', async () => {
    const exec = recorded({});
    const k = lab();
    const r = new UplinkReader({ exec, kernel: k, target: '10.99.64.5' });
    for (let i = 0; i < 5; i++) expect(await r.read()).toMatchObject({ up: true, interface: 'wan', source: 'kernel' });
    expect(exec.calls).toEqual(['ubus call network.interface.wwan status']);
    expect(await new UplinkReader({ exec, kernel: k, prefer: 'ubus' }).read()).toMatchObject({ up: false, source: 'none', reason: 'ubus not available' });
  });

  it('on OpenWrt: ubus + iwinfo on the first reading, when the kernel view changes, and every ubusEveryMs', async () => {
    const ubusUp = JSON.stringify({ up: true, l3_device: 'wwan', 'ipv4-address': [{ address: '10.99.8.5', mask: 22 }], route: [] });
    const exec = recorded({
      'ubus call network.interface.wwan status': ok(ubusUp),
      'iwinfo wwan info': ok('wwan      ESSID: "HotelWiFi"\n          Signal: -58 dBm  Noise: -95 dBm\n'),
    });
    let t = Date.parse('2026-01-01T00:00:00Z');
    const k = lab();
    const r = new UplinkReader({ exec, kernel: k, target: '10.99.9.1', now: () => new Date(t), ubusEveryMs: 30_000 });
    expect(await r.read()).toMatchObject({ up: true, interface: 'wwan', ssid: 'HotelWiFi', source: 'ubus' });
    for (let i = 0; i < 5; i++) {
      t += 3000;
      expect(await r.read()).toMatchObject({ ssid: 'HotelWiFi', source: 'ubus', checkedAt: new Date(t).toISOString() });
    }
    expect(exec.calls).toHaveLength(2);
    // the link drops: the kernel view changes, ubus is asked at once
    const down = lab({ '/sys/class/net/wwan/operstate': 'down\n', '/sys/class/net/wwan/carrier': '0\n' });
    k.readFile = down.readFile;
    t += 3000;
    await r.read();
    expect(exec.calls).toHaveLength(4);
    t += 30_000;
    await r.read();
    expect(exec.calls).toHaveLength(6);
  });
});
