/**
 * The config schema: types, defaults and every check, hand-written (no
 * dependency). `parseConfig(obj)` collects EVERY problem, z2m style, as
 * `<path>: expected <what>, got <value>`; unknown keys are errors
 * (shared/CONTRACT.md). A cross-field pass follows the per-field pass.
 */
import { hostname } from 'node:os';
import { bigIntToIp6, canonicalIp6, inPrefix6, ip6ToBigInt, isLinkLocal6 } from '../../proto/dhcp6/addr';
import { DHCP6_DEFAULTS, type Dhcp6Config } from '../../relay/dhcp6/config';
import { formatGot } from '../../proto/errors';
import { normalizeMac } from '../../proto/mac';
import { normalizeBootPath } from '../../proto/path';
import type { ArchKey } from '../../proto/events';
import type { ChainLoader } from '../../relay/boot/chain';
import { encodeClasslessRoutes, encodeDomainName, parseHex } from '../../proto/dhcp/extra';
import type {
  BootConfig,
  CacheConfig,
  Config,
  DhcpConfig,
  DhcpOptionsConfig,
  MatchRuleConfig,
  PxeMenuConfig,
  RelaySubnetConfig,
  HttpConfig,
  LanConfig,
  MqttConfig,
  ProfileConfig,
  TftpConfig,
  UpstreamConfig,
} from './types';

/** One problem in a config file. `message` is the line shown to people. */
export interface ConfigIssue {
  /** `dhcp.range[1]`, `boot.profiles.debian.kernel`, `` (the whole file) */
  path: string;
  expected: string;
  /** the offending value, already rendered (JSON, or a phrase such as `unknown key "x"`) */
  got: string;
  message: string;
}

export type ParseResult = { ok: true; config: Config; warnings: string[] } | { ok: false; issues: ConfigIssue[]; warnings: string[] };

/** Loader keys accepted in `boot.loaders` (ArchKey without 'unknown'). */
export const LOADER_KEYS: readonly ArchKey[] = ['bios', 'uefi-ia32', 'uefi-x64', 'uefi-arm32', 'uefi-arm64', 'uefi-riscv64'];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const DEFAULTS = {
  stateDir: '/var/lib/bootrelay',
  lanInterface: 'br-lan',
  tftp: { port: 69, maxBlksize: 1468, maxWindowsize: 64, timeout: 1, retries: 6, maxTransfers: 64, maxTransfersPerClient: 4 } satisfies TftpConfig,
  http: { port: 80 } satisfies HttpConfig,
  dhcp: { mode: 'server', port: 67, proxyPort: 4011, leaseSeconds: 3600, ipxeNoProxyDhcp: true, netbootOnce: false },
  upstream: { timeoutMs: 15000 },
  cache: { dir: '/var/cache/bootrelay', maxBytes: 4_000_000_000, ttlSeconds: 3600, negativeTtlSeconds: 30 } satisfies CacheConfig,
  mqtt: { username: '', password: '', prefix: 'bootrelay', journalMaxEvents: 10000, homeAssistant: false, commands: false },
  control: { socket: '/run/bootrelay.sock' },
  log: { level: 'info' as const },
};

// ---------------------------------------------------------------- helpers

type Obj = Record<string, unknown>;

export function issue(path: string, expected: string, got: string): ConfigIssue {
  return { path, expected, got, message: `${path || '(config)'}: expected ${expected}, got ${got}` };
}

