/**
 * decide(msg, classification, ctx) → Decision. The DHCP server's rules
 * (RFC 2131 §4.3 server states, PXE 2.1 proxyDHCP), without sockets: the
 * service applies the decision (commit, encode, send, emit).
 * ctx carries the lease store and the loader-fallback history, which the
 * decision reads and updates (holds for OFFERs, fallback bookkeeping); nothing
 * here does I/O, so it is table-tested directly.
 */
import type { ArchKey, DhcpIgnoreReason, DhcpLoaderFallbackEvent, DhcpNoLoaderEvent, DhcpPoolExhaustedEvent, DhcpReplyEvent } from '../../proto/events';
import type { LanConfig } from '../net/lan';
import type { DhcpConfig } from './config';
import { ipToInt, MessageType, Opt } from '../../proto/dhcp/options';
import { messageType, type DhcpMessage } from '../../proto/dhcp/packet';
import type { ClientClass } from '../../proto/dhcp/pxe';
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
  type ServerParams,
} from '../../proto/dhcp/reply';
import type { LeaseStore } from './leases';

export const LOADER_FALLBACK_WINDOW_MS = 60_000;

export type IgnoreReason = DhcpIgnoreReason;

/** An event a decision adds beside its reply; the service fills in mac, xid, arch and firmware. */
export type SideEvent =
  | Pick<DhcpNoLoaderEvent, 'type' | 'detail'>
  | Pick<DhcpPoolExhaustedEvent, 'type' | 'range'>
  | Pick<DhcpLoaderFallbackEvent, 'type' | 'detail' | 'file' | 'from'>;

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
      commit?: { ip: string; hostname?: string; uuid?: string };
      /** why (NAKs) */
      note?: string;
      side: SideEvent[];
    }
  | { kind: 'release' | 'decline'; ip: string; side: SideEvent[] }
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

