/**
 * Dhcp6Service: the DHCPv6 server (RFC 8415) of the LAN, for boot clients
 * and everyone else: decode → (unwrap relay-forw) → classify → decide →
 * make the lease changes durable → encode → send → emit.
 *
 * Sockets: UDP 547 on `::`, joined to All_DHCP_Relay_Agents_and_Servers
 * (ff02::1:2) on the LAN interface; replies go to the sender (its link-local
 * address carries the zone, so they leave through the interface they came
 * in on). In stateless mode a second socket on 4011 answers the boot-service
 * REQUEST that EDK2's PXEv6 sends after a proxy ADVERTISE.
 * Nothing a datagram contains can throw out of the handler: decode errors
 * are counted in bootrelay_dhcp6_dropped_total{reason}.
 */
import dgram, { type RemoteInfo, type Socket } from 'node:dgram';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ArchKey, Dhcp6ReceivedEvent, EmitFn, Firmware } from '../../proto/events';
import { DecodeError } from '../../proto/errors';
import { canonicalIp6, inPrefix6, isLinkLocal6 } from '../../proto/dhcp6/addr';
import { classifyClient6 } from '../../proto/dhcp6/classify';
import { decodeDuid, decodeIa, decodeIaAddr, encodeDuidLlt, encodeDuidUuid, msg6Name, Msg6, Opt6, Options6 } from '../../proto/dhcp6/options';
import { decodeDhcp6, encodeDhcp6, isRelay, xid6, type Dhcp6Message, type Dhcp6Packet, type Dhcp6RelayMessage } from '../../proto/dhcp6/packet';
import type { Metrics } from '../metrics';
import type { PacketTrace } from '../trace';
import type { Dhcp6Config } from './config';
import { Lease6Store, type Lease6Info } from './leases';
import { decide6, type Decision6 } from './policy';
import { literalLookup } from '../net/lookup';

export interface Dhcp6ServiceOptions {
  dhcp6: Dhcp6Config;
  /** LAN interface (multicast membership), its IPv6 address and prefix */
  interface: string;
  address6: string;
  prefix6: number;
  loaders: Record<string, string[] | string>;
  httpPort: number;
  tftpPort: number;
  tftpEnabled: boolean;
  stateDir: string;
  log: Logger;
  metrics: Metrics;
  emit: EmitFn;
  trace?: PacketTrace;
  /** boot-service port (4011; 0 in tests) */
  proxyPort?: number;
  /** where the socket binds; default '::' */
  listenAddress?: string;
  now?: () => number;
  fsync?: boolean;
  /** the sender's MAC from the neighbour table (agent: `ip -6 neigh`), when the DUID and EUI-64 do not tell */
  neighbourMac?: (address: string) => string | undefined;
}

const RECEIVED_EVENT: Partial<Record<number, Dhcp6ReceivedEvent['type']>> = {
  [Msg6.SOLICIT]: 'dhcp6.solicit',
  [Msg6.REQUEST]: 'dhcp6.request',
  [Msg6.CONFIRM]: 'dhcp6.confirm',
  [Msg6.RENEW]: 'dhcp6.renew',
  [Msg6.REBIND]: 'dhcp6.rebind',
  [Msg6.RELEASE]: 'dhcp6.release',
  [Msg6.DECLINE]: 'dhcp6.decline',
  [Msg6.INFORMATION_REQUEST]: 'dhcp6.inform',
};

export const DUID_FILE = 'dhcp6-duid';
/** when a boot-service (4011) REPLY is sent again (ms after the first) */
const PROXY_REPEAT_MS = [250, 1000];
const ALL_SERVERS = 'ff02::1:2';

function bind(sock: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ port, address, exclusive: true }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

/**
 * The server DUID (RFC 8415 §11): made once and kept in stateDir, so clients
 * keep talking to "the same server" across restarts. DUID-LLT of the LAN
 * interface's MAC when it has one, else DUID-UUID.
 */
export function loadServerDuid(stateDir: string, iface: string, now = Date.now()): Buffer {
  const file = join(stateDir, DUID_FILE);
  try {
    const b = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
    decodeDuid(b);
    if (b.length >= 2) return b;
  } catch {
    /* none yet, or unreadable: make a new one */
  }
  const mac = networkInterfaces()[iface]?.find((a) => a.mac && a.mac !== '00:00:00:00:00:00')?.mac;
  const duid = mac ? encodeDuidLlt(mac, Math.floor(now / 1000) - 946684800) : encodeDuidUuid(randomUUID());
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(file + '.tmp', duid.toString('hex') + '\n');
  renameSync(file + '.tmp', file);
  return duid;
}

