/**
 * MqttPublisher: the relay's state and events on MQTT (shared/CONTRACT.md).
 *
 *   <prefix>/<agentId>/status          retained {online, version, startedAt, uplink, clients, cache, …};
 *                                      will (retained): {"online":false}
 *   <prefix>/<agentId>/clients/<mac>   retained client state (latest wins)
 *   <prefix>/<agentId>/events          one QoS 1 message per event, in order, through the journal
 *   <prefix>/<agentId>/cmd/<name>      optional remote commands {txid, args} → …/cmd/<name>/reply
 *   homeassistant/…/config             optional Home Assistant discovery (retained)
 *
 * Retained state lives in memory and is republished on EVERY (re)connect (a broker
 * without persistence forgets it when restarted). Per topic at most one publish is in
 * flight; newer state waits and replaces older (coalescing, latest wins).
 *
 * Events are appended to the on-disk EventJournal first, then sent QoS 1 in order while
 * connected, at most `inflight` at a time, and removed from the journal on PUBACK.
 * Publishes are only handed to MQTT.js while connected, so its in-memory store holds at
 * most `inflight` events plus one message per retained topic; MQTT.js resends those
 * (DUP) on reconnect before anything newer. After a restart the journal is replayed
 * (at-least-once: an event whose PUBACK was lost in a crash is sent again).
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { MqttConfig } from '../config/types';
import type { Logger } from '../log';
import type { Metrics } from '../../relay/metrics';
import type { RelayEvent } from '../../proto/events';
import { VERSION } from '../../proto/version';
import { updateKind, type ClientState, type UpdateKind } from '../clients/record';
import { ClientThrottle } from '../clients/throttle';
import { EventJournal } from './journal';

/** A client's state as the tracker publishes it (ClientState); only `mac` is relied upon here. */
export interface PublishedClientState {
  readonly mac: string;
}

export type CommandHandler = (name: string, args: unknown) => unknown | Promise<unknown>;

export interface MqttPublisherOptions {
  config: MqttConfig;
  agentId: string;
  stateDir: string;
  log: Logger;
  metrics: Metrics;
  /** The agent's status object; published with `online: true` on …/status. */
  status: () => unknown;
  /** Remote commands (config.commands): the same handlers as relayctl. Without it, commands are off. */
  handleCommand?: CommandHandler;
  /** Which events go to …/events (and the journal). Default: all but `*.progress`. */
  eventFilter?: (ev: RelayEvent) => boolean;
  /** Tuning (tests, bench). */
  clientId?: string;
  reconnectMinMs?: number; // 1000
  reconnectMaxMs?: number; // 30000
  connectTimeoutMs?: number; // 10000
  keepaliveSec?: number; // 30
  /** events in flight (sent, PUBACK pending); default 64 */
  inflight?: number;
  journalFlushMs?: number; // 200
  protocolVersion?: 4 | 5; // 4 (MQTT 3.1.1)
  /** Client states kept for republishing on (re)connect, most recently updated first; default 1024 (the tracker's bound). */
  maxClients?: number;
  /**
   * A client's retained state is published at most this often for `progress` updates (only
   * its bytes moved); `phase` updates go out at once (agent/clients/throttle.ts). Default 1000 ms: a remote
   * dashboard needs no more, and a 20-client boot would otherwise publish ~80 states per client.
   */
  clientProgressMs?: number;
}

export interface MqttPublisherStats {
  connected: boolean;
  url: string;
  /** events acknowledged by the broker since start */
  published: number;
  /** events in the journal, not yet acknowledged */
  pending: number;
  /** events dropped because the journal was full */
  dropped: number;
  connects: number;
}

export const MQTT_METRICS = {
  connected: 'bootrelay_mqtt_connected',
  published: 'bootrelay_mqtt_published_total',
  connects: 'bootrelay_mqtt_connects_total',
  errors: 'bootrelay_mqtt_errors_total',
  commands: 'bootrelay_mqtt_commands_total',
} as const;

const defaultFilter = (ev: RelayEvent): boolean => !ev.type.endsWith('.progress');

/** Home Assistant object ids allow [a-zA-Z0-9_-] only. */
function haId(s: string): string {
  return s.replace(/[^a-zA-Z0-9_-]/g, '_');
}

type RetainedKind = 'status' | 'client' | 'discovery' | 'clear';

