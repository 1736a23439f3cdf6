/**
 * decide(msg, classification, ctx) → Decision. The DHCP server's rules
 * (RFC 2131 §4.3 server states, PXE 2.1 proxyDHCP), without sockets: the
 * service applies the decision (commit, encode, send, emit).
 * ctx carries the lease store and the loader-fallback history, which the
 * decision reads and updates (holds for OFFERs, fallback bookkeeping); nothing
 * here does I/O, so it is table-tested directly.
 */
import type { ArchKey, DhcpIgnoreReason, DhcpLoaderFallbackEvent, DhcpNoLoaderEvent, DhcpPoolExhaustedEvent, DhcpReplyEvent, DhcpUnknownClientEvent } from '../../proto/events';
import type { LanConfig } from '../net/lan';
import type { BootConfig, MatchRuleConfig, ProfileConfig } from '../boot/config';
import type { DhcpConfig, RelaySubnetConfig } from './config';
import { extraOptions, mergeExtra } from '../../proto/dhcp/extra';
import { ipToInt, MessageType, Opt } from '../../proto/dhcp/options';
import { messageType, type DhcpMessage } from '../../proto/dhcp/packet';
import { decodeSubOptions, DiscoveryControl, PxeSub, type ClientClass } from '../../proto/dhcp/pxe';
import {
  buildAck,
  buildInformAck,
  buildNak,
  buildOffer,
  buildProxyAck,
  buildProxyOffer,
  chooseBoot,
  loadersFor,
  prefixToMask,
  type BootChoice,
  type ExtraOption,
  type PxeMenu,
  type ServerParams,
} from '../../proto/dhcp/reply';
import type { LeaseStore } from './leases';

export const LOADER_FALLBACK_WINDOW_MS = 60_000;

export type IgnoreReason = DhcpIgnoreReason;

/** An event a decision adds beside its reply; the service fills in mac, xid, arch and firmware. */
export type SideEvent =
  | Pick<DhcpNoLoaderEvent, 'type' | 'detail'>
  | Pick<DhcpPoolExhaustedEvent, 'type' | 'range'>
  | Pick<DhcpLoaderFallbackEvent, 'type' | 'detail' | 'file' | 'from'>
  | Pick<DhcpUnknownClientEvent, 'type' | 'detail'>;

export interface Dest {
  address: string;
  port: number;
}

export type ReplyEvent = DhcpReplyEvent['type'] | 'dhcp.inform';

export type Decision =
  | {
      kind: 'reply';
      event: ReplyEvent;
      reply: DhcpMessage;
      to: Dest;
      ip?: string;
      boot?: BootChoice;
      /** commit this lease (durably) before the reply leaves */
      commit?: { ip: string; hostname?: string; fqdn?: string; uuid?: string; id?: string; leases?: LeaseStore };
      /** the profile this client boots (assign, match rule or default), and how it was chosen */
      profile?: string;
      profileBy?: ProfileChoice['by'];
      /** why (NAKs) */
      note?: string;
      side: SideEvent[];
    }
  | { kind: 'release' | 'decline'; ip: string; id?: string; leases?: LeaseStore; side: SideEvent[] }
  | { kind: 'ignore'; reason: IgnoreReason; detail?: string; side: SideEvent[] };

interface HistoryEntry {
  /** index into boot.loaders[arch] last offered/acked */
  index: number;
  xid: number;
  /** when an ACK named this loader (0: only offered so far) */
  ackedAt: number;
  arch: ArchKey;
  /** lowest loader index from now on: the firmware refused the ones before (Secure Boot; kept until re-armed) */
  floor?: number;
  /** iPXE (user class iPXE / option 175) asked for an address since: this loader ran */
  ran?: boolean;
}

