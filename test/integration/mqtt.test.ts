/**
 * MqttPublisher against a REAL Mosquitto on loopback (test/helpers/mosquitto.ts),
 * observed by a real MQTT.js subscriber on `<prefix>/#`.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { build } from 'esbuild';
import { MqttPublisher, MQTT_METRICS, type MqttPublisherOptions } from '../../agent/publish/mqtt';
import { JOURNAL_METRICS } from '../../agent/publish/journal';
import type { MqttConfig } from '../../agent/config/types';
import type { RelayEvent } from '../../proto/events';
import { scripted } from '../helpers/events';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';
import { Mosquitto, mosquittoSkipReason } from '../helpers/mosquitto';
import { waitFor } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

const skip = mosquittoSkipReason();

interface Msg {
  topic: string;
  text: string;
  retain: boolean;
}

class Sub {
  msgs: Msg[] = [];
  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => this.msgs.push({ topic, text: payload.toString(), retain: packet.retain }));
  }
  static async open(url: string, topics: string[], opts: IClientOptions = {}): Promise<Sub> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 100, connectTimeout: 5000, ...opts });
    const s = new Sub(client);
    await client.subscribeAsync(topics.map((t) => ({ topic: t, qos: 1 as const })).reduce((a, t) => ({ ...a, [t.topic]: { qos: t.qos } }), {}));
    return s;
  }
  on(topic: string): Msg[] {
    return this.msgs.filter((m) => m.topic === topic);
  }
  last(topic: string): unknown {
    const m = this.on(topic).at(-1);
    return m && m.text ? JSON.parse(m.text) : undefined;
  }
  events(topic: string): Array<Record<string, unknown>> {
    return this.on(topic).map((m) => JSON.parse(m.text));
  }
  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

function cfg(url: string, over: Partial<MqttConfig> = {}): MqttConfig {
  return { url, username: '', password: '', prefix: 'brtest', journalMaxEvents: 10000, homeAssistant: false, commands: false, ...over };
}

function ev(i: number, mac = '52:54:00:00:00:01'): RelayEvent {
  return { ts: new Date().toISOString(), type: 'tftp.start', mac, file: `f${i}`, i } as unknown as RelayEvent;
}

function client(mac: string, phase: string, bytes = 0) {
  return { mac, ip: '10.99.0.100', arch: 'bios', firmware: 'bios', profile: 'debian', phase, file: 'ipxe/undionly.kpxe', bytes, totalBytes: 1000, startedAt: '2026-01-01T00:00:00.000Z', updatedAt: new Date().toISOString(), error: null };
}

/** first-occurrence order of event numbers (QoS 1 may deliver a duplicate) */
function order(events: Array<Record<string, unknown>>): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const e of events) {
    const i = e.i as number;
    if (!seen.has(i)) {
      seen.add(i);
      out.push(i);
    }
  }
  return out;
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