export class MqttPublisher {
  readonly base: string;
  private readonly cfg: MqttConfig;
  private readonly journal: EventJournal;
  private readonly inflightMax: number;
  private readonly filter: (ev: RelayEvent) => boolean;
  private client: MqttClient | undefined;
  private ready = false;
  private stopping = false;
  private started = false;
  /** events handed over before start() opened the journal */
  private preOpen: RelayEvent[] = [];
  private journalReady = false;

  /** events: highest seq handed to MQTT.js, and how many await PUBACK */
  private sentSeq = 0;
  private inflight = 0;
  private rewindTo: number | undefined;
  private published = 0;
  private connects = 0;

  /** retained topics: latest payload, kind; in-flight and dirty sets for coalescing */
  private retained = new Map<string, { payload: string; kind: RetainedKind }>();
  private retainedInflight = new Set<string>();
  private retainedDirty = new Set<string>();
  private knownClients = new Set<string>();
  private startedAt = new Date().toISOString();
  private ca: Buffer | undefined;

  constructor(private readonly opts: MqttPublisherOptions) {
    this.cfg = opts.config;
    this.base = `${this.cfg.prefix}/${opts.agentId}`;
    this.inflightMax = Math.max(1, opts.inflight ?? 64);
    this.filter = opts.eventFilter ?? defaultFilter;
    this.clientFeed = new ClientThrottle({ intervalMs: opts.clientProgressMs ?? 1000, send: (st) => this.sendRetained(`${this.base}/clients/${st.mac}`) });
    this.journal = new EventJournal({
      dir: opts.stateDir,
      file: 'events.jsonl',
      maxEvents: this.cfg.journalMaxEvents,
      flushMs: opts.journalFlushMs,
      metrics: opts.metrics,
      log: opts.log,
    });
    const m = opts.metrics;
    m.declare(MQTT_METRICS.connected, 'gauge', '1 while connected to the MQTT broker');
    m.declare(MQTT_METRICS.published, 'counter', 'MQTT messages acknowledged by the broker, by kind');
    m.declare(MQTT_METRICS.connects, 'counter', 'Successful MQTT (re)connects');
    m.declare(MQTT_METRICS.errors, 'counter', 'MQTT client errors');
    m.set(MQTT_METRICS.connected, 0);
  }

  get connected(): boolean {
    return this.ready;
  }

  /** Journal size (pending events). */
  get pending(): number {
    return this.journal.size;
  }

  stats(): MqttPublisherStats {
    return {
      connected: this.ready,
      url: this.cfg.url.replace(/\/\/[^@/]*@/, '//'),
      published: this.published,
      pending: this.journal.size,
      dropped: this.journal.dropped,
      connects: this.connects,
    };
  }

  /** Opens the journal (replaying what an earlier run left) and starts connecting; does not wait for the broker. */
  async start(): Promise<void> {
    if (this.started) return;
    // configuration problems surface here, before anything is opened
    const proto = /^([a-z]+):\/\//i.exec(this.cfg.url)?.[1]?.toLowerCase();
    if (!proto || !['mqtt', 'mqtts', 'ws', 'wss', 'tcp', 'ssl'].includes(proto)) throw new Error(`mqtt.url: expected mqtt:// or mqtts://, got ${JSON.stringify(this.cfg.url)}`);
    if (this.cfg.caFile) {
      try {
        this.ca = readFileSync(this.cfg.caFile);
      } catch (err) {
        throw new Error(`mqtt.caFile: cannot read ${this.cfg.caFile}: ${(err as Error).message}`);
      }
    }
    this.started = true;
    this.startedAt = new Date().toISOString();
    const r = await this.journal.open();
    if (r.loaded) this.opts.log.info({ pending: r.loaded, dropped: r.dropped, torn: r.torn }, 'journal replay pending');
    this.journalReady = true;
    for (const ev of this.preOpen.splice(0)) this.journal.append(ev);
    this.setStatusPayload();
    if (this.cfg.homeAssistant) this.relayDiscovery();
    this.connect();
  }