/** Loader fallback bookkeeping, keyed by MAC and by non-zero GUID (option 97). */
export class BootHistory {
  private m = new Map<string, HistoryEntry>();
  constructor(private max = 4096) {}
  get(mac: string, uuid?: string): HistoryEntry | undefined {
    return this.m.get('m' + mac) ?? (uuid ? this.m.get('u' + uuid) : undefined);
  }
  /** keys held (one per MAC, one per GUID) */
  get size(): number {
    return this.m.size;
  }
  set(mac: string, uuid: string | undefined, e: HistoryEntry): void {
    const old = this.get(mac, uuid);
    if (old?.floor !== undefined && e.floor === undefined && old.arch === e.arch) e.floor = old.floor;
    // two keys per client with a GUID: evict until both fit, or the map grows by one per new client
    while (this.m.size > 0 && this.m.size + 2 > this.max) this.m.delete(this.m.keys().next().value!);
    this.m.set('m' + mac, e);
    if (uuid) this.m.set('u' + uuid, e);
  }
  /** iPXE's own DHCP for this MAC or GUID: the loader handed out last did run (no fallback blamed on it). */
  noteLoaderRan(mac: string, uuid?: string): void {
    const e = this.m.get('m' + mac) ?? (uuid ? this.m.get('u' + uuid) : undefined);
    if (e) e.ran = true;
  }
  /** A loader fetch was seen (e.g. by TFTP): the entry's time is refreshed. */
  noteLoaderFetched(mac: string, now: number): void {
    const e = this.m.get('m' + mac);
    if (e && e.ackedAt) e.ackedAt = now;
  }
  /**
   * The firmware refused the loader it was last given (the tracker's Secure Boot diagnosis): from
   * now on this client starts at the next loader of its list. True when that changed anything.
   */
  noteRefused(mac: string): boolean {
    const e = this.m.get('m' + mac);
    if (!e || (e.floor ?? 0) > e.index) return false;
    e.floor = e.index + 1;
    return true;
  }
  clear(mac: string): void {
    this.m.delete('m' + mac);
  }
}

export interface PolicyContext {
  mode: 'server' | 'proxy';
  /** which socket the datagram came in on: the DHCP port or the PXE boot-server port (4011) */
  via: 'dhcp' | 'proxy';
  src: Dest;
  lan: LanConfig;
  dhcp: DhcpConfig;
  loaders: Record<string, string[]>;
  httpPort: number;
  tftpEnabled: boolean;
  leases: LeaseStore;
  history: BootHistory;
  now: number;
  /** netboot-once: this client booted already (and was not re-armed) */
  bootedOnce?: (mac: string) => boolean;
  /** where replies to clients go (68) and to relay agents (67); tests change them */
  clientPort?: number;
  relayPort?: number;
  /** the broadcast address for clients without an address (255.255.255.255; loopback tests change it) */
  broadcastAddress?: string;
  /** profiles, assign and match rules (profile choice: per-profile options, PXE menus, known clients) */
  boot?: Pick<BootConfig, 'profiles' | 'assign' | 'match' | 'defaultProfile'>;
  /** runtime assignments (relayctl assign) */
  assigned?: (mac: string) => string | undefined;
  /** subnets behind relay agents (dhcp.relaySubnets), each with its own lease store */
  relaySubnets?: RelaySubnet[];
  /** the size of a boot file when known (option 13) */
  bootFileSize?: (path: string) => number | undefined;
}

export interface RelaySubnet {
  cfg: RelaySubnetConfig;
  net: string;
  prefix: number;
  leases: LeaseStore;
}

// ---------------------------------------------------------------- profile choice

