/**
 * bootrelay: the agent's composition root (esbuild → dist/bootrelay.js).
 *
 *   bootrelay --config FILE [--check]     run (or only validate the config)
 *   bootrelay --version | --help
 *
 * Builds the services from the config, wires their events through the bus:
 *   service emit → bus 'relay' → log line, tracker.apply, MQTT …/events, /api/events, watch
 *   tracker 'client' → bus 'client' → MQTT …/clients/<mac>, /api/events, watch
 * SIGTERM/SIGINT stop everything and exit 0; SIGHUP reloads the config and
 * restarts only the services whose fields changed (a bad new config is logged
 * and the old one kept). A bad config at start is one line per issue on
 * stderr and exit 2; a port that cannot be bound is one line and exit 1.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { makeEvent, type ClientPhase, type EmitFn, type RelayEvent } from '../proto/events';
import { VERSION } from '../proto/version';
import { BootPlan } from '../relay/boot/plan';
import { FileCache } from '../relay/cache/cache';
import { DhcpService } from '../relay/dhcp/service';
import { HttpService } from '../relay/http/service';
import { Metrics } from '../relay/metrics';
import type { FileSource, OpenOptions } from '../relay/source';
import { TftpService } from '../relay/tftp/service';
import { PacketTrace } from '../relay/trace';
import { Bus } from './bus';
import { ClientTracker, type ClientState } from './clients/tracker';
import { loadConfig } from './config/load';
import type { Config } from './config/types';
import { createHandlers, createWatch, type CommandDeps } from './control/commands';
import { ControlServer } from './control/server';
import { DASHBOARD_HTML } from './dashboard/index';
import { createLogger, type Logger } from './log';
import { MqttPublisher } from './publish/mqtt';
import { bindUplinkEvents, UplinkMonitor } from './uplink/monitor';
import type { UplinkStatus } from './uplink/status';

const USAGE = `usage: bootrelay --config FILE [--check]
       bootrelay --version

  --config FILE   the agent's config (JSON, or OpenWrt UCI text)
  --check         validate the config and exit (0 ok, 2 bad)
  --version       print the version
`;

/** Commands that may be run remotely over MQTT (config mqtt.commands). No file access, no traces. */
const REMOTE_COMMANDS = new Set(['status', 'clients', 'leases', 'profiles', 'assign', 'rearm', 'explain', 'cache.ls', 'cache.prefetch', 'cache.purge', 'cache.verify']);