export class Dhcp6Service {
  private sock?: Socket;
  private proxySock?: Socket;
  private store: Lease6Store;
  private duid: Buffer = Buffer.alloc(0);
  private readonly now: () => number;
  private running = false;
  /** mac → the address it last got (tracker/API) */
  private ip6ByMac = new Map<string, string>();
  /** global source address → mac, for clients that talk to us from an address someone else gave (the 4011 boot service) */
  private macBySource = new Map<string, string>();

  constructor(private readonly o: Dhcp6ServiceOptions) {
    this.now = o.now ?? Date.now;
    this.store = new Lease6Store({
      stateDir: o.dhcp6.mode === 'server' ? o.stateDir : undefined,
      range: o.dhcp6.range,
      leaseSeconds: o.dhcp6.leaseSeconds,
      now: this.now,
      fsync: o.fsync,
    });
    const m = o.metrics;
    m.declare('bootrelay_dhcp6_received_total', 'counter', 'DHCPv6 messages received, by type');
    m.declare('bootrelay_dhcp6_sent_total', 'counter', 'DHCPv6 messages sent, by type');
    m.declare('bootrelay_dhcp6_dropped_total', 'counter', 'DHCPv6 datagrams dropped as malformed, by reason');
    m.declare('bootrelay_dhcp6_ignored_total', 'counter', 'DHCPv6 messages not for us, by reason');
  }

  get port(): number {
    return this.sock?.address().port ?? 0;
  }
  get proxyPort(): number {
    return this.proxySock?.address().port ?? 0;
  }
  get serverDuid(): Buffer {
    return this.duid;
  }
  get leaseStore(): Lease6Store {
    return this.store;
  }

  /** The IPv6 address a client (MAC) last got from us. */
  ip6For(mac: string): string | undefined {
    return this.ip6ByMac.get(mac.toLowerCase());
  }

  leases(): Lease6Info[] {
    return this.store.list();
  }

  /** The client (MAC) holding an IPv6 address: TFTP/HTTP over IPv6 name their clients by it. */
  macForIp6(ip: string): string | undefined {
    const a = canonicalIp6(ip);
    return a ? (this.store.macForIp(a) ?? this.macBySource.get(a)) : undefined;
  }

