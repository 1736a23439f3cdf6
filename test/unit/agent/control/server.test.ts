import { lstatSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Bus } from '../../../../agent/bus';
import { ClientTracker } from '../../../../agent/clients/tracker';
import { BootPlan } from '../../../../relay/boot/plan';
import { parseConfig } from '../../../../agent/config/load';
import type { Config } from '../../../../agent/config/types';
import { ControlClient, ControlRequestError, type StreamMessage } from '../../../../agent/control/client';
import { createHandlers, createWatch, type CommandDeps } from '../../../../agent/control/commands';
import { ControlServer } from '../../../../agent/control/server';
import { silentLogger } from '../../../../agent/log';
import { makeEvent } from '../../../../proto/events';
import { PacketTrace } from '../../../../relay/trace';
import { waitFor } from '../../../helpers/netns';

const dir = mkdtempSync(join(tmpdir(), 'brctl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sockPath = () => join(dir, `s${n++}.sock`);

function config(): Config {
  const r = parseConfig({
    lan: { address: '10.99.0.1', prefix: 24 },
    upstream: { url: 'http://10.99.1.2/boot/' },
    boot: {
      loaders: { bios: 'ipxe/undionly.kpxe' },
      defaultProfile: 'debian',
      profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'] }, menu: { script: 'menus/main.ipxe' } },
      assign: { '52:54:00:00:00:09': 'menu' },
    },
  });
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('\n'));
  return r.config;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function start(extra: Partial<CommandDeps> = {}) {
  const cfg = config();
  const bus = new Bus();
  const tracker = new ClientTracker({ plan: new BootPlan({ boot: cfg.boot }) });
  bus.on('relay', (e) => tracker.apply(e));
  tracker.on('client', (s) => bus.emit('client', s));
  const prefetched: Array<[string, boolean]> = [];
  const assigned: Array<[string, string]> = [];
  const rearmed: string[] = [];
  const trace = new PacketTrace();
  const deps: CommandDeps = {
    config: () => cfg,
    tracker,
    status: () => ({ online: true, agentId: cfg.agentId }),
    cache: {
      list: () => [{ path: 'debian/vmlinuz', size: 10 }],
      prefetch: async (p, pin) => {
        prefetched.push([p, !!pin]);
        return { path: p, pinned: !!pin };
      },
      purge: async (p) => (p ? 1 : 5),
      verify: async () => [{ path: 'a', ok: true }],
    },
    dhcp: { leases: () => [{ mac: '52:54:00:00:00:01', ip: '10.99.0.100' }], rearm: (m) => rearmed.push(m) },
    trace,
    assign: (m, p) => assigned.push([m, p]),
    subscribe: (fn) => {
      const a = bus.subscribe('relay', (e) => fn('relay', e));
      const b = bus.subscribe('client', (s) => fn('client', s));
      return () => {
        a();
        b();
      };
    },
    ...extra,
  };
  const path = sockPath();
  const server = new ControlServer({ socket: path, handlers: createHandlers(deps), watch: createWatch(deps), log: silentLogger });
  await server.start();
  const client = await ControlClient.connect(path);
  cleanups.push(async () => {
    client.end();
    await server.stop();
  });
  return { server, client, bus, tracker, trace, prefetched, assigned, rearmed, path };
}

describe('ControlServer', () => {
  it('creates the socket 0600 and removes it on stop', async () => {
    const { server, path } = await start();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    await server.stop();
    expect(() => lstatSync(path)).toThrow();
  });

  it('replaces a stale socket file, refuses a live one and a non-socket', async () => {
    const path = sockPath();
    // a stale socket: bound, then the process "crashed" (we close without unlinking)
    const s = createServer();
    await new Promise<void>((r) => s.listen(path, r));
    const live = new ControlServer({ socket: path, handlers: {}, log: silentLogger });
    await expect(live.start()).rejects.toThrow(/another agent is listening/);
    await new Promise<void>((r) => s.close(() => r()));
    writeFileSync(path + '.f', 'x');
    const notSock = new ControlServer({ socket: path + '.f', handlers: {}, log: silentLogger });
    await expect(notSock.start()).rejects.toThrow(/not a socket/);
    // node removes the file on close: a crashed agent (SIGKILL) leaves it behind
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(lstatSync(path).isSocket()).toBe(true);
    const ok = new ControlServer({ socket: path, handlers: { ping: () => 'pong' }, log: silentLogger });
    await ok.start();
    const c = await ControlClient.connect(path);
    expect(await c.request('ping')).toBe('pong');
    c.end();
    await ok.stop();
  });

  it('answers status, clients, leases, profiles', async () => {
    const { client, bus } = await start();
    expect(await client.request('status')).toMatchObject({ online: true });
    bus.emit('relay', makeEvent({ type: 'dhcp.discover', mac: '52:54:00:00:00:01', firmware: 'bios', arch: 'bios' }));
    const clients = await client.request<Array<{ mac: string; phase: string }>>('clients');
    expect(clients).toEqual([expect.objectContaining({ mac: '52:54:00:00:00:01', phase: 'dhcp' })]);
    expect(await client.request('leases')).toHaveLength(1);
    const profiles = await client.request<Array<{ name: string; default: boolean; assigned: string[] }>>('profiles');
    expect(profiles.map((p) => [p.name, p.default, p.assigned])).toEqual([
      ['debian', true, []],
      ['menu', false, ['52:54:00:00:00:09']],
    ]);
  });

  it('validates assign, rearm, explain and trace arguments', async () => {
    const { client, assigned, rearmed, trace } = await start();
    await expect(client.request('assign', { mac: 'nope', profile: 'debian' })).rejects.toMatchObject({ code: 'EUSAGE', message: expect.stringContaining('not a MAC address') });
    await expect(client.request('assign', { mac: '52:54:00:00:00:01', profile: 'arch' })).rejects.toThrow('no profile "arch" (profiles: debian, menu)');
    expect(await client.request('assign', { mac: '52-54-00-00-00-01', profile: 'menu' })).toEqual({ mac: '52:54:00:00:00:01', profile: 'menu' });
    expect(assigned).toEqual([['52:54:00:00:00:01', 'menu']]);
    await client.request('rearm', { mac: '52:54:00:00:00:01' });
    expect(rearmed).toEqual(['52:54:00:00:00:01']);
    const ex = await client.request<{ lines: string[] }>('explain', { mac: '52:54:00:00:00:07' });
    expect(ex.lines[0]).toMatch(/Nothing has been seen/);
    trace.record({ mac: '52:54:00:00:00:01', dir: 'in', clientIp: '0.0.0.0', clientPort: 68, serverIp: '10.99.0.1', serverPort: 67, payload: Buffer.alloc(300) });
    const tr = await client.request<{ packets: number; pcap: string }>('trace', { mac: '52:54:00:00:00:01' });
    expect(tr.packets).toBe(1);
    const pcap = Buffer.from(tr.pcap, 'base64');
    expect(pcap.readUInt32LE(0)).toBe(0xa1b2c3d4);
    await expect(client.request('bogus')).rejects.toBeInstanceOf(ControlRequestError);
  });

  it('prefetches a profile (kernel + initrds, pinned) or a path', async () => {
    const { client, prefetched } = await start();
    await client.request('cache.prefetch', { target: 'debian' });
    await client.request('cache.prefetch', { target: '/ipxe/undionly.kpxe' });
    expect(prefetched).toEqual([
      ['debian/vmlinuz', true],
      ['debian/initrd.gz', true],
      ['ipxe/undionly.kpxe', true],
    ]);
    await expect(client.request('cache.prefetch', { target: '../x' })).rejects.toMatchObject({ code: 'EUSAGE' });
    expect(await client.request('cache.purge', {})).toEqual({ removed: 5 });
    expect(await client.request('cache.verify')).toMatchObject({ ok: true });
  });

  it('checks a config file without changing anything', async () => {
    const { client } = await start();
    const f = join(dir, 'bad.json');
    writeFileSync(f, JSON.stringify({ lan: { address: '10.99.0.1' }, upstream: { url: 'ftp://x' }, boot: { profiles: { a: { kernel: 'k' } } } }));
    const r = await client.request<{ ok: boolean; issues: string[] }>('config.check', { file: f });
    expect(r.ok).toBe(false);
    expect(r.issues.join('\n')).toMatch(/upstream\.url: expected a URL/);
  });

  it('streams client states and events to watchers until they go', async () => {
    const { client, bus, path } = await start();
    const got: StreamMessage[] = [];
    const initial = await client.watch<{ clients: unknown[] }>({ mac: '52:54:00:00:00:02' }, (m) => got.push(m));
    expect(initial.clients).toEqual([]);
    bus.emit('relay', makeEvent({ type: 'dhcp.discover', mac: '52:54:00:00:00:03', firmware: 'bios' }));
    bus.emit('relay', makeEvent({ type: 'dhcp.discover', mac: '52:54:00:00:00:02', firmware: 'bios' }));
    await waitFor(() => got.length >= 2, 2000, 'watch messages');
    expect(got.map((m) => m.event).sort()).toEqual(['client', 'relay']);
    expect(got.every((m) => (m.data as { mac: string }).mac === '52:54:00:00:00:02')).toBe(true);
    // a second connection sees the same; closing it unsubscribes
    const c2 = await ControlClient.connect(path);
    await c2.watch({}, () => {});
    const before = bus.listenerCount('relay');
    c2.end();
    await waitFor(() => bus.listenerCount('relay') === before - 1, 2000, 'unsubscribe on close');
  });

  it('refuses an endless line and times a request out on the client side', async () => {
    const path = sockPath();
    const server = new ControlServer({ socket: path, handlers: { hang: () => new Promise(() => {}) }, log: silentLogger, maxLine: 1000 });
    await server.start();
    cleanups.push(() => server.stop());
    const reply = await new Promise<string>((resolve) => {
      const s = createConnection(path);
      let out = '';
      s.on('data', (d: Buffer) => (out += d));
      s.on('close', () => resolve(out));
      s.write('x'.repeat(2000));
    });
    expect(JSON.parse(reply)).toEqual({ id: null, ok: false, error: 'request line longer than 1000 bytes', code: 'EUSAGE' });
    const c = await ControlClient.connect(path);
    await expect(c.request('hang', {}, undefined, 200)).rejects.toMatchObject({ code: 'ETIMEDOUT', message: 'the agent did not answer "hang" within 0.2 s' });
    c.end();
  });

  it('survives garbage and handler errors', async () => {
    const path = sockPath();
    const server = new ControlServer({
      socket: path,
      handlers: {
        boom: () => {
          throw new Error('kaput');
        },
        slow: async () => 42,
      },
      log: silentLogger,
    });
    await server.start();
    cleanups.push(() => server.stop());
    const raw = await new Promise<string>((resolve) => {
      const s = createConnection(path);
      let out = '';
      s.on('data', (d: Buffer) => {
        out += d;
        if (out.split('\n').length > 4) {
          s.end();
          resolve(out);
        }
      });
      s.write('not json\n[1]\n{"id":7,"cmd":"boom"}\n{"id":8,"cmd":"slow"}\n');
    });
    const lines = raw.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual(
      expect.arrayContaining([
        { id: null, ok: false, error: 'request is not JSON', code: 'EUSAGE' },
        { id: 7, ok: false, error: 'kaput', code: 'EFAILED' },
        { id: 8, ok: true, result: 42 },
      ]),
    );
  });
});