describeSkipIf(skip)('MqttPublisher with a real Mosquitto', () => {
  let broker: Mosquitto;
  const dirs: string[] = [];
  const pubs: MqttPublisher[] = [];
  const subs: Sub[] = [];
  const procs: ChildProcess[] = [];
  let n = 0;

  function stateDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'br-mqtt-state-'));
    dirs.push(d);
    return d;
  }

  function makePub(over: Partial<MqttPublisherOptions> & { url?: string; mqtt?: Partial<MqttConfig> } = {}) {
    const metrics = over.metrics ?? new Metrics();
    const agentId = over.agentId ?? `a${process.pid}-${++n}`;
    const p = new MqttPublisher({
      config: cfg(over.url ?? broker.url, over.mqtt),
      agentId,
      stateDir: over.stateDir ?? stateDir(),
      log: silentLogger,
      metrics,
      status: over.status ?? (() => ({ version: 'test', startedAt: '2026-01-01T00:00:00.000Z', uplink: 'up', clients: 0, cache: { entries: 0 } })),
      reconnectMinMs: 100,
      reconnectMaxMs: 400,
      connectTimeoutMs: 3000,
      journalFlushMs: 20,
      ...over,
    });
    pubs.push(p);
    return { p, metrics, agentId, base: `brtest/${agentId}` };
  }

  async function sub(url: string, topics: string[], opts: IClientOptions = {}): Promise<Sub> {
    const s = await Sub.open(url, topics, opts);
    subs.push(s);
    return s;
  }

  beforeAll(async () => {
    broker = await Mosquitto.start();
  });
  afterEach(async () => {
    for (const p of pubs.splice(0)) await p.stop(500);
    for (const s of subs.splice(0)) await s.close();
    for (const c of procs.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  afterAll(async () => {
    await broker?.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('publishes retained status (online) and client state, and events in order', async () => {
    const { p, base } = makePub();
    const s = await sub(broker.url, [`${base}/#`]);
    await p.start();
    await waitFor(() => p.connected, 5000, 'publisher connected');
    p.publishClient(client('52:54:00:00:00:01', 'loader', 10));
    for (let i = 0; i < 20; i++) p.publishEvent(ev(i));
    await waitFor(() => s.on(`${base}/events`).length >= 20, 5000, 'events');
    expect(order(s.events(`${base}/events`))).toEqual(range(0, 20));
    expect(s.events(`${base}/events`)[0]).toMatchObject({ type: 'tftp.start', mac: '52:54:00:00:00:01' });
    await waitFor(() => p.pending === 0, 5000, 'journal drained');

    // a late subscriber gets the retained state
    const late = await sub(broker.url, [`${base}/#`]);
    await waitFor(() => late.last(`${base}/clients/52:54:00:00:00:01`) && late.last(`${base}/status`), 5000, 'retained');
    expect(late.last(`${base}/status`)).toMatchObject({ online: true, version: 'test', uplink: 'up' });
    expect(late.last(`${base}/clients/52:54:00:00:00:01`)).toMatchObject({ phase: 'loader', bytes: 10, totalBytes: 1000 });
    expect(late.on(`${base}/status`)[0]!.retain).toBe(true);
    expect(late.on(`${base}/events`)).toHaveLength(0);

    // progress events stay out of …/events by default
    p.publishEvent(scripted('tftp.progress', { mac: '52:54:00:00:00:01', bytes: 5 }));
    p.publishEvent(ev(99));
    await waitFor(() => order(s.events(`${base}/events`)).includes(99), 5000, 'event 99');
    expect(s.events(`${base}/events`).some((e) => e.type === 'tftp.progress')).toBe(false);

    // a graceful stop leaves {"online":false}
    await p.stop();
    await waitFor(() => (s.last(`${base}/status`) as { online?: boolean })?.online === false, 5000, 'offline status');
  });

  it('publishes the will {"online":false} when the agent process is SIGKILLed', async () => {
    const dir = stateDir();
    const runnerTs = join(dir, 'runner.ts');
    const runnerJs = join(dir, 'runner.cjs');
    const pubPath = resolve(__dirname, '../../agent/publish/mqtt');
    writeFileSync(
      runnerTs,
      `import { MqttPublisher } from ${JSON.stringify(pubPath)};
import { Metrics } from ${JSON.stringify(resolve(__dirname, '../../relay/metrics'))};
import { silentLogger } from ${JSON.stringify(resolve(__dirname, '../../agent/log'))};
const o = JSON.parse(process.argv[2]);
const p = new MqttPublisher({ config: o.config, agentId: o.agentId, stateDir: o.stateDir, log: silentLogger,
  metrics: new Metrics(), status: () => ({ version: 'child', uplink: 'up', clients: 0, cache: {} }),
  reconnectMinMs: 100, reconnectMaxMs: 400, journalFlushMs: 10 });
p.start().then(() => {
  for (let i = 0; i < (o.events ?? 0); i++) p.publishEvent({ ts: new Date().toISOString(), type: 'dhcp.discover', mac: '52:54:00:00:00:09', i });
  const t = setInterval(() => { if (p.connected) { clearInterval(t); console.log('connected'); } }, 10);
});
`,
    );
    await build({ entryPoints: [runnerTs], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: runnerJs, logLevel: 'error' });
    const agentId = `child${process.pid}`;
    const base = `brtest/${agentId}`;
    const s = await sub(broker.url, [`${base}/#`]);
    const child = spawn(process.execPath, [runnerJs, JSON.stringify({ config: cfg(broker.url), agentId, stateDir: dir })], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(child);
    const rl = createInterface({ input: child.stdout! });
    await new Promise<void>((res, rej) => {
      rl.on('line', (l) => l === 'connected' && res());
      child.once('close', () => rej(new Error('runner exited')));
    });
    await waitFor(() => (s.last(`${base}/status`) as { online?: boolean })?.online === true, 5000, 'online status');
    child.kill('SIGKILL');
    await waitFor(() => s.on(`${base}/status`).some((m) => m.text === '{"online":false}'), 5000, 'will message');
    // and it is retained
    const late = await sub(broker.url, [`${base}/status`]);
    await waitFor(() => late.on(`${base}/status`).length > 0, 5000, 'retained will');
    expect(late.on(`${base}/status`)[0]).toMatchObject({ text: '{"online":false}', retain: true });
  });

  it('republishes retained status and every client after the broker restarts without persistence', async () => {
    const { p, base } = makePub();
    await p.start();
    await waitFor(() => p.connected, 5000, 'connected');
    p.publishClient(client('52:54:00:00:00:01', 'kernel', 500));
    p.publishClient(client('52:54:00:00:00:02', 'booted', 1000));
    const s1 = await sub(broker.url, [`${base}/#`]);
    await waitFor(() => s1.on(`${base}/clients/52:54:00:00:00:02`).length > 0, 5000, 'client 2');
    await s1.close();
    subs.splice(subs.indexOf(s1), 1);

    await broker.stop();
    await waitFor(() => !p.connected, 5000, 'publisher notices the outage');
    // while offline: several updates for one client, the latest must win
    p.publishClient(client('52:54:00:00:00:01', 'initrd', 600));
    p.publishClient(client('52:54:00:00:00:01', 'handoff', 1000));
    await broker.start();
    await waitFor(() => p.stats().connects >= 2, 10_000, 'reconnect');
    const s2 = await sub(broker.url, [`${base}/#`]);
    await waitFor(() => s2.last(`${base}/status`) && s2.last(`${base}/clients/52:54:00:00:00:01`) && s2.last(`${base}/clients/52:54:00:00:00:02`), 5000, 'retained after restart');
    expect(s2.last(`${base}/status`)).toMatchObject({ online: true });
    expect(s2.last(`${base}/clients/52:54:00:00:00:01`)).toMatchObject({ phase: 'handoff', bytes: 1000 });
    expect(s2.last(`${base}/clients/52:54:00:00:00:02`)).toMatchObject({ phase: 'booted' });
    expect(s2.on(`${base}/clients/52:54:00:00:00:01`).every((m) => m.retain)).toBe(true);
  });

  it('loses no event and keeps their order across a broker outage', async () => {
    // a persistent broker, so that the observer's own session survives the restart
    const pb = await Mosquitto.start({ persistence: true, websockets: false });
    try {
      const { p, base, metrics } = makePub({ url: pb.url });
      const s = await sub(pb.url, [`${base}/events`], { clean: false, clientId: `obs-${process.pid}` });
      await p.start();
      await waitFor(() => p.connected, 5000, 'connected');
      for (let i = 0; i < 50; i++) p.publishEvent(ev(i));
      await waitFor(() => s.on(`${base}/events`).length >= 50, 5000, 'first 50');
      await pb.stop();
      await waitFor(() => !p.connected, 5000, 'outage noticed');
      for (let i = 50; i < 150; i++) p.publishEvent(ev(i));
      expect(p.pending).toBe(100);
      await waitFor(() => readFileSync(join(p['opts'].stateDir, 'events.jsonl'), 'utf8').split('\n').filter(Boolean).length >= 100, 5000, 'journal on disk');
      await pb.start();
      await waitFor(() => order(s.events(`${base}/events`)).length >= 150, 15_000, 'all 150 events');
      expect(order(s.events(`${base}/events`))).toEqual(range(0, 150));
      await waitFor(() => p.pending === 0, 5000, 'journal drained');
      expect(metrics.get(MQTT_METRICS.published, { kind: 'event' })).toBe(150);
      expect(metrics.get(MQTT_METRICS.connected)).toBe(1);
    } finally {
      for (const p of pubs.splice(0)) await p.stop(500);
      for (const s of subs.splice(0)) await s.close();
      await pb.cleanup();
    }
  });

  it('delivers events left in the journal by a stopped agent when a new one starts on the same stateDir', async () => {
    const dir = stateDir();
    const agentId = `restart${process.pid}`;
    const base = `brtest/${agentId}`;
    await broker.stop();
    const { p: a } = makePub({ stateDir: dir, agentId });
    await a.start();
    for (let i = 0; i < 30; i++) a.publishEvent(ev(i));
    await a.stop(200);
    expect(existsSync(join(dir, 'events.jsonl'))).toBe(true);
    await broker.start();
    const s = await sub(broker.url, [`${base}/events`]);
    const { p: b } = makePub({ stateDir: dir, agentId });
    await b.start();
    b.publishEvent(ev(30));
    await waitFor(() => order(s.events(`${base}/events`)).length >= 31, 10_000, '31 events');
    expect(order(s.events(`${base}/events`))).toEqual(range(0, 31));
    await waitFor(() => b.pending === 0, 5000, 'drained');
  });

  it('replays the journal of an agent that was SIGKILLed while the broker was down', async () => {
    const dir = stateDir();
    const runnerTs = join(dir, 'runner.ts');
    const runnerJs = join(dir, 'runner.cjs');
    writeFileSync(
      runnerTs,
      `import { MqttPublisher } from ${JSON.stringify(resolve(__dirname, '../../agent/publish/mqtt'))};
import { Metrics } from ${JSON.stringify(resolve(__dirname, '../../relay/metrics'))};
import { silentLogger } from ${JSON.stringify(resolve(__dirname, '../../agent/log'))};
const o = JSON.parse(process.argv[2]);
const p = new MqttPublisher({ config: o.config, agentId: o.agentId, stateDir: o.stateDir, log: silentLogger,
  metrics: new Metrics(), status: () => ({}), reconnectMinMs: 100, reconnectMaxMs: 400, journalFlushMs: 10 });
p.start().then(() => {
  for (let i = 0; i < o.events; i++) p.publishEvent({ ts: new Date().toISOString(), type: 'dhcp.discover', mac: '52:54:00:00:00:09', i });
  console.log('published');
});
`,
    );
    await build({ entryPoints: [runnerTs], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: runnerJs, logLevel: 'error' });
    const agentId = `crash${process.pid}`;
    const base = `brtest/${agentId}`;
    await broker.stop();
    const child = spawn(process.execPath, [runnerJs, JSON.stringify({ config: cfg(broker.url), agentId, stateDir: dir, events: 40 })], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(child);
    const journal = join(dir, 'events.jsonl');
    await waitFor(() => existsSync(journal) && readFileSync(journal, 'utf8').split('\n').filter(Boolean).length >= 40, 5000, 'journal fsynced');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    await broker.start();
    const s = await sub(broker.url, [`${base}/events`]);
    const { p: b } = makePub({ stateDir: dir, agentId });
    await b.start();
    await waitFor(() => order(s.events(`${base}/events`)).length >= 40, 10_000, '40 events');
    expect(order(s.events(`${base}/events`))).toEqual(range(0, 40));
  });

  it('bounds the journal while offline: the oldest events are dropped and counted', async () => {
    await broker.stop();
    const dir = stateDir();
    const agentId = `bound${process.pid}`;
    const base = `brtest/${agentId}`;
    const { p, metrics } = makePub({ stateDir: dir, agentId, mqtt: { journalMaxEvents: 10 } });
    await p.start();
    for (let i = 0; i < 25; i++) p.publishEvent(ev(i));
    expect(p.stats()).toMatchObject({ pending: 10, dropped: 15, connected: false });
    expect(metrics.get(JOURNAL_METRICS.dropped)).toBe(15);
    expect(metrics.get(JOURNAL_METRICS.size)).toBe(10);
    p.publishStatus();
    await p.stop(200);
    // the survivors are delivered by the next run, in order; and the status tells of the drops
    await broker.start();
    const s = await sub(broker.url, [`${base}/#`]);
    const { p: q } = makePub({ stateDir: dir, agentId, mqtt: { journalMaxEvents: 10 } });
    await q.start();
    await waitFor(() => order(s.events(`${base}/events`)).length >= 10, 10_000, '10 events');
    expect(order(s.events(`${base}/events`))).toEqual(range(15, 25));
    await waitFor(() => q.connected && q.pending === 0, 5000, 'drained');
    q.publishStatus();
    await waitFor(() => (s.last(`${base}/status`) as { mqtt?: { pending?: number } })?.mqtt?.pending === 0, 5000, 'status with journal');
    expect(s.last(`${base}/status`)).toMatchObject({ online: true, mqtt: { pending: 0, dropped: 0 } });
  });

  it('answers remote commands on …/cmd/<name> with {txid, ok, result|error}', async () => {
    const calls: Array<[string, unknown]> = [];
    const { p, base, metrics } = makePub({
      mqtt: { commands: true },
      handleCommand: async (name, args) => {
        calls.push([name, args]);
        if (name === 'fail') throw new Error('no such profile');
        return { echoed: args };
      },
    });
    const s = await sub(broker.url, [`${base}/cmd/+/reply`]);
    // a retained command (left on the broker) must not run when the agent subscribes
    await s.client.publishAsync(`${base}/cmd/echo`, JSON.stringify({ txid: 'r', args: {} }), { qos: 1, retain: true });
    await p.start();
    await waitFor(() => p.connected, 5000, 'connected');
    await waitFor(() => metrics.get(MQTT_METRICS.commands, { result: 'retained' }) === 1, 5000, 'retained command refused');
    await s.client.publishAsync(`${base}/cmd/echo`, '', { qos: 1, retain: true }); // clear it
    // the subscription is made right after CONNACK; poll until a command gets through
    await waitFor(
      async () => {
        await s.client.publishAsync(`${base}/cmd/echo`, JSON.stringify({ txid: 't1', args: { x: 1 } }), { qos: 1 });
        return s.on(`${base}/cmd/echo/reply`).length > 0;
      },
      5000,
      'echo reply',
    );
    expect(s.last(`${base}/cmd/echo/reply`)).toEqual({ txid: 't1', ok: true, result: { echoed: { x: 1 } } });
    await s.client.publishAsync(`${base}/cmd/fail`, JSON.stringify({ txid: 7, args: {} }), { qos: 1 });
    await s.client.publishAsync(`${base}/cmd/echo`, 'not json{', { qos: 1 });
    await waitFor(() => s.on(`${base}/cmd/fail/reply`).length > 0 && s.on(`${base}/cmd/echo/reply`).some((m) => m.text.includes('malformed')), 5000, 'replies');
    expect(s.last(`${base}/cmd/fail/reply`)).toEqual({ txid: 7, ok: false, error: 'no such profile' });
    expect(JSON.parse(s.on(`${base}/cmd/echo/reply`).find((m) => m.text.includes('malformed'))!.text)).toMatchObject({ txid: null, ok: false });
    expect(s.events(`${base}/cmd/echo/reply`).some((r) => r.txid === 'r')).toBe(false);
    expect(calls.every(([n]) => n === 'echo' || n === 'fail')).toBe(true);

    // the command subscription survives a broker restart
    await broker.stop();
    await broker.start();
    await waitFor(() => p.stats().connects >= 2, 10_000, 'publisher reconnected');
    await s.client.subscribeAsync(`${base}/cmd/+/reply`, { qos: 1 });
    await waitFor(
      async () => {
        await s.client.publishAsync(`${base}/cmd/echo`, JSON.stringify({ txid: 't2', args: 2 }), { qos: 1 });
        return s.events(`${base}/cmd/echo/reply`).some((r) => r.txid === 't2');
      },
      5000,
      'reply after the restart',
    );
  });

  it('coalesces client state: latest wins while offline, one publish in flight per client while online', async () => {
    const { p, base, metrics } = makePub();
    const s = await sub(broker.url, [`${base}/clients/#`]);
    await p.start();
    await waitFor(() => p.connected, 5000, 'connected');
    const mac = '52:54:00:00:00:0c';
    for (let i = 0; i <= 1000; i++) p.publishClient(client(mac, 'kernel', i));
    await waitFor(() => (s.last(`${base}/clients/${mac}`) as { bytes?: number })?.bytes === 1000, 5000, 'latest state');
    expect(s.on(`${base}/clients/${mac}`).length).toBeLessThanOrEqual(2);
    expect(metrics.get(MQTT_METRICS.published, { kind: 'client' })).toBeLessThanOrEqual(2);

    await broker.stop();
    await waitFor(() => !p.connected, 5000, 'offline');
    const before = metrics.get(MQTT_METRICS.published, { kind: 'client' });
    for (let i = 0; i <= 500; i++) p.publishClient(client(mac, 'initrd', i));
    await broker.start();
    await s.client.subscribeAsync(`${base}/clients/#`, { qos: 1 }); // our observer lost its subscription with the broker
    await waitFor(() => p.stats().connects >= 2 && metrics.get(MQTT_METRICS.published, { kind: 'status' }) >= 2, 10_000, 'republished');
    await waitFor(() => metrics.get(MQTT_METRICS.published, { kind: 'client' }) > before, 5000, 'client republished');
    expect(metrics.get(MQTT_METRICS.published, { kind: 'client' })).toBe(before + 1);
    const late = await sub(broker.url, [`${base}/clients/#`]);
    await waitFor(() => late.last(`${base}/clients/${mac}`), 5000, 'retained');
    expect(late.last(`${base}/clients/${mac}`)).toMatchObject({ phase: 'initrd', bytes: 500 });
  });

  it('publishes byte progress of a client at most every clientProgressMs, a phase change at once', async () => {
    const { p, base, metrics } = makePub({ clientProgressMs: 400 });
    const s = await sub(broker.url, [`${base}/clients/#`]);
    await p.start();
    await waitFor(() => p.connected, 5000, 'connected');
    const mac = '52:54:00:00:00:0e';
    const topic = `${base}/clients/${mac}`;
    p.publishClient(client(mac, 'kernel', 0));
    await waitFor(() => s.on(topic).length === 1, 5000, 'first state');
    for (let i = 1; i <= 20; i++) {
      p.publishClient(client(mac, 'kernel', i * 100));
      await new Promise((r) => setTimeout(r, 10));
    }
    // ~200 ms of progress inside one 400 ms window: nothing more yet, then the latest once
    expect(s.on(topic).length).toBe(1);
    await waitFor(() => (s.last(topic) as { bytes?: number })?.bytes === 2000, 2000, 'latest progress');
    expect(s.on(topic).length).toBe(2);
    p.publishClient(client(mac, 'initrd', 0)); // a phase change does not wait
    await waitFor(() => (s.last(topic) as { phase?: string })?.phase === 'initrd', 300, 'phase change at once');
    expect(metrics.get(MQTT_METRICS.published, { kind: 'client' })).toBe(3);
  });

  it('keeps at most maxClients client states for republishing, the most recently updated ones', async () => {
    const { p, base, metrics } = makePub({ maxClients: 3 });
    await p.start();
    await waitFor(() => p.connected, 5000, 'connected');
    const before = p.retainedTopics; // status (and discovery when on)
    const macs = Array.from({ length: 6 }, (_, i) => `52:54:00:00:0d:0${i}`);
    for (const m of macs.slice(0, 3)) p.publishClient(client(m, 'dhcp'));
    p.publishClient(client(macs[0]!, 'bound')); // the oldest becomes the latest
    for (const m of macs.slice(3)) p.publishClient(client(m, 'dhcp'));
    expect(p.retainedTopics).toBe(before + 3);
    // (nothing left in flight, which MQTT.js itself would send again after the restart)
    await waitFor(() => metrics.get(MQTT_METRICS.published, { kind: 'client' }) >= 6, 5000, 'all acknowledged');
    // after a broker restart without persistence, what is republished is those three
    await broker.stop();
    await waitFor(() => !p.connected, 5000, 'offline');
    const sent = metrics.get(MQTT_METRICS.published, { kind: 'client' });
    await broker.start();
    await waitFor(() => p.stats().connects >= 2 && metrics.get(MQTT_METRICS.published, { kind: 'client' }) >= sent + 3, 10_000, 'republished');
    const late = await sub(broker.url, [`${base}/clients/#`]);
    await waitFor(() => macs.slice(3).every((m) => late.last(`${base}/clients/${m}`)), 5000, 'retained');
    expect(macs.slice(0, 3).filter((m) => late.on(`${base}/clients/${m}`).length > 0)).toEqual([]);
  });

  it('connects over TLS (mqtts://, caFile) with a username and password; a wrong password is counted, not fatal', async () => {
    const tb = await Mosquitto.start({ tls: true, websockets: false, users: { relay: 's3cret', watcher: 'w' } });
    try {
      const { p, base } = makePub({ url: tb.tlsUrl, mqtt: { caFile: tb.caFile, username: 'relay', password: 's3cret' } });
      const s = await sub(tb.url, [`${base}/#`], { username: 'watcher', password: 'w' });
      await p.start();
      await waitFor(() => p.connected, 10_000, 'TLS connection');
      expect(p.stats().url).toBe(tb.tlsUrl);
      p.publishEvent(ev(1));
      await waitFor(() => s.on(`${base}/events`).length === 1 && s.last(`${base}/status`), 5000, 'event over TLS');

      const bad = makePub({ url: tb.tlsUrl, mqtt: { caFile: tb.caFile, username: 'relay', password: 'wrong' } });
      await bad.p.start();
      bad.p.publishEvent(ev(2));
      // refused, counted, and retried (with backoff) rather than given up
      await waitFor(() => bad.metrics.get(MQTT_METRICS.errors) >= 2, 10_000, 'refused connection counted and retried');
      expect(bad.p.connected).toBe(false);
      expect(bad.p.pending).toBe(1);
    } finally {
      for (const p of pubs.splice(0)) await p.stop(500);
      for (const s of subs.splice(0)) await s.close();
      await tb.cleanup();
    }
  });

  it('refuses a bad url or an unreadable caFile at start, before opening anything', async () => {
    const { p } = makePub({ url: 'http://127.0.0.1:1' });
    await expect(p.start()).rejects.toThrow(/mqtt.url: expected mqtt:\/\/ or mqtts:\/\//);
    const { p: q } = makePub({ mqtt: { caFile: '/nonexistent/ca.pem' } });
    await expect(q.start()).rejects.toThrow(/mqtt.caFile: cannot read \/nonexistent\/ca.pem/);
  });

  it('publishes Home Assistant discovery for the relay and each client (retained)', async () => {
    const { p, base, agentId } = makePub({ mqtt: { homeAssistant: true } });
    const id = agentId.replace(/[^a-zA-Z0-9_-]/g, '_');
    const s = await sub(broker.url, ['homeassistant/#']);
    await p.start();
    await waitFor(() => p.connected, 5000, 'connected');
    p.publishClient(client('52:54:00:ab:cd:ef', 'dhcp'));
    const topic = `homeassistant/sensor/${id}_525400abcdef_phase/config`;
    await waitFor(() => s.last(topic) && s.last(`homeassistant/binary_sensor/${id}_online/config`), 5000, 'discovery');
    expect(s.last(topic)).toMatchObject({
      state_topic: `${base}/clients/52:54:00:ab:cd:ef`,
      value_template: '{{ value_json.phase }}',
      availability_topic: `${base}/status`,
      device: { via_device: `bootrelay_${id}`, connections: [['mac', '52:54:00:ab:cd:ef']] },
    });
    expect(s.on(topic)[0]!.retain).toBe(false); // live delivery; retained flag only for late subscribers
    p.removeClient('52:54:00:ab:cd:ef');
    await waitFor(() => s.on(topic).some((m) => m.text === ''), 5000, 'discovery cleared');
  });
});