  private connect(): void {
    const cfg = this.cfg;
    const minMs = this.opts.reconnectMinMs ?? 1000;
    const options: IClientOptions = {
      clientId: this.opts.clientId ?? `bootrelay-${this.opts.agentId}-${randomBytes(4).toString('hex')}`,
      protocolVersion: this.opts.protocolVersion ?? 4,
      clean: true,
      keepalive: this.opts.keepaliveSec ?? 30,
      connectTimeout: this.opts.connectTimeoutMs ?? 10_000,
      reconnectPeriod: minMs,
      queueQoSZero: false,
      resubscribe: true,
      // a refused CONNACK (bad credentials, broker not ready) is retried with backoff like any outage
      reconnectOnConnackError: true,
      will: { topic: `${this.base}/status`, payload: Buffer.from('{"online":false}'), qos: 1, retain: true },
    };
    if (cfg.username) options.username = cfg.username;
    if (cfg.password) options.password = cfg.password;
    if (this.ca) options.ca = this.ca;
    const log = this.opts.log;
    const client = mqtt.connect(cfg.url, options);
    this.client = client;
    let subscribed = false;

    client.on('connect', () => {
      client.options.reconnectPeriod = minMs;
      this.ready = true;
      this.connects++;
      this.opts.metrics.inc(MQTT_METRICS.connects);
      this.opts.metrics.set(MQTT_METRICS.connected, 1);
      log.info({ url: this.stats().url, pending: this.journal.size }, 'mqtt connected');
      if (this.rewindTo !== undefined) {
        this.sentSeq = Math.min(this.sentSeq, this.rewindTo);
        this.rewindTo = undefined;
      }
      this.setStatusPayload();
      for (const topic of this.retained.keys()) this.sendRetained(topic);
      if (this.cfg.commands && this.opts.handleCommand && !subscribed) {
        subscribed = true;
        client.subscribe(`${this.base}/cmd/+`, { qos: 1 }, (err) => {
          if (err) {
            subscribed = false;
            log.warn({ err }, 'mqtt command subscribe failed');
          }
        });
      }
      this.pump();
    });
    client.on('reconnect', () => {
      // exponential backoff: MQTT.js reads reconnectPeriod when it arms the next attempt
      const max = this.opts.reconnectMaxMs ?? 30_000;
      client.options.reconnectPeriod = Math.min(max, Math.max(minMs, (client.options.reconnectPeriod ?? minMs) * 2));
    });
    client.on('close', () => {
      if (this.ready && !this.stopping) log.warn({ pending: this.journal.size }, 'mqtt disconnected');
      this.ready = false;
      this.opts.metrics.set(MQTT_METRICS.connected, 0);
    });
    client.on('error', (err) => {
      this.opts.metrics.inc(MQTT_METRICS.errors);
      log.warn({ err: err.message }, 'mqtt error');
    });
    client.on('message', (topic, payload, packet) => {
      void this.onMessage(topic, payload, packet.retain);
    });
  }

  // ---------------------------------------------------------------- events

  /** Journals an event and sends it when connected. */
  publishEvent(ev: RelayEvent): void {
    if (this.stopping || !this.filter(ev)) return;
    if (!this.journalReady) {
      this.preOpen.push(ev);
      if (this.preOpen.length > this.journal.maxEvents) this.preOpen.shift();
      return;
    }
    this.journal.append(ev);
    this.pump();
  }

  private pump(): void {
    const client = this.client;
    if (!client || !this.ready || this.stopping) return;
    if (this.inflight >= this.inflightMax) return;
    const batch = this.journal.after(this.sentSeq, this.inflightMax - this.inflight);
    const topic = `${this.base}/events`;
    for (const e of batch) {
      this.sentSeq = e.seq;
      this.inflight++;
      client.publish(topic, e.json, { qos: 1 }, (err) => {
        this.inflight--;
        if (err) {
          // not acknowledged (client ended): send again from here on the next connect
          this.rewindTo = Math.min(this.rewindTo ?? Infinity, e.seq - 1);
          return;
        }
        this.journal.ack(e.seq);
        this.published++;
        this.opts.metrics.inc(MQTT_METRICS.published, { kind: 'event' });
        this.pump();
      });
    }
  }

  // ---------------------------------------------------------------- retained state

  /** Publishes a client's state, retained; while offline only the latest is kept. */
  publishClient<T extends PublishedClientState>(state: T, kind?: UpdateKind): void {
    const mac = state.mac;
    if (!mac) return;
    const topic = `${this.base}/clients/${mac}`;
    // the latest state is what a (re)connect republishes, even while its sending waits
    this.retained.set(topic, { payload: JSON.stringify(state), kind: 'client' });
    const prev = this.clientLast.get(mac);
    this.clientLast.set(mac, state);
    this.clientFeed.offer({ state, kind: kind ?? updateKind(prev as Partial<ClientState> | undefined, state as Partial<ClientState>) });
    if (this.knownClients.delete(mac)) this.knownClients.add(mac); // most recent last
    else {
      this.knownClients.add(mac);
      if (this.cfg.homeAssistant) this.clientDiscovery(mac);
      // MACs are whatever the LAN sends: keep (and republish on connect) a bounded number of
      // clients; what the broker retains for a forgotten one stays there
      if (this.knownClients.size > (this.opts.maxClients ?? 1024)) {
        const old = this.knownClients.values().next().value!;
        this.knownClients.delete(old);
        this.forgetClientTopic(`${this.base}/clients/${old}`);
        if (this.cfg.homeAssistant) for (const t of this.clientDiscoveryTopics(old)) this.retained.delete(t);
      }
    }
  }

