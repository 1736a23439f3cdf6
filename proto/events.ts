/**
 * The relay's events: what the services saw, one object per fact.
 * Services emit them; the agent's client tracker turns them into client phases;
 * they also go out on MQTT `…/events`, `/api/events` and `relayctl watch`.
 *
 * `RelayEvent` is a discriminated union keyed by `type`: each event says exactly
 * which fields it carries, and every `reason` is a closed set the consumers can
 * `switch` over. Free text (for people, the log, the dashboard) goes in `error`
 * or `detail`, never in `reason`.
 */

import type { NicInfo } from './dhcp/nic';

export const CLIENT_PHASES = ['dhcp', 'bound', 'loader', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted'] as const;
export type ClientPhase = (typeof CLIENT_PHASES)[number] | 'failed';

/** What kind of program is talking to us (from options 60, 77, 93, 175). */
export type Firmware = 'bios' | 'uefi' | 'uefi-http' | 'ipxe' | 'other';

/** Loader keys of `boot.loaders`: one per architecture family. */
export type ArchKey = 'bios' | 'uefi-ia32' | 'uefi-x64' | 'uefi-arm32' | 'uefi-arm64' | 'uefi-riscv64' | 'unknown';

/** What a file is in the boot. */
export type FileRole = 'loader' | 'script' | 'kernel' | 'initrd' | 'other';

/** Why a TFTP transfer failed (relay/tftp). A client's own ERROR (tsize probe, iPXE closing) is `aborted`. */
export type TftpFailure = 'not-found' | 'refused' | 'upstream-error' | 'timeout' | 'aborted';

/** Why an HTTP transfer failed (relay/http). `aborted`: the client closed the connection. */
export type HttpFailure = 'not-found' | 'refused' | 'upstream-error' | 'no-profile' | 'aborted';

/** Why the DHCP policy did not answer (relay/dhcp/policy; metric bootrelay_dhcp_ignored_total{reason}). */
export type DhcpIgnoreReason =
  | 'not-request' // a BOOTREPLY
  | 'bootp' // no option 53
  | 'outside-lan' // giaddr/ciaddr outside lan.address/prefix
  | 'other-server' // REQUEST naming another server (RFC 2131 §4.3.2)
  | 'pool-exhausted'
  | 'not-pxe' // proxy mode: not a PXE client
  | 'no-loader' // proxy mode: nothing to boot for this client
  | 'booted-once' // proxy mode: netboot-once and it already booted
  | 'proxy-not-discover' // proxy mode, port 67: only DISCOVERs are answered
  | 'unknown-type'
  | 'no-requested-ip'
  | 'not-our-lease'
  | 'unknown-client' // dhcp.knownClientsOnly: a MAC not named in the config gets no boot
  | 'no-mac'; // hlen 0: nothing to key a lease or a boot on

/** Why a cache fill or check failed (relay/cache; metric bootrelay_cache_errors_total{reason} spells disk full `disk-full`). */
export type CacheErrorReason = 'integrity' | 'upstream' | 'disk full' | 'verify' | 'index-save';

/** Why the tracker failed a client (client.failed `reason`; agent/clients). */
export type FailKind =
  | 'no-loader'
  | 'pool'
  | 'wrong-arch'
  | 'transfer'
  | 'stall'
  | 'no-request-tftp'
  | 'no-request-http'
  | 'no-request-script'
  | 'unknown-client'
  | 'secure-boot' // a UEFI loader fetched completely, then not run (agent/clients/secureboot.ts)
  | 'needs-ipxe' // an iPXE-script profile for a client on the Secure Boot chain
  | 'kernel-refused' // GRUB could not load the kernel (Secure Boot: not signed for this shim)
  | 'reported';

interface Base {
  /** ISO-8601 time. */
  ts: string;
  /** Client MAC (lower case, colons) when the event concerns one client. */
  mac?: string;
  ip?: string;
  /** the client's IPv6 address (dhcp6.* events; TFTP/HTTP over IPv6) */
  ip6?: string;
}

/** What every DHCP event knows about the client that sent the datagram. */
interface DhcpBase extends Base {
  /** DHCP transaction id as 0x-hex. */
  xid?: string;
  arch?: ArchKey;
  firmware?: Firmware;
}

/** A datagram the DHCP service accepted (DISCOVER, REQUEST, DECLINE, RELEASE, INFORM). */
export interface DhcpReceivedEvent extends DhcpBase {
  type: 'dhcp.discover' | 'dhcp.request' | 'dhcp.decline' | 'dhcp.release' | 'dhcp.inform';
  vendorClass?: string;
  userClass?: string;
  uuid?: string;
  archCode?: number;
  /** the NIC iPXE names in option 175.177 (bus, vendor/device ids, chip name) */
  nic?: NicInfo;
}

/** A reply the DHCP service sent. */
export interface DhcpReplyEvent extends DhcpBase {
  type: 'dhcp.offer' | 'dhcp.ack' | 'dhcp.nak' | 'proxy.offer' | 'proxy.ack';
  /** Boot file path relative to upstream.url (or /boot.ipxe). */
  file?: string;
  role?: FileRole;
  /** The boot file as a URL, when the client gets one (UEFI HTTP Boot, iPXE). */
  url?: string;
  profile?: string;
  /** why (NAKs) */
  detail?: string;
}

export interface DhcpNoLoaderEvent extends DhcpBase {
  type: 'dhcp.no-loader';
  detail: string;
}

export interface DhcpPoolExhaustedEvent extends DhcpBase {
  type: 'dhcp.pool-exhausted';
  /** dhcp.range: first and last address */
  range: [string, string];
}

/** dhcp.knownClientsOnly: a netboot client whose MAC the config does not name gets no boot file. */
export interface DhcpUnknownClientEvent extends DhcpBase {
  type: 'dhcp.unknown-client';
  detail: string;
}

export interface DhcpLoaderFallbackEvent extends DhcpBase {
  type: 'dhcp.loader-fallback';
  /** the loader offered now, and the one that did not start */
  file: string;
  from: string;
  detail: string;
}

/** Why the DHCPv6 policy did not answer (relay/dhcp6/policy; metric bootrelay_dhcp6_ignored_total{reason}). */
export type Dhcp6IgnoreReason =
  | 'not-a-request' // ADVERTISE, REPLY, RECONFIGURE, RELAY-REPL
  | 'no-client-id'
  | 'no-server-id' // REQUEST/RENEW/RELEASE/DECLINE must name a server (RFC 8415 §16)
  | 'other-server'
  | 'server-id-present' // SOLICIT/REBIND/CONFIRM must not
  | 'rapid-commit-on-proxy-port'
  | 'not-boot-service' // port 4011 answers boot-service REQUESTs only
  | 'not-a-boot-client'
  | 'stateless' // dhcp6.mode stateless: no addresses, and nothing for a non-boot client's SOLICIT
  | 'confirm-without-addresses' // RFC 8415 §18.3.3: no reply
  | 'outside-lan' // relayed from a link outside lan.address6/prefix6
  | 'unknown-type';

/** What every DHCPv6 event knows about the client. */
interface Dhcp6Base extends Base {
  /** transaction id (24 bits) as 0x-hex */
  xid?: string;
  arch?: ArchKey;
  firmware?: Firmware;
  /** the client's DUID, hex */
  duid?: string;
}

/** A message the DHCPv6 service accepted. */
export interface Dhcp6ReceivedEvent extends Dhcp6Base {
  type: 'dhcp6.solicit' | 'dhcp6.request' | 'dhcp6.confirm' | 'dhcp6.renew' | 'dhcp6.rebind' | 'dhcp6.release' | 'dhcp6.decline' | 'dhcp6.inform';
  vendorClass?: string;
  userClass?: string[];
  archCode?: number;
  /** where the MAC came from: the DUID, RFC 6939 option, neighbour table, EUI-64 of the sender */
  macFrom?: 'duid' | 'link-layer-option' | 'neighbour' | 'eui64';
}

/** A reply the DHCPv6 service sent (`ip6`: the address the client gets or keeps). */
export interface Dhcp6ReplyEvent extends Dhcp6Base {
  type: 'dhcp6.advertise' | 'dhcp6.reply';
  file?: string;
  role?: FileRole;
  /** the boot-file URL (option 59) */
  url?: string;
  /** a status other than Success the reply carried */
  status?: 'NoAddrsAvail' | 'NotOnLink';
  /** sent from the boot-service port (4011) */
  proxy?: true;
}

export interface Dhcp6NoLoaderEvent extends Dhcp6Base {
  type: 'dhcp6.no-loader';
  detail: string;
}

export interface Dhcp6PoolExhaustedEvent extends Dhcp6Base {
  type: 'dhcp6.pool-exhausted';
  /** dhcp6.range */
  range: [string, string];
}

interface TransferBase extends Base {
  /** Boot path relative to upstream.url, or /boot.ipxe. */
  file: string;
  role?: FileRole;
  totalBytes?: number;
}

export interface TftpStartEvent extends TransferBase {
  type: 'tftp.start';
  blksize?: number;
  windowsize?: number;
}
export interface TftpProgressEvent extends TransferBase {
  type: 'tftp.progress';
  bytes: number;
}
export interface TftpDoneEvent extends TransferBase {
  type: 'tftp.done';
  bytes?: number;
  ms?: number;
  blksize?: number;
  windowsize?: number;
  retransmits?: number;
  /** false: the last block was sent but never acknowledged */
  confirmed?: false;
}
export interface TftpErrorEvent extends TransferBase {
  type: 'tftp.error';
  reason: TftpFailure;
  error: string;
  bytes?: number;
  /** the TFTP error code we sent the client */
  code?: number;
}

export interface HttpStartEvent extends TransferBase {
  type: 'http.start';
  profile?: string;
  /** a Range request: `start-end/size` */
  range?: string;
}
export interface HttpProgressEvent extends TransferBase {
  type: 'http.progress';
  bytes: number;
}
export interface HttpDoneEvent extends TransferBase {
  type: 'http.done';
  bytes?: number;
  ms?: number;
  profile?: string;
}
export interface HttpErrorEvent extends TransferBase {
  type: 'http.error';
  reason: HttpFailure;
  error: string;
  bytes?: number;
  /** the HTTP status we answered */
  status?: number;
}

export interface CacheHitEvent extends Base {
  type: 'cache.hit';
  file: string;
  totalBytes: number;
}
export interface CacheMissEvent extends Base {
  type: 'cache.miss';
  file: string;
  totalBytes?: number;
  /** bypass: streamed through without caching (disk full) */
  reason?: 'bypass';
}
export interface CacheStaleEvent extends Base {
  type: 'cache.stale';
  file: string;
  detail: string;
}
export interface CacheErrorEvent extends Base {
  type: 'cache.error';
  file?: string;
  reason: CacheErrorReason;
  error?: string;
}

export interface ClientBootedEvent extends Base {
  type: 'client.booted';
  mac: string;
  /** what the booted system reported besides its MAC (/booted query fields, relay/http/report.ts) */
  report?: Record<string, string>;
  /** its `secureboot` field as sent (0|1) */
  secureboot?: string;
}
export interface ClientFailedEvent extends Base {
  type: 'client.failed';
  mac: string;
  /** the phase the client was in */
  phase?: ClientPhase;
  error: string;
  reason: FailKind;
}

export interface UplinkUpEvent extends Base {
  type: 'uplink.up';
  interface?: string;
  ssid?: string;
  address?: string;
}
export interface UplinkDownEvent extends Base {
  type: 'uplink.down';
  interface?: string;
  ssid?: string;
  address?: string;
  /** what the system said (free text: "no default route", "connecting", an upstream error) */
  reason?: string;
}

export type RelayEvent =
  | DhcpReceivedEvent
  | DhcpReplyEvent
  | DhcpNoLoaderEvent
  | DhcpPoolExhaustedEvent
  | DhcpLoaderFallbackEvent
  | DhcpUnknownClientEvent
  | Dhcp6ReceivedEvent
  | Dhcp6ReplyEvent
  | Dhcp6NoLoaderEvent
  | Dhcp6PoolExhaustedEvent
  | TftpStartEvent
  | TftpProgressEvent
  | TftpDoneEvent
  | TftpErrorEvent
  | HttpStartEvent
  | HttpProgressEvent
  | HttpDoneEvent
  | HttpErrorEvent
  | CacheHitEvent
  | CacheMissEvent
  | CacheStaleEvent
  | CacheErrorEvent
  | ClientBootedEvent
  | ClientFailedEvent
  | UplinkUpEvent
  | UplinkDownEvent;

export type RelayEventType = RelayEvent['type'];

/** The event(s) of one type (a member whose `type` is a union counts for each of its types). */
export type EventOf<T extends RelayEventType> = EventsOf<RelayEvent, T>;
type EventsOf<E, T> = E extends { type: infer K } ? ([Extract<K, T>] extends [never] ? never : E) : never;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** An event as a service hands it over: the time is filled in on the way. */
export type EventInput = DistributiveOmit<RelayEvent, 'ts'> & { ts?: string };

export type EmitFn = (ev: EventInput) => void;

export function makeEvent(ev: EventInput): RelayEvent {
  return { ts: ev.ts ?? new Date().toISOString(), ...ev } as RelayEvent;
}

/** The transfer events (TFTP or HTTP). */
export type TransferEvent = TftpStartEvent | TftpProgressEvent | TftpDoneEvent | TftpErrorEvent | HttpStartEvent | HttpProgressEvent | HttpDoneEvent | HttpErrorEvent;

export function isTransferEvent(ev: RelayEvent): ev is TransferEvent {
  return ev.type.startsWith('tftp.') || ev.type.startsWith('http.');
}

/** Byte progress: many per transfer, throttled by the emitter; no phase of its own. */
export function isProgressEvent(ev: RelayEvent): ev is TftpProgressEvent | HttpProgressEvent {
  return ev.type === 'tftp.progress' || ev.type === 'http.progress';
}

/** The DHCP service's events (dhcp.* and proxy.*): they carry the client's firmware and arch. */
export type DhcpEvent = DhcpReceivedEvent | DhcpReplyEvent | DhcpNoLoaderEvent | DhcpPoolExhaustedEvent | DhcpLoaderFallbackEvent | DhcpUnknownClientEvent;

export function isDhcpEvent(ev: RelayEvent): ev is DhcpEvent {
  return ev.type.startsWith('dhcp.') || ev.type.startsWith('proxy.');
}

/** The DHCPv6 service's events (dhcp6.*). */
export type Dhcp6Event = Dhcp6ReceivedEvent | Dhcp6ReplyEvent | Dhcp6NoLoaderEvent | Dhcp6PoolExhaustedEvent;

export function isDhcp6Event(ev: RelayEvent): ev is Dhcp6Event {
  return ev.type.startsWith('dhcp6.');
}

const REPLY_TYPES = new Set<RelayEventType>(['dhcp.offer', 'dhcp.ack', 'dhcp.nak', 'proxy.offer', 'proxy.ack']);

export function isDhcpReply(ev: RelayEvent): ev is DhcpReplyEvent {
  return REPLY_TYPES.has(ev.type);
}

/** The profile an event names (a DHCP reply, /boot.ipxe). */
export function eventProfile(ev: RelayEvent): string | undefined {
  switch (ev.type) {
    case 'dhcp.offer':
    case 'dhcp.ack':
    case 'dhcp.nak':
    case 'proxy.offer':
    case 'proxy.ack':
    case 'http.start':
    case 'http.done':
      return ev.profile || undefined;
    default:
      return undefined;
  }
}
