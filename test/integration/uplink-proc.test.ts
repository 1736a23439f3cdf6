/**
 * The uplink read from the kernel's files (agent/uplink/kernel.ts) on real /proc/net/route,
 * /proc/net/ipv6_route and /sys/class/net in a namespace, checked against what `ip -j route get`
 * answers in the same namespace: routes added with `ip route` (longest prefix, metrics, an
 * unreachable hole in a routed prefix, no default route), a lost carrier, a link set down.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundle } from '../helpers/bundle';
import { NetLab, skipReason } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

const reason = skipReason('ip');

describeSkipIf(reason)('uplink from /proc and /sys in a namespace', () => {
  const lab = new NetLab(`brk${process.pid % 10000}`);
  const work = mkdtempSync(join(tmpdir(), 'brk-'));
  let ns: string;
  let up: string;
  let js: string;

  type Reading = { target: string; kernel: Record<string, unknown>; reader: Record<string, unknown> };
  const read = async (...targets: string[]): Promise<Reading[]> => {
    const r = await lab.exec(ns, process.execPath, [js, ...targets]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Reading);
  };
  /** `ip -j route get` in the namespace: the device, or undefined when there is no route. */
  const routeGet = async (target: string): Promise<string | undefined> => {
    const r = await lab.exec(ns, 'ip', ['-j', target.includes(':') ? '-6' : '-4', 'route', 'get', target]);
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.stdout) as Array<{ dev?: string }>)[0]?.dev;
  };

  beforeAll(async () => {
    js = await bundle('test/helpers/uplink-read.ts', join(work, 'uplink-read.js'));
    ns = lab.addNs('relay');
    up = lab.addNs('up');
    const up2 = lab.addNs('up2');
    for (const n of [ns, up, up2]) lab.ip(n, 'link', 'set', 'lo', 'up');
    for (const n of [ns, up]) {
      const r = await lab.exec(n, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0']);
      expect(r.code, r.stderr).toBe(0);
    }
    lab.veth(ns, 'wan', up, 'eth0');
    lab.veth(ns, 'wwan', up2, 'eth0');
    lab.addr(ns, 'wan', '10.99.2.2/24');
    lab.addr(up, 'eth0', '10.99.2.1/24');
    lab.addr(ns, 'wwan', '10.99.3.2/24');
    lab.addr(up2, 'eth0', '10.99.3.1/24');
    lab.ip(ns, 'addr', 'add', 'fd99:2::2/64', 'dev', 'wan', 'nodad');
    lab.ip(up, 'addr', 'add', 'fd99:2::1/64', 'dev', 'eth0', 'nodad');
    lab.ip(ns, 'route', 'add', '10.99.64.0/18', 'via', '10.99.2.1', 'dev', 'wan');
    lab.ip(ns, 'route', 'add', '10.99.64.128/25', 'via', '10.99.3.1', 'dev', 'wwan');
    lab.ip(ns, 'route', 'add', '10.99.80.0/20', 'via', '10.99.2.1', 'dev', 'wan', 'metric', '500');
    lab.ip(ns, 'route', 'add', '10.99.80.0/20', 'via', '10.99.3.1', 'dev', 'wwan', 'metric', '50');
    lab.ip(ns, 'route', 'add', 'unreachable', '10.99.100.0/24');
    lab.ip(ns, '-6', 'route', 'add', 'fd99:40::/48', 'via', 'fd99:2::1', 'dev', 'wan');
  }, 30_000);
  afterAll(async () => {
    await lab.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('finds the interface `ip route get` finds, with no default route at all', async () => {
    const targets = ['10.99.2.1', '10.99.3.1', '10.99.64.5', '10.99.64.200', '10.99.81.1', 'fd99:40::9', 'fd99:2::1', '127.0.0.1', '10.99.2.2'];
    const readings = await read(...targets);
    for (const r of readings) {
      const dev = await routeGet(r.target);
      expect(dev, r.target).toBeDefined();
      expect(r.kernel.interface, r.target).toBe(dev);
      expect(r.kernel.up, r.target).toBe(true);
      expect(r.reader, r.target).toMatchObject({ ...r.kernel, source: 'kernel' });
    }
    expect(readings.find((r) => r.target === '10.99.64.200')?.kernel).toMatchObject({ interface: 'wwan', address: '10.99.3.2', prefix: 24, gateway: '10.99.3.1' });
    expect(readings.find((r) => r.target === 'fd99:40::9')?.kernel).toMatchObject({ interface: 'wan', address: 'fd99:2::2', prefix: 64, gateway: 'fd99:2::1' });
  });

  it('has no route where `ip route get` has none: an unreachable hole, an unrouted net, no default route', async () => {
    const readings = await read('10.99.100.1', '10.99.200.1', '');
    for (const r of readings.slice(0, 2)) {
      expect(await routeGet(r.target), r.target).toBeUndefined();
      expect(r.kernel, r.target).toEqual({ up: false, source: 'kernel', reason: `no route to ${r.target}` });
    }
    expect(readings[2]!.kernel).toEqual({ up: false, source: 'kernel', reason: 'no default route' });
  });

  it('is down when the uplink loses its carrier (route kept) and when it is set down', async () => {
    lab.ip(up, 'link', 'set', 'eth0', 'down');
    try {
      const [r] = await read('10.99.2.1');
      expect(r!.kernel).toMatchObject({ up: false, interface: 'wan', address: '10.99.2.2' });
      // the carrier drops at once, operstate (lowerlayerdown) follows within a second
      expect(r!.kernel.reason).toMatch(/^(no carrier|link lowerlayerdown)$/);
    } finally {
      lab.ip(up, 'link', 'set', 'eth0', 'up');
    }
    lab.ip(ns, 'route', 'add', 'default', 'via', '10.99.2.1', 'dev', 'wan');
    expect((await read(''))[0]!.kernel).toMatchObject({ up: true, interface: 'wan', gateway: '10.99.2.1' });
    lab.ip(ns, 'link', 'set', 'wan', 'down');
    try {
      // the kernel drops the routes through a link set down: wwan's /25 still routes 10.99.64.200
      const [a, b] = await read('10.99.2.1', '10.99.64.200');
      expect(a!.kernel).toMatchObject({ up: false, reason: 'no route to 10.99.2.1' });
      expect(b!.kernel).toMatchObject({ up: true, interface: 'wwan' });
    } finally {
      lab.ip(ns, 'link', 'set', 'wan', 'up');
    }
  });
});
