/**
 * The control commands relayctl sends, as handlers over injected parts (the
 * composition root passes the live services; tests pass small real objects).
 * Arguments are validated here: a bad MAC or an unknown profile is a
 * CommandError with code EUSAGE, a missing thing ENOTFOUND.
 */
import { isAbsolute } from 'node:path';
import type { RelayEvent } from '../../proto/events';
import { normalizeMac } from '../../proto/mac';
import { normalizeUuid } from '../../proto/uuid';
import { normalizeBootPath } from '../../proto/path';
import type { ClientUpdate } from '../clients/record';
import { ClientThrottle } from '../clients/throttle';
import type { ClientTracker } from '../clients/tracker';
import { loadConfig } from '../config/load';
import type { Config } from '../config/types';
import { CommandError, type CommandHandler, type WatchSource } from './server';

/** What the cache offers the control socket (relay/cache/cache.ts FileCache). */
export interface CacheControl {
  list(): unknown[];
  prefetch(path: string, pin?: boolean): Promise<unknown>;
  purge(path?: string): Promise<number>;
  verify(): Promise<Array<{ path: string; ok: boolean; reason?: string }>>;
}

/** What the DHCP service offers (relay/dhcp/service.ts DhcpService). */
export interface DhcpControl {
  leases(): unknown[];
  rearm(mac: string): void;
}

export interface CommandDeps {
  config: () => Config;
  tracker: ClientTracker;
  status: () => unknown;
  cache?: CacheControl;
  dhcp?: DhcpControl;
  trace?: { toPcap(mac: string): Buffer; count(mac: string): number };
  /** applies a runtime assignment everywhere (DHCP, HTTP, tracker) */
  assign: (mac: string, profile: string) => void;
  /** runtime assignments (relayctl assign), over boot.assign */
  assignments?: () => Record<string, string>;
  /** a runtime assignment by SMBIOS UUID (DHCP option 97): follows the machine, whatever NIC it boots from */
  assignUuid?: (uuid: string, profile: string) => void;
  /** the bus, for watch */
  subscribe: (fn: (kind: 'relay' | 'client', data: RelayEvent | ClientUpdate) => void) => () => void;
}

function macArg(args: Record<string, unknown>): string {
  const v = args.mac;
  if (typeof v !== 'string' || !v) throw new CommandError('EUSAGE', 'a MAC address is required');
  const m = normalizeMac(v);
  if (!m) throw new CommandError('EUSAGE', `not a MAC address: ${JSON.stringify(v)} (expected e.g. 52:54:00:12:34:56)`);
  return m;
}

function strArg(args: Record<string, unknown>, key: string, what: string): string {
  const v = args[key];
  if (typeof v !== 'string' || !v) throw new CommandError('EUSAGE', `${what} is required`);
  return v;
}

export function profileFiles(cfg: Config, name: string): string[] {
  const p = cfg.boot.profiles[name];
  if (!p) return [];
  return [p.kernel, ...(p.initrd ?? []), p.script].filter((x): x is string => !!x);
}