type Section = keyof Config;

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
  private mqtt?: MqttPublisher;
  private control?: ControlServer;
  private uplink?: UplinkMonitor;
  private tickTimer?: NodeJS.Timeout;
  private statusTimer?: NodeJS.Timeout;
  private reloading: Promise<void> = Promise.resolve();
  private eventLog: Logger;
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
    this.emit = (ev) => {
      try {
        this.bus.emit('relay', makeEvent(ev));
      } catch (err) {
        this.log.error({ err }, 'event dispatch failed');
      }
    };
    this.plan = new BootPlan({ boot: cfg.boot, netbootOnce: cfg.dhcp.netbootOnce });
    this.plan.on('runtime', (part) => {
      const rt = this.plan.runtime();
      if (part === 'assign') this.saveJson('assign.json', rt.assign);
      else this.saveJson('booted.json', rt.booted);
    });
    this.tracker = new ClientTracker({ plan: this.plan, emit: this.emit });

    // every relay event is one log line: type, mac and its fields (the e2e test reads them)
    this.bus.on('relay', (e) => {
      if (e.type.endsWith('.progress')) this.eventLog.debug(e, e.type);
      else this.eventLog.info(e, e.type);
    });
    this.bus.on('relay', (e) => this.mqtt?.publishEvent(e));
    // netboot-once: the plan remembers who booted (only under dhcp.netbootOnce)
    this.bus.on('relay', (e) => {
      if (e.type === 'client.booted') this.plan.noteBooted(e.mac);
    });
    // loader fallbacks (boot.loaders lists): DHCP learns when a client finished fetching its
    // loader, so a fresh firmware DISCOVER soon after means "that loader did not work here"
    this.bus.on('relay', (e) => {
      if ((e.type === 'tftp.done' || e.type === 'http.done') && e.mac && this.plan.fileRole(e.file) === 'loader') this.dhcp?.noteLoaderFetched(e.mac);
    });
    // the tracker last: a client.failed it emits while applying an event goes out after that event
    this.bus.on('relay', (e) => this.tracker.apply(e));
    this.tracker.on('client', (s) => this.bus.emit('client', s));
    this.bus.on('client', (s) => this.mqtt?.publishClient(s));
    // client states survive a restart (or a crash): retained MQTT state and the dashboard stay right
    this.bus.on('client', (s) => this.persistClients(s));
  }

  private savedPhase = new Map<string, string>();
  private clientsTimer?: NodeJS.Timeout;

  /**
   * stateDir/clients.json: written at once on a phase or error change (a few per boot), and at
   * most every 2 s for byte progress and for clients seen only once (a DISCOVER). tmp + rename,
   * so a crash leaves the old or the new file.
   */
  private persistClients(s: ClientState): void {
    const key = `${s.phase}|${s.error ?? ''}`;
    const prev = this.savedPhase.get(s.mac);
    if (prev !== key) {
      this.savedPhase.set(s.mac, key);
      if (this.savedPhase.size > 2 * 1024) this.pruneSavedPhases();
      // A client that has only just appeared (one DISCOVER) waits for the timer below: anyone on
      // the LAN can make up MACs, and each would otherwise rewrite the whole file on flash.
      if (prev !== undefined || s.phase !== 'dhcp' || s.error) return this.saveClients();
    }
    if (!this.clientsTimer) {
      this.clientsTimer = setTimeout(() => this.saveClients(), 2000);
      this.clientsTimer.unref();
    }
  }

  /** Forgets the phases of clients the tracker no longer knows (it keeps a bounded number). */
  private pruneSavedPhases(): void {
    const known = new Set(this.tracker.list().map((c) => c.mac));
    for (const mac of this.savedPhase.keys()) if (!known.has(mac)) this.savedPhase.delete(mac);
  }

  private saveClients(): void {
    if (this.clientsTimer) clearTimeout(this.clientsTimer);
    this.clientsTimer = undefined;
    this.saveJson('clients.json', this.tracker.list());
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
    const uplinkState = up ? (up.up ? 'up' : 'down') : (cacheStats?.uplink ?? 'unknown');
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
    return this.dhcp?.macForIp(ip) ?? this.tracker.macForIp(ip);
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
        leases: () => this.dhcp?.leases() ?? [],
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
      subscribe: (fn) => {
        const a = this.bus.subscribe('relay', (e) => fn('relay', e));
        const b = this.bus.subscribe('client', (s) => fn('client', s));
        return () => {
          a();
          b();
        };
      },
    };
  }

  /** relayctl assign and netboot-once survive restarts: <stateDir>/assign.json (mac → profile), booted.json. */
  private loadState(): void {
    const dropped = this.plan.restore({ assign: this.readJson('assign.json'), booted: this.readJson('booted.json') });
    for (const d of dropped) this.log.warn(d, 'runtime assignment names no current profile: dropped');
    const restored = this.tracker.restore(this.readJson('clients.json'));
    if (restored) this.log.info({ clients: restored }, 'client states restored');
  }

  private readJson(name: string): unknown {
    const file = join(this.cfg.stateDir, name);
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err, file }, 'state file unreadable: ignored');
      return undefined;
    }
  }

  /** Atomic small-file write (tmp + rename); a failure is logged, the value holds in memory. */
  private saveJson(name: string, value: unknown): void {
    const file = join(this.cfg.stateDir, name);
    const tmp = `${file}.tmp`;
    try {
      mkdirSync(this.cfg.stateDir, { recursive: true });
      writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
      renameSync(tmp, file);
    } catch (err) {
      this.log.warn({ err, file }, 'state not saved (it holds until restart)');
    }
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
        emit: this.emit,
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
    if (this.source) this.source.target = cache;
    else this.source = new SwitchableSource(cache);
  }

  private async startHttp(): Promise<void> {
    const cfg = this.cfg;
    const http = new HttpService({
      address: cfg.lan.address,
      port: cfg.http.port,
      source: this.source!,
      log: this.component('http', true),
      metrics: this.metrics,
      emit: this.emit,
      macForIp: (ip) => this.macForIp(ip),
      plan: this.plan,
      api: { status: () => this.status(), clients: () => this.tracker.list() },
      subscribe: (fn) => {
        // progress travels in the client states (throttled by the tracker); raw *.progress events would flood the page
        const a = this.bus.subscribe('relay', (event) => {
          if (!event.type.endsWith('.progress')) fn({ kind: 'event', event });
        });
        const b = this.bus.subscribe('client', (state) => fn({ kind: 'client', state }));
        return () => {
          a();
          b();
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
    bindUplinkEvents(uplink, this.emit, {
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
    this.control = this.dhcp = this.tftp = this.http = this.mqtt = this.cache = undefined;
    if (this.clientsTimer) this.saveClients();
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
    const changed = new Set<Section>((Object.keys({ ...old, ...next }) as Section[]).filter((k) => JSON.stringify(old[k]) !== JSON.stringify(next[k])));
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
    const restart = {
      cache: changed.has('upstream') || changed.has('cache'),
      http: changed.has('lan') || changed.has('http') || relog,
      tftp: changed.has('lan') || changed.has('tftp') || relog,
      dhcp: ['lan', 'dhcp', 'boot', 'http', 'tftp', 'stateDir'].some((k) => changed.has(k as Section)) || relog,
      control: changed.has('control'),
      mqtt: changed.has('mqtt') || changed.has('agentId') || changed.has('stateDir') || relog,
    };
    this.log.info({ changed: [...changed], restart: Object.keys(restart).filter((k) => restart[k as keyof typeof restart]) }, 'reloading config');
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
    if (restart.cache) {
      const oldCache = this.cache;
      if (oldCache && old.cache.dir === this.cfg.cache.dir) {
        // one directory, one owner: the new cache cleans partials and writes index.json at start
        await again('cache', () => oldCache.close(), () => this.startCache());
      } else {
        await again('cache', () => {}, () => this.startCache());
        if (oldCache && oldCache !== this.cache) await oldCache.close().catch(() => {});
      }
    }
    if (restart.http) await again('http', async () => (await this.http?.stop(), (this.http = undefined)), () => this.startHttp());
    if (restart.tftp) await again('tftp', async () => (await this.tftp?.stop(), (this.tftp = undefined)), () => this.startTftp());
    if (restart.dhcp) await again('dhcp', async () => (await this.dhcp?.stop(), (this.dhcp = undefined)), () => this.startDhcp());
    if (restart.control) await again('control', async () => (await this.control?.stop(), (this.control = undefined)), () => this.startControl());
    if (restart.mqtt) await again('mqtt', async () => (await this.mqtt?.stop(), (this.mqtt = undefined)), () => this.startMqtt());
    this.mqtt?.publishStatus();
    this.log.info('config reloaded');
  }
}

// ------------------------------------------------------------------ process

interface Args {
  config?: string;
  check: boolean;
  version: boolean;
  help: boolean;
}

function parseArgv(argv: string[]): Args {
  const a: Args = { check: false, version: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--config' || x === '-c') {
      const v = argv[++i];
      if (!v) throw new FatalError('--config needs a file', 2);
      a.config = v;
    } else if (x.startsWith('--config=')) a.config = x.slice(9);
    else if (x === '--check') a.check = true;
    else if (x === '--version' || x === '-V') a.version = true;
    else if (x === '--help' || x === '-h') a.help = true;
    else throw new FatalError(`unknown argument ${JSON.stringify(x)}`, 2);
  }
  return a;
}

function flushAndExit(log: Logger | undefined, code: number): void {
  const exit = () => process.exit(code);
  if (!log) return exit();
  try {
    log.flush((err) => {
      void err;
      exit();
    });
    setTimeout(exit, 1000).unref();
  } catch {
    exit();
  }
}

export async function main(argv: string[]): Promise<void> {
  let args: Args;
  try {
    args = parseArgv(argv);
  } catch (e) {
    process.stderr.write(`bootrelay: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.version) {
    process.stdout.write(`bootrelay ${VERSION}\n`);
    return;
  }
  if (!args.config) {
    process.stderr.write(`bootrelay: --config FILE is required\n${USAGE}`);
    process.exit(2);
  }
  args.config = resolve(args.config);
  const r = loadConfig(args.config);
  if (!r.ok) {
    for (const i of r.issues) process.stderr.write(`bootrelay: config: ${i.message}\n`);
    process.exit(2);
  }
  if (args.check) {
    for (const w of r.warnings) process.stderr.write(`bootrelay: config: warning: ${w}\n`);
    process.stdout.write(`bootrelay: config ${args.config} ok\n`);
    return;
  }

  const log = createLogger({ level: r.config.log.level, agentId: r.config.agentId });
  for (const w of r.warnings) log.warn(`config: ${w}`);
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception (survived)'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (survived)'));

  const agent = new Agent(r.config, args.config, log);
  try {
    await agent.start();
  } catch (e) {
    const msg = e instanceof FatalError ? e.message : `startup failed: ${(e as Error).stack ?? e}`;
    log.fatal(msg);
    process.stderr.write(`bootrelay: ${msg}\n`);
    flushAndExit(log, e instanceof FatalError ? e.exitCode : 1);
    return;
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => {
      log.warn('services did not stop within 5 s: exiting anyway');
      flushAndExit(log, 0);
    }, 5000);
    force.unref();
    agent.stop().then(
      () => {
        log.info('stopped');
        flushAndExit(log, 0);
      },
      (err) => {
        log.error({ err }, 'stop failed');
        flushAndExit(log, 0);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading config');
    void agent.reload();
  });
}

export type { ClientState, RelayEvent };

const isEntry = typeof require !== 'undefined' && typeof module !== 'undefined' && require.main === module;
if (isEntry) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`bootrelay: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
