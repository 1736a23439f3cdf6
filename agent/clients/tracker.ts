/**
 * ClientTracker: turns the services' RelayEvents into one ClientState per MAC
 * with the contract's phases, in order: dhcp, bound, loader, ipxe, kernel,
 * initrd, handoff, booted (or failed, with an error a person understands).
 *
 * Services do not know phases; files are classified by the boot plan
 * (relay/boot/plan.ts) for the client's profile unless the event carries a `role`.
 * Timeouts are checked by tick(now), which the agent calls every second;
 * the clock is injected so tests script time. Byte progress is emitted on
 * 'client' at most every `progressIntervalMs` per client; phase changes and
 * failures at once.
 */
import { EventEmitter } from 'node:events';
import {
  CLIENT_PHASES,
  eventProfile,
  isDhcpEvent,
  isDhcpReply,
  type ArchKey,
  type ClientPhase,
  type DhcpReceivedEvent,
  type DhcpReplyEvent,
  type EmitFn,
  type FailKind,
  type FileRole,
  type Firmware,
  type HttpErrorEvent,
  type RelayEvent,
  type TftpErrorEvent,
  type TransferEvent,
} from '../../proto/events';
import { normalizeMac } from '../../proto/mac';
import type { ProfileConfig } from '../../relay/boot/config';
import type { BootPlan } from '../../relay/boot/plan';

export interface PhaseTiming {
  startedAt: string;
  endedAt?: string;
}

export interface ClientState {
  mac: string;
  ip: string | null;
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
}

/** What the tracker asks the boot plan (relay/boot/plan.ts). */
export type TrackerPlan = Pick<BootPlan, 'profileName' | 'profile' | 'fileRole' | 'loaderArchs' | 'on'>;

export interface ClientTrackerOptions {
  /** which profile a client boots, what a file is */
  plan: TrackerPlan;
  /** receives the `client.failed` events the tracker detects */
  emit?: EmitFn;
  now?: () => number;
  /** after an ACK naming a boot file, how long to wait for its TFTP/HTTP request (default 20 s) */
  ackTimeoutMs?: number;
  /** a transfer without progress for this long fails the client (default 60 s) */
  stallTimeoutMs?: number;
  /** at most one byte-progress emission per client per this interval (default 250 ms) */
  progressIntervalMs?: number;
  /** bound on remembered clients (oldest forgotten first; default 1024) */
  maxClients?: number;
}

interface Transfer {
  file: string;
  role: FileRole;
  proto: 'tftp' | 'http';
  bytes: number;
  total: number | null;
  startAt: number;
  lastAt: number;
}

interface HistoryItem {
  at: number;
  type: string;
  file?: string;
  detail?: string;
}

interface Internal {
  s: ClientState;
  /** an ACK named a boot file and no request followed yet */
  awaiting?: { at: number; file: string; kind: 'tftp' | 'http' | 'script' };
  transfers: Map<string, Transfer>;
  initrdsDone: Set<string>;
  lastEmit: number;
  pending: boolean;
  history: HistoryItem[];
  failKind?: FailKind;
}

const ORDER = new Map<ClientPhase, number>(CLIENT_PHASES.map((p, i) => [p, i]));
const NETBOOT_FIRMWARE = new Set<Firmware>(['bios', 'uefi', 'uefi-http', 'ipxe']);
const TRANSFER_PHASES = new Set<ClientPhase>(['loader', 'ipxe', 'kernel', 'initrd']);
const HISTORY = 40;

const ARCH_NAMES: Record<string, string> = {
  bios: 'BIOS',
  'uefi-ia32': 'UEFI x86 (32-bit)',
  'uefi-x64': 'UEFI x64',
  'uefi-arm32': 'UEFI ARM (32-bit)',
  'uefi-arm64': 'UEFI ARM64',
  'uefi-riscv64': 'UEFI RISC-V 64',
  unknown: 'unknown-architecture',
};