function serverParams(ctx: PolicyContext): ServerParams {
  return {
    serverIp: ctx.lan.address,
    subnetMask: prefixToMask(ctx.lan.prefix),
    router: ctx.dhcp.router,
    dns: ctx.dhcp.dns,
    leaseSeconds: ctx.dhcp.leaseSeconds,
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
  skipped?: 'booted-once' | 'no-loader';
}

function bootFor(msg: DhcpMessage, cls: ClientClass, ctx: PolicyContext, isDiscover: boolean): BootResult {
  const side: SideEvent[] = [];
  if (!cls.isPxe && !cls.isIpxe && !cls.isHttpClient) return { side };
  if (ctx.dhcp.netbootOnce && ctx.bootedOnce?.(cls.mac)) return { side, skipped: 'booted-once' };
  const firmwarePxe = !cls.isIpxe;
  let index = 0;
  const h = firmwarePxe ? ctx.history.get(cls.mac, cls.uuid) : undefined;
  if (h && h.arch === cls.arch) {
    const recent = h.ackedAt > 0 && ctx.now - h.ackedAt < LOADER_FALLBACK_WINDOW_MS;
    if (isDiscover && msg.xid !== h.xid) {
      if (recent) {
        // a fresh DISCOVER soon after we handed out a loader: that loader did not start
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
      }
    } else if (msg.xid === h.xid || recent) index = h.index;
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
  if (isDiscover && firmwarePxe && r.boot && !h) ctx.history.set(cls.mac, cls.uuid, { index: r.boot.loaderIndex ?? 0, xid: msg.xid, ackedAt: 0, arch: cls.arch });
  return { boot: r.boot, side };
}

/** After an ACK that named a loader: the fallback window starts. */
function noteAck(ctx: PolicyContext, msg: DhcpMessage, cls: ClientClass, boot: BootChoice | undefined): void {
  if (!boot || boot.role !== 'loader' || cls.isIpxe) return;
  ctx.history.set(cls.mac, cls.uuid, { index: boot.loaderIndex ?? 0, xid: msg.xid, ackedAt: ctx.now, arch: cls.arch });
}

export function decide(msg: DhcpMessage, cls: ClientClass, ctx: PolicyContext): Decision {
  if (msg.op !== 1) return ignore('not-request');
  const type = messageType(msg);
  if (type === undefined) return ignore('bootp');
  if (!msg.mac) return ignore('no-mac');
  const { lan } = ctx;
  if (msg.giaddr !== ZERO && !inSubnet(msg.giaddr, lan.address, lan.prefix)) return ignore('outside-lan', `giaddr ${msg.giaddr}`);
  if (msg.ciaddr !== ZERO && !inSubnet(msg.ciaddr, lan.address, lan.prefix)) return ignore('outside-lan', `ciaddr ${msg.ciaddr}`);
  return ctx.mode === 'proxy' ? decideProxy(msg, type, cls, ctx) : decideServer(msg, type, cls, ctx);
}

function decideProxy(msg: DhcpMessage, type: number, cls: ClientClass, ctx: PolicyContext): Decision {
  // PXE 2.1 §2.2: a proxyDHCP server answers PXEClient DISCOVERs on 67 and REQUESTs on 4011
  if (!cls.isPxe && !cls.isHttpClient) return ignore('not-pxe');
  if (ctx.via === 'dhcp' && type !== MessageType.DISCOVER) return ignore('proxy-not-discover');
  if (ctx.via === 'proxy' && type !== MessageType.REQUEST && type !== MessageType.INFORM) return ignore('unknown-type', `type ${type} on the boot-server port`);
  const isDiscover = type === MessageType.DISCOVER;
  const b = bootFor(msg, cls, ctx, isDiscover);
  if (!b.boot) return ignore(b.skipped ?? 'no-loader', undefined, b.side);
  if (isDiscover) {
    // BIOS PXE gets the loader straight from the offer (discovery control 8); a UEFI
    // proxy offer carries no option 43, so EDK2 asks us again on 4011 (BINL).
    if (cls.firmware === 'bios' || cls.isIpxe) noteAck(ctx, msg, cls, b.boot);
    return { kind: 'reply', event: 'proxy.offer', reply: buildProxyOffer(msg, ctx.lan.address, b.boot), to: destFor(msg, ctx), boot: b.boot, side: b.side };
  }
  noteAck(ctx, msg, cls, b.boot);
  return { kind: 'reply', event: 'proxy.ack', reply: buildProxyAck(msg, ctx.lan.address, b.boot), to: { ...ctx.src }, boot: b.boot, side: b.side };
}

function decideServer(msg: DhcpMessage, type: number, cls: ClientClass, ctx: PolicyContext): Decision {
  const { leases, lan } = ctx;
  const mac = cls.mac;
  const serverId = msg.options.ip(Opt.ServerIdentifier);
  const requested = msg.options.ip(Opt.RequestedIpAddress);
  const server = serverParams(ctx);
  const hostname = msg.options.str(Opt.HostName) || undefined;
  switch (type) {
    case MessageType.DISCOVER: {
      const ip = leases.offer(mac, requested);
      if (!ip) return ignore('pool-exhausted', undefined, [{ type: 'dhcp.pool-exhausted', range: [...ctx.dhcp.range] }]);
      const b = bootFor(msg, cls, ctx, true);
      const reply = buildOffer(msg, { yiaddr: ip, server, boot: b.boot });
      return { kind: 'reply', event: 'dhcp.offer', reply, to: destFor(msg, ctx), ip, boot: b.boot, side: b.side };
    }
    case MessageType.REQUEST: {
      let ip: string | undefined;
      if (serverId !== undefined) {
        // SELECTING (RFC 2131 §4.3.2)
        if (serverId !== lan.address) {
          leases.unhold(mac); // RFC 2131 §4.3.2: the client chose another server's offer
          return ignore('other-server', `server id ${serverId}`);
        }
        // option 50 is a MUST here, but some clients (the dhcp npm package) leave it
        // out: then they mean the address we offered them
        ip = requested ?? leases.offeredTo(mac);
        if (!ip) return ignore('no-requested-ip');
      } else if (msg.ciaddr === ZERO) {
        // INIT-REBOOT. Without option 50 this is no valid state at all, but the dhcp
        // npm package's client sends exactly that after our OFFER: answer it only
        // when we have just offered this client an address.
        if (!requested) {
          ip = leases.offeredTo(mac, false);
          if (!ip) return ignore('no-requested-ip');
        } else {
          if (!inSubnet(requested, lan.address, lan.prefix)) return nak(msg, ctx, `${requested} is not on this network`);
          ip = requested;
        }
      } else {
        // RENEWING (unicast) / REBINDING (broadcast)
        ip = msg.ciaddr;
      }
      if (!leases.canAssign(mac, ip)) return nak(msg, ctx, `${ip} is not yours`);
      const b = bootFor(msg, cls, ctx, false);
      noteAck(ctx, msg, cls, b.boot);
      const reply = buildAck(msg, { yiaddr: ip, server, boot: b.boot });
      return { kind: 'reply', event: 'dhcp.ack', reply, to: destFor(msg, ctx), ip, boot: b.boot, commit: { ip, hostname, uuid: cls.uuid }, side: b.side };
    }
    case MessageType.DECLINE: {
      if (serverId !== undefined && serverId !== lan.address) return ignore('other-server', `server id ${serverId}`);
      if (!requested) return ignore('no-requested-ip');
      // only an address we gave this client (a DECLINE cannot take arbitrary addresses out of the pool)
      if (leases.offeredTo(mac) !== requested && leases.get(mac)?.ip !== requested) return ignore('not-our-lease');
      return { kind: 'decline', ip: requested, side: [] };
    }
    case MessageType.RELEASE: {
      if (serverId !== undefined && serverId !== lan.address) return ignore('other-server', `server id ${serverId}`);
      if (msg.ciaddr === ZERO) return ignore('no-requested-ip');
      if (leases.get(mac)?.ip !== msg.ciaddr) return ignore('not-our-lease');
      return { kind: 'release', ip: msg.ciaddr, side: [] };
    }
    case MessageType.INFORM: {
      // RFC 2131 §4.3.5: configuration only, no lease, no yiaddr
      const b = bootFor(msg, cls, ctx, false);
      const reply = buildInformAck(msg, { server, boot: b.boot });
      return { kind: 'reply', event: 'dhcp.inform', reply, to: destFor(msg, ctx), ip: msg.ciaddr, boot: b.boot, side: b.side };
    }
    default:
      return ignore('unknown-type', `type ${type}`);
  }
}

function nak(msg: DhcpMessage, ctx: PolicyContext, why: string): Decision {
  return { kind: 'reply', event: 'dhcp.nak', reply: buildNak(msg, ctx.lan.address, why), to: destFor(msg, ctx, true), note: why, side: [] };
}

