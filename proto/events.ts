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
  | 'reported';

interface Base {
  /** ISO-8601 time. */
  ts: string;
  /** Client MAC (lower case, colons) when the event concerns one client. */
  mac?: string;
  ip?: string;
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
