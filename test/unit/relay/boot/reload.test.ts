/**
 * One BootPlan behind DHCP, HTTP and the tracker: after a reload that removes the profile a
 * client was assigned, all three say the client boots the default (real sockets on loopback).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientTracker } from '../../../../agent/clients/tracker';
import { silentLogger } from '../../../../agent/log';
import { MessageType, Opt, OptionMap } from '../../../../proto/dhcp/options';
import { encodeDhcp } from '../../../../proto/dhcp/packet';
import { makeEvent, type RelayEvent } from '../../../../proto/events';
import type { BootConfig } from '../../../../relay/boot/config';
import { BootPlan } from '../../../../relay/boot/plan';
import { DhcpService } from '../../../../relay/dhcp/service';
import { HttpService } from '../../../../relay/http/service';
import { Metrics } from '../../../../relay/metrics';
import { waitFor } from '../../../helpers/netns';

const MAC = '52:54:00:5e:10:01';
const BOOT: BootConfig = {
  loaders: { bios: ['ipxe/undionly.kpxe'] },
  defaultProfile: 'debian',
  profiles: { debian: { kernel: 'debian/vmlinuz' }, rescue: { kernel: 'rescue/vmlinuz' } },
  assign: {},
};

function discover(xid: number): Buffer {
  const options = new OptionMap().setU8(Opt.MessageType, MessageType.DISCOVER);
  options.set(77, Buffer.from('iPXE'));
  options.set(60, Buffer.from('PXEClient:Arch:00000:UNDI:002001'));
  const chaddr = Buffer.alloc(16);
  Buffer.from(MAC.replace(/:/g, ''), 'hex').copy(chaddr);
  return encodeDhcp({ op: 1, htype: 1, hlen: 6, hops: 0, xid, secs: 0, flags: 0x8000, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac: MAC, sname: '', file: '', options });
}

function bootScript(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: `/boot.ipxe?mac=${MAC}` }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const plan = new BootPlan({ boot: BOOT });
const tracker = new ClientTracker({ plan });
const events: RelayEvent[] = [];
const emit = (e: Parameters<typeof makeEvent>[0]) => {
  const ev = makeEvent(e);
  events.push(ev);
  tracker.apply(ev);
};
const stateDir = mkdtempSync(join(tmpdir(), 'br-plan-reload-'));
const client = dgram.createSocket('udp4');
let dhcp: DhcpService;
let web: HttpService;

beforeAll(async () => {
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
  dhcp = new DhcpService({
    lan: { interface: 'lo', address: '127.0.0.1', prefix: 8 },
    dhcp: { mode: 'server', port: 0, proxyPort: 0, range: ['127.0.0.100', '127.0.0.150'], leaseSeconds: 600, dns: [], static: {}, ipxeNoProxyDhcp: true, netbootOnce: false },
    plan,
    httpPort: 8080,
    tftpEnabled: true,
    stateDir,
    log: silentLogger,
    metrics: new Metrics(),
    emit,
    listenAddress: '127.0.0.1',
    clientPort: client.address().port,
    broadcastAddress: '127.0.0.1',
  });
  await dhcp.start();
  web = new HttpService({
    address: '127.0.0.1',
    port: 0,
    source: { open: () => Promise.reject(Object.assign(new Error('none'), { code: 'ENOENT' })) },
    log: silentLogger,
    metrics: new Metrics(),
    emit,
    macForIp: () => undefined,
    plan,
    api: { status: () => ({}), clients: () => [] },
    subscribe: () => () => {},
  });
  await web.start();
});

afterAll(async () => {
  await web.stop();
  await dhcp.stop();
  client.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('a reload that removes an assigned profile', () => {
  it('is seen alike by DHCP, HTTP and the tracker', async () => {
    plan.assign(MAC, 'rescue');
    client.send(discover(1), dhcp.port, '127.0.0.1');
    const before = await waitFor(() => events.find((e) => e.type === 'dhcp.offer'), 5000, 'offer 1');
    expect(before).toMatchObject({ profile: 'rescue' });
    expect(await bootScript(web.port)).toContain('rescue/vmlinuz');
    expect(tracker.get(MAC)?.profile).toBe('rescue');

    const { rescue: _gone, ...profiles } = BOOT.profiles;
    expect(plan.setConfig({ boot: { ...BOOT, profiles } })).toEqual([MAC]);

    expect(tracker.get(MAC)?.profile).toBe('debian');
    expect(await bootScript(web.port)).toContain('debian/vmlinuz');
    const n = events.length;
    client.send(discover(2), dhcp.port, '127.0.0.1');
    const after = await waitFor(() => events.slice(n).find((e) => e.type === 'dhcp.offer'), 5000, 'offer 2');
    expect(after).toMatchObject({ profile: 'debian' });
    expect(tracker.get(MAC)?.profile).toBe('debian');
  });
});
