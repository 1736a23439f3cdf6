/**
 * DhcpService: decode → classify → decide → (commit) → encode → send → emit.
 * Server mode answers on dhcp.port; proxy mode answers PXE clients on
 * dhcp.port (offers) and dhcp.proxyPort (4011, ACKs), never assigning addresses.
 * Nothing a datagram contains can throw out of the socket handler: decode
 * errors are counted in bootrelay_dhcp_dropped_total{reason} and logged at debug.
 */
import type { RemoteInfo } from 'node:dgram';
import type { BootConfig } from '../boot/config';
import type { LanConfig } from '../net/lan';
import type { DhcpConfig } from './config';
import type { Logger } from 'pino';
import { DecodeError } from '../../proto/errors';
import type { DhcpReceivedEvent, EmitFn } from '../../proto/events';
import { hex32 } from '../../proto/mac';
import { MESSAGE_TYPE_NAMES, Opt } from '../../proto/dhcp/options';
import { decodeDhcp, messageType, type DhcpMessage } from '../../proto/dhcp/packet';
import { encodeReply } from '../../proto/dhcp/reply';
import { classifyClient } from '../../proto/dhcp/pxe';
import type { Metrics } from '../metrics';
import type { PacketTrace } from '../trace';
import { LanSocketPair } from '../net/lan';
import { LeaseStore, type LeaseInfo } from './leases';
import { BootHistory, decide, type Decision, type Dest, type RelaySubnet } from './policy';
import { join } from 'node:path';

export interface DhcpServiceOptions {
  lan: LanConfig;
  dhcp: DhcpConfig;
  boot: BootConfig;
  httpPort: number;
  tftpEnabled: boolean;
  stateDir: string;
  log: Logger;
  metrics: Metrics;
  emit: EmitFn;
  /** receive socket address; default 0.0.0.0 */
  listenAddress?: string;
  /** netboot-once hook (agent: the tracker knows who booted) */
  isBootedOnce?: (mac: string) => boolean;
  trace?: PacketTrace;
  /** client port replies go to (68); tests on loopback change it */
  clientPort?: number;
  /** relay-agent port (67) */
  relayPort?: number;
  /** where "broadcast" replies go; default 255.255.255.255 (loopback tests: 127.0.0.1) */
  broadcastAddress?: string;
  now?: () => number;
  /** fsync the lease journal (default true) */
  fsync?: boolean;
  /** a boot file's size when known (cache), for option 13 (RFC 2132 §3.7) */
  bootFileSize?: (path: string) => number | undefined;
}

/** Profiles remembered per MAC (what a match rule chose, for /boot.ipxe); bounded. */
const PROFILE_MEMORY = 4096;

/** What every DHCP event of one datagram carries. */
type DhcpBase = Pick<DhcpReceivedEvent, 'mac' | 'xid' | 'arch' | 'firmware'> & { mac: string };

const RECEIVED_EVENT: Record<number, DhcpReceivedEvent['type']> = {
  1: 'dhcp.discover',
  3: 'dhcp.request',
  4: 'dhcp.decline',
  7: 'dhcp.release',
  8: 'dhcp.inform',
};

export class DhcpService {
  private dhcpPair?: LanSocketPair;
  private proxyPair?: LanSocketPair;
  private store: LeaseStore;
  private history = new BootHistory();
  private rearmed = new Set<string>();
  private assign = new Map<string, string>();
  private readonly now: () => number;
  private running = false;
  private subnets: RelaySubnet[] = [];
  private chosen = new Map<string, string>();

