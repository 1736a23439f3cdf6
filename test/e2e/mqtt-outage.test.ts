/**
 * End to end, issue 5: the MQTT publisher against a real Mosquitto through outages.
 *
 * 1. A UEFI VM boots through the relay; the broker is stopped (SIGTERM, by PID) the
 *    moment the agent logs the VM's first dhcp.ack and stays down until the VM has
 *    booted, then is started again. What the subscribers received before and after
 *    the outage holds every event the agent logged for that MAC, in the agent's
 *    order, no gaps; the retained client state is `booted` and the status online.
 * 2. With the broker down, events happen (/boot.ipxe and /booted from the relay's
 *    namespace); once they are in the on-disk journal the agent is SIGKILLed, the
 *    broker is started, and the restarted agent delivers them.
 * 3. The agent SIGKILLed while connected: the broker publishes its will ({"online":false}).
 * 4. Cut off from a live broker, then killed: the restarted agent replays client.booted on
 *    …/events and the retained …/clients/<mac> catches up (client states are kept in
 *    stateDir/clients.jsonl and republished on connect).
 *
 * The agent's own log (one line per event) is the ground truth. A subscriber that is
 * not yet subscribed when the agent reconnects would miss events by the test's fault:
 * so while the restarted broker comes up and the new subscriber subscribes, an nft
 * rule in the relay's namespace refuses the agent's connections (TCP reset, exactly
 * what a dead broker looks like); it is removed once the subscriber is proven live.
 */
