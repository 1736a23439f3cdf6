/**
 * A client's record as the tracker keeps it, and as `explain` and the subscribers read it:
 * the published ClientState (contract: MQTT …/clients/<mac>, /api/clients, relayctl), the
 * recent history and why it failed. Updates carry a `kind`, the one rule every subscriber
 * throttles on (agent/clients/throttle.ts).
 */
import { CLIENT_PHASES, type ArchKey, type ClientFailedEvent, type ClientPhase, type FailKind, type Firmware } from '../../proto/events';
import { normalizeMac } from '../../proto/mac';
import type { NicInfo } from '../../proto/dhcp/nic';
import type { RefusedLoader } from './secureboot';

export interface PhaseTiming {
  startedAt: string;
  endedAt?: string;
}

export interface ClientState {
  mac: string;
  ip: string | null;
  /** its IPv6 address (DHCPv6 lease, or the address it fetched files from); absent when none is known */
  ip6?: string;
  arch: ArchKey | null;
  /** the firmware that started this boot (bios, uefi, uefi-http, ipxe for an iPXE ROM) */
  firmware: Firmware | null;
  profile: string | null;
  phase: ClientPhase;
  /** the file being (or last) transferred */
  file: string | null;
  bytes: number;
  totalBytes: number | null;
  /** when this boot started (the first DHCP of it) */
  startedAt: string;
  updatedAt: string;
  error: string | null;
  phases: Partial<Record<ClientPhase, PhaseTiming>>;
  etaSeconds?: number;
  /** bytes per second of the current transfer */
  rate?: number;
  /** the phase the client was in when it failed */
  failedPhase?: ClientPhase;
  /** the boot file the last ACK named */
  bootFile?: string;
  /** what the booted system reported on /booted (secureboot=0|1) */
  secureBoot?: boolean;
  /** the other fields of the /booted report */
  report?: Record<string, string>;
  /** the NIC iPXE booted from (DHCP option 175.177) */
  nic?: NicInfo;
  /** a non-zero SMBIOS UUID from DHCP option 97 */
  uuid?: string;
}

export interface HistoryItem {
  at: number;
  type: string;
  file?: string;
  detail?: string;
}

/** What explain reads: the state, what happened last, why it failed. */
export interface ClientRecord {
  s: ClientState;
  history: HistoryItem[];
  failKind?: FailKind;
  /** the last Secure Boot refusal diagnosed (explain's hint) */
  refused?: RefusedLoader;
}

/**
 * One change of a client's state. `phase`: anything but the byte count moved (a new phase,
 * file, error, address, profile): subscribers pass it on at once. `progress`: only the bytes
 * (rate, eta) moved: subscribers may drop all but the latest within their interval.
 */
export type UpdateKind = 'phase' | 'progress';

export interface ClientUpdate {
  state: ClientState;
  kind: UpdateKind;
  /** set on the update that entered `failed` (derived by the tracker, published by the agent) */
  failed?: ClientFailedEvent;
}

/** What a client is doing, as opposed to how far along it is (bytes, rate, eta). */
const MOVES = ['phase', 'ip', 'ip6', 'arch', 'firmware', 'profile', 'file', 'error'] as const;

/**
 * The one definition of "only the bytes moved": `progress` when nothing but the byte count
 * (and rate, eta) differs from `prev`, else `phase`. The tracker labels its updates with it;
 * a publisher handed bare states uses it against the last state it sent.
 */
export function updateKind(prev: Partial<ClientState> | undefined, next: Partial<ClientState>): UpdateKind {
  if (!prev) return 'phase';
  return MOVES.every((k) => (prev[k] ?? null) === (next[k] ?? null)) ? 'progress' : 'phase';
}

const PHASES = new Set<ClientPhase>([...CLIENT_PHASES, 'failed']);

/** A state saved by an earlier run (stateDir/clients.jsonl, clients/store.ts), checked; undefined when malformed. */
export function restoredState(raw: unknown): ClientState | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const st = raw as ClientState;
  const mac = typeof st.mac === 'string' ? normalizeMac(st.mac) : undefined;
  if (!mac || !PHASES.has(st.phase)) return undefined;
  if (typeof st.startedAt !== 'string' || typeof st.updatedAt !== 'string') return undefined;
  const phases: ClientState['phases'] = {};
  for (const [k, v] of Object.entries(st.phases ?? {})) if (v && typeof v.startedAt === 'string') phases[k as ClientPhase] = { ...v };
  return { ...st, mac, phases, etaSeconds: undefined, rate: undefined };
}
