/**
 * The relay's events: what the services saw, one object per fact.
 * Services emit them; agent/clients/tracker turns them into client phases;
 * they also go out on MQTT `…/events`, `/api/events` and `relayctl watch`.
 */

export const CLIENT_PHASES = ['dhcp', 'bound', 'loader', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted'] as const;
export type ClientPhase = (typeof CLIENT_PHASES)[number] | 'failed';

/** What kind of program is talking to us (from options 60, 77, 93, 175). */
export type Firmware = 'bios' | 'uefi' | 'uefi-http' | 'ipxe' | 'other';

/** Loader keys of `boot.loaders`: one per architecture family. */
export type ArchKey = 'bios' | 'uefi-ia32' | 'uefi-x64' | 'uefi-arm32' | 'uefi-arm64' | 'uefi-riscv64' | 'unknown';

export type RelayEventType =
  | 'dhcp.discover'
  | 'dhcp.offer'
  | 'dhcp.request'
  | 'dhcp.ack'
  | 'dhcp.nak'
  | 'dhcp.decline'
  | 'dhcp.release'
  | 'dhcp.inform'
  | 'dhcp.ignored'
  | 'dhcp.no-loader'
  | 'dhcp.pool-exhausted'
  | 'dhcp.loader-fallback'
  | 'dhcp6.solicit'
  | 'dhcp6.advertise'
  | 'dhcp6.request'
  | 'dhcp6.confirm'
  | 'dhcp6.renew'
  | 'dhcp6.rebind'
  | 'dhcp6.reply'
  | 'dhcp6.release'
  | 'dhcp6.decline'
  | 'dhcp6.inform'
  | 'dhcp6.ignored'
  | 'dhcp6.no-loader'
  | 'dhcp6.pool-exhausted'
  | 'proxy.offer'
  | 'proxy.ack'
  | 'tftp.start'
  | 'tftp.progress'
  | 'tftp.done'
  | 'tftp.error'
  | 'http.start'
  | 'http.progress'
  | 'http.done'
  | 'http.error'
  | 'cache.hit'
  | 'cache.miss'
  | 'cache.stale'
  | 'cache.error'
  | 'client.booted'
  | 'client.failed'
  | 'uplink.up'
  | 'uplink.down';

export interface RelayEvent {
  /** ISO-8601 time. */
  ts: string;
  type: RelayEventType;
  /** Client MAC (lower case, colons) when the event concerns one client. */
  mac?: string;
  ip?: string;
  /** the client's IPv6 address (dhcp6.* events; TFTP/HTTP over IPv6) */
  ip6?: string;
  /** DHCP transaction id as 0x-hex. */
  xid?: string;
  arch?: ArchKey;
  firmware?: Firmware;
  /** Boot file path relative to upstream.url (or the HTTP path such as /boot.ipxe). */
  file?: string;
  /** What this file is in the boot: loader, script, kernel, initrd, other. */
  role?: FileRole;
  bytes?: number;
  totalBytes?: number;
  profile?: string;
  reason?: string;
  error?: string;
  [extra: string]: unknown;
}

export type FileRole = 'loader' | 'script' | 'kernel' | 'initrd' | 'other';

export type EmitFn = (ev: Omit<RelayEvent, 'ts'> & { ts?: string }) => void;

export function makeEvent(ev: Omit<RelayEvent, 'ts'> & { ts?: string }): RelayEvent {
  return { ts: ev.ts ?? new Date().toISOString(), ...ev } as RelayEvent;
}