import { it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/netns';
import { BootLab, labWorkDir, labSkipReason, UP_IP, RELAY_LAN_IP, type AgentLine } from './lab';
import { agentBundle } from './steps';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const BASE = 'bootrelay/lab-relay';
const reason =
  labSkipReason() ??
  missingCmds('mosquitto', 'mosquitto_sub', 'mosquitto_pub', 'nft');

/** pino's own fields on an event line; everything else is the event */
const PINO = new Set(['level', 'time', 'pid', 'hostname', 'agentId', 'component', 'msg']);

/** What identifies one event, in the log and on MQTT alike. */
function key(e: Record<string, unknown>): string {
  return [e.ts, e.type, e.mac, e.xid, e.file, e.ip].map((v) => (v === undefined ? '' : String(v))).join('|');
}

/** The event as published: the log line without pino's fields. */
function eventOf(l: AgentLine): Record<string, unknown> {
  return Object.fromEntries(Object.entries(l).filter(([k]) => !PINO.has(k)));
}

interface Sub {
  proc: ChildProcess;
  out: string;
  name: string;
}

describeSkipIf(reason)('e2e: MQTT through a broker outage and an agent crash (QEMU, Mosquitto)', () => {
  let lab: BootLab;
  let work: string;
  let broker: ChildProcess | undefined;
  const subs: Sub[] = [];
  const timings: Record<string, number> = {};
  let probeN = 0;
  /** set by test 1: stop the broker when the agent logs this (type, mac) */
  let stopOn: { type: string; mac: string; at?: number } | undefined;

  const conf = () => join(work, 'mosquitto.conf');

  async function startBroker(l: BootLab): Promise<void> {
    const p = l.net.spawn(l.nsUp, 'mosquitto', ['-c', conf()]);
    let err = '';
    p.stderr?.on('data', (d) => (err += d));
    broker = p;
    await waitFor(
      async () => {
        if (p.exitCode !== null) throw new Error(`mosquitto exited ${p.exitCode}: ${err}`);
        return (await l.net.exec(l.nsUp, 'mosquitto_pub', ['-h', UP_IP, '-t', 'probe/up', '-m', 'x'], { timeoutMs: 3000 })).code === 0;
      },
      5000,
      'mosquitto to accept connections',
    );
  }

  async function stopBroker(): Promise<void> {
    const b = broker;
    broker = undefined;
    if (b) await lab.net.kill(b, 'SIGTERM', 3000);
  }

  /** A QoS 1 subscriber on bootrelay/#; resolves once a probe published after it proves it is subscribed. */
  async function startSub(name: string): Promise<Sub> {
    const proc = lab.net.spawn(lab.nsUp, 'mosquitto_sub', ['-h', UP_IP, '-v', '-q', '1', '-t', 'bootrelay/#', '-t', 'probe/#']);
    const s: Sub = { proc, out: '', name };
    proc.stdout?.on('data', (d) => (s.out += d));
    subs.push(s);
    const probe = `probe/${name}/${++probeN}`;
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto_sub ${name} exited ${proc.exitCode}`);
        await lab.net.exec(lab.nsUp, 'mosquitto_pub', ['-h', UP_IP, '-q', '1', '-t', probe, '-m', 'x'], { timeoutMs: 3000 });
        return s.out.includes(`${probe} x\n`);
      },
      5000,
      `subscriber ${name} to be subscribed`,
    );
    return s;
  }

  async function stopSubs(): Promise<void> {
    for (const s of subs) if (s.proc.exitCode === null && s.proc.signalCode === null) await lab.net.kill(s.proc, 'SIGTERM', 2000);
  }

  /** Messages the subscribers got, in arrival order (subscribers one after the other). */
  function received(suffix: string): Array<Record<string, any>> {
    const out: Array<Record<string, any>> = [];
    for (const s of subs)
      for (const line of s.out.split('\n')) {
        const sp = line.indexOf(' ');
        if (sp < 0 || line.slice(0, sp) !== `${BASE}/${suffix}`) continue;
        const body = line.slice(sp + 1);
        out.push(body ? JSON.parse(body) : {});
      }
    return out;
  }

  /** Agent's event lines (the ground truth), for one MAC or for all; from index `from` of lab.lines. */
  function logged(mac?: string, from = 0): Array<Record<string, unknown>> {
    return lab.lines
      .slice(from)
      .filter((l) => l.component === 'events' && typeof l.type === 'string' && !l.type.endsWith('.progress') && (!mac || l.mac === mac))
      .map(eventOf);
  }

  /** Compares MQTT events to the log: every logged one delivered, in order, no gaps (duplicates are allowed: at-least-once). */
  function compare(want: Array<Record<string, unknown>>, got: Array<Record<string, unknown>>): { missing: string[]; order: boolean; dups: number; firstDiff?: string } {
    const seen = new Set<string>();
    const firstOnly: string[] = [];
    let dups = 0;
    for (const e of got) {
      const k = key(e);
      if (seen.has(k)) dups++;
      else {
        seen.add(k);
        firstOnly.push(k);
      }
    }
    const wantKeys = want.map(key);
    const missing = wantKeys.filter((k) => !seen.has(k));
    const wanted = new Set(wantKeys);
    const gotWanted = firstOnly.filter((k) => wanted.has(k));
    const i = wantKeys.findIndex((k, j) => gotWanted[j] !== k);
    return { missing, order: i < 0, dups, firstDiff: i < 0 ? undefined : `#${i}: want ${wantKeys[i]} got ${gotWanted[i]}` };
  }

  async function retained(suffix: string): Promise<Record<string, any> | undefined> {
    const r = await lab.net.exec(lab.nsUp, 'mosquitto_sub', ['-h', UP_IP, '-C', '1', '-W', '3', '-t', `${BASE}/${suffix}`], { timeoutMs: 6000 });
    const line = r.stdout.split('\n').find(Boolean);
    return line ? JSON.parse(line) : undefined;
  }

  /** Refuse (TCP reset) the agent's connections to the broker, or allow them again. */
  async function blockAgent(on: boolean): Promise<void> {
    const script = on
      ? 'table inet mqttblock {\n chain out {\n  type filter hook output priority 0; policy accept;\n  tcp dport 1883 reject with tcp reset\n }\n}\n'
      : 'delete table inet mqttblock\n';
    const r = await lab.net.exec(lab.nsRelay, 'nft', ['-f', '-'], { input: script });
    if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
  }

  function journalPending(): Set<string> {
    const f = join(work, 'state', 'events.jsonl');
    const live = new Map<number, string>();
    if (!existsSync(f)) return new Set();
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as { s?: number; e?: Record<string, unknown>; a?: number; d?: number };
        if (typeof r.s === 'number' && r.e) live.set(r.s, key(r.e));
        else if (typeof r.a === 'number') live.delete(r.a);
        else if (typeof r.d === 'number') live.delete(r.d);
      } catch {
        /* torn tail */
      }
    }
    return new Set(live.values());
  }

  async function metric(name: string): Promise<number | undefined> {
    const r = await lab.net.exec(lab.nsRelay, 'curl', ['-sf', `http://${RELAY_LAN_IP}/metrics`]);
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(r.stdout);
    return m ? Number(m[1]) : undefined;
  }

  const logLines = (msg: string, from = 0) => lab.lines.slice(from).filter((l) => l.component === 'mqtt' && l.msg === msg);

  beforeAll(async () => {
    work = labWorkDir('e2e-mqtt');
    const agent = agentBundle(work);
    writeFileSync(conf(), `listener 1883 ${UP_IP}\nallow_anonymous true\npersistence false\n`);
    lab = new BootLab({
      prefix: `brm${process.pid % 10000}`,
      work,
      agentJs: agent.js,
      mqttUrl: `mqtt://${UP_IP}:1883`,
      beforeAgent: async (l) => {
        lab = l;
        await startBroker(l);
        await startSub('before');
      },
      onLine: (l) => {
        // stop the broker the moment the agent logs the trigger: synchronous, by PID
        if (stopOn && stopOn.at === undefined && l.type === stopOn.type && l.mac === stopOn.mac && broker) {
          stopOn.at = Date.now();
          broker.kill('SIGTERM');
        }
      },
    });
    timings.labUp = await lab.upOrCleanup();
  }, 120_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e-mqtt', timings);
    await lab.cleanup();
  }, 60_000);

  it('broker stopped mid-boot: no event lost, in order; retained state booted after it is back', async () => {
    const mac = '52:54:00:99:0e:51';
    stopOn = { type: 'dhcp.ack', mac };
    const t0 = Date.now();
    const r = await lab.boot('uefi', mac, 150_000);
    timings.boot = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    expect(stopOn.at, 'the broker was stopped at the first dhcp.ack').toBeDefined();
    timings.outageAfterBootStart = (stopOn.at! - t0) / 1000;
    const b = broker!;
    await waitFor(() => b.exitCode !== null || b.signalCode !== null, 5000, 'mosquitto to exit');
    broker = undefined;
    await stopSubs(); // it may try to reconnect on its own: this test decides when it listens again

    // the events of the outage: logged by the agent, journaled, not yet on MQTT
    const all = logged(mac);
    const ackAt = all.findIndex((e) => e.type === 'dhcp.ack');
    const during = all.slice(ackAt + 1);
    expect(during.map((e) => e.type)).toContain('client.booted');
    expect(logLines('mqtt disconnected').length).toBeGreaterThan(0);

    // back up: the agent is held off until a new subscriber is proven subscribed
    await blockAgent(true);
    const tBack = Date.now();
    await startBroker(lab);
    await startSub('after');
    await blockAgent(false);
    const connectsBefore = logLines('mqtt connected').length;
    await waitFor(() => logLines('mqtt connected').length > connectsBefore, 40_000, 'the agent to reconnect');
    timings.reconnectAfterBrokerBack = (Date.now() - tBack) / 1000;

    const events = () => received('events').filter((e) => e.mac === mac);
    await waitFor(() => compare(all, events()).missing.length === 0, 20_000, 'every logged event on MQTT').catch(() => undefined);
    const c = compare(all, events());
    timings.eventsLogged = all.length;
    timings.eventsDuringOutage = during.length;
    timings.duplicates = c.dups;
    expect(c.missing, `missing on MQTT (of ${all.length}): ${c.missing.join(', ')}`).toEqual([]);
    expect(c.order, `out of order: ${c.firstDiff}`).toBe(true);
    // the outage's events came after the broker was back
    const afterKeys = new Set(subs.find((s) => s.name === 'after')!.out.split('\n').filter((l) => l.startsWith(`${BASE}/events `)).map((l) => key(JSON.parse(l.slice(l.indexOf(' ') + 1)))));
    expect(during.filter((e) => afterKeys.has(key(e))).length).toBeGreaterThan(0);

    // retained: the client's state and the status, as a fresh subscriber sees them
    const state = await retained(`clients/${mac}`);
    expect(state?.phase).toBe('booted');
    expect(state?.mac).toBe(mac);
    const status = await retained('status');
    expect(status?.online).toBe(true);
    // the states seen live went forward through the contract's phases to booted
    const phases = received(`clients/${mac}`).map((s) => s.phase as string);
    expect(phases.at(-1)).toBe('booted');
    expect(phases.indexOf('dhcp')).toBeGreaterThanOrEqual(0);
    expect(phases.indexOf('dhcp')).toBeLessThan(phases.indexOf('booted'));
    // the journal is drained
    await waitFor(async () => (await metric('bootrelay_mqtt_journal_events')) === 0, 10_000, 'an empty journal');
  }, 240_000);

  it('agent killed with unsent events: the restarted agent delivers them', async () => {
    const mac = '52:54:00:99:aa:01';
    await stopBroker();
    await stopSubs();
    await waitFor(() => lab.agent && logLines('mqtt disconnected').length >= 2, 10_000, 'the agent to see the broker gone');
    const from = lab.lines.length;
    for (const path of [`/boot.ipxe?mac=${mac}`, `/booted?mac=${mac}`]) {
      const r = await lab.net.exec(lab.nsRelay, 'curl', ['-sf', '-o', '/dev/null', `http://${RELAY_LAN_IP}${path}`]);
      expect(r.code, path).toBe(0);
    }
    await waitFor(() => logged(mac, from).some((e) => e.type === 'client.booted'), 5000, 'client.booted in the log');
    const want = logged(undefined, from);
    expect(want.filter((e) => e.mac === mac).map((e) => e.type)).toEqual(['http.start', 'http.done', 'client.booted']);
    // the journal batches writes (flushMs): kill once they are on disk, not before
    await waitFor(() => want.every((e) => journalPending().has(key(e))), 5000, 'the events in the on-disk journal');
    timings.pendingAtKill = journalPending().size;
    await lab.stopAgent('SIGKILL');
    expect(lab.agent!.signalCode).toBe('SIGKILL');

    await startBroker(lab);
    const sub = await startSub('restart');
    const t0 = Date.now();
    const restartFrom = lab.lines.length;
    await lab.startAgent(); // the control socket file left by the killed agent is replaced
    const evs = () =>
      sub.out
        .split('\n')
        .filter((l) => l.startsWith(`${BASE}/events `))
        .map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)) as Record<string, unknown>);
    await waitFor(() => compare(want, evs()).missing.length === 0, 20_000, 'the journaled events on MQTT').catch(() => undefined);
    timings.deliveredAfterRestart = (Date.now() - t0) / 1000;
    const c = compare(want, evs());
    expect(c.missing, `missing after restart: ${c.missing.join(', ')}`).toEqual([]);
    expect(c.order, `out of order: ${c.firstDiff}`).toBe(true);
    const replay = lab.lines.slice(restartFrom).find((l) => l.msg === 'journal replay pending');
    expect(replay?.pending).toBeGreaterThanOrEqual(want.length);
    expect(lab.lines.slice(restartFrom).some((l) => l.msg === 'stale control socket replaced')).toBe(true);
    expect((await retained('status'))?.online).toBe(true);
    await waitFor(async () => (await metric('bootrelay_mqtt_journal_events')) === 0, 10_000, 'an empty journal');
    // not asserted (the tracker is in memory): whether the restarted agent knows the client's state
    const st = await retained(`clients/${mac}`);
    console.log(`[e2e-mqtt] after the restart, retained clients/${mac}: ${st ? JSON.stringify(st) : 'none'}`);
  }, 120_000);

  it('agent killed while connected: the broker publishes its will (offline); restarted, it is online again', async () => {
    expect(lab.agent?.exitCode).toBeNull();
    await waitFor(async () => (await retained('status'))?.online === true, 5000, 'status online');
    await lab.stopAgent('SIGKILL');
    const st = await waitFor(async () => {
      const s = await retained('status');
      return s?.online === false ? s : undefined;
    }, 10_000, 'the will on …/status');
    expect(st).toEqual({ online: false });
    await lab.startAgent();
    await waitFor(async () => (await retained('status'))?.online === true, 10_000, 'status online after the restart');
  }, 60_000);

  // Found by this test: client states once lived only in the agent's memory, so a state change
  // that could not be published before a crash was never published (the retained state kept the
  // older phase). They are now saved in stateDir/clients.jsonl and republished on connect.
  it('agent cut off from the broker, then killed: the retained client state catches up with the replayed events', async () => {
    const mac = '52:54:00:99:aa:02';
    const r0 = await lab.net.exec(lab.nsRelay, 'curl', ['-sf', '-o', '/dev/null', `http://${RELAY_LAN_IP}/boot.ipxe?mac=${mac}`]);
    expect(r0.code).toBe(0);
    await waitFor(async () => (await retained(`clients/${mac}`))?.phase === 'ipxe', 5000, 'retained phase ipxe');
    await blockAgent(true); // the broker stays up; the agent's connection is reset
    const from = lab.lines.length;
    const r1 = await lab.net.exec(lab.nsRelay, 'curl', ['-sf', '-o', '/dev/null', `http://${RELAY_LAN_IP}/booted?mac=${mac}`]);
    expect(r1.code).toBe(0);
    const want = await waitFor(() => (logged(mac, from).some((e) => e.type === 'client.booted') ? logged(mac, from) : undefined), 5000, 'client.booted in the log');
    await waitFor(() => want.every((e) => journalPending().has(key(e))), 5000, 'the event in the on-disk journal');
    await lab.stopAgent('SIGKILL');
    await blockAgent(false);
    const sub = await startSub('cutoff');
    await lab.startAgent();
    await waitFor(() => compare(want, received('events')).missing.length === 0, 10_000, 'client.booted replayed on MQTT');
    await waitFor(async () => (await metric('bootrelay_mqtt_journal_events')) === 0, 10_000, 'an empty journal');
    expect(sub.out).toContain(`"type":"client.booted","mac":"${mac}"`);
    const state = await retained(`clients/${mac}`);
    expect(state?.phase, `retained clients/${mac} after the replay: ${JSON.stringify(state)}`).toBe('booted');
  }, 60_000);
});