const IDENT = /^[A-Za-z_$][\w$-]*$/;
function sub(path: string, key: string): string {
  const k = IDENT.test(key) ? key : JSON.stringify(key);
  if (!path) return IDENT.test(key) ? key : `[${k}]`;
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${k}]`;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function ipToInt(ip: string): number | undefined {
  if (typeof ip !== 'string' || !IPV4_RE.test(ip)) return undefined;
  return ip.split('.').reduce((a, p) => a * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function subnetOf(address: string, prefix: number): { net: number; bcast: number; cidr: string } | undefined {
  const a = ipToInt(address);
  if (a === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  const net = a - (a % size);
  return { net, bcast: net + size - 1, cidr: `${intToIp(net)}/${prefix}` };
}

class Ctx {
  issues: ConfigIssue[] = [];
  warnings: string[] = [];
  bad(path: string, expected: string, got: unknown): undefined {
    this.issues.push(issue(path, expected, formatGot(got)));
    return undefined;
  }
  badRaw(path: string, expected: string, got: string): undefined {
    this.issues.push(issue(path, expected, got));
    return undefined;
  }

  /** A section object: reports wrong type and unknown keys; undefined when absent (and not required). */
  section(v: unknown, path: string, known: readonly string[], required = false, what = 'an object'): Obj | undefined {
    if (v === undefined) {
      if (required) this.bad(path, what, v);
      return undefined;
    }
    if (!isObj(v)) return this.bad(path, what, v);
    for (const k of Object.keys(v)) {
      if (!known.includes(k)) this.badRaw(sub(path, k), `one of the keys ${known.join(', ')}`, `unknown key ${JSON.stringify(k)}`);
    }
    return v;
  }

  str(o: Obj | undefined, key: string, path: string, def?: string, opts: { nonEmpty?: boolean; required?: boolean } = {}): string | undefined {
    const p = sub(path, key);
    const v = o?.[key];
    if (v === undefined) {
      if (opts.required) return this.bad(p, 'a string', v);
      return def;
    }
    if (typeof v !== 'string') return this.bad(p, 'a string', v);
    if ((opts.nonEmpty ?? true) && v.length === 0) return this.bad(p, 'a non-empty string', v);
    return v;
  }

  num(o: Obj | undefined, key: string, path: string, def: number | undefined, min: number, max: number, what = 'an integer'): number | undefined {
    const p = sub(path, key);
    const v = o?.[key];
    if (v === undefined) {
      if (def === undefined) return this.bad(p, `${what} from ${min} to ${max}`, v);
      return def;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) return this.bad(p, `${what} from ${min} to ${max}`, v);
    return v;
  }

  bool(o: Obj | undefined, key: string, path: string, def: boolean): boolean {
    const v = o?.[key];
    if (v === undefined) return def;
    if (typeof v !== 'boolean') {
      this.bad(sub(path, key), 'true or false', v);
      return def;
    }
    return v;
  }

  oneOf<T extends string>(o: Obj | undefined, key: string, path: string, values: readonly T[], def: T | undefined): T | undefined {
    const v = o?.[key];
    if (v === undefined) {
      if (def === undefined) return this.bad(sub(path, key), `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
      return def;
    }
    if (typeof v !== 'string' || !values.includes(v as T)) return this.bad(sub(path, key), `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
    return v as T;
  }

  ipv4(v: unknown, path: string, what = 'an IPv4 address'): string | undefined {
    if (typeof v !== 'string' || ipToInt(v) === undefined) return this.bad(path, what, v);
    return v;
  }

  bootPath(v: unknown, path: string): string | undefined {
    if (typeof v !== 'string' || v.length === 0) return this.bad(path, 'a path relative to upstream.url', v);
    try {
      return normalizeBootPath(v);
    } catch (e) {
      return this.bad(path, `a clean path relative to upstream.url (${(e as Error).message})`, v);
    }
  }

  stringRecord(v: unknown, path: string): Record<string, string> | undefined {
    if (v === undefined) return {};
    if (!isObj(v)) return this.bad(path, 'an object of strings', v);
    const out: Record<string, string> = {};
    for (const [k, x] of Object.entries(v)) {
      if (typeof x !== 'string') this.bad(sub(path, k), 'a string', x);
      else out[k] = x;
    }
    return out;
  }

  /** A string or a non-empty array of strings → array. */
  strList(v: unknown, path: string, each: (s: unknown, p: string) => string | undefined): string[] | undefined {
    if (typeof v === 'string') {
      const r = each(v, path);
      return r === undefined ? undefined : [r];
    }
    if (!Array.isArray(v) || v.length === 0) return this.bad(path, 'a path or a non-empty list of paths', v);
    const out: string[] = [];
    let okAll = true;
    v.forEach((x, i) => {
      const r = each(x, `${path}[${i}]`);
      if (r === undefined) okAll = false;
      else out.push(r);
    });
    return okAll ? out : undefined;
  }
}

// ---------------------------------------------------------------- sections

/** The running parts a reload can restart, in the order they are restarted. */
export const SERVICES = ['cache', 'http', 'tftp', 'dhcp', 'dhcp6', 'control', 'mqtt'] as const;
export type Service = (typeof SERVICES)[number];

/**
 * What a changed section requires to restart on reload (SIGHUP), kept beside the schema as
 * zigbee2mqtt keeps "requires restart" (agent/reload.ts reads it). DHCP names the HTTP port and
 * whether TFTP is on in its replies; `log`: pino children do not follow their parent's level,
 * so every service with its own logger gets a new one by restarting. `boot` needs no more than
 * DHCP (the boot plan is updated in place; DHCP restarts to start its loader history afresh).
 */
export const RESTARTS: Record<keyof Config, readonly Service[]> = {
  agentId: ['mqtt'],
  stateDir: ['dhcp', 'dhcp6', 'mqtt'],
  lan: ['http', 'tftp', 'dhcp', 'dhcp6'],
  dhcp: ['dhcp'],
  dhcp6: ['dhcp6'],
  tftp: ['tftp', 'dhcp', 'dhcp6'],
  http: ['http', 'dhcp', 'dhcp6'],
  upstream: ['cache'],
  cache: ['cache'],
  boot: ['dhcp', 'dhcp6'],
  mqtt: ['mqtt'],
  control: ['control'],
  log: ['http', 'tftp', 'dhcp', 'dhcp6', 'mqtt'],
};

const ROOT_KEYS = ['$schema', 'agentId', 'stateDir', 'lan', 'dhcp', 'dhcp6', 'tftp', 'http', 'upstream', 'cache', 'boot', 'mqtt', 'control', 'log'] as const;

function parseLan(c: Ctx, v: unknown): LanConfig | undefined {
  const o = c.section(v, 'lan', ['interface', 'address', 'prefix', 'address6', 'prefix6'], true, 'an object with the LAN address and prefix ({"address": "10.99.0.1", "prefix": 24})');
  if (!o) return undefined;
  const iface = c.str(o, 'interface', 'lan', DEFAULTS.lanInterface);
  const address = o.address === undefined ? c.bad('lan.address', 'an IPv4 address', undefined) : c.ipv4(o.address, 'lan.address');
  const prefix = c.num(o, 'prefix', 'lan', 24, 1, 32, 'a prefix length');
  if (iface === undefined || address === undefined || prefix === undefined) return undefined;
  const sn = subnetOf(address, prefix)!;
  const a = ipToInt(address)!;
  if (prefix <= 30 && (a === sn.net || a === sn.bcast)) c.bad('lan.address', `a host address of ${sn.cidr} (not its network or broadcast address)`, address);
  const v6 = parseLan6(c, o);
  return { interface: iface, address, prefix, ...v6 };
}

/** .100–.199 of the LAN (or its upper half when small), moved off lan.address when it falls inside. */
function defaultRange(lan: LanConfig | undefined): [string, string] {
  if (!lan) return ['0.0.0.0', '0.0.0.0'];
  const sn = subnetOf(lan.address, lan.prefix)!;
  const a = ipToInt(lan.address)!;
  const size = sn.bcast - sn.net + 1;
  let [lo, hi] = size >= 256 ? [sn.net + 100, sn.net + 199] : size >= 4 ? [sn.net + Math.floor(size / 2), sn.bcast - 1] : [a, a];
  if (size >= 4 && a >= lo && a <= hi) {
    const n = hi - lo;
    if (a + 1 + n <= sn.bcast - 1) [lo, hi] = [a + 1, a + 1 + n];
    else if (a - 1 - n > sn.net) [lo, hi] = [a - 1 - n, a - 1];
    else [lo, hi] = a - sn.net - 1 >= sn.bcast - 1 - a ? [sn.net + 1, a - 1] : [a + 1, sn.bcast - 1];
  }
  return [intToIp(lo), intToIp(hi)];
}

/** dhcp.options / a profile's dhcpOptions: each value checked by the encoder that will send it. */
function parseDhcpOptions(c: Ctx, v: unknown, path: string): DhcpOptionsConfig | undefined {
  const o = c.section(v, path, ['ntp', 'domain', 'mtu', 'searchList', 'classlessRoutes', 'vendorEncapsulated']);
  if (!o) return undefined;
  const before = c.issues.length;
  const out: DhcpOptionsConfig = {};
  const ips = (x: unknown, p: string): string[] | undefined => {
    const list = typeof x === 'string' ? [x] : x;
    if (!Array.isArray(list) || list.length === 0) return c.bad(p, 'a list of IPv4 addresses', x);
    const r = list.map((y, i) => c.ipv4(y, `${p}[${i}]`));
    return r.every((y) => y !== undefined) ? (r as string[]) : undefined;
  };
  const domain = (x: unknown, p: string): string | undefined => {
    if (typeof x !== 'string') return c.bad(p, 'a domain name', x);
    try {
      encodeDomainName(x);
      return x;
    } catch (e) {
      return c.bad(p, `a domain name (${(e as Error).message})`, x);
    }
  };
  if (o.ntp !== undefined) out.ntp = ips(o.ntp, sub(path, 'ntp'));
  if (o.domain !== undefined) out.domain = domain(o.domain, sub(path, 'domain'));
  if (o.mtu !== undefined) out.mtu = c.num(o, 'mtu', path, undefined, 68, 65535, 'an MTU'); // RFC 2132 §5.1
  if (o.searchList !== undefined) {
    const p = sub(path, 'searchList');
    const list = typeof o.searchList === 'string' ? [o.searchList] : o.searchList;
    if (!Array.isArray(list) || list.length === 0) c.bad(p, 'a list of domain names', o.searchList);
    else {
      const r = list.map((x, i) => domain(x, `${p}[${i}]`));
      if (r.every((x) => x !== undefined)) out.searchList = r as string[];
    }
  }
  if (o.classlessRoutes !== undefined) {
    const p = sub(path, 'classlessRoutes');
    if (!Array.isArray(o.classlessRoutes) || o.classlessRoutes.length === 0) c.bad(p, 'a list of {"network": "10.0.0.0/8", "gateway": "10.99.0.254"}', o.classlessRoutes);
    else {
      const routes: Array<{ network: string; gateway: string }> = [];
      o.classlessRoutes.forEach((r, i) => {
        const rp = `${p}[${i}]`;
        const ro = c.section(r, rp, ['network', 'gateway'], true, 'an object {"network": "10.0.0.0/8", "gateway": "10.99.0.254"}');
        if (!ro) return;
        const gw = c.ipv4(ro.gateway, `${rp}.gateway`);
        if (typeof ro.network !== 'string') return c.bad(`${rp}.network`, 'a network in CIDR form (10.0.0.0/8)', ro.network);
        try {
          encodeClasslessRoutes([{ network: ro.network, gateway: gw ?? '0.0.0.0' }]);
        } catch (e) {
          return c.bad(`${rp}.network`, `a network in CIDR form (${(e as Error).message})`, ro.network);
        }
        if (gw) routes.push({ network: ro.network, gateway: gw });
      });
      if (routes.length === o.classlessRoutes.length) {
        out.classlessRoutes = routes;
        // RFC 3442 §2: a client that takes option 121 ignores option 3
        if (!routes.some((r) => /\/0$/.test(r.network))) c.warnings.push(`${p}: clients that use option 121 ignore the router (option 3); add {"network": "0.0.0.0/0", "gateway": …} for a default route`);
      }
    }
  }
  if (o.vendorEncapsulated !== undefined) {
    const p = sub(path, 'vendorEncapsulated');
    try {
      if (typeof o.vendorEncapsulated !== 'string') throw new TypeError('not a string');
      const b = parseHex(o.vendorEncapsulated);
      if (b.length > 255) throw new TypeError('longer than 255 bytes');
      out.vendorEncapsulated = o.vendorEncapsulated;
    } catch (e) {
      c.bad(p, `hex bytes such as "01:04:0a:63:00:01" (${(e as Error).message})`, o.vendorEncapsulated);
    }
  }
  return c.issues.length === before ? out : undefined;
}

function parseRelaySubnets(c: Ctx, v: unknown, lan: LanConfig | undefined): RelaySubnetConfig[] | undefined {
  const P = 'dhcp.relaySubnets';
  if (!Array.isArray(v)) return c.bad(P, 'a list of {"network": "10.99.60.0/24", "range": [first, last]}', v);
  const out: RelaySubnetConfig[] = [];
  v.forEach((x, i) => {
    const p = `${P}[${i}]`;
    const o = c.section(x, p, ['network', 'range', 'router', 'dns'], true, 'an object {"network": "10.99.60.0/24", "range": [first, last]}');
    if (!o) return;
    const m = typeof o.network === 'string' ? /^([\d.]+)\/(\d{1,2})$/.exec(o.network) : null;
    const sn = m && ipToInt(m[1]!) !== undefined ? subnetOf(m[1]!, Number(m[2])) : undefined;
    if (!sn || sn.cidr !== o.network || Number(m![2]) < 8 || Number(m![2]) > 30) return c.bad(`${p}.network`, 'a network in CIDR form with host bits zero, /8 to /30 (10.99.60.0/24)', o.network);
    if (lan && subnetOf(lan.address, lan.prefix)!.cidr === sn.cidr) return c.bad(`${p}.network`, 'a network other than the LAN (lan.address/prefix)', o.network);
    const inside = `an IPv4 address inside ${sn.cidr}`;
    if (!Array.isArray(o.range) || o.range.length !== 2) return c.bad(`${p}.range`, 'a list of two IPv4 addresses [first, last]', o.range);
    const r0 = c.ipv4(o.range[0], `${p}.range[0]`, inside);
    const r1 = c.ipv4(o.range[1], `${p}.range[1]`, inside);
    if (r0 === undefined || r1 === undefined) return;
    const [a, b] = [ipToInt(r0)!, ipToInt(r1)!];
    if (a <= sn.net || a >= sn.bcast) return c.bad(`${p}.range[0]`, inside, r0);
    if (b <= sn.net || b >= sn.bcast) return c.bad(`${p}.range[1]`, inside, r1);
    if (a > b) return c.bad(`${p}.range`, 'first address not after the last', o.range);
    const router = o.router === undefined ? undefined : c.ipv4(o.router, `${p}.router`);
    let dns: string[] | undefined;
    if (o.dns !== undefined) {
      const list = typeof o.dns === 'string' ? [o.dns] : o.dns;
      if (!Array.isArray(list)) c.bad(`${p}.dns`, 'a list of IPv4 addresses', o.dns);
      else dns = list.map((y, k) => c.ipv4(y, `${p}.dns[${k}]`)).filter((y): y is string => y !== undefined);
    }
    if (out.some((s) => s.network === sn.cidr)) return c.bad(`${p}.network`, 'each network once', o.network);
    out.push({ network: sn.cidr, range: [r0, r1], ...(router ? { router } : {}), ...(dns ? { dns } : {}) });
  });
  return out;
}

function parseDhcp(c: Ctx, v: unknown, lan: LanConfig | undefined): DhcpConfig | undefined {
  const P = 'dhcp';
  const o =
    c.section(v, P, ['mode', 'port', 'proxyPort', 'range', 'leaseSeconds', 'router', 'dns', 'static', 'ipxeNoProxyDhcp', 'netbootOnce', 'options', 'knownClientsOnly', 'relaySubnets']) ?? {};
  const d = DEFAULTS.dhcp;
  const mode = c.oneOf(o, 'mode', P, ['server', 'proxy', 'off'] as const, 'server');
  const port = c.num(o, 'port', P, d.port, 0, 65535, 'a port number');
  const proxyPort = c.num(o, 'proxyPort', P, d.proxyPort, 0, 65535, 'a port number');
  const leaseSeconds = c.num(o, 'leaseSeconds', P, d.leaseSeconds, 60, 31_536_000, 'a number of seconds');
  const ipxeNoProxyDhcp = c.bool(o, 'ipxeNoProxyDhcp', P, d.ipxeNoProxyDhcp);
  const netbootOnce = c.bool(o, 'netbootOnce', P, d.netbootOnce);
  const knownClientsOnly = c.bool(o, 'knownClientsOnly', P, false);
  const options = o.options === undefined ? undefined : parseDhcpOptions(c, o.options, 'dhcp.options');
  const relaySubnets = o.relaySubnets === undefined ? undefined : parseRelaySubnets(c, o.relaySubnets, lan);
  const sn = lan ? subnetOf(lan.address, lan.prefix) : undefined;
  const lanInt = lan ? ipToInt(lan.address) : undefined;
  const inside = (n: number): boolean => !!sn && n > sn.net && n < sn.bcast;
  const insideWhat = sn ? `an IPv4 address inside ${sn.cidr}` : 'an IPv4 address';

  let range: [string, string] | undefined;
  let rangeOk = true;
  if (o.range === undefined) range = defaultRange(lan);
  else if (!Array.isArray(o.range) || o.range.length !== 2) {
    c.bad('dhcp.range', 'a list of two IPv4 addresses [first, last]', o.range);
    rangeOk = false;
  } else {
    const r0 = c.ipv4(o.range[0], 'dhcp.range[0]', insideWhat);
    const r1 = c.ipv4(o.range[1], 'dhcp.range[1]', insideWhat);
    if (r0 === undefined || r1 === undefined) rangeOk = false;
    else range = [r0, r1];
  }
  if (range && rangeOk && mode === 'server' && sn) {
    const [a, b] = range.map((x) => ipToInt(x)!) as [number, number];
    let both = true;
    if (!inside(a)) both = !!c.bad('dhcp.range[0]', insideWhat, range[0]);
    if (!inside(b)) both = !!c.bad('dhcp.range[1]', insideWhat, range[1]);
    if (both && a > b) c.bad('dhcp.range', 'first address not after the last', range);
    else if (both && lanInt !== undefined && lanInt >= a && lanInt <= b)
      c.bad('dhcp.range', `a range that leaves out lan.address ${lan!.address}`, range);
  }

  let router: string | undefined;
  if (o.router !== undefined) {
    router = c.ipv4(o.router, 'dhcp.router');
    if (router && sn && !inside(ipToInt(router)!)) c.warnings.push(`dhcp.router: ${router} is outside ${sn.cidr}; clients may not reach it`);
  } else if (lan && mode === 'server') router = lan.address;

  let dns: string[] = [];
  if (o.dns !== undefined) {
    const dnsV = typeof o.dns === 'string' ? [o.dns] : o.dns;
    if (!Array.isArray(dnsV)) c.bad('dhcp.dns', 'a list of IPv4 addresses', o.dns);
    else dns = dnsV.map((x, i) => c.ipv4(x, `dhcp.dns[${i}]`)).filter((x): x is string => x !== undefined);
  }

  const stat: Record<string, string> = {};
  if (o.static !== undefined) {
    if (!isObj(o.static)) c.bad('dhcp.static', 'an object of MAC → IPv4 address', o.static);
    else {
      const ips = new Map<string, string>();
      for (const [k, x] of Object.entries(o.static)) {
        const p = sub('dhcp.static', k);
        const mac = normalizeMac(k);
        if (!mac) {
          c.badRaw(p, 'a MAC address as key (52:54:00:12:34:56)', `key ${JSON.stringify(k)}`);
          continue;
        }
        if (stat[mac] !== undefined) {
          c.badRaw(p, 'each MAC once', `a second entry for ${mac}`);
          continue;
        }
        const ip = c.ipv4(x, p, insideWhat);
        if (ip === undefined) continue;
        const n = ipToInt(ip)!;
        if (sn && mode === 'server' && !inside(n)) {
          c.bad(p, insideWhat, ip);
          continue;
        }
        if (n === lanInt) {
          c.bad(p, `an address other than lan.address`, ip);
          continue;
        }
        if (ips.has(ip)) {
          c.bad(p, `an address not already given to ${ips.get(ip)}`, ip);
          continue;
        }
        ips.set(ip, mac);
        if (range && rangeOk && mode === 'server') {
          const [a, b] = range.map((r) => ipToInt(r)!) as [number, number];
          if (n >= a && n <= b) c.warnings.push(`${p}: ${ip} is inside dhcp.range; it is reserved for ${mac} and never leased to others`);
        }
        stat[mac] = ip;
      }
    }
  }
  if (port !== undefined && proxyPort !== undefined && mode === 'proxy' && port === proxyPort && port !== 0)
    c.bad('dhcp.proxyPort', `a port other than dhcp.port (${port})`, proxyPort);

  if (mode === undefined || port === undefined || proxyPort === undefined || leaseSeconds === undefined || !range) return undefined;
  return {
    mode,
    port,
    proxyPort,
    range,
    leaseSeconds,
    ...(router ? { router } : {}),
    dns,
    static: stat,
    ipxeNoProxyDhcp,
    netbootOnce,
    ...(options ? { options } : {}),
    ...(knownClientsOnly ? { knownClientsOnly } : {}),
    ...(relaySubnets?.length ? { relaySubnets } : {}),
  };
}

function parseTftp(c: Ctx, v: unknown): TftpConfig | false | undefined {
  if (v === false) return false;
  if (v === true) return { ...DEFAULTS.tftp };
  const P = 'tftp';
  if (v !== undefined && !isObj(v)) return c.bad(P, 'an object or false', v);
  const o = c.section(v, P, ['port', 'maxBlksize', 'maxWindowsize', 'timeout', 'retries', 'maxTransfers', 'maxTransfersPerClient']) ?? {};
  const d = DEFAULTS.tftp;
  const t = {
    port: c.num(o, 'port', P, d.port, 0, 65535, 'a port number'),
    maxBlksize: c.num(o, 'maxBlksize', P, d.maxBlksize, 8, 65464, 'a block size'), // RFC 2348
    maxWindowsize: c.num(o, 'maxWindowsize', P, d.maxWindowsize, 1, 65535, 'a window size'), // RFC 7440
    timeout: c.num(o, 'timeout', P, d.timeout, 1, 255, 'a number of seconds'), // RFC 2349
    retries: c.num(o, 'retries', P, d.retries, 0, 100),
    maxTransfers: c.num(o, 'maxTransfers', P, d.maxTransfers, 1, 10000),
    maxTransfersPerClient: c.num(o, 'maxTransfersPerClient', P, d.maxTransfersPerClient, 1, 1000),
  };
  if (Object.values(t).some((x) => x === undefined)) return undefined;
  return t as TftpConfig;
}

function parseHttp(c: Ctx, v: unknown): HttpConfig | undefined {
  const o = c.section(v, 'http', ['port']) ?? {};
  const port = c.num(o, 'port', 'http', DEFAULTS.http.port, 0, 65535, 'a port number');
  return port === undefined ? undefined : { port };
}

function parseUrl(c: Ctx, v: unknown, path: string, schemes: string[], trailingSlash: boolean): string | undefined {
  const what = `a URL (${schemes.map((s) => s + '://').join(' or ')})`;
  if (typeof v !== 'string') return c.bad(path, what, v);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return c.bad(path, what, v);
  }
  if (!schemes.includes(u.protocol.replace(/:$/, '')) || !u.hostname) return c.bad(path, what, v);
  if (trailingSlash) {
    if (u.search || u.hash) return c.bad(path, 'a base URL without ?query or #fragment', v);
    if (!u.pathname.endsWith('/')) u.pathname += '/';
    return u.toString();
  }
  return v;
}

function parseUpstream(c: Ctx, v: unknown): UpstreamConfig | undefined {
  const P = 'upstream';
  const o = c.section(v, P, ['url', 'headers', 'timeoutMs', 'caFile'], true, 'an object with the upstream boot server\'s url ({"url": "http://host/boot/"})');
  if (!o) return undefined;
  const url = parseUrl(c, o.url, 'upstream.url', ['http', 'https'], true);
  let headers = c.stringRecord(o.headers, 'upstream.headers');
  // node:http refuses these at request time: every upstream fetch would fail
  for (const [k, x] of Object.entries(headers ?? {})) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k)) headers = c.bad(`upstream.headers["${k}"]`, 'an HTTP header name (letters, digits, "-")', k);
    else if (/[^\t\x20-\x7e\x80-\xff]/.test(x)) headers = c.bad(`upstream.headers.${k}`, 'a header value without control characters (no CR/LF)', x);
  }
  const timeoutMs = c.num(o, 'timeoutMs', P, DEFAULTS.upstream.timeoutMs, 100, 600_000, 'a number of milliseconds');
  const caFile = c.str(o, 'caFile', P);
  if (url === undefined || headers === undefined || timeoutMs === undefined) return undefined;
  return { url, headers, timeoutMs, ...(caFile ? { caFile } : {}) };
}

function parseCache(c: Ctx, v: unknown): CacheConfig | undefined {
  const P = 'cache';
  const o = c.section(v, P, ['dir', 'maxBytes', 'ttlSeconds', 'negativeTtlSeconds']) ?? {};
  const d = DEFAULTS.cache;
  const dir = c.str(o, 'dir', P, d.dir);
  const maxBytes = c.num(o, 'maxBytes', P, d.maxBytes, 0, Number.MAX_SAFE_INTEGER, 'a number of bytes');
  const ttlSeconds = c.num(o, 'ttlSeconds', P, d.ttlSeconds, 0, 31_536_000, 'a number of seconds');
  const negativeTtlSeconds = c.num(o, 'negativeTtlSeconds', P, d.negativeTtlSeconds, 0, 86_400, 'a number of seconds');
  if (dir === undefined || maxBytes === undefined || ttlSeconds === undefined || negativeTtlSeconds === undefined) return undefined;
  return { dir, maxBytes, ttlSeconds, negativeTtlSeconds };
}

function parseProfile(c: Ctx, v: unknown, path: string): ProfileConfig | undefined {
  const o = c.section(v, path, ['kernel', 'initrd', 'cmdline', 'script', 'sha256', 'dhcpOptions', 'pxeMenu'], true);
  if (!o) return undefined;
  const before = c.issues.length;
  const p: ProfileConfig = {};
  if (o.kernel !== undefined) p.kernel = c.bootPath(o.kernel, sub(path, 'kernel'));
  if (o.initrd !== undefined) p.initrd = c.strList(o.initrd, sub(path, 'initrd'), (s, pp) => c.bootPath(s, pp));
  const cmdline = c.str(o, 'cmdline', path, undefined, { nonEmpty: false });
  if (cmdline !== undefined) {
    // iPXE expands ${…} inside a token and offers no way to write it literally (core/exec.c,
    // expand_settings re-scans its output): such a command line cannot reach the kernel as written
    const bad = cmdline.split(/\s+/).find((t) => /\$\{[^}]*\}/.test(t));
    if (bad !== undefined) c.bad(sub(path, 'cmdline'), `a command line without \${…} (iPXE would expand ${JSON.stringify(bad)}; it cannot pass it through literally)`, cmdline);
    else p.cmdline = cmdline;
  }
  if (o.dhcpOptions !== undefined) p.dhcpOptions = parseDhcpOptions(c, o.dhcpOptions, sub(path, 'dhcpOptions'));
  if (o.pxeMenu !== undefined) p.pxeMenu = parsePxeMenu(c, o.pxeMenu, sub(path, 'pxeMenu'));
  if (o.script !== undefined) p.script = c.bootPath(o.script, sub(path, 'script'));
  if (o.sha256 !== undefined) {
    if (!isObj(o.sha256)) c.bad(sub(path, 'sha256'), 'an object of path → sha256 hex', o.sha256);
    else {
      p.sha256 = {};
      for (const [k, h] of Object.entries(o.sha256)) {
        const kp = sub(sub(path, 'sha256'), k);
        let key: string;
        try {
          key = normalizeBootPath(k);
        } catch (e) {
          c.badRaw(kp, `a clean path as key (${(e as Error).message})`, `key ${JSON.stringify(k)}`);
          continue;
        }
        if (typeof h !== 'string' || !/^[0-9a-f]{64}$/i.test(h)) c.bad(kp, 'a sha256 as 64 hex digits', h);
        else p.sha256[key] = h.toLowerCase();
      }
    }
  }
  if (o.kernel === undefined && o.script === undefined) c.badRaw(path, 'a "kernel" or a "script"', 'neither');
  if (o.initrd !== undefined && o.kernel === undefined && o.script !== undefined)
    c.warnings.push(`${path}: initrd is ignored for a profile that uses a script`);
  if (o.kernel !== undefined && o.script !== undefined) c.warnings.push(`${path}: has both kernel and script; the script is served`);
  return c.issues.length === before ? p : undefined;
}

function parsePxeMenu(c: Ctx, v: unknown, path: string): PxeMenuConfig | undefined {
  const o = c.section(v, path, ['prompt', 'timeout', 'items'], true, 'an object {"prompt": "…", "timeout": 10, "items": [{"label": "…", "loader": "…"}]}');
  if (!o) return undefined;
  const before = c.issues.length;
  const prompt = c.str(o, 'prompt', path, 'Press F8 for the boot menu');
  if (prompt !== undefined && Buffer.byteLength(prompt, 'latin1') > 254) c.bad(sub(path, 'prompt'), 'a prompt of at most 254 bytes', prompt);
  const timeout = c.num(o, 'timeout', path, 10, 0, 255, 'a number of seconds');
  const items: PxeMenuConfig['items'] = [];
  const ip = sub(path, 'items');
  if (!Array.isArray(o.items) || o.items.length === 0 || o.items.length > 32) c.bad(ip, 'a list of 1 to 32 {"label": "…", "loader": "path" or "local"}', o.items);
  else
    o.items.forEach((x, i) => {
      const p = `${ip}[${i}]`;
      const it = c.section(x, p, ['label', 'loader'], true, 'an object {"label": "…", "loader": "path" or "local"}');
      if (!it) return;
      const label = c.str(it, 'label', p, undefined, { required: true });
      if (label !== undefined && Buffer.byteLength(label, 'latin1') > 255) c.bad(`${p}.label`, 'a label of at most 255 bytes', label);
      const loader = it.loader === 'local' ? 'local' : c.bootPath(it.loader, `${p}.loader`);
      if (loader !== undefined && loader !== 'local' && Buffer.byteLength(loader, 'latin1') > 127) c.bad(`${p}.loader`, 'a path of at most 127 bytes (BIOS PXE ROMs read the 128-byte BOOTP file field)', loader);
      if (label !== undefined && loader !== undefined) items.push({ label, loader });
    });
  if (c.issues.length !== before || prompt === undefined || timeout === undefined) return undefined;
  return { prompt, timeout, items };
}

const MATCH_KEYS = ['mac', 'vendorClass', 'userClass', 'arch', 'uuid'] as const;

function parseMatch(c: Ctx, v: unknown, names: string[], known: string): MatchRuleConfig[] {
  const P = 'boot.match';
  if (!Array.isArray(v)) {
    c.bad(P, 'a list of {"profile": "…", "mac" | "vendorClass" | "userClass" | "arch" | "uuid": …}', v);
    return [];
  }
  const out: MatchRuleConfig[] = [];
  v.forEach((x, i) => {
    const p = `${P}[${i}]`;
    const o = c.section(x, p, ['profile', ...MATCH_KEYS], true, 'an object {"profile": "…", "vendorClass": "PXEClient:Arch:00007*"}');
    if (!o) return;
    const before = c.issues.length;
    const r: MatchRuleConfig = { profile: '' };
    if (typeof o.profile !== 'string' || !names.includes(o.profile)) c.bad(`${p}.profile`, known, o.profile);
    else r.profile = o.profile;
    if (o.mac !== undefined) {
      if (typeof o.mac !== 'string' || !/^([0-9a-fA-F?]{2}|\*)([:-]([0-9a-fA-F?]{2}|\*)){5}$/.test(o.mac)) c.bad(`${p}.mac`, 'a MAC pattern of six bytes, each hex, "??"-style digits or "*" (52:54:00:*:*:*)', o.mac);
      else r.mac = o.mac.toLowerCase();
    }
    for (const k of ['vendorClass', 'userClass'] as const) {
      if (o[k] === undefined) continue;
      if (typeof o[k] !== 'string' || o[k] === '') c.bad(`${p}.${k}`, 'a non-empty pattern (* and ? as wildcards)', o[k]);
      else r[k] = o[k] as string;
    }
    if (o.arch !== undefined) {
      if (typeof o.arch !== 'number' || !Number.isInteger(o.arch) || o.arch < 0 || o.arch > 65535) c.bad(`${p}.arch`, 'an option 93 architecture code from 0 to 65535 (0 BIOS, 7 x64 UEFI, 16 x64 UEFI HTTP)', o.arch);
      else r.arch = o.arch;
    }
    if (o.uuid !== undefined) {
      if (typeof o.uuid !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(o.uuid)) c.bad(`${p}.uuid`, 'a GUID (8-4-4-4-12 hex digits)', o.uuid);
      else r.uuid = o.uuid.toLowerCase();
    }
    if (!MATCH_KEYS.some((k) => o[k] !== undefined)) c.badRaw(p, `at least one of ${MATCH_KEYS.join(', ')}`, 'none');
    if (c.issues.length === before) out.push(r);
  });
  return out;
}

function parseBoot(c: Ctx, v: unknown, dhcpMode: DhcpConfig['mode'] | undefined): BootConfig | undefined {
  const P = 'boot';
  const o = c.section(v, P, ['loaders', 'defaultProfile', 'profiles', 'assign', 'match'], true, 'an object with loaders and profiles');
  if (!o) return undefined;
  const before = c.issues.length;

  const loaders: Record<string, string[]> = {};
  const chains: Record<string, ChainLoader> = {};
  if (o.loaders === undefined) {
    if (dhcpMode !== 'off') c.bad('boot.loaders', `an object of arch (${LOADER_KEYS.join(', ')}) → loader path(s)`, undefined);
  } else if (!isObj(o.loaders)) c.bad('boot.loaders', `an object of arch (${LOADER_KEYS.join(', ')}) → loader path(s)`, o.loaders);
  else {
    for (const [k, x] of Object.entries(o.loaders)) {
      const p = sub('boot.loaders', k);
      if (!LOADER_KEYS.includes(k as ArchKey)) {
        c.badRaw(p, `an arch key (${LOADER_KEYS.join(', ')})`, `key ${JSON.stringify(k)}`);
        continue;
      }
      const list = parseLoaderList(c, x, p, k, chains);
      if (list) loaders[k] = list;
    }
    if (Object.keys(o.loaders).length === 0 && dhcpMode !== 'off')
      c.bad('boot.loaders', 'at least one loader (e.g. "bios": "ipxe/undionly.kpxe")', o.loaders);
  }

  const profiles: Record<string, ProfileConfig> = {};
  if (!isObj(o.profiles) || Object.keys(o.profiles).length === 0) c.bad('boot.profiles', 'an object with at least one profile', o.profiles);
  else {
    for (const [name, x] of Object.entries(o.profiles)) {
      const pr = parseProfile(c, x, sub('boot.profiles', name));
      if (pr) profiles[name] = pr;
    }
  }
  const names = isObj(o.profiles) ? Object.keys(o.profiles) : [];
  const known = names.length ? `a profile name (${names.join(', ')})` : 'a profile name';

  let defaultProfile: string | undefined;
  if (o.defaultProfile === undefined) {
    if (names.length === 1) defaultProfile = names[0];
    else if (names.length > 1) c.bad('boot.defaultProfile', known, undefined);
  } else if (typeof o.defaultProfile !== 'string' || !names.includes(o.defaultProfile)) c.bad('boot.defaultProfile', known, o.defaultProfile);
  else defaultProfile = o.defaultProfile;

  const assign: Record<string, string> = {};
  if (o.assign !== undefined) {
    if (!isObj(o.assign)) c.bad('boot.assign', 'an object of MAC → profile name', o.assign);
    else {
      for (const [k, x] of Object.entries(o.assign)) {
        const p = sub('boot.assign', k);
        const mac = normalizeMac(k);
        if (!mac) c.badRaw(p, 'a MAC address as key (52:54:00:12:34:56)', `key ${JSON.stringify(k)}`);
        else if (assign[mac] !== undefined) c.badRaw(p, 'each MAC once', `a second entry for ${mac}`);
        else if (typeof x !== 'string' || !names.includes(x)) c.bad(p, known, x);
        else assign[mac] = x;
      }
    }
  }
  const match = o.match === undefined ? undefined : parseMatch(c, o.match, names, known);
  if (c.issues.length !== before || defaultProfile === undefined) return undefined;
  return { loaders, defaultProfile, profiles, assign, ...(match?.length ? { match } : {}), ...(Object.keys(chains).length ? { chains } : {}) };
}

/**
 * One `boot.loaders` entry: a path, a Secure Boot chain `{shim, grub, fetch?}`, or a list of
 * those (fallbacks, in order). A chain is listed by its shim (what the firmware is handed) and
 * recorded in `chains` (shim path → chain).
 */
function parseLoaderList(c: Ctx, v: unknown, path: string, arch: string, chains: Record<string, ChainLoader>): string[] | undefined {
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) return c.bad(path, 'a path or a non-empty list of paths', v);
  const out: string[] = [];
  let ok = true;
  items.forEach((x, i) => {
    const p = Array.isArray(v) ? `${path}[${i}]` : path;
    let r: string | undefined;
    if (isObj(x)) r = parseChain(c, x, p, arch, chains);
    else {
      r = c.bootPath(x, p);
      // RFC 2131 §2: the BOOTP file field is 128 bytes with its NUL; a BIOS PXE ROM reads nothing else
      if (r !== undefined && arch === 'bios' && Buffer.byteLength(r, 'latin1') > 127) r = c.bad(p, 'a path of at most 127 bytes (BIOS PXE ROMs read the 128-byte BOOTP file field)', r);
    }
    if (r === undefined) ok = false;
    else out.push(r);
  });
  return ok ? out : undefined;
}

function parseChain(c: Ctx, x: Obj, path: string, arch: string, chains: Record<string, ChainLoader>): string | undefined {
  const o = c.section(x, path, ['shim', 'grub', 'fetch'], true, 'a Secure Boot chain {"shim": …, "grub": …}');
  if (!o) return undefined;
  const before = c.issues.length;
  if (!arch.startsWith('uefi-')) c.badRaw(path, 'a plain loader path: a Secure Boot chain (shim + GRUB) is for UEFI firmware only', `a chain for "${arch}"`);
  const shim = o.shim === undefined ? c.bad(sub(path, 'shim'), 'the path of the signed shim (e.g. "sb/shimx64.efi")', undefined) : c.bootPath(o.shim, sub(path, 'shim'));
  const grub = o.grub === undefined ? c.bad(sub(path, 'grub'), 'the path of the signed network GRUB (e.g. "sb/grubx64.efi")', undefined) : c.bootPath(o.grub, sub(path, 'grub'));
  let fetch: ChainLoader['fetch'] = 'tftp';
  if (o.fetch !== undefined) {
    if (o.fetch !== 'tftp' && o.fetch !== 'http') c.bad(sub(path, 'fetch'), '"tftp" (any signed network GRUB) or "http" (a GRUB with the http module)', o.fetch);
    else fetch = o.fetch;
  }
  if (shim === undefined || grub === undefined || c.issues.length !== before) return undefined;
  if (shim === grub) return c.badRaw(sub(path, 'grub'), 'a file other than the shim', JSON.stringify(grub));
  // shim finds its own directory (and so GRUB) in the BOOTP file field, 128 bytes with its NUL
  if (Buffer.byteLength(shim, 'latin1') > 127) return c.bad(sub(path, 'shim'), 'a path of at most 127 bytes (shim reads its directory from the BOOTP file field)', shim);
  const dir = (f: string) => (f.includes('/') ? f.slice(0, f.lastIndexOf('/')) : '');
  for (const other of Object.values(chains)) {
    if (other.shim === shim && (other.grub !== grub || other.fetch !== fetch)) return c.badRaw(sub(path, 'grub'), `the same GRUB as the other chain with shim ${shim}`, JSON.stringify(grub));
    if (other.shim !== shim && dir(other.shim) === dir(shim))
      return c.badRaw(sub(path, 'shim'), `a shim in a directory of its own (shim asks for grubx64.efi next to itself; ${other.shim} is already there)`, JSON.stringify(shim));
  }
  chains[shim] = { shim, grub, fetch };
  return shim;
}

function parseMqtt(c: Ctx, v: unknown): MqttConfig | undefined {
  const P = 'mqtt';
  const o = c.section(v, P, ['url', 'username', 'password', 'prefix', 'caFile', 'journalMaxEvents', 'homeAssistant', 'commands']);
  if (!o) return undefined;
  const d = DEFAULTS.mqtt;
  const url = parseUrl(c, o.url, 'mqtt.url', ['mqtt', 'mqtts', 'tcp', 'ssl', 'ws', 'wss'], false);
  const username = c.str(o, 'username', P, d.username, { nonEmpty: false });
  const password = c.str(o, 'password', P, d.password, { nonEmpty: false });
  let prefix = c.str(o, 'prefix', P, d.prefix);
  if (prefix !== undefined && /[#+]/.test(prefix)) prefix = c.bad('mqtt.prefix', 'a topic prefix without + or #', prefix);
  if (prefix !== undefined) prefix = prefix.replace(/\/+$/, '');
  const caFile = c.str(o, 'caFile', P);
  const journalMaxEvents = c.num(o, 'journalMaxEvents', P, d.journalMaxEvents, 0, 10_000_000);
  const homeAssistant = c.bool(o, 'homeAssistant', P, d.homeAssistant);
  const commands = c.bool(o, 'commands', P, d.commands);
  if (url === undefined || username === undefined || password === undefined || prefix === undefined || journalMaxEvents === undefined) return undefined;
  return { url, username, password, prefix, ...(caFile ? { caFile } : {}), journalMaxEvents, homeAssistant, commands };
}

function parseLog(c: Ctx, v: unknown): Config['log'] | undefined {
  const o = c.section(v, 'log', ['level', 'levels']) ?? {};
  const level = c.oneOf(o, 'level', 'log', LOG_LEVELS, DEFAULTS.log.level);
  const levels: Record<string, string> = {};
  if (o.levels !== undefined) {
    if (!isObj(o.levels)) c.bad('log.levels', 'an object of component → level', o.levels);
    else for (const k of Object.keys(o.levels)) {
      const l = c.oneOf(o.levels, k, 'log.levels', LOG_LEVELS, undefined);
      if (l) levels[k] = l;
    }
  }
  return level ? { level, levels } : undefined;
}

// ---------------------------------------------------------------- IPv6 (lan.address6/prefix6, dhcp6)

function parseLan6(c: Ctx, o: Obj): { address6?: string; prefix6?: number } {
  if (o.address6 === undefined) {
    if (o.prefix6 !== undefined) c.bad('lan.address6', 'an IPv6 address (lan.prefix6 is set)', undefined);
    return {};
  }
  const address6 = typeof o.address6 === 'string' ? canonicalIp6(o.address6) : undefined;
  const prefix6 = c.num(o, 'prefix6', 'lan', 64, 8, 128, 'a prefix length');
  if (!address6 || (o.address6 as string).includes('%') || (o.address6 as string).startsWith('[')) {
    c.bad('lan.address6', 'an IPv6 address (such as "fd99::1")', o.address6);
    return {};
  }
  if (isLinkLocal6(address6) || address6.startsWith('ff') || address6 === '::' || address6 === '::1')
    c.bad('lan.address6', 'a global or unique-local IPv6 address (not link-local, multicast, loopback or ::)', o.address6);
  return prefix6 === undefined ? { address6 } : { address6, prefix6 };
}

function parseDhcp6(c: Ctx, v: unknown, lan: LanConfig | undefined): Dhcp6Config | undefined {
  const P = 'dhcp6';
  const o = c.section(v, P, ['mode', 'port', 'range', 'leaseSeconds', 'preference']) ?? {};
  const d = DHCP6_DEFAULTS;
  const mode = c.oneOf(o, 'mode', P, ['server', 'stateless', 'off'] as const, d.mode);
  const port = c.num(o, 'port', P, d.port, 0, 65535, 'a port');
  const leaseSeconds = c.num(o, 'leaseSeconds', P, d.leaseSeconds, 60, 0xfffffffe, 'seconds');
  const preference = c.num(o, 'preference', P, d.preference, 0, 255, 'a preference');
  const a6 = lan?.address6;
  const p6 = lan?.prefix6 ?? 64;
  if (mode !== undefined && mode !== 'off' && lan && !a6) c.bad('lan.address6', `an IPv6 address (dhcp6.mode is "${mode}")`, undefined);
  let range: [string, string] = ['::', '::'];
  if (o.range !== undefined) {
    if (!Array.isArray(o.range) || o.range.length !== 2) c.bad('dhcp6.range', 'a list of two IPv6 addresses [first, last]', o.range);
    else {
      const what = a6 ? `an IPv6 address inside ${a6}/${p6}` : 'an IPv6 address';
      const r = o.range.map((x, i) => {
        const ip = typeof x === 'string' && !x.includes('%') ? canonicalIp6(x) : undefined;
        if (!ip || (a6 && !inPrefix6(ip, a6, p6))) return c.bad(`dhcp6.range[${i}]`, what, x);
        return ip;
      });
      if (r[0] && r[1]) {
        const [lo, hi] = [ip6ToBigInt(r[0]), ip6ToBigInt(r[1])];
        if (lo > hi) c.bad('dhcp6.range', 'first address not after the last', o.range);
        else if (a6 && ip6ToBigInt(a6) >= lo && ip6ToBigInt(a6) <= hi) c.bad('dhcp6.range', `a range that leaves out lan.address6 ${a6}`, o.range);
        range = [r[0], r[1]];
      }
    }
  } else if (a6) {
    // ::1000–::1fff of the LAN prefix (or the upper half of a small one), off lan.address6
    const host = 128n - BigInt(p6);
    const net = (ip6ToBigInt(a6) >> host) << host;
    const size = 1n << host;
    let [lo, hi] = size > 0x2000n ? [net + 0x1000n, net + 0x1fffn] : [net + size / 2n, net + size - 1n];
    const a = ip6ToBigInt(a6);
    if (a >= lo && a <= hi) [lo, hi] = a > lo ? [lo, a - 1n] : [a + 1n, hi];
    range = [bigIntToIp6(lo), bigIntToIp6(hi)];
  } else if (mode === 'server') c.bad('dhcp6.range', 'a list of two IPv6 addresses [first, last] (or lan.address6 to derive it from)', undefined);
  if (mode === undefined || port === undefined || leaseSeconds === undefined || preference === undefined) return undefined;
  return { mode, port, range, leaseSeconds, preference };
}

// ---------------------------------------------------------------- entry

/** Validates a parsed config object; fills defaults; collects every issue. */
export function parseConfig(obj: unknown): ParseResult {
  const c = new Ctx();
  const root = c.section(obj, '', ROOT_KEYS, true);
  if (!root) return { ok: false, issues: c.issues, warnings: c.warnings };

  const host = (hostname() || 'bootrelay').replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'bootrelay';
  const agentIdRaw = c.str(root, 'agentId', '', host);
  let agentId = agentIdRaw;
  if (agentIdRaw !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(agentIdRaw))
    agentId = c.bad('agentId', 'a name of letters, digits, ".", "_" or "-" (it is part of MQTT topics)', agentIdRaw);
  const stateDir = c.str(root, 'stateDir', '', DEFAULTS.stateDir);
  const lan = parseLan(c, root.lan);
  const dhcp = parseDhcp(c, root.dhcp, lan);
  const dhcp6 = parseDhcp6(c, root.dhcp6, lan);
  const tftp = parseTftp(c, root.tftp);
  const http = parseHttp(c, root.http);
  const upstream = parseUpstream(c, root.upstream);
  const cache = parseCache(c, root.cache);
  const boot = parseBoot(c, root.boot, dhcp?.mode ?? 'server');
  const mqtt = root.mqtt === undefined ? undefined : parseMqtt(c, root.mqtt);
  const ctl = c.section(root.control, 'control', ['socket']) ?? {};
  const socket = c.str(ctl, 'socket', 'control', DEFAULTS.control.socket);
  const log = parseLog(c, root.log);

  // cross-section checks
  // the Secure Boot chain: GRUB takes its TFTP server from the DHCP ACK's siaddr, which in proxy mode is the other server's
  if (boot?.chains && dhcp?.mode === 'proxy')
    c.warnings.push('boot.loaders: a Secure Boot chain in proxy mode: GRUB asks the DHCP server that gave the address (its siaddr) for its files; point that server\'s next-server at lan.address or use dhcp.mode "server"');
  if (boot?.chains && tftp === false) c.bad('tftp', 'TFTP on (a Secure Boot chain: shim and GRUB load over TFTP)', false);
  if (dhcp && tftp && dhcp.mode !== 'off' && tftp.port !== 0) {
    if (tftp.port === dhcp.port) c.bad('tftp.port', `a port other than dhcp.port (${dhcp.port})`, tftp.port);
    else if (dhcp.mode === 'proxy' && tftp.port === dhcp.proxyPort) c.bad('tftp.port', `a port other than dhcp.proxyPort (${dhcp.proxyPort})`, tftp.port);
  }

  if (c.issues.length > 0) return { ok: false, issues: c.issues, warnings: c.warnings };
  const config: Config = {
    agentId: agentId!,
    stateDir: stateDir!,
    lan: lan!,
    dhcp: dhcp!,
    dhcp6: dhcp6!,
    tftp: tftp!,
    http: http!,
    upstream: upstream!,
    cache: cache!,
    boot: boot!,
    ...(mqtt ? { mqtt } : {}),
    control: { socket: socket! },
    log: log!,
  };
  return { ok: true, config, warnings: c.warnings };
}
