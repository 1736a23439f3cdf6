/**
 * The uplink as the kernel states it in files, without running a program: the route to the
 * upstream from /proc/net/route (IPv4) or /proc/net/ipv6_route (IPv6) by longest-prefix match
 * (a default route is not needed), the link from /sys/class/net/<if>/operstate and carrier, the
 * address from os.networkInterfaces(). Reading these costs microseconds; running `ip` cost the
 * agent's event loop ~45 ms per launch (issue 15).
 *
 * /proc/net/route is the main table only: policy routing (`ip rule`) is not followed. /proc/net
 * is the reading process's network namespace; /sys/class/net is the namespace /sys was mounted
 * in (`ip netns exec` mounts a fresh one, procd runs in the root namespace).
 *
 * The upstream may be a host name: TargetResolver keeps its address cached and refreshes it in
 * the background (getaddrinfo runs on libuv's thread pool, not on the event loop).
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { endianness, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { formatIp6, parseIp6 } from '../../proto/dhcp6/addr';
import type { UplinkStatus } from './status';

export interface KernelRoute {
  family: 4 | 6;
  dev: string;
  /** the destination network, e.g. `10.99.2.0`, `::` */
  dst: string;
  prefix: number;
  gateway?: string;
  metric: number;
  /** unreachable / prohibit / blackhole: a match means there is no route */
  reject?: true;
}

// linux/route.h, linux/ipv6_route.h
const RTF_UP = 0x0001;
const RTF_GATEWAY = 0x0002;
const RTF_REJECT = 0x0200;
const RTF_ANYCAST = 0x00100000;
const RTF_LOCAL = 0x80000000;

function popcount32(n: number): number {
  let c = 0;
  for (let v = n >>> 0; v; v >>>= 1) c += v & 1;
  return c;
}

/** A /proc/net/route address (the __be32 printed as a host-order integer) → dotted quad. */
function procIpv4(hex: string, littleEndian: boolean): string | undefined {
  if (!/^[0-9A-Fa-f]{8}$/.test(hex)) return undefined;
  const n = parseInt(hex, 16) >>> 0;
  const b = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return (littleEndian ? b.reverse() : b).join('.');
}

/**
 * /proc/net/route text → the routes that are up (reject ones marked: a more specific
 * `unreachable` hides a wider route). `littleEndian`: the byte order of the
 * machine that wrote it (addresses are printed as host-order integers).
 */
export function parseProcRoute(text: string, littleEndian = endianness() === 'LE'): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [dev, dstHex, gwHex, flagsHex, , , metric, maskHex] = f as [string, string, string, string, string, string, string, string];
    const flags = parseInt(flagsHex, 16);
    if (!(flags & RTF_UP)) continue;
    const dst = procIpv4(dstHex, littleEndian);
    const mask = procIpv4(maskHex, littleEndian);
    if (!dst || !mask) continue;
    const route: KernelRoute = { family: 4, dev, dst, prefix: popcount32(ipv4Int(mask)), metric: Number(metric) || 0 };
    // a blackhole route is listed without a device and without RTF_REJECT
    if (flags & RTF_REJECT || dev === '*') route.reject = true;
    const gw = flags & RTF_GATEWAY ? procIpv4(gwHex, littleEndian) : undefined;
    if (gw && gw !== '0.0.0.0') route.gateway = gw;
    out.push(route);
  }
  return out;
}

/** 32 hex digits → the compressed IPv6 text form (RFC 5952). */
function procIpv6(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{32}$/.test(hex)) return undefined;
  return formatIp6(Buffer.from(hex, 'hex'));
}