  constructor(private readonly o: DhcpServiceOptions) {
    this.now = o.now ?? Date.now;
    this.store = new LeaseStore({
      stateDir: o.dhcp.mode === 'server' ? o.stateDir : undefined,
      range: o.dhcp.range,
      static: o.dhcp.static,
      leaseSeconds: o.dhcp.leaseSeconds,
      now: this.now,
      fsync: o.fsync,
    });
    for (const sub of o.dhcp.relaySubnets ?? []) {
      const [net, prefix] = sub.network.split('/');
      const dir = o.dhcp.mode === 'server' ? join(o.stateDir, `subnet-${net}-${prefix}`) : undefined;
      const leases = new LeaseStore({ stateDir: dir, range: sub.range, static: o.dhcp.static, leaseSeconds: o.dhcp.leaseSeconds, now: this.now, fsync: o.fsync });
      this.subnets.push({ cfg: sub, net: net!, prefix: Number(prefix), leases });
    }
    for (const [mac, p] of Object.entries(o.boot.assign ?? {})) this.assign.set(mac.toLowerCase(), p);
    const m = o.metrics;
    m.declare('bootrelay_dhcp_received_total', 'counter', 'DHCP datagrams received, by message type');
    m.declare('bootrelay_dhcp_sent_total', 'counter', 'DHCP replies sent, by message type');
    m.declare('bootrelay_dhcp_dropped_total', 'counter', 'DHCP datagrams dropped as malformed, by reason');
    m.declare('bootrelay_dhcp_ignored_total', 'counter', 'DHCP requests not for us, by reason');
  }

  /** The bound DHCP port (useful when configured as 0). */
  get port(): number {
    return this.dhcpPair?.port ?? 0;
  }
  get proxyPort(): number {
    return this.proxyPair?.port ?? 0;
  }
  get leaseStore(): LeaseStore {
    return this.store;
  }

