/**
 * bench/mqtt: MqttPublisher against a real Mosquitto on loopback.
 *   - latency: an event handed to publishEvent() until a subscriber has it (p50/p99/max),
 *     one at a time (idle) and paced at 500 events/s
 *   - throughput: N events handed over at once, until the subscriber has all (msgs/s)
 *   - replay: N events journaled during an outage, drained after the broker returns
 * Bounded in count and time; loopback only. Run: node scripts/run-ts.mjs bench/mqtt.ts
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { MqttPublisher } from '../agent/publish/mqtt';
import { EventJournal } from '../agent/publish/journal';
import { Metrics } from '../relay/metrics';
import { silentLogger } from '../agent/log';
import { Mosquitto, mosquittoSkipReason } from '../test/helpers/mosquitto';
import { waitFor } from '../test/helpers/netns';
import type { RelayEvent } from '../proto/events';

const N_IDLE = 300;
const PACED_RATE = 500;
const PACED_SECONDS = 2;
const N_BURST = 20_000;
const N_REPLAY = 10_000;
const LIMIT_MS = 30_000;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const ms = (x: number) => x.toFixed(2);

async function main(): Promise<void> {
  const skip = mosquittoSkipReason();
  if (skip) {
    console.log(`bench mqtt skipped: ${skip}`);
    return;
  }
  // persistence + a persistent subscriber session: the observer misses nothing across the restart
  const broker = await Mosquitto.start({ websockets: false, persistence: true });
  const dir = mkdtempSync(join(tmpdir(), 'br-bench-mqtt-'));
  const received = new Map<number, number>(); // id -> receive time
  let count = 0;
  const waiters = new Map<number, () => void>();
  const sub = await mqtt.connectAsync(broker.url, { clientId: 'bench-sub', clean: false, reconnectPeriod: 100 });
  await sub.subscribeAsync('bench/+/events', { qos: 1 });
  sub.on('message', (_t, payload) => {
    const id = JSON.parse(payload.toString()).id as number;
    if (!received.has(id)) {
      received.set(id, performance.now());
      count++;
      waiters.get(id)?.();
    }
  });
  const metrics = new Metrics();
  const pub = new MqttPublisher({
    config: { url: broker.url, username: '', password: '', prefix: 'bench', journalMaxEvents: 50_000, homeAssistant: false, commands: false },
    agentId: 'bench',
    stateDir: dir,
    log: silentLogger,
    metrics,
    status: () => ({}),
    reconnectMinMs: 100,
    reconnectMaxMs: 200,
  });
  let id = 0;
  const sent = new Map<number, number>();
  const send = () => {
    const i = ++id;
    sent.set(i, performance.now());
    pub.publishEvent({ ts: new Date().toISOString(), type: 'tftp.done', mac: '52:54:00:00:00:01', file: 'ipxe/undionly.kpxe', bytes: 67_000, id: i } as RelayEvent);
    return i;
  };
  const lat = (from: number, to: number) => {
    const out: number[] = [];
    for (let i = from; i <= to; i++) if (received.has(i)) out.push(received.get(i)! - sent.get(i)!);
    return out;
  };
  const rows: string[] = [];
  try {
    await pub.start();
    await waitFor(() => pub.connected, 5000, 'publisher connected');

    // 1. idle latency: one event at a time
    const a0 = id + 1;
    for (let k = 0; k < N_IDLE; k++) {
      const i = send();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        waiters.set(i, () => (clearTimeout(t), waiters.delete(i), resolve()));
        if (received.has(i)) waiters.get(i)!();
      });
    }
    const idle = lat(a0, id);
    rows.push(`latency idle (n=${idle.length}):       p50 ${ms(pct(idle, 50))} ms  p99 ${ms(pct(idle, 99))} ms  max ${ms(Math.max(...idle))} ms`);

    // 2. paced latency
    const b0 = id + 1;
    const total = PACED_RATE * PACED_SECONDS;
    await new Promise<void>((resolve) => {
      let k = 0;
      const t = setInterval(() => {
        for (let j = 0; j < PACED_RATE / 100 && k < total; j++, k++) send();
        if (k >= total) {
          clearInterval(t);
          resolve();
        }
      }, 10);
    });
    await waitFor(() => received.has(id), LIMIT_MS, 'paced events');
    const paced = lat(b0, id);
    rows.push(`latency at ${PACED_RATE}/s (n=${paced.length}):  p50 ${ms(pct(paced, 50))} ms  p99 ${ms(pct(paced, 99))} ms  max ${ms(Math.max(...paced))} ms`);

    // 3. burst throughput
    const c0 = id + 1;
    const before = count;
    const t0 = performance.now();
    for (let k = 0; k < N_BURST; k++) send();
    const handed = performance.now() - t0;
    await waitFor(() => count - before >= N_BURST, LIMIT_MS, 'burst');
    const dt = performance.now() - t0;
    const burst = lat(c0, id);
    rows.push(`burst of ${N_BURST}: handed over in ${ms(handed)} ms, all received in ${ms(dt)} ms -> ${Math.round((N_BURST * 1000) / dt)} msgs/s (p99 delay ${ms(pct(burst, 99))} ms)`);
    await waitFor(() => pub.pending === 0, LIMIT_MS, 'journal drained');

    // 4. replay after an outage
    await broker.stop();
    await waitFor(() => !pub.connected, 5000, 'outage');
    const d0 = count;
    for (let k = 0; k < N_REPLAY; k++) send();
    const journaled = pub.pending;
    const r0 = performance.now();
    await broker.start();
    await waitFor(() => count - d0 >= N_REPLAY, LIMIT_MS, 'replay');
    const rdt = performance.now() - r0;
    rows.push(`replay of ${journaled} journaled events after a broker restart: ${ms(rdt)} ms (incl. reconnect) -> ${Math.round((N_REPLAY * 1000) / rdt)} msgs/s`);
    rows.push(`lost: ${id - received.size} of ${id}; journal dropped: ${pub.stats().dropped}`);
  } finally {
    await pub.stop(1000);
    await sub.endAsync(true);
    await broker.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
  // 5. the journal alone: appends with no broker (every event reaches the disk), then reopen
  const jdir = mkdtempSync(join(tmpdir(), 'br-bench-journal-'));
  try {
    const j = new EventJournal({ dir: jdir, maxEvents: 50_000 });
    await j.open();
    const ev = { ts: new Date().toISOString(), type: 'tftp.done', mac: '52:54:00:00:00:01', file: 'ipxe/undionly.kpxe', bytes: 67_000 };
    const t0 = performance.now();
    for (let k = 0; k < N_REPLAY; k++) j.append({ ...ev, id: k });
    await j.flush();
    const dt = performance.now() - t0;
    const size = statSync(j.path).size;
    await j.close();
    const t1 = performance.now();
    const k2 = new EventJournal({ dir: jdir, maxEvents: 50_000 });
    const r = await k2.open();
    const lt = performance.now() - t1;
    await k2.close();
    rows.push(`journal: ${N_REPLAY} appends + fdatasync in ${ms(dt)} ms (${size} bytes on disk); reopen of ${r.loaded} pending in ${ms(lt)} ms`);
  } finally {
    rmSync(jdir, { recursive: true, force: true });
  }
  console.log(`MqttPublisher -> Mosquitto (loopback, QoS 1, inflight 64)\n${rows.join('\n')}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