  /** byte progress of a client's retained state: at most every clientProgressMs (the shared rule) */
  private readonly clientFeed: ClientThrottle<PublishedClientState>;
  /** the last state handed over per client (to tell progress from a phase change when no kind is given) */
  private readonly clientLast = new Map<string, PublishedClientState>();

  private forgetClientTopic(topic: string): void {
    this.retained.delete(topic);
    const mac = topic.slice(topic.lastIndexOf('/') + 1);
    this.clientFeed.forget(mac);
    this.clientLast.delete(mac);
  }

  /** Retained topics held for republishing (tests). */
  get retainedTopics(): number {
    return this.retained.size;
  }

  /** Forgets a client: clears its retained topic (and discovery). */
  removeClient(mac: string): void {
    const topics = [`${this.base}/clients/${mac}`];
    if (this.cfg.homeAssistant) topics.push(...this.clientDiscoveryTopics(mac));
    this.knownClients.delete(mac);
    this.forgetClientTopic(topics[0]!);
    for (const t of topics) this.setRetained(t, '', 'clear');
  }

  /** Republishes …/status from the status() callback. */
  publishStatus(): void {
    this.setStatusPayload();
    this.sendRetained(`${this.base}/status`);
  }

  private setStatusPayload(): void {
    let s: unknown;
    try {
      s = this.opts.status();
    } catch (err) {
      this.opts.log.warn({ err }, 'status() failed');
    }
    const obj: Record<string, unknown> = s && typeof s === 'object' ? { ...(s as Record<string, unknown>) } : {};
    obj.online = true;
    if (obj.version === undefined) obj.version = VERSION;
    if (obj.startedAt === undefined) obj.startedAt = this.startedAt;
    const journal = { pending: this.journal.size, dropped: this.journal.dropped };
    obj.mqtt = obj.mqtt && typeof obj.mqtt === 'object' ? { ...(obj.mqtt as object), ...journal } : journal;
    this.retained.set(`${this.base}/status`, { payload: JSON.stringify(obj), kind: 'status' });
  }

  private setRetained(topic: string, payload: string, kind: RetainedKind): void {
    this.retained.set(topic, { payload, kind });
    this.sendRetained(topic);
  }

  private sendRetained(topic: string): void {
    const client = this.client;
    if (!client || !this.ready) return; // everything retained is republished on connect
    if (this.retainedInflight.has(topic)) {
      this.retainedDirty.add(topic);
      return;
    }
    const r = this.retained.get(topic);
    if (!r) return;
    this.retainedInflight.add(topic);
    if (r.kind === 'clear') this.retained.delete(topic); // an empty retained message deletes; send once per connect
    client.publish(topic, r.payload, { qos: 1, retain: true }, (err) => {
      this.retainedInflight.delete(topic);
      if (!err) this.opts.metrics.inc(MQTT_METRICS.published, { kind: r.kind });
      if (this.retainedDirty.delete(topic)) this.sendRetained(topic);
    });
  }

  // ---------------------------------------------------------------- Home Assistant

  private relayDiscovery(): void {
    const id = haId(this.opts.agentId);
    const payload = {
      name: 'Online',
      unique_id: `bootrelay_${id}_online`,
      object_id: `bootrelay_${id}_online`,
      state_topic: `${this.base}/status`,
      value_template: '{{ "ON" if value_json.online else "OFF" }}',
      device_class: 'connectivity',
      device: this.relayDevice(),
    };
    this.setRetained(`homeassistant/binary_sensor/${id}_online/config`, JSON.stringify(payload), 'discovery');
  }

  private relayDevice(): Record<string, unknown> {
    return {
      identifiers: [`bootrelay_${haId(this.opts.agentId)}`],
      name: `bootrelay ${this.opts.agentId}`,
      manufacturer: 'bootrelay',
      model: 'network-boot relay',
      sw_version: VERSION,
    };
  }

