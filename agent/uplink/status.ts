/**
 * The uplink's state: the network the relay reaches its upstream through (on a travel router,
 * the Wi-Fi client interface `wwan`), for `…/status` and the uplink.up / uplink.down events.
 *
 * UplinkReader (what the monitor polls with): the kernel's view read from files every poll
 * (kernel.ts: /proc/net/route, /sys/class/net, getifaddrs; no process), and on OpenWrt
 * `ubus call network.interface.<name> status` (netifd's view: up, l3_device, ipv4-address,
 * route, uptime) plus `iwinfo <l3_device> info` for the Wi-Fi details, run only when the kernel's
 * view changed or every `ubusEveryMs` (30 s), and never again once ubus is missing.
 *
 * readUplinkStatus (one-shot, stateless): ubus + iwinfo, else `ip -j route get <target>` /
 * `ip -j route show default` and `ip -j addr show`.
 *
 * Commands run through an injected `Exec`, so tests drive the parsers with recorded outputs.
 */
import { execFile } from 'node:child_process';
import { readKernelUplink, TargetResolver, type KernelSources, type Lookup } from './kernel';

export interface ExecResult {
  /** exit status; null when the command could not be run or was killed */
  code: number | null;
  stdout: string;
  stderr: string;
  /** e.g. 'ENOENT' when the program does not exist, 'ETIMEDOUT' */
  error?: string;
}

export type Exec = (cmd: string, args: string[]) => Promise<ExecResult>;

export interface UplinkStatus {
  up: boolean;
  /** the kernel interface (l3 device), e.g. `phy0-sta0`, `eth0` */
  interface?: string;
  /** the OpenWrt logical network (`wwan`, `wan`) when read from netifd */
  network?: string;
  /** IPv4 address on the uplink */
  address?: string;
  prefix?: number;
  gateway?: string;
  /** seconds the netifd interface has been up */
  uptimeSeconds?: number;
  /** Wi-Fi (iwinfo) */
  ssid?: string;
  bssid?: string;
  signalDbm?: number;
  noiseDbm?: number;
  bitrateMbit?: number;
  /** link quality in percent (iwinfo's `Link Quality: 52/70` → 74) */
  quality?: number;
  /** kernel: /proc, /sys and getifaddrs (kernel.ts) */
  source: 'ubus' | 'ip' | 'kernel' | 'none';
  /** why the state could not be read, or why the uplink is not up */
  reason?: string;
  /** ISO-8601 time of the reading */
  checkedAt: string;
}

/** Runs a program without a shell, bounded in time and output; never throws. */
export const defaultExec: Exec = (cmd, args) =>
  new Promise((resolve) => {
    execFile(cmd, args, { timeout: 3000, maxBuffer: 1 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: string | number; killed?: boolean };
      if (typeof e.code === 'number') return resolve({ code: e.code, stdout, stderr });
      resolve({ code: null, stdout: stdout ?? '', stderr: stderr ?? '', error: e.killed ? 'ETIMEDOUT' : String(e.code ?? e.message) });
    });
  });

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** netifd's `ubus call network.interface.<name> status` JSON → the uplink fields it carries. */
export function parseUbusInterfaceStatus(json: unknown, network?: string): Omit<UplinkStatus, 'checkedAt' | 'source'> | undefined {
  if (!isObj(json) || typeof json.up !== 'boolean') return undefined;
  const out: Omit<UplinkStatus, 'checkedAt' | 'source'> = { up: json.up };
  if (network) out.network = network;
  const dev = typeof json.l3_device === 'string' ? json.l3_device : typeof json.device === 'string' ? json.device : undefined;
  if (dev) out.interface = dev;
  const a4 = arr(json['ipv4-address']).find(isObj);
  if (a4 && typeof a4.address === 'string') {
    out.address = a4.address;
    if (typeof a4.mask === 'number') out.prefix = a4.mask;
  }
  const def = arr(json.route).find((r) => isObj(r) && r.target === '0.0.0.0' && r.mask === 0) as Obj | undefined;
  if (def && typeof def.nexthop === 'string') out.gateway = def.nexthop;
  if (typeof json.uptime === 'number') out.uptimeSeconds = json.uptime;
  if (!json.up) {
    out.reason = json.pending === true ? 'connecting' : json.available === false ? 'device not available' : 'interface down';
    if (isObj(json.errors) || Array.isArray(json.errors)) out.reason += ` (${JSON.stringify(json.errors)})`;
  } else if (!out.address) {
    // up without an IPv4 address is not a usable uplink for an IPv4 upstream
    out.up = false;
    out.reason = 'no IPv4 address';
  }
  return out;
}

