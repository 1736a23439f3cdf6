/**
 * Agent: the composition root. Builds the services from the config and wires them:
 *
 *   service emit ─► bus 'relay' ─► log line, MQTT …/events, /api/events, relayctl watch
 *                └► tracker.apply ─► 'client' {state, kind[, failed]} ─► bus 'client'
 *                        (a failure also goes out once as a client.failed relay event)
 *   bus 'client' ─► MQTT …/clients/<mac>, /api/events, watch: each throttles `progress`
 *                   with the shared rule (clients/throttle.ts); clients.jsonl (state.ts, clients/store.ts)
 *
 * One BootPlan (relay/boot/plan.ts) answers who boots what for every service and the tracker.
 * SIGHUP (reload): the config is validated again; restartPlan (reload.ts) says what restarts
 * (a bad new config is logged and the old one kept). The process entry is main.ts.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { isProgressEvent, makeEvent, type ClientPhase, type EmitFn } from '../proto/events';
import { VERSION } from '../proto/version';
import { ChainSource, type ChainContext } from '../relay/boot/chain-source';
import { BootPlan } from '../relay/boot/plan';
import { FileCache } from '../relay/cache/cache';
import { DhcpService } from '../relay/dhcp/service';
import { macFromEui64 } from '../proto/dhcp6/addr';
import { Dhcp6Service } from '../relay/dhcp6/service';
import { HttpService } from '../relay/http/service';
import { Metrics } from '../relay/metrics';
import type { FileSource, OpenOptions } from '../relay/source';
import { TftpService } from '../relay/tftp/service';
import { PacketTrace } from '../relay/trace';
import { Bus } from './bus';
import { ClientThrottle } from './clients/throttle';
import { ClientTracker } from './clients/tracker';
import { loadConfig } from './config/load';
import type { Config } from './config/types';
import { createHandlers, createWatch, type CommandDeps } from './control/commands';
import { ControlServer } from './control/server';
import { DASHBOARD_HTML } from './dashboard/index';
import { createLogger, type Logger } from './log';
import { MqttPublisher } from './publish/mqtt';
import { bindUplinkEvents, UplinkMonitor } from './uplink/monitor';
import { UplinkState } from './uplink/state';
import { restartPlan } from './reload';
import { AgentState } from './state';
import type { UplinkStatus } from './uplink/status';

/** Commands that may be run remotely over MQTT (config mqtt.commands). No file access, no traces. */
const REMOTE_COMMANDS = new Set(['status', 'clients', 'leases', 'profiles', 'assign', 'rearm', 'explain', 'cache.ls', 'cache.prefetch', 'cache.purge', 'cache.verify']);

/** The dashboard's live feed: a client's byte progress at most this often (phases at once). */
const FEED_PROGRESS_MS = 250;