/** A glob of `*` (any run) and `?` (one character), case-insensitive. */
export function globMatch(pattern: string, text: string): boolean {
  const re = new RegExp('^' + pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.') + '$', 'is');
  return re.test(text);
}

/** MAC pattern: six colon-separated bytes, each hex or `*`; `?` stands for one hex digit. */
export function macMatch(pattern: string, mac: string): boolean {
  const p = pattern.toLowerCase().split(/[:-]/);
  const m = mac.toLowerCase().split(':');
  if (p.length !== m.length) return false;
  return p.every((x, i) => x === '*' || (x.length === 2 && [...x].every((c, k) => c === '?' || c === m[i]![k])));
}

export function ruleMatches(r: MatchRuleConfig, cls: ClientClass): boolean {
  if (r.mac !== undefined && !macMatch(r.mac, cls.mac)) return false;
  if (r.vendorClass !== undefined && (cls.vendorClass === undefined || !globMatch(r.vendorClass, cls.vendorClass))) return false;
  if (r.userClass !== undefined && (cls.userClass === undefined || !globMatch(r.userClass, cls.userClass))) return false;
  if (r.arch !== undefined && cls.archCode !== r.arch) return false;
  if (r.uuid !== undefined && cls.uuid?.toLowerCase() !== r.uuid.toLowerCase()) return false;
  return true;
}

export interface ProfileChoice {
  name: string;
  profile: ProfileConfig | undefined;
  /** how: relayctl assign, boot.assign, boot.match[i], boot.defaultProfile */
  by: 'runtime' | 'assign' | 'match' | 'default';
  /** the MAC is named somewhere (dhcp.static, assign, a mac match rule): known-clients-only lets it boot */
  known: boolean;
}

/** relayctl assign > boot.assign > the first matching boot.match rule > boot.defaultProfile. */
export function chooseProfile(ctx: Pick<PolicyContext, 'boot' | 'assigned' | 'dhcp'>, cls: ClientClass): ProfileChoice | undefined {
  const b = ctx.boot;
  const mac = cls.mac;
  const byMacRule = b?.match?.some((r) => r.mac !== undefined && macMatch(r.mac, mac)) ?? false;
  const known = ctx.dhcp.static[mac] !== undefined || b?.assign[mac] !== undefined || ctx.assigned?.(mac) !== undefined || byMacRule;
  if (!b) return undefined;
  const rt = ctx.assigned?.(mac);
  if (rt && b.profiles[rt]) return { name: rt, profile: b.profiles[rt], by: 'runtime', known };
  const as = b.assign[mac];
  if (as && b.profiles[as]) return { name: as, profile: b.profiles[as], by: 'assign', known };
  const rule = b.match?.find((r) => b.profiles[r.profile] && ruleMatches(r, cls));
  if (rule) return { name: rule.profile, profile: b.profiles[rule.profile], by: 'match', known };
  return { name: b.defaultProfile, profile: b.profiles[b.defaultProfile], by: 'default', known };
}

const extraCache = new WeakMap<object, ExtraOption[]>();
function extraOf(cfg: object | undefined, encode: () => ExtraOption[]): ExtraOption[] {
  if (!cfg) return [];
  let v = extraCache.get(cfg);
  if (!v) {
    try {
      v = encode();
    } catch {
      v = []; // config validation reports these; never fail a reply over them
    }
    extraCache.set(cfg, v);
  }
  return v;
}

/** The extra options for a client: dhcp.options, then its profile's dhcpOptions over them. */
export function extraFor(dhcp: DhcpConfig, profile: ProfileConfig | undefined): ExtraOption[] {
  const g = extraOf(dhcp.options, () => extraOptions(dhcp.options));
  const own = extraOf(profile?.dhcpOptions, () => extraOptions(profile?.dhcpOptions));
  return own.length ? mergeExtra(g, own) : g;
}

/** PXE boot item types for menu entries: 0 is local boot, ours count up from 0x8001 (vendor types). */
export const MENU_TYPE_BASE = 0x8001;

export function pxeMenuOf(profile: ProfileConfig | undefined): PxeMenu | undefined {
  const m = profile?.pxeMenu;
  if (!m) return undefined;
  return { prompt: m.prompt, timeout: m.timeout, items: m.items.map((it, i) => ({ type: it.loader === 'local' ? 0 : MENU_TYPE_BASE + i, label: it.label })) };
}

/** The PXE boot item a discovery REQUEST asks for (option 43 sub-option 71), if any. */
export function bootItemOf(msg: DhcpMessage): { type: number; layer: number } | undefined {
  const v = msg.options.get(Opt.VendorSpecific);
  if (!v) return undefined;
  try {
    const it = decodeSubOptions(v).find(([c]) => c === PxeSub.BootItem)?.[1];
    return it && it.length === 4 ? { type: it.readUInt16BE(0), layer: it.readUInt16BE(2) } : undefined;
  } catch {
    return undefined;
  }
}

export function inSubnet(ip: string, net: string, prefix: number): boolean {
  try {
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return ((ipToInt(ip) & mask) >>> 0) === ((ipToInt(net) & mask) >>> 0);
  } catch {
    return false;
  }
}

const ZERO = '0.0.0.0';

function ignore(reason: IgnoreReason, detail?: string, side: SideEvent[] = []): Decision {
  return { kind: 'ignore', reason, detail, side };
}

/** Where a client is served from: the LAN, or a subnet behind a relay agent (giaddr). */
interface Network {
  net: string;
  prefix: number;
  leases: LeaseStore;
  subnet?: RelaySubnet;
}

function serverParams(ctx: PolicyContext, nw: Network, extra: ExtraOption[]): ServerParams {
  const sub = nw.subnet;
  return {
    serverIp: ctx.lan.address,
    subnetMask: prefixToMask(nw.prefix),
    // behind a relay the relay agent is the way out unless the subnet names a router
    router: sub ? (sub.cfg.router ?? undefined) : ctx.dhcp.router,
    dns: sub?.cfg.dns ?? ctx.dhcp.dns,
    leaseSeconds: ctx.dhcp.leaseSeconds,
    extra,
  };
}

/** RFC 2131 §4.1: where a server reply goes. */
function destFor(msg: DhcpMessage, ctx: PolicyContext, nak = false): Dest {
  if (msg.giaddr !== ZERO) return { address: msg.giaddr, port: ctx.relayPort ?? 67 };
  const cport = ctx.clientPort ?? 68;
  if (!nak && msg.ciaddr !== ZERO) return { address: msg.ciaddr, port: cport };
  // no address yet: broadcast (unicast to yiaddr needs an ARP entry Node cannot add)
  return { address: ctx.broadcastAddress ?? '255.255.255.255', port: cport };
}

interface BootResult {
  boot?: BootChoice;
  side: SideEvent[];
  skipped?: 'booted-once' | 'no-loader' | 'unknown-client';
}

function bootFor(msg: DhcpMessage, cls: ClientClass, ctx: PolicyContext, isDiscover: boolean, choice: ProfileChoice | undefined): BootResult {
  const side: SideEvent[] = [];
  if (!cls.isPxe && !cls.isIpxe && !cls.isHttpClient) return { side };
  if (ctx.dhcp.knownClientsOnly && !choice?.known) {
    if (isDiscover)
      side.push({ type: 'dhcp.unknown-client', detail: `${cls.mac} is not in dhcp.static, boot.assign or a boot.match mac rule, and dhcp.knownClientsOnly is on` });
    return { side, skipped: 'unknown-client' };
  }
  if (ctx.dhcp.netbootOnce && ctx.bootedOnce?.(cls.mac)) return { side, skipped: 'booted-once' };
  const firmwarePxe = !cls.isIpxe;
  // iPXE asking for an address proves the loader we handed out last started (fallbacks stop blaming it)
  if (cls.isIpxe) ctx.history.noteLoaderRan(cls.mac, cls.uuid);
  let index = 0;
  const h = firmwarePxe ? ctx.history.get(cls.mac, cls.uuid) : undefined;
  if (h && h.arch === cls.arch) {
    const recent = h.ackedAt > 0 && ctx.now - h.ackedAt < LOADER_FALLBACK_WINDOW_MS;
    if (isDiscover && msg.xid !== h.xid) {
      if (recent && !h.ran) {
        // a fresh DISCOVER soon after we handed out a loader, and no iPXE since: that loader did not start
        const n = loadersFor(ctx.loaders, cls.arch).length;
        index = Math.min(h.index + 1, Math.max(0, n - 1));
        if (index > h.index) {
          const list = loadersFor(ctx.loaders, cls.arch);
          side.push({
            type: 'dhcp.loader-fallback',
            detail: `new DISCOVER ${Math.round((ctx.now - h.ackedAt) / 1000)} s after an ACK naming ${list[h.index]}`,
            file: list[index]!,
            from: list[h.index]!,
          });
        } else index = h.index;
        ctx.history.set(cls.mac, cls.uuid, { index, xid: msg.xid, ackedAt: h.ackedAt, arch: cls.arch });
      } else if (h.ran) index = h.index; // the loader that ran stays
    } else if (msg.xid === h.xid || recent || h.ran) index = h.index;
    // a loader this firmware refused (Secure Boot) is not offered again: start after it
    const floor = h.floor === undefined ? undefined : Math.min(h.floor, Math.max(0, loadersFor(ctx.loaders, cls.arch).length - 1));
    if (floor !== undefined && index < floor) {
      const list = loadersFor(ctx.loaders, cls.arch);
      if (isDiscover) side.push({ type: 'dhcp.loader-fallback', detail: `the firmware refused ${list[floor - 1]} earlier (Secure Boot)`, file: list[floor]!, from: list[floor - 1]! });
      index = floor;
      if (isDiscover) ctx.history.set(cls.mac, cls.uuid, { index, xid: msg.xid, ackedAt: h.ackedAt, arch: cls.arch, floor: h.floor });
    }
  }
  const r = chooseBoot(
    cls,
    { lanAddress: ctx.lan.address, httpPort: ctx.httpPort, tftpEnabled: ctx.tftpEnabled, loaders: ctx.loaders, ipxeNoProxyDhcp: ctx.mode === 'server' && ctx.dhcp.ipxeNoProxyDhcp },
    index,
  );
  if (r.missing) {
    if (isDiscover) side.push({ type: 'dhcp.no-loader', detail: r.missing });
    return { side, skipped: 'no-loader' };
  }
  let boot = r.boot;
  if (boot && boot.via === 'tftp' && boot.role === 'loader') {
    const size = ctx.bootFileSize?.(boot.path);
    if (size !== undefined) boot = { ...boot, size };
    // a BIOS PXE ROM whose profile asks for a menu: option 43 menu; the ROM asks us for the chosen item
    const menu = cls.firmware === 'bios' ? pxeMenuOf(choice?.profile) : undefined;
    if (menu && !bootItemOf(msg)) {
      // proxy mode listens on 4011: unicast discovery to us (3); a DHCP server hears the broadcast on 67 (2)
      const dc = ctx.mode === 'proxy' ? DiscoveryControl.DisableBroadcast | DiscoveryControl.DisableMulticast : DiscoveryControl.DisableMulticast;
      boot = { ...boot, pxeMenu: { ...menu, discoveryControl: dc }, discoveryControl: undefined };
    }
  }
  if (isDiscover && firmwarePxe && boot && !h) ctx.history.set(cls.mac, cls.uuid, { index: boot.loaderIndex ?? 0, xid: msg.xid, ackedAt: 0, arch: cls.arch });
  return { boot, side };
}

/**
 * A BIOS PXE ROM's boot server discovery for a menu item (PXE 2.1 §2.2.6: a REQUEST with
 * option 43 sub-option 71): the item's loader, with the item echoed (buildProxyAck).
 */
function menuItemBoot(msg: DhcpMessage, choice: ProfileChoice | undefined, ctx: PolicyContext): BootChoice | undefined {
  const item = bootItemOf(msg);
  const m = choice?.profile?.pxeMenu;
  if (!item || !m) return undefined;
  const it = m.items[item.type - MENU_TYPE_BASE];
  if (!it || it.loader === 'local' || !ctx.tftpEnabled) return undefined;
  return { file: it.loader, path: it.loader, role: 'loader', via: 'tftp', vendorClass: 'PXEClient', size: ctx.bootFileSize?.(it.loader) };
}

/** After an ACK that named a loader: the fallback window starts (a loader proven by iPXE stays proven). */
function noteAck(ctx: PolicyContext, msg: DhcpMessage, cls: ClientClass, boot: BootChoice | undefined): void {
  if (!boot || boot.role !== 'loader' || cls.isIpxe || boot.loaderIndex === undefined) return;
  const h = ctx.history.get(cls.mac, cls.uuid);
  const ran = h?.ran && h.index === boot.loaderIndex && h.arch === cls.arch;
  ctx.history.set(cls.mac, cls.uuid, { index: boot.loaderIndex ?? 0, xid: msg.xid, ackedAt: ctx.now, arch: cls.arch, ...(ran ? { ran } : {}) });
}

/** The network a request is served from: giaddr's (the LAN or a relay subnet), else the LAN. */
function networkFor(msg: DhcpMessage, ctx: PolicyContext): Network | undefined {
  const { lan } = ctx;
  if (msg.giaddr === ZERO || inSubnet(msg.giaddr, lan.address, lan.prefix)) return { net: lan.address, prefix: lan.prefix, leases: ctx.leases };
  const sub = ctx.relaySubnets?.find((x) => inSubnet(msg.giaddr, x.net, x.prefix));
  return sub ? { net: sub.net, prefix: sub.prefix, leases: sub.leases, subnet: sub } : undefined;
}

export function decide(msg: DhcpMessage, cls: ClientClass, ctx: PolicyContext): Decision {
  if (msg.op !== 1) return ignore('not-request');
  const type = messageType(msg);
  if (type === undefined) return ignore('bootp');
  if (!msg.mac) return ignore('no-mac');
  const nw = networkFor(msg, ctx);
  if (!nw) return ignore('outside-lan', `giaddr ${msg.giaddr}`);
  if (msg.ciaddr !== ZERO && !inSubnet(msg.ciaddr, nw.net, nw.prefix)) {
    // RFC 2131 §4.3.2: a RENEWING/REBINDING client on the wrong network is told so (NAK),
    // not left on its address until the lease runs out; anything else from there is not ours
    if (ctx.mode === 'server' && type === MessageType.REQUEST && msg.options.ip(Opt.ServerIdentifier) === undefined)
      return nak(msg, ctx, `${msg.ciaddr} is not on this network`);
    return ignore('outside-lan', `ciaddr ${msg.ciaddr}`);
  }
  return ctx.mode === 'proxy' ? decideProxy(msg, type, cls, ctx) : decideServer(msg, type, cls, ctx, nw);
}

function decideProxy(msg: DhcpMessage, type: number, cls: ClientClass, ctx: PolicyContext): Decision {
  // PXE 2.1 §2.2: a proxyDHCP server answers PXEClient DISCOVERs on 67 and REQUESTs on 4011
  if (!cls.isPxe && !cls.isHttpClient) return ignore('not-pxe');
  if (ctx.via === 'dhcp' && type !== MessageType.DISCOVER) return ignore('proxy-not-discover');
  if (ctx.via === 'proxy' && type !== MessageType.REQUEST && type !== MessageType.INFORM) return ignore('unknown-type', `type ${type} on the boot-server port`);
  const isDiscover = type === MessageType.DISCOVER;
  const choice = chooseProfile(ctx, cls);
  const profile = choice?.name;
  if (!isDiscover) {
    const item = menuItemBoot(msg, choice, ctx);
    if (item) return { kind: 'reply', event: 'proxy.ack', reply: buildProxyAck(msg, ctx.lan.address, item), to: { ...ctx.src }, boot: item, profile, profileBy: choice?.by, side: [] };
  }
  const b = bootFor(msg, cls, ctx, isDiscover, choice);
  if (!b.boot) return ignore(b.skipped ?? 'no-loader', undefined, b.side);
  if (isDiscover) {
    // BIOS PXE gets the loader straight from the offer (discovery control 8); a UEFI
    // proxy offer carries no option 43, so EDK2 asks us again on 4011 (BINL).
    if (cls.firmware === 'bios' || cls.isIpxe) noteAck(ctx, msg, cls, b.boot);
    return { kind: 'reply', event: 'proxy.offer', reply: buildProxyOffer(msg, ctx.lan.address, b.boot), to: destFor(msg, ctx), boot: b.boot, profile, profileBy: choice?.by, side: b.side };
  }
  noteAck(ctx, msg, cls, b.boot);
  return { kind: 'reply', event: 'proxy.ack', reply: buildProxyAck(msg, ctx.lan.address, b.boot), to: { ...ctx.src }, boot: b.boot, profile, profileBy: choice?.by, side: b.side };
}

/** RFC 4702 §2.3: option 81's domain name (ASCII, or RFC 1035 wire format when the E bit is set). */
export function fqdnOf(v: Buffer | undefined): string | undefined {
  if (!v || v.length < 4) return undefined;
  const name = v.subarray(3);
  if (v[0]! & 0x04) {
    const labels: string[] = [];
    let i = 0;
    while (i < name.length && name[i] !== 0) {
      const n = name[i]!;
      if (n > 63 || i + 1 + n > name.length) return undefined;
      labels.push(name.toString('latin1', i + 1, i + 1 + n));
      i += 1 + n;
    }
    return labels.length ? labels.join('.') : undefined;
  }
  const t = name.toString('latin1').replace(/\0.*$/s, '');
  return /^[\x21-\x7e]+$/.test(t) ? t : undefined;
}

/**
 * The client identifier a lease is keyed by (hex), or undefined to key it by MAC: when none is
 * sent, and when it is just the hardware type and chaddr (RFC 2132 §9.14's form, what iPXE
 * sends): that names the same interface as chaddr, so firmware PXE (no option 61) and iPXE
 * on one NIC keep one lease, as dnsmasq does.
 */
export function leaseIdOf(msg: DhcpMessage): string | undefined {
  const v = msg.options.get(Opt.ClientIdentifier);
  if (!v || v.length === 0) return undefined;
  if (v.length === msg.hlen + 1 && v[0] === msg.htype && v.subarray(1).equals(msg.chaddr.subarray(0, msg.hlen))) return undefined;
  return v.toString('hex');
}

function decideServer(msg: DhcpMessage, type: number, cls: ClientClass, ctx: PolicyContext, nw: Network): Decision {
  const { lan } = ctx;
  const leases = nw.leases;
  const mac = cls.mac;
  // RFC 2131 §4.2 / RFC 6842: a client that sends an identifier is known by it, not by chaddr
  const id = leaseIdOf(msg);
  const serverId = msg.options.ip(Opt.ServerIdentifier);
  const requested = msg.options.ip(Opt.RequestedIpAddress);
  const choice = chooseProfile(ctx, cls);
  const profile = choice?.name;
  const server = serverParams(ctx, nw, extraFor(ctx.dhcp, choice?.profile));
  const hostname = msg.options.str(Opt.HostName) || undefined;
  const fqdn = fqdnOf(msg.options.get(Opt.ClientFqdn));
  switch (type) {
    case MessageType.DISCOVER: {
      const ip = leases.offer(mac, requested, id);
      if (!ip) return ignore('pool-exhausted', undefined, [{ type: 'dhcp.pool-exhausted', range: [...(nw.subnet?.cfg.range ?? ctx.dhcp.range)] }]);
      const b = bootFor(msg, cls, ctx, true, choice);
      const reply = buildOffer(msg, { yiaddr: ip, server, boot: b.boot });
      return { kind: 'reply', event: 'dhcp.offer', reply, to: destFor(msg, ctx), ip, boot: b.boot, profile, profileBy: choice?.by, side: b.side };
    }
    case MessageType.REQUEST: {
      let ip: string | undefined;
      if (serverId !== undefined) {
        // SELECTING (RFC 2131 §4.3.2)
        if (serverId !== lan.address) {
          leases.unhold(mac, id); // RFC 2131 §4.3.2: the client chose another server's offer
          return ignore('other-server', `server id ${serverId}`);
        }
        // option 50 is a MUST here, but some clients (the dhcp npm package) leave it
        // out: then they mean the address we offered them
        ip = requested ?? leases.offeredTo(mac, true, id);
        if (!ip) return ignore('no-requested-ip');
      } else if (msg.ciaddr === ZERO) {
        // INIT-REBOOT. Without option 50 this is no valid state at all, but the dhcp
        // npm package's client sends exactly that after our OFFER: answer it only
        // when we have just offered this client an address.
        if (!requested) {
          ip = leases.offeredTo(mac, false, id);
          if (!ip) return ignore('no-requested-ip');
        } else {
          if (!inSubnet(requested, nw.net, nw.prefix)) return nak(msg, ctx, `${requested} is not on this network`);
          ip = requested;
        }
      } else {
        // a BIOS PXE ROM asking for the menu item it chose (boot server discovery, broadcast to 67)
        const item = menuItemBoot(msg, choice, ctx);
        if (item) return { kind: 'reply', event: 'proxy.ack', reply: buildProxyAck(msg, lan.address, item), to: destFor(msg, ctx), boot: item, profile, profileBy: choice?.by, side: [] };
        // RENEWING (unicast) / REBINDING (broadcast)
        ip = msg.ciaddr;
      }
      if (!leases.canAssign(mac, ip, id)) return nak(msg, ctx, `${ip} is not yours`);
      const b = bootFor(msg, cls, ctx, false, choice);
      noteAck(ctx, msg, cls, b.boot);
      const reply = buildAck(msg, { yiaddr: ip, server, boot: b.boot });
      return { kind: 'reply', event: 'dhcp.ack', reply, to: destFor(msg, ctx), ip, boot: b.boot, profile, profileBy: choice?.by, commit: { ip, hostname, uuid: cls.uuid, ...(fqdn ? { fqdn } : {}), ...(id ? { id } : {}), ...(nw.subnet ? { leases } : {}) }, side: b.side };
    }
    case MessageType.DECLINE: {
      if (serverId !== undefined && serverId !== lan.address) return ignore('other-server', `server id ${serverId}`);
      if (!requested) return ignore('no-requested-ip');
      // only an address we gave this client (a DECLINE cannot take arbitrary addresses out of the pool)
      if (leases.offeredTo(mac, true, id) !== requested && leases.get(mac, id)?.ip !== requested) return ignore('not-our-lease');
      return { kind: 'decline', ip: requested, ...(id ? { id } : {}), ...(nw.subnet ? { leases } : {}), side: [] };
    }
    case MessageType.RELEASE: {
      if (serverId !== undefined && serverId !== lan.address) return ignore('other-server', `server id ${serverId}`);
      if (msg.ciaddr === ZERO) return ignore('no-requested-ip');
      if (leases.get(mac, id)?.ip !== msg.ciaddr) return ignore('not-our-lease');
      return { kind: 'release', ip: msg.ciaddr, ...(id ? { id } : {}), ...(nw.subnet ? { leases } : {}), side: [] };
    }
    case MessageType.INFORM: {
      // RFC 2131 §4.3.5: configuration only, no lease, no yiaddr
      const b = bootFor(msg, cls, ctx, false, choice);
      const reply = buildInformAck(msg, { server, boot: b.boot });
      return { kind: 'reply', event: 'dhcp.inform', reply, to: destFor(msg, ctx), ip: msg.ciaddr, boot: b.boot, profile, profileBy: choice?.by, side: b.side };
    }
    default:
      return ignore('unknown-type', `type ${type}`);
  }
}

function nak(msg: DhcpMessage, ctx: PolicyContext, why: string): Decision {
  return { kind: 'reply', event: 'dhcp.nak', reply: buildNak(msg, ctx.lan.address, why), to: destFor(msg, ctx, true), note: why, side: [] };
}