/** `/files/debian/vmlinuz?x`, `http://h/files/debian/vmlinuz`, `debian/vmlinuz` → `debian/vmlinuz`; `/boot.ipxe?mac=…` → `/boot.ipxe`. */
export function cleanFile(f: unknown): string | undefined {
  if (typeof f !== 'string' || f === '') return undefined;
  let p = f;
  const url = /^[a-z]+:\/\/[^/]*(\/.*)?$/i.exec(p);
  if (url) p = url[1] ?? '/';
  p = p.replace(/[?#].*$/, '').replace(/\\/g, '/');
  if (/(^|\/)boot\.ipxe$/.test(p)) return '/boot.ipxe';
  if (p.startsWith('/files/')) p = p.slice(7);
  return p.replace(/^\/+/, '');
}

function fmtBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(0)} kB`;
  return `${n} B`;
}

function agoText(ms: number): string {
  return ms < 1000 ? 'just now' : `${fmtDuration(ms)} ago`;
}

function fmtDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/**
 * What a failed transfer means for the client, in words; undefined when the client stopped it
 * itself (a PXE ROM's tsize probe sends ERROR 8 after the OACK; iPXE closes a TFTP transfer it
 * does not want), which is normal.
 */
export function transferFailure(ev: TftpErrorEvent | HttpErrorEvent, file: string, role: FileRole, mac: string): string | undefined {
  const what = role === 'script' && file !== '/boot.ipxe' ? `the iPXE script ${file}` : file;
  if (ev.type === 'tftp.error') {
    switch (ev.reason) {
      case 'aborted':
        return undefined;
      case 'not-found':
        return `upstream 404 for ${file}`;
      case 'refused':
        return `TFTP request for ${what} refused: ${ev.error}`;
      case 'timeout':
        return `the TFTP transfer of ${what} timed out: ${ev.error}`;
      case 'upstream-error':
        return `TFTP transfer of ${what} failed: ${ev.error}`;
    }
  }
  switch (ev.reason) {
    case 'no-profile':
      return `no boot profile for ${mac}: set boot.defaultProfile or use relayctl assign`;
    case 'not-found':
      return `upstream 404 for ${file}`;
    case 'refused':
    case 'upstream-error':
      return ev.status !== undefined ? `upstream ${ev.status} for ${file}` : `HTTP transfer of ${what} failed: ${ev.error}`;
    case 'aborted':
      // an HTTP client that hangs up mid-file did not get it (firmware gives up; iPXE retries as a new request)
      return `HTTP transfer of ${what} failed: ${ev.error}`;
  }
}

export class ClientTracker extends EventEmitter<{ client: [ClientState] }> {
  private readonly plan: TrackerPlan;
  private readonly clients = new Map<string, Internal>();
  private readonly now: () => number;
  private readonly ackTimeoutMs: number;
  private readonly stallTimeoutMs: number;
  private readonly progressIntervalMs: number;
  private readonly maxClients: number;
  private readonly emitEvent?: EmitFn;

  constructor(opts: ClientTrackerOptions) {
    super();
    this.plan = opts.plan;
    this.plan.on('change', (mac) => this.replan(mac));
    this.now = opts.now ?? Date.now;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 20_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 60_000;
    this.progressIntervalMs = opts.progressIntervalMs ?? 250;
    this.maxClients = opts.maxClients ?? 1024;
    this.emitEvent = opts.emit;
  }

  list(): ClientState[] {
    return [...this.clients.values()].map((c) => this.snapshot(c));
  }

  get(mac: string): ClientState | undefined {
    const c = this.clients.get(normalizeMac(mac) ?? mac);
    return c ? this.snapshot(c) : undefined;
  }

  /**
   * Client states saved by an earlier run of the agent (stateDir/clients.json): they come
   * back as they were, without transfers in flight, so the retained MQTT state and the
   * dashboard stay right across a restart. Known clients are kept; malformed entries skipped.
   */
  restore(states: unknown): number {
    if (!Array.isArray(states)) return 0;
    let n = 0;
    for (const raw of states) {
      if (!raw || typeof raw !== 'object') continue;
      const st = raw as ClientState;
      const mac = typeof st.mac === 'string' ? normalizeMac(st.mac) : undefined;
      if (!mac || this.clients.has(mac) || this.clients.size >= this.maxClients) continue;
      if (st.phase !== 'failed' && !ORDER.has(st.phase)) continue;
      if (typeof st.startedAt !== 'string' || typeof st.updatedAt !== 'string') continue;
      const phases: ClientState['phases'] = {};
      for (const [k, v] of Object.entries(st.phases ?? {})) if (v && typeof v.startedAt === 'string') phases[k as ClientPhase] = { ...v };
      this.clients.set(mac, {
        s: { ...st, mac, phases, etaSeconds: undefined, rate: undefined },
        transfers: new Map(),
        initrdsDone: new Set(),
        lastEmit: 0,
        pending: false,
        history: [],
      });
      n++;
    }
    return n;
  }

  /** Forgets a client (its next DHCP starts afresh). */
  forget(mac: string): boolean {
    return this.clients.delete(normalizeMac(mac) ?? mac);
  }

  /** The plan changed (a reload, an assignment): the profile of the client(s) concerned follows it. */
  private replan(mac: string | undefined): void {
    const list = mac ? [this.clients.get(mac)].filter((c): c is Internal => !!c) : [...this.clients.values()];
    for (const c of list) {
      const name = this.plan.profileName(c.s.mac) ?? null;
      if (c.s.profile === name) continue;
      c.s.profile = name;
      this.changed(c, true);
    }
  }

  private profileName(mac: string, ev?: RelayEvent): string | null {
    return (ev && eventProfile(ev)) ?? this.plan.profileName(mac) ?? null;
  }

  private profileOf(c: Internal): ProfileConfig | undefined {
    return this.plan.profile(c.s.profile);
  }

  /** What a file is in the boot of this client: the event's role, else the plan's answer for the client's profile. */
  private classify(file: string, c: Internal, role: FileRole | undefined): FileRole {
    return role && role !== 'other' ? role : this.plan.fileRole(file, c.s.profile);
  }

  // ------------------------------------------------------------ events

  /** Applies one event; returns the client's new state when it changed. */
  apply(ev: RelayEvent): ClientState | undefined {
    const t = this.now();
    let mac = typeof ev.mac === 'string' ? (normalizeMac(ev.mac) ?? ev.mac) : undefined;
    if (!mac && typeof ev.ip === 'string') mac = this.macForIp(ev.ip);
    if (!mac) return undefined;
    const type = ev.type;
    const dhcp = isDhcpEvent(ev) ? ev : undefined;
    const fw = dhcp?.firmware;
    const evArch = dhcp?.arch;

    let c = this.clients.get(mac);
    const created = !c;
    const isDhcp = type.startsWith('dhcp.') || type.startsWith('proxy.');
    if (!c) {
      // only netboot clients start a record: a phone's DHCP is not a boot
      const starts =
        (isDhcp && fw !== undefined && NETBOOT_FIRMWARE.has(fw)) ||
        type === 'tftp.start' ||
        type === 'http.start' ||
        type === 'client.booted' ||
        type === 'client.failed' ||
        type === 'dhcp.no-loader' ||
        type === 'dhcp.unknown-client' ||
        (isDhcp && fw === undefined && evArch !== undefined && evArch !== 'unknown');
      if (!starts) return undefined;
      c = this.create(mac, ev, t);
    }
    const s = c.s;
    const before = { phase: s.phase, ip: s.ip, arch: s.arch, firmware: s.firmware, profile: s.profile, file: s.file, error: s.error, bytes: s.bytes, total: s.totalBytes };
    this.remember(c, ev, t);

    if (typeof ev.ip === 'string' && ev.ip !== '0.0.0.0' && (type === 'dhcp.ack' || type === 'proxy.ack' || !s.ip || type.startsWith('tftp.') || type.startsWith('http.'))) s.ip = ev.ip;
    if (evArch && evArch !== 'unknown' && (s.arch === null || s.arch === 'unknown')) s.arch = evArch;
    const named = eventProfile(ev);
    if (named) s.profile = named;

    let progressOnly = false;
    switch (ev.type) {
      case 'dhcp.discover':
      case 'dhcp.request':
      case 'proxy.offer':
      case 'proxy.ack':
      case 'dhcp.offer':
      case 'dhcp.ack':
      case 'dhcp.inform':
        this.onDhcp(c, ev, t);
        break;
      case 'dhcp.no-loader': {
        const arch = ev.arch ?? s.arch ?? 'unknown';
        this.fail(c, t, `no loader configured for arch ${arch}`, 'no-loader');
        break;
      }
      case 'dhcp.unknown-client':
        this.fail(c, t, 'not a known client: dhcp.knownClientsOnly is on and this MAC is not in dhcp.static, boot.assign or a boot.match mac rule', 'unknown-client');
        break;
      case 'dhcp.pool-exhausted':
        this.fail(c, t, `the DHCP pool is exhausted (range ${ev.range.join('–')}): no address left for this client`, 'pool');
        break;
      case 'tftp.start':
      case 'http.start':
        this.onStart(c, ev, t);
        break;
      case 'tftp.progress':
      case 'http.progress':
        progressOnly = this.onProgress(c, ev, t);
        break;
      case 'tftp.done':
      case 'http.done':
        this.onDone(c, ev, t);
        break;
      case 'tftp.error':
      case 'http.error':
        this.onError(c, ev, t);
        break;
      case 'client.booted':
        c.awaiting = undefined;
        c.transfers.clear();
        this.enter(c, 'booted', t);
        s.error = null;
        break;
      case 'client.failed':
        if (s.phase !== 'failed') this.fail(c, t, ev.error || 'failed', 'reported', false);
        break;
      default:
        break;
    }

    const changed =
      created ||
      before.phase !== s.phase ||
      before.ip !== s.ip ||
      before.arch !== s.arch ||
      before.firmware !== s.firmware ||
      before.profile !== s.profile ||
      before.file !== s.file ||
      before.error !== s.error ||
      before.bytes !== s.bytes ||
      before.total !== s.totalBytes;
    if (!changed) return undefined;
    s.updatedAt = new Date(t).toISOString();
    const onlyBytes = progressOnly && before.phase === s.phase && before.file === s.file && before.error === s.error;
    this.changed(c, !onlyBytes);
    return this.snapshot(c);
  }

  /** The MAC of the client last seen at this address. */
  macForIp(ip: string): string | undefined {
    let best: Internal | undefined;
    for (const c of this.clients.values()) if (c.s.ip === ip && (!best || c.s.updatedAt > best.s.updatedAt)) best = c;
    return best?.s.mac;
  }

  private create(mac: string, ev: RelayEvent, t: number): Internal {
    const d = isDhcpEvent(ev) ? ev : undefined;
    if (this.clients.size >= this.maxClients) {
      let oldest: Internal | undefined;
      for (const c of this.clients.values()) if (!oldest || c.s.updatedAt < oldest.s.updatedAt) oldest = c;
      if (oldest) this.clients.delete(oldest.s.mac);
    }
    const iso = new Date(t).toISOString();
    const c: Internal = {
      s: {
        mac,
        ip: null,
        arch: d?.arch && d.arch !== 'unknown' ? d.arch : null,
        firmware: d?.firmware ?? null,
        profile: this.profileName(mac, ev),
        phase: 'dhcp',
        file: null,
        bytes: 0,
        totalBytes: null,
        startedAt: iso,
        updatedAt: iso,
        error: null,
        phases: { dhcp: { startedAt: iso } },
      },
      transfers: new Map(),
      initrdsDone: new Set(),
      lastEmit: 0,
      pending: false,
      history: [],
    };
    this.clients.set(mac, c);
    return c;
  }

  /** A new boot of a known client: everything but the identity starts again. */
  private restart(c: Internal, ev: RelayEvent, t: number): void {
    const d = isDhcpEvent(ev) ? ev : undefined;
    const iso = new Date(t).toISOString();
    const s = c.s;
    s.phase = 'dhcp';
    s.phases = { dhcp: { startedAt: iso } };
    s.startedAt = iso;
    s.error = null;
    s.file = null;
    s.bytes = 0;
    s.totalBytes = null;
    delete s.etaSeconds;
    delete s.rate;
    delete s.failedPhase;
    delete s.bootFile;
    s.firmware = d?.firmware ?? s.firmware;
    if (d?.arch && d.arch !== 'unknown') s.arch = d.arch;
    s.profile = this.profileName(s.mac, ev);
    c.awaiting = undefined;
    c.transfers.clear();
    c.initrdsDone.clear();
    c.failKind = undefined;
  }

  private remember(c: Internal, ev: RelayEvent, t: number): void {
    if (ev.type.endsWith('.progress')) return;
    const f = ev as Partial<Record<'reason' | 'error' | 'detail' | 'firmware' | 'arch' | 'file', unknown>>;
    const detail = [f.reason, f.error, f.detail, f.firmware, f.arch].filter((x) => typeof x === 'string' && x).join(', ');
    c.history.push({ at: t, type: ev.type, ...(typeof f.file === 'string' ? { file: f.file } : {}), ...(detail ? { detail } : {}) });
    if (c.history.length > HISTORY) c.history.splice(0, c.history.length - HISTORY);
  }

  private enter(c: Internal, phase: ClientPhase, t: number): void {
    const s = c.s;
    if (s.phase === phase) return;
    const iso = new Date(t).toISOString();
    const cur = s.phases[s.phase];
    if (cur && !cur.endedAt) cur.endedAt = iso;
    s.phase = phase;
    s.phases[phase] = { startedAt: iso };
    if (phase === 'booted') s.phases.booted!.endedAt = iso;
  }

  /** Moves forward only (a failed client may resume on new activity). */
  private advance(c: Internal, phase: ClientPhase, t: number): boolean {
    const s = c.s;
    if (s.phase === 'failed') {
      s.error = null;
      delete s.failedPhase;
      c.failKind = undefined;
      this.enter(c, phase, t);
      return true;
    }
    if ((ORDER.get(phase) ?? -1) > (ORDER.get(s.phase) ?? -1)) {
      this.enter(c, phase, t);
      return true;
    }
    return false;
  }

  private fail(c: Internal, t: number, error: string, kind: FailKind, announce = true): void {
    const s = c.s;
    if (s.phase !== 'failed') s.failedPhase = s.phase;
    c.failKind = kind;
    c.awaiting = undefined;
    this.enter(c, 'failed', t);
    s.error = error;
    delete s.etaSeconds;
    if (announce && this.emitEvent) {
      try {
        this.emitEvent({ type: 'client.failed', mac: s.mac, ...(s.ip ? { ip: s.ip } : {}), phase: s.failedPhase, error, reason: kind, ts: new Date(t).toISOString() });
      } catch {
        // the emitter's problem; the state is still right
      }
    }
  }

  private onDhcp(c: Internal, ev: DhcpReceivedEvent | DhcpReplyEvent, t: number): void {
    const s = c.s;
    const fw = ev.firmware;
    const type = ev.type;
    const starting = type === 'dhcp.discover' || type === 'proxy.offer' || type === 'dhcp.request';
    if (fw === 'ipxe') {
      if (s.firmware !== 'ipxe' && (s.phase === 'bound' || s.phase === 'loader')) {
        // the loader is running: iPXE asks for its own address
        c.awaiting = undefined;
        this.advance(c, 'ipxe', t);
      } else if (starting && type !== 'dhcp.request' && ['kernel', 'initrd', 'handoff', 'booted', 'failed'].includes(s.phase)) {
        this.restart(c, ev, t);
      }
    } else if (fw !== undefined && NETBOOT_FIRMWARE.has(fw)) {
      if (type === 'dhcp.discover' || type === 'proxy.offer') {
        if (s.phase !== 'dhcp' || s.firmware !== fw) this.restart(c, ev, t);
      } else if (type === 'dhcp.request' && ['handoff', 'booted', 'failed'].includes(s.phase)) this.restart(c, ev, t);
    } else if (fw === 'other' && (s.phase === 'handoff' || s.phase === 'booted')) {
      return; // the booted OS's own DHCP: the ip was taken above
    }
    if (s.firmware === null && fw) s.firmware = fw;

    const reply = isDhcpReply(ev) ? ev : undefined;
    const file = cleanFile(reply?.file);
    const url = reply?.url ?? reply?.file;
    if (type === 'dhcp.offer' || type === 'dhcp.ack' || type === 'proxy.offer' || type === 'proxy.ack') {
      if (file) {
        const wrong = this.wrongArch(c, file);
        if (wrong) {
          this.fail(c, t, wrong, 'wrong-arch');
          return;
        }
      }
    }
    if (type === 'dhcp.ack' || type === 'proxy.ack' || type === 'proxy.offer') {
      if (s.phase === 'dhcp') this.advance(c, 'bound', t);
      if (file && s.phase !== 'failed') {
        s.bootFile = file;
        const isUrl = typeof url === 'string' && /^https?:\/\//i.test(url);
        const kind = file === '/boot.ipxe' ? 'script' : isUrl ? 'http' : 'tftp';
        if (!(kind === 'script' && ORDER.get(s.phase)! > ORDER.get('ipxe')!)) c.awaiting = { at: t, file, kind };
      }
    }
  }

  private wrongArch(c: Internal, file: string): string | undefined {
    const arch = c.s.arch;
    if (!arch || arch === 'unknown') return undefined;
    const archs = this.plan.loaderArchs(file);
    if (!archs || archs.includes(arch)) return undefined;
    return `a ${ARCH_NAMES[arch] ?? arch} client was offered the ${archs.join('/')} loader ${file}, which it cannot run`;
  }

  private onStart(c: Internal, ev: TransferEvent, t: number): void {
    const s = c.s;
    const file = cleanFile(ev.file);
    if (!file) return;
    const role = this.classify(file, c, ev.role);
    const proto = ev.type.startsWith('tftp') ? 'tftp' : 'http';
    c.awaiting = undefined; // the client is alive and asking
    if (role === 'loader') {
      const wrong = this.wrongArch(c, file);
      if (wrong) {
        this.fail(c, t, wrong.replace('was offered', 'loaded'), 'wrong-arch');
        return;
      }
    }
    const total = typeof ev.totalBytes === 'number' ? ev.totalBytes : null;
    c.transfers.set(file, { file, role, proto, bytes: 0, total, startAt: t, lastAt: t });
    let target: ClientPhase | undefined;
    if (role === 'loader') target = 'loader';
    else if (role === 'script') target = 'ipxe';
    else if (role === 'kernel') target = 'kernel';
    else if (role === 'initrd') target = 'initrd';
    if (target) {
      // a loader fetched after the last boot ended is a new boot whose DHCP we did not see (proxy mode, agent restart)
      if (role === 'loader' && (s.phase === 'handoff' || s.phase === 'booted')) this.restart(c, ev, t);
      this.advance(c, target, t);
      if (s.phase === target) {
        s.file = file;
        s.bytes = 0;
        s.totalBytes = total;
        delete s.etaSeconds;
        delete s.rate;
      }
    }
  }

  private onProgress(c: Internal, ev: Extract<TransferEvent, { type: 'tftp.progress' | 'http.progress' }>, t: number): boolean {
    const s = c.s;
    const file = cleanFile(ev.file);
    if (!file) return false;
    let tr = c.transfers.get(file);
    if (!tr) {
      // a progress without a start (agent restarted mid-transfer): adopt it
      this.onStart(c, ev, t);
      tr = c.transfers.get(file);
      if (!tr) return false;
    }
    if (typeof ev.bytes === 'number') tr.bytes = ev.bytes;
    if (typeof ev.totalBytes === 'number') tr.total = ev.totalBytes;
    tr.lastAt = t;
    if (s.file === file && s.phase !== 'failed') {
      s.bytes = tr.bytes;
      s.totalBytes = tr.total;
      const secs = (t - tr.startAt) / 1000;
      if (secs >= 0.2 && tr.bytes > 0) {
        s.rate = Math.round(tr.bytes / secs);
        if (tr.total !== null && tr.total >= tr.bytes) s.etaSeconds = Math.ceil((tr.total - tr.bytes) / s.rate);
      }
      return true;
    }
    return false;
  }

  private onDone(c: Internal, ev: Extract<TransferEvent, { type: 'tftp.done' | 'http.done' }>, t: number): void {
    const s = c.s;
    const file = cleanFile(ev.file);
    if (!file) return;
    const tr = c.transfers.get(file);
    c.transfers.delete(file);
    const role = tr?.role ?? this.classify(file, c, ev.role);
    if (s.file === file) {
      const bytes = typeof ev.bytes === 'number' ? ev.bytes : (tr?.total ?? tr?.bytes ?? s.bytes);
      s.bytes = bytes;
      if (typeof ev.totalBytes === 'number') s.totalBytes = ev.totalBytes;
      else if (s.totalBytes === null) s.totalBytes = bytes;
      s.etaSeconds = 0;
    }
    if (s.phase === 'failed' || s.phase === 'booted') return;
    if (role === 'initrd') {
      c.initrdsDone.add(file);
      const want = this.profileOf(c)?.initrd ?? [];
      const allDone = want.includes(file) ? want.every((f) => c.initrdsDone.has(f)) : true;
      const moreRunning = [...c.transfers.values()].some((x) => x.role === 'initrd' || x.role === 'kernel');
      if (allDone && !moreRunning) this.advance(c, 'handoff', t);
    } else if (role === 'kernel') {
      const p = this.profileOf(c);
      if (p && p.kernel === file && (!p.initrd || p.initrd.length === 0)) this.advance(c, 'handoff', t);
    }
  }

  private onError(c: Internal, ev: TftpErrorEvent | HttpErrorEvent, t: number): void {
    c.awaiting = undefined; // the client did ask
    const file = cleanFile(ev.file);
    if (!file) return;
    c.transfers.delete(file);
    const role = this.classify(file, c, ev.role);
    const msg = transferFailure(ev, file, role, c.s.mac);
    if (msg === undefined) return; // the client stopped the transfer itself
    if (role === 'other') return; // iPXE probing autoexec.ipxe and the like
    if (c.s.phase === 'booted') return;
    this.fail(c, t, msg, 'transfer');
  }

  // ------------------------------------------------------------ time

  /** Checks timeouts and flushes throttled progress. The agent calls it every second. */
  tick(now = this.now()): ClientState[] {
    const out: ClientState[] = [];
    for (const c of this.clients.values()) {
      const s = c.s;
      let failed = false;
      if (c.awaiting && now - c.awaiting.at >= this.ackTimeoutMs && s.phase !== 'failed') {
        const secs = Math.round(this.ackTimeoutMs / 1000);
        const a = c.awaiting;
        const msg =
          a.kind === 'tftp'
            ? `no TFTP request within ${secs} s of the ACK: the firmware rejected the offer`
            : a.kind === 'http'
              ? `no HTTP request for ${a.file} within ${secs} s of the ACK: the firmware rejected the offer`
              : `no HTTP request for /boot.ipxe within ${secs} s of the ACK: iPXE could not fetch its script`;
        this.fail(c, now, msg, `no-request-${a.kind}`);
        failed = true;
      } else if (TRANSFER_PHASES.has(s.phase)) {
        for (const tr of c.transfers.values()) {
          if (now - tr.lastAt >= this.stallTimeoutMs) {
            const secs = Math.round(this.stallTimeoutMs / 1000);
            const got = tr.total ? `${fmtBytes(tr.bytes)} of ${fmtBytes(tr.total)}` : fmtBytes(tr.bytes);
            c.transfers.delete(tr.file);
            this.fail(c, now, `no progress for ${secs} s while loading ${tr.file} over ${tr.proto.toUpperCase()} (${got})`, 'stall');
            failed = true;
            break;
          }
        }
      }
      if (failed) {
        s.updatedAt = new Date(now).toISOString();
        this.changed(c, true, now);
        out.push(this.snapshot(c));
      } else if (c.pending && now - c.lastEmit >= this.progressIntervalMs) {
        this.changed(c, true, now);
      }
    }
    return out;
  }

  private changed(c: Internal, immediate: boolean, now = this.now()): void {
    if (!immediate && now - c.lastEmit < this.progressIntervalMs) {
      c.pending = true;
      return;
    }
    c.pending = false;
    c.lastEmit = now;
    this.emit('client', this.snapshot(c));
  }

  private snapshot(c: Internal): ClientState {
    const s = c.s;
    const phases: ClientState['phases'] = {};
    for (const [k, v] of Object.entries(s.phases)) phases[k as ClientPhase] = { ...v };
    return { ...s, phases };
  }

  // ------------------------------------------------------------ diagnosis

  /** Sentences that say where a client is and, when it is stuck or failed, the likely cause. */
  explain(mac: string): string[] {
    const m = normalizeMac(mac) ?? mac;
    const c = this.clients.get(m);
    const now = this.now();
    if (!c) {
      return [
        `Nothing has been seen from ${m} since the agent started: no DHCP, TFTP or HTTP request.`,
        'If it should be booting, check that it is cabled to the LAN side, that network (PXE) boot is enabled and first in its firmware boot order, and, in proxy mode, that the LAN has a DHCP server answering it.',
      ];
    }
    const s = c.s;
    const out: string[] = [];
    const fwText =
      s.firmware === 'ipxe'
        ? 'an iPXE client'
        : s.firmware === 'uefi-http'
          ? 'a UEFI HTTP Boot client'
          : s.firmware === 'bios'
            ? 'a BIOS PXE client'
            : s.firmware === 'uefi'
              ? 'a UEFI PXE client'
              : 'a client';
    const archText = s.arch ? ` (${ARCH_NAMES[s.arch] ?? s.arch})` : '';
    out.push(`${m} is ${fwText}${archText}${s.ip ? ` at ${s.ip}` : ''}${s.profile ? `, booting profile "${s.profile}"` : ''}; this boot started ${agoText(now - Date.parse(s.startedAt))}.`);

    const steps = CLIENT_PHASES.filter((p) => s.phases[p]).map((p) => {
      const ph = s.phases[p]!;
      const end = ph.endedAt ? Date.parse(ph.endedAt) : p === s.phase ? now : undefined;
      return end !== undefined && p !== 'booted' ? `${p} ${fmtDuration(end - Date.parse(ph.startedAt))}` : p;
    });
    if (steps.length) out.push(`Phases so far: ${steps.join(' → ')}${s.phase === 'failed' ? ' → failed' : ''}.`);

    const sinceMs = s.phases[s.phase] ? now - Date.parse(s.phases[s.phase]!.startedAt) : 0;
    const since = fmtDuration(sinceMs);
    switch (s.phase) {
      case 'dhcp':
        out.push(`It has been in DHCP for ${since} and has not been given an address yet; if this lasts, see \`relayctl leases\`, and set log.levels.dhcp to "debug" to log why its requests are ignored.`);
        break;
      case 'bound':
        out.push(`It has an address${s.bootFile ? ` and was told to load ${s.bootFile}` : ''}; it has not asked for a boot file yet (${since}).`);
        break;
      case 'loader':
      case 'ipxe':
      case 'kernel':
      case 'initrd': {
        const what = s.phase === 'ipxe' ? 'iPXE is running' : `it is loading the ${s.phase}`;
        let line = `Now ${what}${s.file ? `: ${s.file}` : ''}`;
        if (s.file && s.totalBytes) line += `, ${fmtBytes(s.bytes)} of ${fmtBytes(s.totalBytes)}`;
        else if (s.file && s.bytes) line += `, ${fmtBytes(s.bytes)} so far`;
        if (s.rate) line += ` at ${fmtBytes(s.rate)}/s`;
        if (s.etaSeconds !== undefined && s.etaSeconds > 0) line += `, about ${fmtDuration(s.etaSeconds * 1000)} left`;
        out.push(line + '.');
        break;
      }
      case 'handoff':
        out.push(
          `Kernel and initrd were delivered ${agoText(sinceMs)}; the operating system has not reported back. That only happens if the booted system calls GET /booted?mac=${m}; without that, handoff is the last phase the relay can see.`,
        );
        break;
      case 'booted':
        out.push(`It reported booted ${agoText(sinceMs)}.`);
        break;
      case 'failed':
        out.push(`It failed${s.failedPhase ? ` in phase ${s.failedPhase}` : ''} ${agoText(sinceMs)}: ${s.error ?? 'no reason recorded'}.`);
        out.push(...this.hint(c));
        break;
    }
    const last = c.history.slice(-6).map((h) => `${new Date(h.at).toISOString().slice(11, 19)} ${h.type}${h.file ? ' ' + h.file : ''}${h.detail ? ` (${h.detail})` : ''}`);
    if (last.length) out.push(`Last events: ${last.join('; ')}.`);
    return out;
  }

  private hint(c: Internal): string[] {
    const s = c.s;
    switch (c.failKind) {
      case 'no-request-tftp':
        return [
          `It was offered ${s.bootFile ?? 'a loader'} but never asked for it over TFTP. Likely causes: Secure Boot refusing an unsigned loader, a loader for another architecture, a firewall dropping udp/69 on the LAN, or another DHCP server's answer winning.`,
        ];
      case 'no-request-http':
        return [`It was offered ${s.bootFile ?? 'a loader'} by URL but never fetched it: check that the relay's HTTP port is reachable from the LAN and that the firmware supports HTTP Boot.`];
      case 'no-request-script':
        return ["iPXE got the /boot.ipxe URL but never fetched it: check that the relay's HTTP port is reachable from the LAN (firewall) and that iPXE has an address on the LAN."];
      case 'unknown-client':
        return [`Name ${s.mac} in boot.assign or dhcp.static (or a boot.match rule with its MAC), or turn dhcp.knownClientsOnly off.`];
      case 'no-loader':
        return [`Add a loader for this architecture to boot.loaders in the config (e.g. "${s.arch ?? 'uefi-x64'}": "ipxe/…efi").`];
      case 'wrong-arch':
        return [`Check boot.loaders["${s.arch}"] in the config: the path must be a loader built for this architecture.`];
      case 'transfer':
        return /upstream 404/.test(s.error ?? '')
          ? ['The upstream server has no such file: check the path in the profile or boot.loaders against the upstream, and `relayctl cache ls`.']
          : ['See `relayctl trace` for the exchange and the agent log for the upstream response.'];
      case 'stall':
        return ['The transfer stopped in the middle: the client may have rebooted or lost its link, or the upstream stalled (see `relayctl status` for the uplink).'];
      case 'pool':
        return ['Widen dhcp.range or shorten dhcp.leaseSeconds; `relayctl leases` lists who holds the addresses.'];
      default:
        return [];
    }
  }
}