export interface WifiInfo {
  ssid?: string;
  bssid?: string;
  signalDbm?: number;
  noiseDbm?: number;
  bitrateMbit?: number;
  quality?: number;
}

/** `iwinfo <dev> info` text → Wi-Fi details; `unknown` fields are left out. */
export function parseIwinfoInfo(text: string): WifiInfo {
  const out: WifiInfo = {};
  const essid = /ESSID: "(.*)"\s*$/m.exec(text);
  if (essid) out.ssid = essid[1];
  const ap = /Access Point: ([0-9A-Fa-f:]{17})/.exec(text);
  if (ap && ap[1] !== '00:00:00:00:00:00') out.bssid = ap[1]!.toLowerCase();
  const sig = /Signal: (-?\d+) dBm/.exec(text);
  if (sig) out.signalDbm = Number(sig[1]);
  const noise = /Noise: (-?\d+) dBm/.exec(text);
  if (noise) out.noiseDbm = Number(noise[1]);
  const rate = /Bit Rate: ([\d.]+) MBit\/s/.exec(text);
  if (rate) out.bitrateMbit = Number(rate[1]);
  const q = /Link Quality: (\d+)\/(\d+)/.exec(text);
  if (q && Number(q[2]) > 0) out.quality = Math.round((Number(q[1]) / Number(q[2])) * 100);
  return out;
}

/** `ip -j route show default` + `ip -j addr show` → the default-route interface and its state. */
export function parseIpStatus(routesJson: unknown, addrsJson: unknown, target?: string): Omit<UplinkStatus, 'checkedAt' | 'source'> {
  const routes = arr(routesJson)
    .filter(isObj)
    .filter((r) => (target ? r.dst === target : r.dst === 'default' || r.dst === '0.0.0.0/0') && typeof r.dev === 'string')
    .sort((a, b) => (typeof a.metric === 'number' ? a.metric : 0) - (typeof b.metric === 'number' ? b.metric : 0));
  const route = routes[0];
  if (!route) return { up: false, reason: target ? `no route to ${target}` : 'no default route' };
  const dev = route.dev as string;
  const out: Omit<UplinkStatus, 'checkedAt' | 'source'> = { up: false, interface: dev };
  if (typeof route.gateway === 'string') out.gateway = route.gateway;
  const link = arr(addrsJson).filter(isObj).find((l) => l.ifname === dev);
  if (!link) {
    out.reason = `interface ${dev} not found`;
    return out;
  }
  const a4 = arr(link.addr_info).filter(isObj).find((a) => a.family === 'inet' && typeof a.local === 'string');
  if (a4) {
    out.address = a4.local as string;
    if (typeof a4.prefixlen === 'number') out.prefix = a4.prefixlen;
  }
  const flags = arr(link.flags);
  const linkUp = link.operstate === 'UP' || (link.operstate === 'UNKNOWN' && flags.includes('LOWER_UP'));
  if (!linkUp || flags.includes('NO-CARRIER')) out.reason = `link ${String(link.operstate ?? 'down').toLowerCase()}`;
  else if (!out.address) out.reason = 'no IPv4 address';
  else out.up = true;
  return out;
}

export interface ReadUplinkOptions {
  /** OpenWrt logical networks to look at, in order; the first that is up wins. Default ['wwan', 'wan']. */
  networks?: string[];
  /** 'auto' (default): ubus when present, else ip (UplinkReader: the kernel's files). */
  prefer?: 'auto' | 'ubus' | 'ip';
  /**
   * Without ubus: the upstream's IPv4 address. The uplink is then the interface that routes to
   * it (`ip -j route get`), not the default route: a relay may reach its upstream on a
   * directly connected segment without any default route.
   */
  target?: string;
  now?: () => Date;
}

/** Reads the uplink's state. Never throws: what could not be read is a `reason`. */
export async function readUplinkStatus(exec: Exec = defaultExec, opts: ReadUplinkOptions = {}): Promise<UplinkStatus> {
  const checkedAt = (opts.now ?? (() => new Date()))().toISOString();
  const prefer = opts.prefer ?? 'auto';
  if (prefer !== 'ip') {
    const r = await readUbus(exec, opts.networks ?? ['wwan', 'wan']);
    if (r) return { ...r, checkedAt };
    if (prefer === 'ubus') return { up: false, source: 'none', reason: 'ubus not available', checkedAt };
  }
  const r = await readIp(exec, opts.target);
  return { ...r, checkedAt };
}