/** /proc/net/ipv6_route text → the unicast routes that are up (not local/anycast; reject ones marked). */
export function parseProcIpv6Route(text: string): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [dstHex, plenHex, , , hopHex, metricHex, , , flagsHex, dev] = f as [string, string, string, string, string, string, string, string, string, string];
    const flags = parseInt(flagsHex, 16) >>> 0;
    // reject routes are listed without RTF_UP
    if (!(flags & (RTF_UP | RTF_REJECT)) || flags & RTF_ANYCAST || (flags & RTF_LOCAL) !== 0) continue;
    const dst = procIpv6(dstHex);
    const prefix = parseInt(plenHex, 16);
    if (!dst || !(prefix >= 0 && prefix <= 128)) continue;
    const route: KernelRoute = { family: 6, dev, dst, prefix, metric: parseInt(metricHex, 16) >>> 0 };
    if (flags & RTF_REJECT) route.reject = true;
    const gw = flags & RTF_GATEWAY ? procIpv6(hopHex) : undefined;
    if (gw && gw !== '::') route.gateway = gw;
    out.push(route);
  }
  return out;
}

function ipv4Int(a: string): number {
  return a.split('.').reduce((n, o) => ((n << 8) | Number(o)) >>> 0, 0);
}

/** An IPv4 or IPv6 address → its bytes (IPv4: 4, IPv6: 16); undefined when not an address. */
export function addressBytes(a: string): number[] | undefined {
  const fam = isIP(a);
  if (fam === 4) return a.split('.').map(Number);
  if (fam !== 6) return undefined;
  const b = parseIp6(a);
  return b ? [...b] : undefined;
}

