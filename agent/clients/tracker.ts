/**
 * ClientTracker: turns the services' RelayEvents into one ClientState per MAC
 * with the contract's phases, in order: dhcp, bound, loader, ipxe, kernel,
 * initrd, handoff, booted (or failed, with an error a person understands).
 *
 * Services do not know phases; files are classified by the boot plan
 * (relay/boot/plan.ts) for the client's profile unless the event carries a `role`.
 * Timeouts are checked by tick(now), which the agent calls every second;
 * the clock is injected so tests script time. Every change goes out on
 * 'client' as {state, kind}: subscribers throttle `progress` updates with the
 * one shared rule (throttle.ts). A failure is derived here and rides on the
 * update that entered `failed`; the tracker never feeds its own input.
 * The words are in diagnosis.ts, the sentences about one client in explain.ts.
 */
import { EventEmitter } from 'node:events';
import {
  CLIENT_PHASES,
  eventProfile,
  isDhcp6Event,
  isDhcpEvent,
  isDhcpReply,
  type ClientPhase,
  type Dhcp6Event,
  type DhcpReceivedEvent,
  type ClientFailedEvent,
  type DhcpReplyEvent,
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
import { cleanFile, noRequestText, stallText, transferFailure, wrongArchText } from './diagnosis';
import { isTransferEvent } from '../../proto/events';
import { grubFailure, parseSecureBootFlag, REFUSED_LOADER_SILENCE_MS, refusedLoaderMessage, type RefusedLoader } from './secureboot';
import { explain } from './explain';
import { restoredState, updateKind, type ClientRecord, type ClientState, type ClientUpdate, type UpdateKind } from './record';

export type { ClientState, ClientUpdate, UpdateKind } from './record';
export { cleanFile, transferFailure } from './diagnosis';

/** What the tracker asks the boot plan (relay/boot/plan.ts). */
export type TrackerPlan = Pick<BootPlan, 'profileName' | 'profile' | 'fileRole' | 'loaderArchs' | 'chainFor' | 'chainRequest' | 'loaders' | 'on'>;

export interface ClientTrackerOptions {
  /** which profile a client boots, what a file is */
  plan: TrackerPlan;
  now?: () => number;
  /** after an ACK naming a boot file, how long to wait for its TFTP/HTTP request (default 20 s) */
  ackTimeoutMs?: number;
  /** a transfer without progress for this long fails the client (default 60 s) */
  stallTimeoutMs?: number;
  /** bound on remembered clients (oldest forgotten first; default 1024) */
  maxClients?: number;
  /** a UEFI loader fetched completely and then nothing more for this long: refused under Secure Boot (default 30 s) */
  refusedLoaderMs?: number;
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

interface Internal extends ClientRecord {
  /** an ACK named a boot file and no request followed yet */
  awaiting?: { at: number; file: string; kind: 'tftp' | 'http' | 'script' };
  transfers: Map<string, Transfer>;
  initrdsDone: Set<string>;
  /** the client.failed to go out with the next update */
  failed?: ClientFailedEvent;
  /** a UEFI firmware fetched this first-stage loader completely; nothing else asked since */
  loaderDone?: { at: number; file: string };
}

const ORDER = new Map<ClientPhase, number>(CLIENT_PHASES.map((p, i) => [p, i]));
const NETBOOT_FIRMWARE = new Set<Firmware>(['bios', 'uefi', 'uefi-http', 'ipxe']);
const TRANSFER_PHASES = new Set<ClientPhase>(['loader', 'ipxe', 'kernel', 'initrd']);
const HISTORY = 40;

export class ClientTracker extends EventEmitter<{ client: [ClientUpdate] }> {
  private readonly plan: TrackerPlan;
  private readonly clients = new Map<string, Internal>();
  private readonly now: () => number;
  private readonly ackTimeoutMs: number;
  private readonly stallTimeoutMs: number;
  private readonly maxClients: number;
  private readonly refusedLoaderMs: number;

  constructor(opts: ClientTrackerOptions) {
    super();
    this.plan = opts.plan;
    this.plan.on('change', (mac) => this.replan(mac));
    this.now = opts.now ?? Date.now;
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 20_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 60_000;
    this.maxClients = opts.maxClients ?? 1024;
    this.refusedLoaderMs = opts.refusedLoaderMs ?? REFUSED_LOADER_SILENCE_MS;
  }

  list(): ClientState[] {
    return [...this.clients.values()].map((c) => this.snapshot(c));
  }

  get(mac: string): ClientState | undefined {
    const c = this.clients.get(normalizeMac(mac) ?? mac);
    return c ? this.snapshot(c) : undefined;
  }

  /**
   * Client states saved by an earlier run of the agent (stateDir/clients.jsonl): they come
   * back as they were, without transfers in flight, so the retained MQTT state and the
   * dashboard stay right across a restart. Known clients are kept; malformed entries skipped.
   */
  restore(states: unknown): number {
    if (!Array.isArray(states)) return 0;
    let n = 0;
    for (const raw of states) {
      const st = restoredState(raw);
      if (!st || this.clients.has(st.mac) || this.clients.size >= this.maxClients) continue;
      this.clients.set(st.mac, { s: st, transfers: new Map(), initrdsDone: new Set(), history: [] });
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
      this.changed(c, 'phase');
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
    const dhcp = isDhcpEvent(ev) ? ev : isDhcp6Event(ev) ? ev : undefined;
    const fw = dhcp?.firmware;
    const evArch = dhcp?.arch;

    let c = this.clients.get(mac);
    const created = !c;
    const isDhcp = type.startsWith('dhcp.') || type.startsWith('proxy.') || type.startsWith('dhcp6.');
    if (!c) {
      // only netboot clients start a record: a phone's DHCP is not a boot
      const starts =
        (isDhcp && fw !== undefined && NETBOOT_FIRMWARE.has(fw)) ||
        type === 'tftp.start' ||
        type === 'http.start' ||
        type === 'client.booted' ||
        type === 'dhcp.no-loader' ||
        type === 'dhcp6.no-loader' ||
        type === 'dhcp.unknown-client' ||
        (isDhcp && fw === undefined && evArch !== undefined && evArch !== 'unknown');
      if (!starts) return undefined;
      c = this.create(mac, ev, t);
    }
    const s = c.s;
    const before = { ...s };
    this.remember(c, ev, t);
    if (ev.type === 'dhcp.discover' || ev.type === 'dhcp.request' || ev.type === 'dhcp.inform') {
      if (ev.nic) s.nic = ev.nic;
      if (ev.uuid) s.uuid = ev.uuid;
    }
    const refused = this.refusalSign(c, ev, t);

    // IPv6: the DHCPv6 lease, or the address TFTP/HTTP saw (never into `ip`)
    if (typeof ev.ip6 === 'string' && (type === 'dhcp6.reply' || !s.ip6)) s.ip6 = ev.ip6;
    if (typeof ev.ip === 'string' && ev.ip.includes(':')) {
      if (!s.ip6 || type.startsWith('tftp.') || type.startsWith('http.')) s.ip6 = ev.ip.split('%')[0];
    } else if (typeof ev.ip === 'string' && ev.ip !== '0.0.0.0' && (type === 'dhcp.ack' || type === 'proxy.ack' || !s.ip || type.startsWith('tftp.') || type.startsWith('http.'))) s.ip = ev.ip;
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
      case 'dhcp6.solicit':
      case 'dhcp6.request':
      case 'dhcp6.inform':
      case 'dhcp6.advertise':
      case 'dhcp6.reply':
        this.onDhcp(c, asDhcp4(ev), t);
        break;
      case 'dhcp6.no-loader':
        this.fail(c, t, `no loader configured for arch ${ev.arch ?? s.arch ?? 'unknown'}`, 'no-loader');
        break;
      case 'dhcp6.pool-exhausted':
        this.fail(c, t, `the DHCPv6 pool is exhausted (range ${ev.range.join('–')}): no address left for this client`, 'pool');
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
      case 'client.booted': {
        c.awaiting = undefined;
        c.transfers.clear();
        this.enter(c, 'booted', t);
        s.error = null;
        const sb = parseSecureBootFlag(ev.secureboot);
        if (sb !== undefined) s.secureBoot = sb;
        if (ev.report) s.report = { ...ev.report };
        break;
      }
      default:
        break;
    }

    if (refused) {
      // the firmware started over right after a complete loader: after the restart above, say why
      c.refused = refused;
      this.fail(c, t, refusedLoaderMessage(refused), 'secure-boot');
    }

    const moved = created || updateKind(before, s) === 'phase' || before.secureBoot !== s.secureBoot;
    const bytesMoved = before.bytes !== s.bytes || before.totalBytes !== s.totalBytes;
    if (!moved && !bytesMoved) {
      c.failed = undefined;
      return undefined;
    }
    s.updatedAt = new Date(t).toISOString();
    // only the bytes of the current transfer moved: the one thing subscribers may thin out
    this.changed(c, !moved && progressOnly ? 'progress' : 'phase');
    return this.snapshot(c);
  }

  /** The MAC of the client last seen at this address. */
  macForIp(ip: string): string | undefined {
    let best: Internal | undefined;
    for (const c of this.clients.values()) if ((c.s.ip === ip || c.s.ip6 === ip) && (!best || c.s.updatedAt > best.s.updatedAt)) best = c;
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
    c.loaderDone = undefined;
  }

  /**
   * After a UEFI firmware fetched a first-stage loader completely: any other request means the
   * loader runs; a fresh firmware DISCOVER (PXE again, or UEFI HTTP Boot) before that means the
   * firmware would not run it (Secure Boot). Returns the refusal, if this event shows one.
   */
  /** The loader after `file` in boot.loaders[arch] (DHCP offers it after a refusal), if any. */
  private nextLoader(c: Internal, file: string): string | undefined {
    const list = c.s.arch ? this.plan.loaders[c.s.arch] : undefined;
    const i = list ? list.indexOf(file) : -1;
    return list && i >= 0 ? list[i + 1] : undefined;
  }

  private refusalSign(c: Internal, ev: RelayEvent, t: number): RefusedLoader | undefined {
    const d = c.loaderDone;
    if (!d) return undefined;
    if (ev.type === 'dhcp.discover' && (ev.firmware === 'uefi' || ev.firmware === 'uefi-http')) {
      c.loaderDone = undefined;
      return { file: d.file, arch: c.s.arch, signedChain: !!this.plan.chainFor(d.file), how: 'restart', seconds: Math.round((t - d.at) / 1000), next: this.nextLoader(c, d.file) };
    }
    if (isTransferEvent(ev)) {
      if (cleanFile(ev.file) !== d.file) c.loaderDone = undefined;
    } else if (isDhcpEvent(ev) && ev.firmware === 'ipxe') c.loaderDone = undefined;
    else if (ev.type === 'client.booted') c.loaderDone = undefined;
    return undefined;
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

  private fail(c: Internal, t: number, error: string, kind: FailKind): void {
    const s = c.s;
    if (s.phase !== 'failed') s.failedPhase = s.phase;
    c.failKind = kind;
    c.awaiting = undefined;
    const news = s.phase !== 'failed' || s.error !== error;
    this.enter(c, 'failed', t);
    s.error = error;
    delete s.etaSeconds;
    if (news) c.failed = { type: 'client.failed', mac: s.mac, ...(s.ip ? { ip: s.ip } : {}), phase: s.failedPhase, error, reason: kind, ts: new Date(t).toISOString() };
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

  private wrongArch(c: Internal, file: string, verb: 'was offered' | 'loaded' = 'was offered'): string | undefined {
    const arch = c.s.arch;
    if (!arch || arch === 'unknown') return undefined;
    const archs = this.plan.loaderArchs(file);
    if (!archs || archs.includes(arch)) return undefined;
    return wrongArchText(arch, archs, file, verb);
  }

  private onStart(c: Internal, ev: TransferEvent, t: number): void {
    const s = c.s;
    const file = cleanFile(ev.file);
    if (!file) return;
    const role = this.classify(file, c, ev.role);
    const proto = ev.type.startsWith('tftp') ? 'tftp' : 'http';
    c.awaiting = undefined; // the client is alive and asking
    if (role === 'loader') {
      const wrong = this.wrongArch(c, file, 'loaded');
      if (wrong) {
        this.fail(c, t, wrong, 'wrong-arch');
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
    if (role === 'loader' && (s.firmware === 'uefi' || s.firmware === 'uefi-http') && this.plan.loaderArchs(file)) c.loaderDone = { at: t, file };
    if (role === 'loader' && this.plan.chainRequest(file)?.kind === 'config') {
      const p = this.profileOf(c);
      if (p && !p.kernel) {
        this.fail(c, t, `profile "${s.profile}" is an iPXE script${p.script ? ` (${p.script})` : ''}: it needs iPXE, but this client boots through the Secure Boot chain (shim and GRUB), which can only load a kernel and initrds`, 'needs-ipxe');
        return;
      }
    }
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
    const grub = this.plan.chainRequest(file);
    if (grub?.kind === 'failed' && c.s.phase !== 'booted') {
      // the generated grub.cfg asks for grub/bootrelay-failed/<step> when a step failed
      this.fail(c, t, grubFailure(grub.step, this.profileOf(c)), grub.step === 'kernel' ? 'kernel-refused' : 'transfer');
      return;
    }
    c.transfers.delete(file);
    const role = this.classify(file, c, ev.role);
    const msg = transferFailure(ev, file, role, c.s.mac);
    if (msg === undefined) return; // the client stopped the transfer itself
    if (role === 'other') return; // iPXE probing autoexec.ipxe and the like
    if (c.s.phase === 'booted') return;
    this.fail(c, t, msg, 'transfer');
  }

  // ------------------------------------------------------------ time

  /** Checks timeouts. The agent calls it every second. */
  tick(now = this.now()): ClientState[] {
    const out: ClientState[] = [];
    for (const c of this.clients.values()) {
      const s = c.s;
      let failed = false;
      if (c.awaiting && now - c.awaiting.at >= this.ackTimeoutMs && s.phase !== 'failed') {
        const a = c.awaiting;
        this.fail(c, now, noRequestText(a.kind, a.file, Math.round(this.ackTimeoutMs / 1000)), `no-request-${a.kind}`);
        failed = true;
      } else if (c.loaderDone && s.phase === 'loader' && now - c.loaderDone.at >= this.refusedLoaderMs) {
        const d = c.loaderDone;
        c.loaderDone = undefined;
        c.refused = { file: d.file, arch: s.arch, signedChain: !!this.plan.chainFor(d.file), how: 'silence', seconds: Math.round((now - d.at) / 1000), next: this.nextLoader(c, d.file) };
        this.fail(c, now, refusedLoaderMessage(c.refused), 'secure-boot');
        failed = true;
      } else if (TRANSFER_PHASES.has(s.phase)) {
        for (const tr of c.transfers.values()) {
          if (now - tr.lastAt >= this.stallTimeoutMs) {
            c.transfers.delete(tr.file);
            this.fail(c, now, stallText(tr.file, tr.proto, tr.bytes, tr.total, Math.round(this.stallTimeoutMs / 1000)), 'stall');
            failed = true;
            break;
          }
        }
      }
      if (failed) {
        s.updatedAt = new Date(now).toISOString();
        this.changed(c, 'phase');
        out.push(this.snapshot(c));
      }
    }
    return out;
  }

  private changed(c: Internal, kind: UpdateKind): void {
    const failed = c.failed;
    c.failed = undefined;
    this.emit('client', { state: this.snapshot(c), kind, ...(failed ? { failed } : {}) });
  }

  private snapshot(c: Internal): ClientState {
    const s = c.s;
    const phases: ClientState['phases'] = {};
    for (const [k, v] of Object.entries(s.phases)) phases[k as ClientPhase] = { ...v };
    return { ...s, phases };
  }

  /** Sentences that say where a client is and, when it is stuck or failed, the likely cause. */
  explain(mac: string): string[] {
    const m = normalizeMac(mac) ?? mac;
    return explain(m, this.clients.get(m), this.now());
  }
}

/**
 * A DHCPv6 exchange read as its DHCPv4 counterpart (SOLICIT ≈ DISCOVER, ADVERTISE ≈ OFFER,
 * REQUEST ≈ REQUEST, REPLY ≈ ACK, INFORMATION-REQUEST ≈ INFORM): the boot phases are the same.
 * A proxy ADVERTISE (stateless: no address) names the boot file as a proxy offer does.
 */
function asDhcp4(ev: Dhcp6Event): DhcpReceivedEvent | DhcpReplyEvent {
  const { ts, mac, xid, arch, firmware } = ev;
  const base = { ts, mac, xid, arch, firmware };
  switch (ev.type) {
    case 'dhcp6.solicit':
      return { ...base, type: 'dhcp.discover' };
    case 'dhcp6.request':
      return { ...base, type: 'dhcp.request' };
    case 'dhcp6.advertise':
    case 'dhcp6.reply':
      return { ...base, type: ev.type === 'dhcp6.reply' || ev.proxy || !ev.ip6 ? 'dhcp.ack' : 'dhcp.offer', file: ev.file, url: ev.url, role: ev.role };
    default:
      return { ...base, type: 'dhcp.inform' };
  }
}