export class FatalError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function ensureDir(what: string, dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new FatalError(`cannot create ${what} ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
  }
}

/** Forwards to whatever cache is current, so HTTP/TFTP survive a cache rebuild on reload. */
class SwitchableSource implements FileSource {
  constructor(public target: FileSource) {}
  open(path: string, opts?: OpenOptions) {
    return this.target.open(path, opts);
  }
}

export class Agent {
  cfg: Config;
  readonly log: Logger;
  readonly metrics = new Metrics();
  readonly trace = new PacketTrace();
  readonly bus: Bus;
  readonly tracker: ClientTracker;
  /** who boots what: config plus relayctl assign and netboot-once state (<stateDir>/assign.json, booted.json) */
  readonly plan: BootPlan;
  readonly startedAt = new Date().toISOString();
  private cache?: FileCache;
  private source?: SwitchableSource;
  private http?: HttpService;
  private tftp?: TftpService;
  private dhcp?: DhcpService;
  private dhcp6?: Dhcp6Service;
  private mqtt?: MqttPublisher;
  private control?: ControlServer;
  private uplink?: UplinkMonitor;
  /** the one source of uplink.up/down and of status().uplink.state (monitor + cache) */
  private readonly uplinkState: UplinkState;
  private tickTimer?: NodeJS.Timeout;
  private statusTimer?: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();
  private eventLog: Logger;
  private readonly state: AgentState;
  readonly emit: EmitFn;

  constructor(
    cfg: Config,
    readonly configFile: string,
    log?: Logger,
    private readonly opts: { uplink?: boolean } = {},
  ) {
    this.cfg = cfg;
    this.log = log ?? createLogger({ level: cfg.log.level, agentId: cfg.agentId });
    this.eventLog = this.component('events');
    this.bus = new Bus(this.component('bus'));
    this.plan = new BootPlan({ boot: cfg.boot, netbootOnce: cfg.dhcp.netbootOnce });
    this.tracker = new ClientTracker({ plan: this.plan });
    this.uplinkState = new UplinkState({ link: () => this.uplink?.current(), upstream: () => this.cache?.stats().uplink ?? 'unknown', emit: (ev) => this.emit(ev) });
    this.state = new AgentState({ dir: () => this.cfg.stateDir, log: this.log, clients: () => this.tracker.list() });
    this.state.watchPlan(this.plan);
    // every event goes to the bus first, then to the tracker (which is no bus listener: what it
    // derives, a client update and a failure, goes out after the event that caused it)
    this.emit = (input) => {
      const ev = makeEvent(input);
      try {
        this.bus.emit('relay', ev);
        this.tracker.apply(ev);
      } catch (err) {
        this.log.error({ err }, 'event dispatch failed');
      }
    };
    this.tracker.on('client', (u) => {
      if (u.failed) this.bus.emit('relay', u.failed);
      this.bus.emit('client', u);
    });

    // every relay event is one log line: type, mac and its fields (the e2e test reads them)
    this.bus.on('relay', (e) => {
      if (e.type.endsWith('.progress')) this.eventLog.debug(e, e.type);
      else this.eventLog.info(e, e.type);
    });
    this.bus.on('relay', (e) => this.mqtt?.publishEvent(e));
    // a machine assigned by UUID (relayctl assign UUID): the plan learns which MAC it boots from now
    this.bus.on('relay', (e) => {
      if ((e.type === 'dhcp.discover' || e.type === 'dhcp.request') && e.mac && e.uuid) this.plan.noteUuid(e.mac, e.uuid);
    });
    // a loader refused under Secure Boot: that client's next DISCOVERs get the next loader of its list
    this.bus.on('relay', (e) => {
      if (e.type === 'client.failed' && e.reason === 'secure-boot' && this.dhcp?.noteLoaderRefused(e.mac)) this.log.info({ mac: e.mac }, 'loader refused under Secure Boot: the next loader of the list from now on');
    });
    // netboot-once: the plan remembers who booted (only under dhcp.netbootOnce)
    this.bus.on('relay', (e) => {
      if (e.type === 'client.booted') this.plan.noteBooted(e.mac);
    });
    // loader fallbacks (boot.loaders lists): DHCP learns when a client finished fetching its
    // loader, so a fresh firmware DISCOVER soon after means "that loader did not work here"
    this.bus.on('relay', (e) => {
      if ((e.type === 'tftp.done' || e.type === 'http.done') && e.mac && this.plan.fileRole(e.file) === 'loader') this.dhcp?.noteLoaderFetched(e.mac);
    });
    this.bus.on('client', (u) => this.mqtt?.publishClient(u.state, u.kind));
    // client states survive a restart (or a crash): retained MQTT state and the dashboard stay right
    this.bus.on('client', (u) => this.state.clientChanged(u));
  }

  /** A child logger for a component, honouring log.levels. Services that add their own `component` get `own: true`. */
  component(name: string, own = false): Logger {
    const level = this.cfg.log.levels[name];
    const opts = level ? { level } : undefined;
    return own ? (opts ? this.log.child({}, opts) : this.log) : this.log.child({ component: name }, opts);
  }

  // ------------------------------------------------------------ views

  status(): Record<string, unknown> {
    const byPhase: Partial<Record<ClientPhase, number>> = {};
    const clients = this.tracker.list();
    for (const c of clients) byPhase[c.phase] = (byPhase[c.phase] ?? 0) + 1;
    const up: UplinkStatus | undefined = this.uplink?.current();
    const cacheStats = this.cache?.stats();
    const uplinkState = this.uplinkState.state;
    const cfg = this.cfg;
    return {
      online: true,
      agentId: cfg.agentId,
      version: VERSION,
      startedAt: this.startedAt,
      uptimeSeconds: Math.round((Date.now() - Date.parse(this.startedAt)) / 1000),
      uplink: { state: uplinkState, ...(up ?? {}), upstream: cacheStats?.uplink ?? 'unknown' },
      lan: cfg.lan,
      services: {
        dhcp: cfg.dhcp.mode === 'off' ? { mode: 'off' } : { mode: cfg.dhcp.mode, port: this.dhcp?.port ?? null, leases: this.dhcp?.leases().length ?? 0 },
        dhcp6: cfg.dhcp6.mode === 'off' ? { mode: 'off' } : { mode: cfg.dhcp6.mode, port: this.dhcp6?.port ?? null, leases: this.dhcp6?.leases().length ?? 0, address6: cfg.lan.address6 },
        tftp: cfg.tftp === false ? 'off' : { port: this.tftp?.port ?? null },
        http: { port: this.http?.port ?? null },
        control: { socket: cfg.control.socket },
      },
      clients: { total: clients.length, byPhase },
      cache: cacheStats ?? null,
      ...(this.mqtt ? { mqtt: this.mqtt.stats() } : {}),
    };
  }

  private macForIp(ip: string): string | undefined {
    if (ip.includes(':')) {
      // IPv6: our DHCPv6 lease (or boot-service peer), a client seen there, or the MAC in a SLAAC EUI-64 address
      const a = ip.split('%')[0]!;
      return this.dhcp6?.macForIp6(a) ?? this.tracker.macForIp(a) ?? macFromEui64(a);
    }
    return this.dhcp?.macForIp(ip) ?? this.tracker.macForIp(ip);
  }

  /** What the Secure Boot chain's source needs, live (a reload or an assignment is seen at the next request). */
  private chainContext(): ChainContext {
    return {
      chains: this.plan.chains(),
      server: this.cfg.lan.address,
      httpPort: this.http?.port ?? this.cfg.http.port,
      resolveProfile: (mac) => this.plan.profileFor(mac),
    };
  }

  private commandDeps(): CommandDeps {
    return {
      config: () => this.cfg,
      tracker: this.tracker,
      status: () => this.status(),
      cache: {
        list: () => this.needCache().list(),
        prefetch: (p, pin) => this.needCache().prefetch(p, pin),
        purge: (p) => this.needCache().purge(p),
        verify: () => this.needCache().verify(),
      },
      dhcp: {
        // DHCPv6 leases beside the IPv4 ones (keyed by DUID + IAID: the DUID shows as the client id)
        leases: () => [
          ...(this.dhcp?.leases() ?? []),
          ...(this.dhcp6?.leases().map((l) => ({ mac: l.mac, ip: l.ip, expiresAt: l.expiresAt, static: false, active: l.active, clientId: `${l.duid}/${l.iaid}` })) ?? []),
        ],
        rearm: (mac) => {
          if (!this.dhcp) throw new Error('DHCP is off: nothing to re-arm');
          this.dhcp.rearm(mac);
        },
      },
      trace: this.trace,
      assignments: () => this.plan.assignments(),
      assign: (mac, profile) => {
        this.plan.assign(mac, profile);
        this.log.info({ mac, profile }, 'profile assigned');
      },
      assignUuid: (uuid, profile) => {
        this.plan.assignUuid(uuid, profile);
        this.log.info({ uuid, profile }, 'profile assigned by UUID');
      },
      subscribe: (fn) => {
        const a = this.bus.subscribe('relay', (e) => fn('relay', e));
        const b = this.bus.subscribe('client', (u) => fn('client', u));
        return () => {
          a();
          b();
        };
      },
    };
  }

  /** relayctl assign, netboot-once and the client states survive restarts (state.ts). */
  private loadState(): void {
    this.state.restorePlan(this.plan);
    const restored = this.tracker.restore(this.state.readClients());
    if (restored) this.log.info({ clients: restored }, 'client states restored');
  }

  private needCache(): FileCache {
    if (!this.cache) throw new Error('the cache is not running');
    return this.cache;
  }

  // ------------------------------------------------------------ services

  private async bind(what: string, addr: string, port: number, start: () => Promise<void>): Promise<void> {
    try {
      await start();
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      const at = `${e.address ?? addr}:${e.port ?? port}`;
      const hint =
        e.code === 'EACCES'
          ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
          : e.code === 'EADDRNOTAVAIL'
            ? ' (is lan.address configured on an interface of this machine?)'
            : '';
      throw new FatalError(`cannot listen on ${at} (${what}): ${e.code ?? e.message}${hint}`, 1);
    }
  }

  private async startCache(): Promise<void> {
    const cfg = this.cfg;
    let cache: FileCache;
    try {
      cache = new FileCache({
        upstream: cfg.upstream,
        cache: cfg.cache,
        log: this.component('cache', true),
        metrics: this.metrics,
        // the cache's uplink word goes to UplinkState (read once the cache has taken it in), not to the bus
        emit: (ev) => {
          if (ev.type === 'uplink.up' || ev.type === 'uplink.down') {
            const reason = ev.type === 'uplink.down' ? ev.reason : undefined;
            queueMicrotask(() => this.uplinkState.changed(reason));
          } else this.emit(ev);
        },
        plan: this.plan,
      });
    } catch (err) {
      // the only file it reads at construction is upstream.caFile
      throw new FatalError(`upstream.caFile: cannot read ${cfg.upstream.caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
    }
    ensureDir('the cache directory', cfg.cache.dir);
    try {
      await cache.init();
    } catch (err) {
      throw new FatalError(`cannot use the cache directory ${cfg.cache.dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
    }
    this.cache = cache;
    // a cache rebuilt on reload while the uplink is down starts out knowing it
    const link = this.uplink?.current();
    if (link && !link.up && link.source !== 'none') cache.setLinkState(false, link.reason ?? 'uplink down');
    // the Secure Boot chain's names (shim's grubx64.efi, GRUB's /grub/grub.cfg, probes) in front of the cache
    const target = new ChainSource(cache, () => this.chainContext());
    if (this.source) this.source.target = target;
    else this.source = new SwitchableSource(target);
  }

  private async startHttp(): Promise<void> {
    const cfg = this.cfg;
    const http = new HttpService({
      address: cfg.lan.address,
      address6: cfg.lan.address6,
      port: cfg.http.port,
      source: this.source!,
      log: this.component('http', true),
      metrics: this.metrics,
      emit: this.emit,
      macForIp: (ip) => this.macForIp(ip),
      plan: this.plan,
      api: { status: () => this.status(), clients: () => this.tracker.list() },
      subscribe: (fn) => {
        // progress travels in the client states (throttled here by the shared rule); raw *.progress events would flood the page
        const feed = new ClientThrottle({ intervalMs: FEED_PROGRESS_MS, send: (state) => fn({ kind: 'client', state }) });
        const a = this.bus.subscribe('relay', (event) => {
          if (!isProgressEvent(event)) fn({ kind: 'event', event });
        });
        const b = this.bus.subscribe('client', (u) => feed.offer(u));
        return () => {
          a();
          b();
          feed.stop();
        };
      },
      dashboardHtml: DASHBOARD_HTML,
    });
    await this.bind('http', cfg.lan.address, cfg.http.port, () => http.start());
    this.http = http;
  }

  private async startTftp(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.tftp === false) return;
    const tftp = new TftpService({
      address: cfg.lan.address,
      address6: cfg.lan.address6,
      port: cfg.tftp.port,
      source: this.source!,
      config: cfg.tftp,
      log: this.component('tftp', true),
      metrics: this.metrics,
      emit: this.emit,
      macForIp: (ip) => this.macForIp(ip),
      plan: this.plan,
      trace: this.trace,
    });
    await this.bind('tftp', cfg.lan.address, cfg.tftp.port, () => tftp.start());
    this.tftp = tftp;
  }

  private async startDhcp(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.dhcp.mode === 'off') return;
    ensureDir('the state directory', cfg.stateDir);
    const dhcp = new DhcpService({
      lan: cfg.lan,
      dhcp: cfg.dhcp,
      plan: this.plan,
      httpPort: this.http?.port ?? cfg.http.port,
      tftpEnabled: cfg.tftp !== false,
      stateDir: cfg.stateDir,
      log: this.component('dhcp'),
      metrics: this.metrics,
      emit: this.emit,
      trace: this.trace,
      // option 13 (RFC 2132 §3.7): the loader's size when the cache knows it (EDK2 then skips its tsize probe)
      bootFileSize: (path) => this.cache?.sizeOf(path),
    });
    await this.bind('dhcp', '0.0.0.0', cfg.dhcp.port, () => dhcp.start());
    this.dhcp = dhcp;
  }

  private async startDhcp6(): Promise<void> {
    const cfg = this.cfg;
    if (cfg.dhcp6.mode === 'off' || !cfg.lan.address6) return;
    ensureDir('the state directory', cfg.stateDir);
    const dhcp6 = new Dhcp6Service({
      dhcp6: cfg.dhcp6,
      interface: cfg.lan.interface,
      address6: cfg.lan.address6,
      prefix6: cfg.lan.prefix6 ?? 64,
      loaders: cfg.boot.loaders,
      httpPort: this.http?.port ?? cfg.http.port,
      tftpPort: cfg.tftp === false ? 69 : (this.tftp?.port ?? cfg.tftp.port),
      tftpEnabled: cfg.tftp !== false,
      stateDir: cfg.stateDir,
      log: this.component('dhcp6'),
      metrics: this.metrics,
      emit: this.emit,
      trace: this.trace,
    });
    await this.bind('dhcp6', '[::]', cfg.dhcp6.port, () => dhcp6.start());
    this.dhcp6 = dhcp6;
  }

  private async startControl(): Promise<void> {
    const cfg = this.cfg;
    const deps = this.commandDeps();
    const control = new ControlServer({ socket: cfg.control.socket, handlers: createHandlers(deps), watch: createWatch(deps), log: this.component('control') });
    ensureDir('the control socket directory', dirname(cfg.control.socket));
    try {
      await control.start();
    } catch (err) {
      throw new FatalError(`cannot open the control socket ${cfg.control.socket}: ${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.replace(/\s+/g, ' '), 1);
    }
    this.control = control;
  }

  private async startMqtt(): Promise<void> {
    const cfg = this.cfg;
    if (!cfg.mqtt) return;
    const handlers = createHandlers(this.commandDeps());
    const mqtt = new MqttPublisher({
      config: cfg.mqtt,
      agentId: cfg.agentId,
      stateDir: cfg.stateDir,
      log: this.component('mqtt'),
      metrics: this.metrics,
      status: () => this.status(),
      handleCommand: (name, args) => {
        if (!REMOTE_COMMANDS.has(name) || !handlers[name]) throw new Error(`unknown command "${name}"`);
        return handlers[name]!(typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {});
      },
    });
    ensureDir('the state directory', cfg.stateDir);
    try {
      await mqtt.start();
    } catch (err) {
      throw new FatalError(`mqtt: ${(err as Error).message}`, 1);
    }
    this.mqtt = mqtt;
    for (const c of this.tracker.list()) mqtt.publishClient(c as unknown as { mac: string });
  }

  private startUplink(): void {
    if (this.opts.uplink === false) return;
    let target: string | undefined;
    try {
      target = new URL(this.cfg.upstream.url).hostname;
    } catch {
      /* validated at load */
    }
    const uplink = new UplinkMonitor({ log: this.component('uplink'), target, intervalMs: 3000 });
    const publish = () => this.mqtt?.publishStatus();
    // a lost uplink: the cache serves what it has and stops trying the upstream until it is back
    // the monitor's transitions are not published as they are: UplinkState merges them with the cache's word
    bindUplinkEvents(uplink, () => this.uplinkState.changed(), {
      down: (st) => {
        // only a reading says the link is down; "could not read it" (no ip/ubus) leaves the cache trying
        if (st.source !== 'none') this.cache?.setLinkState(false, st.reason ?? 'uplink down');
        publish();
      },
      up: () => {
        this.cache?.setLinkState(true);
        publish();
      },
    });
    this.uplink = uplink;
    uplink.start().catch((err) => this.log.warn({ err }, 'uplink monitor failed'));
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    this.loadState();
    try {
      await this.startCache();
      await this.startHttp();
      await this.startTftp();
      await this.startDhcp();
      await this.startDhcp6();
      await this.startControl();
      await this.startMqtt();
    } catch (err) {
      await this.stop().catch(() => {});
      throw err;
    }
    this.startUplink();
    this.tickTimer = setInterval(() => {
      try {
        this.tracker.tick();
      } catch (err) {
        this.log.error({ err }, 'tracker tick failed');
      }
    }, 1000);
    this.statusTimer = setInterval(() => this.mqtt?.publishStatus(), 30_000);
    this.statusTimer.unref();
    this.log.info(
      {
        version: VERSION,
        config: this.configFile,
        lan: `${cfg.lan.address}/${cfg.lan.prefix}`,
        dhcp: cfg.dhcp.mode === 'off' ? 'off' : `${cfg.dhcp.mode}:${this.dhcp?.port}`,
        dhcp6: this.dhcp6 ? `${cfg.dhcp6.mode}:${this.dhcp6.port}` : 'off',
        tftp: this.tftp ? this.tftp.port : 'off',
        http: this.http?.port,
        control: cfg.control.socket,
        mqtt: cfg.mqtt?.url ?? 'off',
        upstream: cfg.upstream.url,
      },
      'bootrelay started',
    );
  }

  async stop(): Promise<void> {
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.tickTimer = this.statusTimer = undefined;
    this.uplink?.stop();
    const steps: Array<[string, (() => Promise<void> | void) | undefined]> = [
      ['control', this.control && (() => this.control!.stop())],
      ['dhcp', this.dhcp && (() => this.dhcp!.stop())],
      ['dhcp6', this.dhcp6 && (() => this.dhcp6!.stop())],
      ['tftp', this.tftp && (() => this.tftp!.stop())],
      ['http', this.http && (() => this.http!.stop())],
      ['mqtt', this.mqtt && (() => this.mqtt!.stop())],
      ['cache', this.cache && (() => this.cache!.close())],
    ];
    for (const [name, fn] of steps) {
      if (!fn) continue;
      try {
        await fn();
      } catch (err) {
        this.log.warn({ err, service: name }, 'stop failed');
      }
    }
    this.control = this.dhcp = this.dhcp6 = this.tftp = this.http = this.mqtt = this.cache = undefined;
    this.state.flush();
  }

  // ------------------------------------------------------------ reload

  /** SIGHUP: validate the file again; restart only what changed. Serialised. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.doReload()).catch((err) => this.log.error({ err }, 'reload failed'));
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    const r = loadConfig(this.configFile);
    if (!r.ok) {
      for (const i of r.issues) this.log.error({ path: i.path }, `config: ${i.message}`);
      this.log.error({ issues: r.issues.length }, 'reload refused: keeping the running config');
      return;
    }
    for (const w of r.warnings) this.log.warn(`config: ${w}`);
    const next = r.config;
    const old = this.cfg;
    const plan = restartPlan(old, next);
    const changed = new Set(plan.changed);
    if (changed.size === 0) {
      this.log.info('reload: nothing changed');
      return;
    }
    this.cfg = next;
    // pino children do not follow their parent's level: services get new loggers by restarting
    const relog = changed.has('log');
    if (relog) {
      this.log.level = next.log.level;
      this.eventLog = this.component('events');
    }
    // one plan for every service and the tracker: a profile the reload removed is gone for all of them alike
    if (changed.has('boot') || changed.has('dhcp')) {
      const dropped = this.plan.setConfig({ boot: next.boot, netbootOnce: next.dhcp.netbootOnce });
      if (dropped.length) this.log.warn({ macs: dropped }, 'runtime assignments name a profile the reload removed: dropped');
    }
    const restart = new Set(plan.restart);
    this.log.info({ changed: plan.changed, restart: plan.restart }, 'reloading config');
    const again = async (name: string, stop: () => Promise<void> | void, start: () => Promise<void>) => {
      try {
        await stop();
      } catch (err) {
        this.log.warn({ err, service: name }, 'stop failed');
      }
      try {
        await start();
      } catch (err) {
        this.log.error({ err, service: name }, `${name} did not restart: ${(err as Error).message}`);
      }
    };
    if (restart.has('cache')) {
      const oldCache = this.cache;
      if (oldCache && old.cache.dir === this.cfg.cache.dir) {
        // one directory, one owner: the new cache cleans partials and writes index.json at start
        await again('cache', () => oldCache.close(), () => this.startCache());
      } else {
        await again('cache', () => {}, () => this.startCache());
        if (oldCache && oldCache !== this.cache) await oldCache.close().catch(() => {});
      }
    }
    if (restart.has('http')) await again('http', async () => (await this.http?.stop(), (this.http = undefined)), () => this.startHttp());
    if (restart.has('tftp')) await again('tftp', async () => (await this.tftp?.stop(), (this.tftp = undefined)), () => this.startTftp());
    if (restart.has('dhcp')) await again('dhcp', async () => (await this.dhcp?.stop(), (this.dhcp = undefined)), () => this.startDhcp());
    if (restart.has('dhcp6')) await again('dhcp6', async () => (await this.dhcp6?.stop(), (this.dhcp6 = undefined)), () => this.startDhcp6());
    if (restart.has('control')) await again('control', async () => (await this.control?.stop(), (this.control = undefined)), () => this.startControl());
    if (restart.has('mqtt')) await again('mqtt', async () => (await this.mqtt?.stop(), (this.mqtt = undefined)), () => this.startMqtt());
    this.mqtt?.publishStatus();
    this.log.info('config reloaded');
  }
}