  private clientDiscoveryTopics(mac: string): string[] {
    const oid = `${haId(this.opts.agentId)}_${mac.replace(/:/g, '')}`;
    return [`homeassistant/sensor/${oid}_phase/config`, `homeassistant/sensor/${oid}_progress/config`];
  }

  private clientDiscovery(mac: string): void {
    const id = haId(this.opts.agentId);
    const oid = `${id}_${mac.replace(/:/g, '')}`;
    const stateTopic = `${this.base}/clients/${mac}`;
    const device = {
      identifiers: [`bootrelay_${oid}`],
      name: `PXE client ${mac}`,
      connections: [['mac', mac]],
      via_device: `bootrelay_${id}`,
    };
    const common = {
      state_topic: stateTopic,
      availability_topic: `${this.base}/status`,
      availability_template: '{{ "online" if value_json.online else "offline" }}',
      device,
    };
    const [phaseTopic, progressTopic] = this.clientDiscoveryTopics(mac);
    this.setRetained(
      phaseTopic!,
      JSON.stringify({
        ...common,
        name: 'Boot phase',
        unique_id: `bootrelay_${oid}_phase`,
        value_template: '{{ value_json.phase }}',
        json_attributes_topic: stateTopic,
        icon: 'mdi:server-network',
      }),
      'discovery',
    );
    this.setRetained(
      progressTopic!,
      JSON.stringify({
        ...common,
        name: 'Transfer progress',
        unique_id: `bootrelay_${oid}_progress`,
        unit_of_measurement: '%',
        value_template: '{{ ((100 * value_json.bytes / value_json.totalBytes) | round(0)) if value_json.totalBytes else 0 }}',
      }),
      'discovery',
    );
  }

  // ---------------------------------------------------------------- commands

  private async onMessage(topic: string, payload: Buffer, retain: boolean): Promise<void> {
    const prefix = `${this.base}/cmd/`;
    if (!topic.startsWith(prefix)) return;
    const name = topic.slice(prefix.length);
    if (!name || name.includes('/')) return;
    const handler = this.opts.handleCommand;
    if (!handler || !this.cfg.commands) return;
    if (payload.length === 0) return; // someone clearing a retained message
    if (retain) {
      // a retained command would run again on every reconnect: refuse it
      this.opts.metrics.inc(MQTT_METRICS.commands, { result: 'retained' });
      return;
    }
    let req: { txid?: unknown; args?: unknown };
    try {
      const v: unknown = JSON.parse(payload.toString('utf8'));
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('expected an object {txid, args}');
      req = v as typeof req;
    } catch (err) {
      this.opts.metrics.inc(MQTT_METRICS.commands, { result: 'malformed' });
      this.reply(name, { txid: null, ok: false, error: `malformed command: ${(err as Error).message}` });
      return;
    }
    const txid = typeof req.txid === 'string' || typeof req.txid === 'number' ? req.txid : null;
    try {
      const result = await handler(name, req.args);
      this.opts.metrics.inc(MQTT_METRICS.commands, { result: 'ok' });
      this.reply(name, { txid, ok: true, result: result ?? null });
    } catch (err) {
      this.opts.metrics.inc(MQTT_METRICS.commands, { result: 'error' });
      this.reply(name, { txid, ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  }

  private reply(name: string, body: Record<string, unknown>): void {
    if (!this.client || !this.ready) return;
    this.client.publish(`${this.base}/cmd/${name}/reply`, JSON.stringify(body), { qos: 1 }, (err) => {
      if (!err) this.opts.metrics.inc(MQTT_METRICS.published, { kind: 'reply' });
    });
  }

  // ---------------------------------------------------------------- stop

  /**
   * Publishes {"online":false} (retained) when connected, waits a bounded time for
   * in-flight events, disconnects and closes the journal. Unsent events stay on disk.
   */
  async stop(timeoutMs = 3000): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    this.clientFeed.stop();
    const client = this.client;
    if (client) {
      const deadline = Date.now() + timeoutMs;
      if (this.ready) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          client.publish(`${this.base}/status`, '{"online":false}', { qos: 1, retain: true }, () => {
            clearTimeout(t);
            resolve();
          });
        });
        while (this.ready && this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      }
      await Promise.race([client.endAsync(!this.ready), new Promise((r) => setTimeout(r, Math.max(100, deadline - Date.now())))]);
      if (!client.disconnected) client.end(true);
      this.ready = false;
      this.opts.metrics.set(MQTT_METRICS.connected, 0);
    }
    await this.journal.close();
  }
}
