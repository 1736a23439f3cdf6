/**
 * DhcpService: decode → classify → decide → (commit) → encode → send → emit.
 * Server mode answers on dhcp.port; proxy mode answers PXE clients on
 * dhcp.port (offers) and dhcp.proxyPort (4011, ACKs), never assigning addresses.
 * Nothing a datagram contains can throw out of the socket handler: decode
 * errors are counted in bootrelay_dhcp_dropped_total{reason} and logged at debug.
 */
import { nicFromDhcp } from '../../proto/dhcp/nic';
import type { RemoteInfo } from 'node:dgram';
import { join } from 'node:path';
import type { BootPlan } from '../boot/plan';
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
import { StageTimer, timerFromEnv } from './timing';

export interface DhcpServiceOptions {
  lan: LanConfig;
  dhcp: DhcpConfig;
  /** what to boot: loaders, the client's profile (boot.match rules are decided here and told to the plan), netboot-once */
  plan: Pick<BootPlan, 'loaders' | 'profileName' | 'shouldBoot' | 'rearm' | 'boot' | 'assignedTo' | 'noteMatch'>;
  httpPort: number;
  tftpEnabled: boolean;
  stateDir: string;
  log: Logger;
  metrics: Metrics;
  emit: EmitFn;
  /** receive socket address; default 0.0.0.0 */
  listenAddress?: string;
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
  /** a boot file's size when known (the cache's sizeOf), for option 13 (RFC 2132 §3.7) */
  bootFileSize?: (path: string) => number | undefined;
}

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
  private readonly now: () => number;
  private running = false;
  /** bench-only stage timings (BOOTRELAY_DHCP_TIMING); undefined normally */
  private readonly timing = timerFromEnv();
  private readonly tm?: StageTimer = this.timing?.timer;
  /** dhcp.relaySubnets, each with its own lease store (stateDir/subnet-<net>-<prefix>) */
  private subnets: RelaySubnet[] = [];

  constructor(private readonly o: DhcpServiceOptions) {
    this.now = o.now ?? Date.now;
    this.store = new LeaseStore({
      stateDir: o.dhcp.mode === 'server' ? o.stateDir : undefined,
      range: o.dhcp.range,
      static: o.dhcp.static,
      leaseSeconds: o.dhcp.leaseSeconds,
      now: this.now,
      fsync: o.fsync,
      timer: this.tm,
    });
    for (const sub of o.dhcp.relaySubnets ?? []) {
      const [net, prefix] = sub.network.split('/');
      const dir = o.dhcp.mode === 'server' ? join(o.stateDir, `subnet-${net}-${prefix}`) : undefined;
      const leases = new LeaseStore({ stateDir: dir, range: sub.range, static: o.dhcp.static, leaseSeconds: o.dhcp.leaseSeconds, now: this.now, fsync: o.fsync });
      this.subnets.push({ cfg: sub, net: net!, prefix: Number(prefix), leases });
    }
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
    if (this.timing) {
      try {
        this.timing.timer.writeTo(this.timing.file);
      } catch (err) {
        this.o.log.warn({ err, file: this.timing.file }, 'dhcp timing not written');
      }
    }
  }

  leases(): LeaseInfo[] {
    return this.subnets.length ? [...this.store.list(), ...this.subnets.flatMap((s) => s.leases.list())] : this.store.list();
  }

  macForIp(ip: string): string | undefined {
    const m = this.store.macForIp(ip);
    if (m !== undefined || !this.subnets.length) return m;
    for (const s of this.subnets) {
      const x = s.leases.macForIp(ip);
      if (x !== undefined) return x;
    }
    return undefined;
  }

  /** Netboot-once: boot this client once more, even though it booted already (and from its first loader). */
  rearm(mac: string): void {
    this.o.plan.rearm(mac.toLowerCase());
    this.history.clear(mac.toLowerCase());
  }

  /** The tracker's word: the firmware refused the loader it fetched (Secure Boot); its next DISCOVERs get the next loader of the list. */
  noteLoaderRefused(mac: string): boolean {
    return this.history.noteRefused(mac.toLowerCase());
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
    const tm = this.tm;
    const t0 = tm ? StageTimer.now() : 0;
    let msg: DhcpMessage;
    try {
      msg = decodeDhcp(buf);
    } catch (e) {
      const reason = e instanceof DecodeError ? e.reason : 'error';
      metrics.inc('bootrelay_dhcp_dropped_total', { reason });
      if (log.isLevelEnabled('debug')) log.debug({ from: `${rinfo.address}:${rinfo.port}`, reason, err: (e as Error).message }, 'dhcp datagram dropped');
      return;
    }
    if (tm) tm.add('decode', StageTimer.now() - t0);
    try {
      this.handle(msg, buf, rinfo, via, t0);
    } catch (e) {
      metrics.inc('bootrelay_dhcp_dropped_total', { reason: 'internal' });
      log.error({ err: e, mac: msg.mac, xid: hex32(msg.xid) }, 'dhcp handler failed');
    }
  }

  private handle(msg: DhcpMessage, raw: Buffer, rinfo: RemoteInfo, via: 'dhcp' | 'proxy', t0: number): void {
    const { metrics, log, emit } = this.o;
    const tm = this.tm;
    let t = tm ? StageTimer.now() : 0;
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
      loaders: this.o.plan.loaders,
      httpPort: this.o.httpPort,
      tftpEnabled: this.o.tftpEnabled,
      leases: this.store,
      history: this.history,
      now: this.now(),
      bootedOnce: (mac) => !this.o.plan.shouldBoot(mac),
      boot: this.o.plan.boot,
      assigned: (mac) => this.o.plan.assignedTo(mac),
      relaySubnets: this.subnets,
      bootFileSize: this.o.bootFileSize,
      clientPort: this.o.clientPort,
      relayPort: this.o.relayPort,
      broadcastAddress: this.o.broadcastAddress,
    });
    if (tm) {
      const t1 = StageTimer.now();
      tm.add('policy', t1 - t);
      t = t1;
    }
    const base: DhcpBase = { mac: msg.mac, xid: hex32(msg.xid), arch: cls.arch, firmware: cls.firmware };
    if (d.kind === 'ignore') {
      for (const s of d.side) emit({ ...base, ...s });
      metrics.inc('bootrelay_dhcp_ignored_total', { reason: d.reason });
      if (log.isLevelEnabled('debug')) log.debug({ ...base, reason: d.reason, detail: d.detail, reasons: cls.reasons }, 'ignored');
      return;
    }
    const recv = type !== undefined ? RECEIVED_EVENT[type] : undefined;
    // what a boot.match rule chose goes to the plan, so /boot.ipxe, TFTP and the tracker agree
    if (d.kind === 'reply' && d.profileBy) this.o.plan.noteMatch(msg.mac, d.profileBy === 'match' ? d.profile : undefined);
    const profile = (d.kind === 'reply' ? d.profile : undefined) ?? this.o.plan.profileName(msg.mac);
    if (recv) {
      const ip = msg.options.ip(Opt.RequestedIpAddress) ?? (msg.ciaddr !== '0.0.0.0' ? msg.ciaddr : undefined);
      emit({ type: recv, ...base, ip, vendorClass: cls.vendorClass, userClass: cls.userClass, uuid: cls.uuid, archCode: cls.archCode, ...nicField(msg) });
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
    if (tm) tm.add('events-in', StageTimer.now() - t);
    if (d.kind !== 'reply') return;
    const reply = d;
    const send = () => {
      try {
        this.send(reply, msg, via, base, profile, t0);
      } catch (e) {
        // after the commit this runs in a promise callback: never let it reject unhandled
        metrics.inc('bootrelay_dhcp_dropped_total', { reason: 'internal' });
        log.error({ err: e, ...base }, 'dhcp reply failed');
      }
    };
    if (d.commit) {
      const tc = tm ? StageTimer.now() : 0;
      const committed = tm
        ? () => {
            tm.add('commit-wait', StageTimer.now() - tc);
            send();
          }
        : send;
      const c = d.commit;
      (c.leases ?? this.store).commit(msg.mac, c.ip, { hostname: c.hostname, fqdn: c.fqdn, uuid: c.uuid, id: c.id }).then(committed, (err) => {
        metrics.inc('bootrelay_dhcp_dropped_total', { reason: 'commit-failed' });
        log.error({ err, ...base }, 'lease not saved: no ACK sent');
      });
    } else send();
  }

  private send(d: Extract<Decision, { kind: 'reply' }>, req: DhcpMessage, via: 'dhcp' | 'proxy', base: DhcpBase, profile: string | undefined, t0: number): void {
    const { metrics, log, emit } = this.o;
    const pair = via === 'proxy' ? this.proxyPair : this.dhcpPair;
    if (!pair) return;
    const tm = this.tm;
    let t = tm ? StageTimer.now() : 0;
    // within the client's option 57 / 576 bytes: overload into file/sname, then trim (RFC 2131 §2, RFC 2132 §9.3, §9.10)
    const { buf, dropped } = encodeReply(d.reply, req);
    if (dropped.length && log.isLevelEnabled('debug')) log.debug({ ...base, dropped }, "options left out: no room in the client's maximum message size");
    if (tm) {
      const t1 = StageTimer.now();
      tm.add('encode', t1 - t);
      t = t1;
    }
    const to: Dest = d.to;
    pair.send(buf, to.port, to.address);
    if (tm) {
      const t1 = StageTimer.now();
      tm.add('send', t1 - t);
      tm.add(d.event === 'dhcp.ack' ? 'total-ack' : d.event === 'dhcp.offer' ? 'total-offer' : 'total-other', t1 - t0);
      t = t1;
    }
    const rtype = messageType(d.reply);
    metrics.inc('bootrelay_dhcp_sent_total', { type: rtype === undefined ? 'BOOTP' : (MESSAGE_TYPE_NAMES[rtype] ?? String(rtype)) });
    this.o.trace?.record({ mac: req.mac, dir: 'out', clientIp: to.address, clientPort: to.port, serverIp: this.o.lan.address, serverPort: pair.port, payload: buf });
    if (d.event === 'dhcp.inform') return; // the received event said it all
    emit({ type: d.event, ...base, ip: d.ip, file: d.boot?.path, role: d.boot?.role, url: d.boot && d.boot.file !== d.boot.path ? d.boot.file : undefined, profile, detail: d.note });
    if (log.isLevelEnabled('debug') || (d.boot && d.event !== 'dhcp.offer' && d.event !== 'proxy.offer')) log.info({ ...base, ip: d.ip, file: d.boot?.file, to: `${to.address}:${to.port}` }, `${d.event} sent`);
    if (tm) tm.add('events-out', StageTimer.now() - t);
  }
}

/** iPXE names its NIC (option 175.177): bus, vendor and device ids, a chip name where known. */
function nicField(msg: DhcpMessage): { nic?: ReturnType<typeof nicFromDhcp> } {
  const nic = nicFromDhcp(msg);
  return nic ? { nic } : {};
}