  async start(): Promise<void> {
    const { dhcp6, log } = this.o;
    if (dhcp6.mode === 'off' || this.running) return;
    this.duid = loadServerDuid(this.o.stateDir, this.o.interface, this.now());
    await this.store.load();
    try {
      this.sock = await this.open(dhcp6.port, 'dhcp', true);
      if (dhcp6.mode === 'stateless') this.proxySock = await this.open(this.o.proxyPort ?? 4011, 'proxy', false);
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.running = true;
    log.info({ mode: dhcp6.mode, port: this.port, proxyPort: this.proxyPort || undefined, address6: this.o.address6, range: dhcp6.mode === 'server' ? dhcp6.range.join('-') : undefined, duid: this.duid.toString('hex') }, 'dhcp6 listening');
  }

  private async open(port: number, via: 'dhcp' | 'proxy', multicast: boolean): Promise<Socket> {
    const s = dgram.createSocket({ type: 'udp6', reuseAddr: true, ipv6Only: true, lookup: literalLookup });
    s.on('message', (b, r) => this.onDatagram(b, r, via));
    await bind(s, port, this.o.listenAddress ?? '::');
    s.on('error', (err) => this.o.log.warn({ err }, 'dhcp6 socket error'));
    if (multicast) {
      try {
        s.addMembership(ALL_SERVERS, `::%${this.o.interface}`);
      } catch (err) {
        // no such interface (tests on loopback): unicast still works
        this.o.log.warn({ err, interface: this.o.interface }, 'dhcp6: cannot join ff02::1:2; answering unicast only');
      }
    }
    return s;
  }

  async stop(): Promise<void> {
    this.running = false;
    const socks = [this.sock, this.proxySock].filter((s): s is Socket => !!s);
    this.sock = this.proxySock = undefined;
    await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
    await this.store.close();
  }

  // ------------------------------------------------------------------ hot path

  private onDatagram(buf: Buffer, rinfo: RemoteInfo, via: 'dhcp' | 'proxy'): void {
    const { metrics, log } = this.o;
    if (rinfo.port === 0) {
      metrics.inc('bootrelay_dhcp6_dropped_total', { reason: 'bad-port' });
      return;
    }
    let pkt: Dhcp6Packet;
    try {
      pkt = decodeDhcp6(buf);
    } catch (e) {
      const reason = e instanceof DecodeError ? e.reason : 'error';
      metrics.inc('bootrelay_dhcp6_dropped_total', { reason });
      if (log.isLevelEnabled('debug')) log.debug({ from: `[${rinfo.address}]:${rinfo.port}`, reason, err: (e as Error).message }, 'dhcp6 datagram dropped');
      return;
    }
    try {
      this.handle(pkt, buf, rinfo, via);
    } catch (e) {
      metrics.inc('bootrelay_dhcp6_dropped_total', { reason: 'internal' });
      log.error({ err: e, from: rinfo.address }, 'dhcp6 handler failed');
    }
  }

  private handle(pkt: Dhcp6Packet, raw: Buffer, rinfo: RemoteInfo, via: 'dhcp' | 'proxy'): void {
    const { metrics, log, emit } = this.o;
    // relay-forw (§19): answer the innermost message, wrap the reply the same way
    const relays: Dhcp6RelayMessage[] = [];
    let cur: Dhcp6Packet | undefined = pkt;
    while (cur && isRelay(cur)) {
      if (cur.type !== Msg6.RELAY_FORW) break;
      relays.push(cur);
      cur = cur.inner;
    }
    if (!cur || isRelay(cur)) {
      metrics.inc('bootrelay_dhcp6_ignored_total', { reason: 'not-a-request' });
      return;
    }
    const msg: Dhcp6Message = cur;
    const outer = relays[0];
    if (outer && outer.linkAddress !== '::' && !inPrefix6(outer.linkAddress, this.o.address6, this.o.prefix6)) {
      metrics.inc('bootrelay_dhcp6_ignored_total', { reason: 'outside-lan' });
      return;
    }
    metrics.inc('bootrelay_dhcp6_received_total', { type: msg6Name(msg.type) });
    const peer = relays.length ? relays[relays.length - 1]!.peerAddress : rinfo.address.split('%')[0]!;
    const c = classifyClient6(msg, { address: peer, linkLayer: this.o.neighbourMac?.(peer) });
    const src = canonicalIp6(rinfo.address.split('%')[0]!);
    if (c.mac) {
      // who is at which address, for TFTP/HTTP: where it talks to us from, and the addresses
      // its REQUEST/RENEW/REBIND name, also to another DHCPv6 server (multicast reaches us too)
      const seen = src && !relays.length && !isLinkLocal6(src) ? [src] : [];
      if (msg.type === Msg6.REQUEST || msg.type === Msg6.RENEW || msg.type === Msg6.REBIND)
        for (const raw of msg.options.all(Opt6.IaNa)) for (const a of decodeIa(Opt6.IaNa, raw).options.all(Opt6.IaAddr)) seen.push(decodeIaAddr(a).address);
      for (const ip of seen) {
        this.macBySource.delete(ip);
        this.macBySource.set(ip, c.mac);
        if (this.macBySource.size > 4096) this.macBySource.delete(this.macBySource.keys().next().value!);
      }
    }
    const base = { mac: c.mac, xid: xid6(msg.xid), arch: c.arch, firmware: c.firmware, duid: c.duid?.hex } satisfies Record<string, unknown>;
    this.o.trace?.record({ mac: c.mac ?? '', dir: 'in', clientIp: rinfo.address, clientPort: rinfo.port, serverIp: this.o.address6, serverPort: via === 'proxy' ? this.proxyPort : this.port, payload: raw });
    const d = decide6(msg, c, {
      mode: this.o.dhcp6.mode === 'stateless' ? 'stateless' : 'server',
      via,
      serverDuid: this.duid,
      address6: this.o.address6,
      prefix6: this.o.prefix6,
      httpPort: this.o.httpPort,
      tftpPort: this.o.tftpPort,
      tftpEnabled: this.o.tftpEnabled,
      loaders: this.o.loaders,
      leaseSeconds: this.o.dhcp6.leaseSeconds,
      preference: this.o.dhcp6.preference,
      range: this.o.dhcp6.range,
      leases: this.store,
    });
    if (d.kind === 'ignore') {
      metrics.inc('bootrelay_dhcp6_ignored_total', { reason: d.reason });
      if (log.isLevelEnabled('debug')) log.debug({ ...base, type: msg6Name(msg.type), reason: d.reason, detail: d.detail }, 'dhcp6 ignored');
      return;
    }
    const recv = RECEIVED_EVENT[msg.type];
    if (recv) emit({ type: recv, ...base, vendorClass: c.vendorClass, userClass: c.userClass.length ? c.userClass : undefined, archCode: c.archCode, macFrom: c.macFrom });
    for (const s of d.side) emit({ ...base, ...s });
    const duid = c.duid?.hex ?? '';
    const send = () => {
      try {
        this.send(d, msg, relays, rinfo, via, base);
      } catch (e) {
        metrics.inc('bootrelay_dhcp6_dropped_total', { reason: 'internal' });
        log.error({ err: e, ...base }, 'dhcp6 reply failed');
      }
    };
    if (d.ops.length === 0) return send();
    const done = d.ops.map((op) =>
      op.op === 'commit' ? this.store.commit(duid, op.iaid, op.ip, c.mac) : op.op === 'release' ? this.store.release(duid, op.iaid, op.ip) : this.store.decline(duid, op.iaid, op.ip),
    );
    Promise.all(done).then(send, (err) => {
      metrics.inc('bootrelay_dhcp6_dropped_total', { reason: 'commit-failed' });
      log.error({ err, ...base }, 'lease not saved: no REPLY sent');
    });
  }

  private send(d: Extract<Decision6, { kind: 'reply' }>, req: Dhcp6Message, relays: Dhcp6RelayMessage[], rinfo: RemoteInfo, via: 'dhcp' | 'proxy', base: { mac?: string; xid: string; arch: ArchKey; firmware: Firmware; duid?: string }): void {
    const { metrics, log, emit } = this.o;
    const sock = via === 'proxy' ? this.proxySock : this.sock;
    if (!sock) return;
    let out: Dhcp6Packet = d.reply;
    // wrap in relay-repl, innermost first; Interface-Id echoed (§19.3)
    for (let i = relays.length - 1; i >= 0; i--) {
      const r = relays[i]!;
      const options = new Options6();
      const ifid = r.options.get(Opt6.InterfaceId);
      if (ifid) options.add(Opt6.InterfaceId, ifid);
      options.add(Opt6.RelayMsg, encodeDhcp6(out));
      out = { type: Msg6.RELAY_REPL, hopCount: r.hopCount, linkAddress: r.linkAddress, peerAddress: r.peerAddress, options };
    }
    const buf = encodeDhcp6(out);
    const sendOnce = () =>
      sock.send(buf, rinfo.port, rinfo.address, (err) => {
        if (err) log.warn({ err, to: rinfo.address }, 'dhcp6 send failed');
      });
    sendOnce();
    if (via === 'proxy') {
      // EDK2 (PxeBcRequestBootService) configures its receiving UDP instance only after it has
      // sent the boot-service REQUEST: an answer that quick is lost (seen under QEMU). The same
      // REPLY again a little later is read; the firmware does not ask twice.
      for (const ms of PROXY_REPEAT_MS) {
        const t = setTimeout(() => this.sock && this.proxySock === sock && sendOnce(), ms);
        t.unref();
      }
    }
    metrics.inc('bootrelay_dhcp6_sent_total', { type: msg6Name(d.reply.type) });
    this.o.trace?.record({ mac: base.mac ?? '', dir: 'out', clientIp: rinfo.address, clientPort: rinfo.port, serverIp: this.o.address6, serverPort: sock.address().port, payload: buf });
    // the address the client gets, or (boot service on 4011) the one it came from
    const from = canonicalIp6(rinfo.address.split('%')[0]!);
    const ip6 = d.ips[0] ?? (via === 'proxy' && from && !isLinkLocal6(from) ? from : undefined);
    if (ip6 && base.mac && d.event === 'dhcp6.reply' && req.type !== Msg6.CONFIRM) this.ip6ByMac.set(base.mac, ip6);
    emit({ type: d.event, ...base, ip6, file: d.boot?.path, role: d.boot?.role, url: d.boot?.url, status: d.status, proxy: via === 'proxy' || undefined });
    if (d.boot && (d.event === 'dhcp6.reply' || log.isLevelEnabled('debug'))) log.info({ ...base, ip6, url: d.boot.url, to: rinfo.address }, `${d.event} sent`);
  }
}