function inPrefix(addr: number[], net: number[], prefix: number): boolean {
  for (let bit = 0; bit < prefix; bit += 8) {
    const n = Math.min(8, prefix - bit);
    const mask = (0xff << (8 - n)) & 0xff;
    if (((addr[bit / 8] ?? 0) & mask) !== ((net[bit / 8] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * The route the kernel's main table would use for `target`: the longest matching prefix, then
 * the lowest metric (possibly a reject route: the caller's "no route"). Without a target: the default route (prefix 0) of `family` with the lowest
 * metric.
 */
export function pickRoute(routes: KernelRoute[], target?: string, family: 4 | 6 = 4): KernelRoute | undefined {
  const bytes = target ? addressBytes(target) : undefined;
  const fam = bytes ? (bytes.length === 4 ? 4 : 6) : family;
  const candidates = routes.filter((r) => {
    if (r.family !== fam) return false;
    if (!bytes) return r.prefix === 0;
    const net = addressBytes(r.dst);
    return !!net && inPrefix(bytes, net, r.prefix);
  });
  candidates.sort((a, b) => b.prefix - a.prefix || a.metric - b.metric);
  return candidates[0];
}

/** Where the kernel's state is read from (tests point it elsewhere). */
export interface KernelSources {
  readFile(path: string): Promise<string>;
  interfaces(): NodeJS.Dict<NetworkInterfaceInfo[]>;
  littleEndian?: boolean;
}

export const defaultKernelSources: KernelSources = {
  readFile: (path) => readFile(path, 'utf8'),
  interfaces: () => networkInterfaces(),
};

const errCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

function familyOf(a: NetworkInterfaceInfo): 4 | 6 {
  // Node 18.0–18.3 said 4 / 6
  return (a.family as unknown) === 6 || a.family === 'IPv6' ? 6 : 4;
}

/** The interface holding `target` as one of its own addresses (the kernel routes it over lo). */
function localInterface(ifs: NodeJS.Dict<NetworkInterfaceInfo[]>, target: string): string | undefined {
  if (/^127\./.test(target) || target === '::1') return 'lo';
  for (const addrs of Object.values(ifs)) if (addrs?.some((a) => a.address === target)) return 'lo';
  return undefined;
}

/**
 * Reads the uplink from /proc, /sys and getifaddrs: the interface that routes to `target` (an IP
 * address; without one the default route), its link and its address (IPv4, or IPv6 for an IPv6
 * target). Never throws: what could not be read is a `reason`.
 */
export async function readKernelUplink(target?: string, src: KernelSources = defaultKernelSources): Promise<Omit<UplinkStatus, 'checkedAt'>> {
  const fam = target && isIP(target) === 6 ? 6 : 4;
  const ip = target && isIP(target) ? target : undefined;
  let ifs: NodeJS.Dict<NetworkInterfaceInfo[]>;
  try {
    ifs = src.interfaces();
  } catch (err) {
    return { up: false, source: 'none', reason: `cannot list interfaces: ${errCode(err)}` };
  }
  let dev: string | undefined;
  let gateway: string | undefined;
  const local = ip ? localInterface(ifs, ip) : undefined;
  if (local) dev = local;
  else {
    const file = fam === 6 ? '/proc/net/ipv6_route' : '/proc/net/route';
    let text: string;
    try {
      text = await src.readFile(file);
    } catch (err) {
      return { up: false, source: 'none', reason: `cannot read ${file}: ${errCode(err)}` };
    }
    const routes = fam === 6 ? parseProcIpv6Route(text) : parseProcRoute(text, src.littleEndian ?? endianness() === 'LE');
    const route = pickRoute(routes, ip, fam);
    if (!route || route.reject) return { up: false, source: 'kernel', reason: ip ? `no route to ${ip}` : 'no default route' };
    dev = route.dev;
    gateway = route.gateway;
  }
  const out: Omit<UplinkStatus, 'checkedAt'> = { up: false, interface: dev, source: 'kernel' };
  if (gateway) out.gateway = gateway;
  let operstate: string;
  try {
    operstate = (await src.readFile(`/sys/class/net/${dev}/operstate`)).trim();
  } catch {
    out.reason = `interface ${dev} not found`;
    return out;
  }
  // reading carrier of an interface that is administratively down fails (EINVAL): no carrier
  const carrier = await src.readFile(`/sys/class/net/${dev}/carrier`).then(
    (s) => s.trim(),
    () => '0',
  );
  const addr = (ifs[dev] ?? []).find((a) => familyOf(a) === fam && (fam === 4 || !/^fe80:/i.test(a.address)));
  if (addr) {
    out.address = addr.address;
    const p = addr.cidr ? Number(addr.cidr.split('/')[1]) : NaN;
    if (Number.isInteger(p)) out.prefix = p;
  }
  const linkUp = operstate === 'up' || (operstate === 'unknown' && carrier === '1');
  if (!linkUp) out.reason = `link ${operstate || 'down'}`;
  // carrier drops at once, operstate follows after the kernel's link watch (up to a second)
  else if (carrier !== '1') out.reason = 'no carrier';
  else if (!out.address) out.reason = `no IPv${fam} address`;
  else out.up = true;
  return out;
}

export type Lookup = (host: string) => Promise<{ address: string }>;

/**
 * The upstream host's address, cached: a literal address is itself; a name is looked up once
 * (bounded by `firstWaitMs`), then refreshed in the background every `ttlMs` (`retryMs` after a
 * failure) while the last answer is used. Until a name has resolved, `address()` is undefined
 * (the caller falls back to the default route).
 */
export class TargetResolver {
  private addr: string | undefined;
  private at: number | undefined;
  private failed = false;
  private pending: Promise<void> | undefined;

  constructor(
    readonly host: string | undefined,
    private readonly o: { lookup?: Lookup; ttlMs?: number; retryMs?: number; firstWaitMs?: number; now?: () => number } = {},
  ) {
    if (host && isIP(host)) this.addr = host;
  }

  async address(): Promise<string | undefined> {
    const host = this.host;
    if (!host || isIP(host)) return this.addr;
    const now = (this.o.now ?? Date.now)();
    if (!this.pending && (this.at === undefined || now - this.at >= (this.failed ? (this.o.retryMs ?? 10_000) : (this.o.ttlMs ?? 60_000)))) {
      this.at = now;
      this.pending = (this.o.lookup ?? ((h: string) => dnsLookup(h)))(host).then(
        (r) => {
          this.addr = r.address;
          this.failed = false;
        },
        () => {
          this.failed = true;
        },
      );
      void this.pending.finally(() => {
        this.pending = undefined;
      });
    }
    if (this.addr === undefined && this.pending) {
      // the first answer is worth a short wait (the event loop runs on meanwhile)
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.pending, new Promise<void>((r) => (t = setTimeout(r, this.o.firstWaitMs ?? 1000)))]);
      clearTimeout(t);
    }
    return this.addr;
  }
}