  async start(): Promise<void> {
    const { dhcp, lan, log } = this.o;
    if (dhcp.mode === 'off' || this.running) return;
    await this.store.load();
    for (const sub of this.subnets) await sub.leases.load();
    const onError = (err: Error) => log.warn({ err }, 'dhcp socket error');
    this.dhcpPair = new LanSocketPair({
      lanAddress: lan.address,
      port: dhcp.port,
      listenAddress: this.o.listenAddress,
      onMessage: (b, r) => this.onDatagram(b, r, 'dhcp'),
      onError,
    });
    try {
      await this.dhcpPair.start();
      if (dhcp.mode === 'proxy') {
        this.proxyPair = new LanSocketPair({
          lanAddress: lan.address,
          port: dhcp.proxyPort,
          listenAddress: this.o.listenAddress,
          onMessage: (b, r) => this.onDatagram(b, r, 'proxy'),
          onError,
        });
        await this.proxyPair.start();
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.running = true;
    log.info({ mode: dhcp.mode, port: this.port, proxyPort: this.proxyPort || undefined, lan: `${lan.address}/${lan.prefix}` }, 'dhcp listening');
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all([this.dhcpPair?.stop(), this.proxyPair?.stop()]);
    this.dhcpPair = this.proxyPair = undefined;
    await this.store.close();
    for (const sub of this.subnets) await sub.leases.close();
  }

  leases(): LeaseInfo[] {
    return [...this.store.list(), ...this.subnets.flatMap((s) => s.leases.list())];
  }

  macForIp(ip: string): string | undefined {
    return this.store.macForIp(ip) ?? this.subnets.map((s) => s.leases.macForIp(ip)).find((m) => m !== undefined);
  }

  /** The profile a boot.match rule chose for a client at its last DHCP exchange. */
  profileFor(mac: string): string | undefined {
    return this.chosen.get(mac.toLowerCase());
  }

  /** relayctl assign: remembered for events (the profile itself is served over HTTP). */
  setAssign(mac: string, profile: string): void {
    this.assign.set(mac.toLowerCase(), profile);
  }

  /** Netboot-once: boot this client once more, even though it booted already. */
  rearm(mac: string): void {
    this.rearmed.add(mac.toLowerCase());
    this.history.clear(mac.toLowerCase());
  }

  /** Optional hook from TFTP/HTTP: the client fetched its loader (restarts the fallback window). */
  noteLoaderFetched(mac: string): void {
    this.history.noteLoaderFetched(mac.toLowerCase(), this.now());
  }

  // ------------------------------------------------------------------ hot path

  private onDatagram(buf: Buffer, rinfo: RemoteInfo, via: 'dhcp' | 'proxy'): void {
    const { metrics, log } = this.o;
    if (rinfo.port === 0) {
      // a forged source port 0: no reply can go there (dgram's send() throws on it)
      metrics.inc('bootrelay_dhcp_dropped_total', { reason: 'bad-port' });
      return;
    }
    let msg: DhcpMessage;
    try {
      msg = decodeDhcp(buf);
    } catch (e) {
      const reason = e instanceof DecodeError ? e.reason : 'error';
      metrics.inc('bootrelay_dhcp_dropped_total', { reason });
      if (log.isLevelEnabled('debug')) log.debug({ from: `${rinfo.address}:${rinfo.port}`, reason, err: (e as Error).message }, 'dhcp datagram dropped');
      return;
    }
    try {
      this.handle(msg, buf, rinfo, via);
    } catch (e) {
      metrics.inc('bootrelay_dhcp_dropped_total', { reason: 'internal' });
      log.error({ err: e, mac: msg.mac, xid: hex32(msg.xid) }, 'dhcp handler failed');
    }
  }

  private handle(msg: DhcpMessage, raw: Buffer, rinfo: RemoteInfo, via: 'dhcp' | 'proxy'): void {
    const { metrics, log, emit } = this.o;
    const type = messageType(msg);
    metrics.inc('bootrelay_dhcp_received_total', { type: type === undefined ? 'BOOTP' : (MESSAGE_TYPE_NAMES[type] ?? String(type)) });
    const serverPort = via === 'proxy' ? this.proxyPort : this.port;
    this.o.trace?.record({ mac: msg.mac, dir: 'in', clientIp: rinfo.address, clientPort: rinfo.port, serverIp: this.o.lan.address, serverPort, payload: raw });
    const cls = classifyClient(msg);
    const d = decide(msg, cls, {
      mode: this.o.dhcp.mode === 'proxy' ? 'proxy' : 'server',
      via,
      src: { address: rinfo.address, port: rinfo.port },
      lan: this.o.lan,
      dhcp: this.o.dhcp,
      loaders: this.o.boot.loaders,
      httpPort: this.o.httpPort,
      tftpEnabled: this.o.tftpEnabled,
      leases: this.store,
      history: this.history,
      now: this.now(),
      bootedOnce: (mac) => !this.rearmed.has(mac) && (this.o.isBootedOnce?.(mac) ?? false),
      boot: this.o.boot,
      assigned: (mac) => this.assign.get(mac),
      relaySubnets: this.subnets,
      bootFileSize: this.o.bootFileSize,
      clientPort: this.o.clientPort,
      relayPort: this.o.relayPort,
      broadcastAddress: this.o.broadcastAddress,
    });
    const base: DhcpBase = { mac: msg.mac, xid: hex32(msg.xid), arch: cls.arch, firmware: cls.firmware };
    if (d.kind === 'ignore') {
      for (const s of d.side) emit({ ...base, ...s });
      metrics.inc('bootrelay_dhcp_ignored_total', { reason: d.reason });
      if (log.isLevelEnabled('debug')) log.debug({ ...base, reason: d.reason, detail: d.detail, reasons: cls.reasons }, 'ignored');
      return;
    }
    const recv = type !== undefined ? RECEIVED_EVENT[type] : undefined;
    const profile = (d.kind === 'reply' ? d.profile : undefined) ?? this.assign.get(msg.mac);
    // what a boot.match rule chose is remembered for /boot.ipxe (assign and default need no memory)
    if (d.kind === 'reply' && d.profile && d.profileBy === 'match' && this.chosen.get(msg.mac) !== d.profile) {
      this.chosen.delete(msg.mac);
      this.chosen.set(msg.mac, d.profile);
      if (this.chosen.size > PROFILE_MEMORY) this.chosen.delete(this.chosen.keys().next().value!);
    }
    else if (d.kind === 'reply' && d.profileBy && d.profileBy !== 'match') this.chosen.delete(msg.mac);
    if (recv) {
      const ip = msg.options.ip(Opt.RequestedIpAddress) ?? (msg.ciaddr !== '0.0.0.0' ? msg.ciaddr : undefined);
      emit({ type: recv, ...base, ip, vendorClass: cls.vendorClass, userClass: cls.userClass, uuid: cls.uuid, archCode: cls.archCode });
    }
    // after the datagram's own event: a DISCOVER starts a boot afresh, so what it led to comes next
    for (const s of d.side) emit({ ...base, ...s });
    if (d.kind === 'release' || d.kind === 'decline') {
      const st = d.leases ?? this.store;
      const p = d.kind === 'release' ? st.release(msg.mac, d.ip, d.id) : st.decline(msg.mac, d.ip, d.id);
      p.catch((err) => log.error({ err, ...base }, `lease ${d.kind} not saved`));
      log.info({ ...base, ip: d.ip }, d.kind === 'release' ? 'released' : 'declined');
      return;
    }
    if (d.kind !== 'reply') return;
    const reply = d;
    const send = () => {
      try {
        this.send(reply, msg, via, base, profile);
      } catch (e) {
        // after the commit this runs in a promise callback: never let it reject unhandled
        metrics.inc('bootrelay_dhcp_dropped_total', { reason: 'internal' });
        log.error({ err: e, ...base }, 'dhcp reply failed');
      }
    };
    if (d.commit) {
      const c = d.commit;
      (c.leases ?? this.store).commit(msg.mac, c.ip, { hostname: c.hostname, fqdn: c.fqdn, uuid: c.uuid, id: c.id }).then(send, (err) => {
        metrics.inc('bootrelay_dhcp_dropped_total', { reason: 'commit-failed' });
        log.error({ err, ...base }, 'lease not saved: no ACK sent');
      });
    } else send();
  }

  private send(d: Extract<Decision, { kind: 'reply' }>, req: DhcpMessage, via: 'dhcp' | 'proxy', base: DhcpBase, profile: string | undefined): void {
    const { metrics, log, emit } = this.o;
    const pair = via === 'proxy' ? this.proxyPair : this.dhcpPair;
    if (!pair) return;
    // within the client's option 57 / 576 bytes: overload into file/sname, then trim (RFC 2131 §2, RFC 2132 §9.3, §9.10)
    const { buf, dropped } = encodeReply(d.reply, req);
    if (dropped.length && log.isLevelEnabled('debug')) log.debug({ ...base, dropped }, 'options left out: no room in the client\'s maximum message size');
    const to: Dest = d.to;
    pair.send(buf, to.port, to.address);
    const rtype = messageType(d.reply);
    metrics.inc('bootrelay_dhcp_sent_total', { type: rtype === undefined ? 'BOOTP' : (MESSAGE_TYPE_NAMES[rtype] ?? String(rtype)) });
    this.o.trace?.record({ mac: req.mac, dir: 'out', clientIp: to.address, clientPort: to.port, serverIp: this.o.lan.address, serverPort: pair.port, payload: buf });
    if (d.boot?.role === 'loader' && (d.event === 'dhcp.ack' || d.event.startsWith('proxy.'))) this.rearmed.delete(req.mac);
    if (d.event === 'dhcp.inform') return; // the received event said it all
    emit({ type: d.event, ...base, ip: d.ip, file: d.boot?.path, role: d.boot?.role, url: d.boot && d.boot.file !== d.boot.path ? d.boot.file : undefined, profile, detail: d.note });
    if (log.isLevelEnabled('debug') || (d.boot && d.event !== 'dhcp.offer' && d.event !== 'proxy.offer')) log.info({ ...base, ip: d.ip, file: d.boot?.file, to: `${to.address}:${to.port}` }, `${d.event} sent`);
  }
}