async function readUbus(exec: Exec, networks: string[]): Promise<Omit<UplinkStatus, 'checkedAt'> | undefined> {
  let first: Omit<UplinkStatus, 'checkedAt' | 'source'> | undefined;
  let sawUbus = false;
  for (const net of networks) {
    const res = await exec('ubus', ['call', `network.interface.${net}`, 'status']);
    if (res.error === 'ENOENT' || res.error === 'EACCES') return undefined; // not OpenWrt (EACCES: a PATH entry we may not read)
    sawUbus = true;
    if (res.code !== 0) continue; // `Command failed: Not found`: no such network
    const st = parseUbusInterfaceStatus(parseJson(res.stdout), net);
    if (!st) continue;
    first ??= st;
    if (st.up) {
      first = st;
      break;
    }
  }
  if (!sawUbus) return undefined;
  if (!first) return { up: false, source: 'ubus', reason: `no uplink network (${networks.join(', ')})` };
  const out: Omit<UplinkStatus, 'checkedAt'> = { ...first, source: 'ubus' };
  if (out.interface) {
    const iw = await exec('iwinfo', [out.interface, 'info']);
    if (iw.code === 0) Object.assign(out, parseIwinfoInfo(iw.stdout));
  }
  return out;
}

async function readIp(exec: Exec, target?: string): Promise<Omit<UplinkStatus, 'checkedAt'>> {
  const ipv4 = target && /^\d{1,3}(\.\d{1,3}){3}$/.test(target) ? target : undefined;
  const routes = await exec('ip', ipv4 ? ['-j', 'route', 'get', ipv4] : ['-j', 'route', 'show', 'default']);
  if (ipv4 && routes.code !== 0 && /unreachable|No route/i.test(routes.stderr)) return { up: false, source: 'ip', reason: `no route to ${ipv4}` };
  if (routes.code !== 0) {
    return { up: false, source: 'none', reason: `ip route failed: ${routes.error ?? (routes.stderr.trim() || `exit ${routes.code}`)}` };
  }
  const addrs = await exec('ip', ['-j', 'addr', 'show']);
  if (addrs.code !== 0) {
    return { up: false, source: 'none', reason: `ip addr failed: ${addrs.error ?? (addrs.stderr.trim() || `exit ${addrs.code}`)}` };
  }
  return { ...parseIpStatus(parseJson(routes.stdout), parseJson(addrs.stdout), ipv4), source: 'ip' };
}

export interface UplinkReaderOptions extends ReadUplinkOptions {
  exec?: Exec;
  /** ubus + iwinfo run at most this often while the kernel's view holds still; default 30 s */
  ubusEveryMs?: number;
  /** tests: where /proc, /sys and the interfaces are read from */
  kernel?: KernelSources;
  /** tests: the host-name lookup for `target` */
  lookup?: Lookup;
}

/**
 * Reads the uplink for a monitor, cheaply enough to poll every few seconds: the kernel's files
 * each time (the route to `target`, which may be a host name, resolved in the background), ubus +
 * iwinfo only when that view changed, every `ubusEveryMs`, and not after ENOENT/EACCES.
 */
export class UplinkReader {
  private readonly target: TargetResolver;
  private noUbus = false;
  private ubus: { at: number; key: string; status: Omit<UplinkStatus, 'checkedAt'> } | undefined;

  constructor(private readonly o: UplinkReaderOptions = {}) {
    this.target = new TargetResolver(o.target, o.lookup ? { lookup: o.lookup } : {});
  }

  /** Never throws: what could not be read is a `reason`. */
  async read(): Promise<UplinkStatus> {
    const now = (this.o.now ?? (() => new Date()))();
    const checkedAt = now.toISOString();
    const prefer = this.o.prefer ?? 'auto';
    const k = await readKernelUplink(await this.target.address(), this.o.kernel);
    if (prefer !== 'ip' && !this.noUbus) {
      const key = [k.up, k.interface, k.address, k.gateway, k.reason].join('|');
      const t = now.getTime();
      if (!this.ubus || this.ubus.key !== key || t - this.ubus.at >= (this.o.ubusEveryMs ?? 30_000)) {
        const r = await readUbus(this.o.exec ?? defaultExec, this.o.networks ?? ['wwan', 'wan']);
        if (r) this.ubus = { at: t, key, status: r };
        else this.noUbus = true; // not OpenWrt: not tried again
      }
      if (this.ubus && !this.noUbus) return { ...this.ubus.status, checkedAt };
    }
    if (prefer === 'ubus') return { up: false, source: 'none', reason: 'ubus not available', checkedAt };
    return { ...k, checkedAt };
  }
}