export function createHandlers(d: CommandDeps): Record<string, CommandHandler> {
  const needCache = (): CacheControl => {
    if (!d.cache) throw new CommandError('EUNAVAILABLE', 'the cache is not running');
    return d.cache;
  };
  return {
    ping: () => ({ pong: true }),
    status: () => d.status(),
    clients: (args) => {
      const list = d.tracker.list();
      if (typeof args.mac === 'string') {
        const m = macArg(args);
        return list.filter((c) => c.mac === m);
      }
      return list;
    },
    leases: () => d.dhcp?.leases() ?? [],
    profiles: () => {
      const cfg = d.config();
      const assigned: Record<string, string[]> = {};
      const all = { ...cfg.boot.assign, ...(d.assignments?.() ?? {}) };
      for (const [mac, p] of Object.entries(all)) (assigned[p] ??= []).push(mac);
      return Object.entries(cfg.boot.profiles).map(([name, p]) => ({
        name,
        default: name === cfg.boot.defaultProfile,
        ...p,
        assigned: assigned[name] ?? [],
      }));
    },
    assign: (args) => {
      const uuid = typeof args.uuid === 'string' ? args.uuid : undefined;
      const mac = uuid === undefined ? macArg(args) : undefined;
      const profile = strArg(args, 'profile', 'a profile name');
      const cfg = d.config();
      if (!cfg.boot.profiles[profile])
        throw new CommandError('EUSAGE', `no profile "${profile}" (profiles: ${Object.keys(cfg.boot.profiles).join(', ')})`);
      if (uuid !== undefined) {
        const u = normalizeUuid(uuid);
        if (!u) throw new CommandError('EUSAGE', `not a UUID: ${JSON.stringify(uuid)} (expected e.g. 8a7e4c52-1d5e-4b2f-9f5e-0123456789ab, not all zeros)`);
        if (!d.assignUuid) throw new CommandError('EUNAVAILABLE', 'assignment by UUID is not available');
        d.assignUuid(u, profile);
        return { uuid: u, profile };
      }
      d.assign(mac!, profile);
      return { mac, profile };
    },
    rearm: (args) => {
      const mac = macArg(args);
      if (!d.dhcp) throw new CommandError('EUNAVAILABLE', 'DHCP is off: nothing to re-arm');
      d.dhcp.rearm(mac);
      return { mac, rearmed: true };
    },
    explain: (args) => {
      const mac = macArg(args);
      return { mac, lines: d.tracker.explain(mac), state: d.tracker.get(mac) ?? null };
    },
    trace: (args) => {
      const mac = macArg(args);
      if (!d.trace) throw new CommandError('EUNAVAILABLE', 'packet tracing is not running');
      const packets = d.trace.count(mac);
      return { mac, packets, pcap: d.trace.toPcap(mac).toString('base64') };
    },
    'cache.ls': () => needCache().list(),
    'cache.prefetch': async (args) => {
      const target = strArg(args, 'target', 'a PATH or PROFILE');
      const cache = needCache();
      const cfg = d.config();
      if (cfg.boot.profiles[target]) {
        const files = profileFiles(cfg, target);
        const entries = [];
        for (const f of files) entries.push(await cache.prefetch(f, true));
        return { profile: target, entries };
      }
      let path: string;
      try {
        path = normalizeBootPath(target);
      } catch (e) {
        throw new CommandError('EUSAGE', `neither a profile nor a boot path: ${(e as Error).message}`);
      }
      return { entries: [await cache.prefetch(path, true)] };
    },
    'cache.purge': async (args) => {
      let path: string | undefined;
      if (typeof args.path === 'string' && args.path) {
        try {
          path = normalizeBootPath(args.path);
        } catch (e) {
          throw new CommandError('EUSAGE', (e as Error).message);
        }
      }
      return { removed: await needCache().purge(path) };
    },
    'cache.verify': async () => {
      const results = await needCache().verify();
      return { ok: results.every((r) => r.ok), results };
    },
    'config.check': (args) => {
      const file = strArg(args, 'file', 'a config file path');
      if (!isAbsolute(file)) throw new CommandError('EUSAGE', `give an absolute path (the agent's working directory is not yours): ${file}`);
      const r = loadConfig(file);
      return r.ok ? { ok: true, issues: [], warnings: r.warnings } : { ok: false, issues: r.issues.map((i) => i.message), warnings: r.warnings };
    },
  };
}

/** `watch [--mac MAC]`: the current client states first, then every change and event. */
/** relayctl watch: byte progress of a client at most every this many ms. */
export const WATCH_PROGRESS_MS = 250;

export function createWatch(d: CommandDeps): WatchSource {
  return (args, send) => {
    const mac = typeof args.mac === 'string' && args.mac ? macArg(args) : undefined;
    const events = args.events !== false;
    // a terminal redraws at most this often for byte progress (the shared rule; phases at once)
    const feed = new ClientThrottle({ intervalMs: WATCH_PROGRESS_MS, send: (s) => send('client', s) });
    const unsubscribe = d.subscribe((kind, data) => {
      if (kind === 'client') {
        const u = data as ClientUpdate;
        if (!mac || u.state.mac === mac) feed.offer(u);
        return;
      }
      if (!events || (mac && (data as RelayEvent).mac !== mac)) return;
      send(kind, data);
    });
    const stop = () => {
      unsubscribe();
      feed.stop();
    };
    const clients = d.tracker.list().filter((c) => !mac || c.mac === mac);
    return { initial: { clients }, stop };
  };
}
