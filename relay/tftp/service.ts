/**
 * TFTP server (read-only): RRQ on `address:port`, one ephemeral socket per
 * transfer (RFC 1350 §4: the server's TID), options per RFC 2347/2348/2349/7440,
 * files streamed from a FileSource block by block (only the current window is
 * held), retransmission by proto/tftp/sender.
 *
 * Modes: octet, and netascii (LF → CR LF, CR → CR NUL on the fly, RFC 764;
 * no tsize is offered then, since the size changes). Anything else: ERROR 0.
 */
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { Transform, type Readable } from 'node:stream';
import type { TftpConfig } from './config';
import type { Logger } from 'pino';
import { PathError, UpstreamError } from '../../proto/errors';
import type { EmitFn, FileRole, TftpFailure } from '../../proto/events';
import { normalizeBootPath } from '../../proto/path';
import { negotiate, type Negotiated } from '../../proto/tftp/negotiate';
import { decodeTftp, encodeData, encodeError, encodeTftp, TftpErr, type TftpPacket, type TftpRequest } from '../../proto/tftp/packet';
import { TftpSender, type SendItem } from '../../proto/tftp/sender';
import type { Metrics } from '../metrics';
import type { FileSource, OpenedFile } from '../source';
import type { BootPlan } from '../boot/plan';
import type { PacketTrace } from '../trace';
import { literalLookup } from '../net/lookup';

export interface TftpServiceOptions {
  address: string;
  /** also listen on this IPv6 address (same port); transfers to IPv6 clients use it */
  address6?: string;
  port: number;
  source: FileSource;
  config: TftpConfig;
  log: Logger;
  metrics: Metrics;
  emit: EmitFn;
  macForIp?: (ip: string) => string | undefined;
  /** what a file is in the boot (events carry its role) */
  plan?: Pick<BootPlan, 'fileRole' | 'profileName'>;
  trace?: PacketTrace;
  /** tftp.progress events per transfer are at least this far apart (default 250 ms) */
  progressIntervalMs?: number;
  /** longest wait for a size not known yet (a chunked upstream) when the client asks for tsize (default 8 s) */
  tsizeWaitMs?: number;
}

/**
 * A client that asks for tsize gets it (EDK2 fails with PXE-E53 on an OACK
 * without it): when the file's size is not known yet, the OACK waits for the
 * fill up to this long. Below EDK2's 4 s × 6 RRQ retries and iPXE's give-up;
 * repeated RRQs meanwhile are dropped as duplicates.
 */
export const TSIZE_WAIT_MS = 8000;

export const TFTP_METRICS = {
  transfers: 'bootrelay_tftp_transfers_total',
  bytes: 'bootrelay_tftp_bytes_total',
  dropped: 'bootrelay_tftp_dropped_total',
  retransmits: 'bootrelay_tftp_retransmits_total',
  active: 'bootrelay_tftp_active_transfers',
} as const;

/** How a transfer ended (label `result` of bootrelay_tftp_transfers_total). */
export type TransferResult = 'ok' | 'ok-unconfirmed' | 'tsize-probe' | 'stopped' | TftpFailure;

interface Peer {
  ip: string;
  port: number;
}

const TRACE_DATA_BYTES = 64;
const TFTP_DATA_OPCODE = 3; // RFC 1350 §5
/** RRQs longer than this are dropped unread (RFC 2347 §2 says 512; long paths get 8 times that) */
export const MAX_REQUEST_BYTES = 4096;

export class TftpService {
  private socket: dgram.Socket | undefined;
  private socket6: dgram.Socket | undefined;
  private boundPort = 0;
  private readonly transfers = new Map<string, Transfer>();
  private readonly perClient = new Map<string, number>();
  private readonly log: Logger;

  constructor(private readonly opts: TftpServiceOptions) {
    this.log = opts.log.child({ component: 'tftp' });
    const m = opts.metrics;
    m.declare(TFTP_METRICS.transfers, 'counter', 'TFTP transfers by result');
    m.declare(TFTP_METRICS.bytes, 'counter', 'TFTP payload bytes acknowledged by clients');
    m.declare(TFTP_METRICS.dropped, 'counter', 'TFTP datagrams dropped or requests refused, by reason');
    m.declare(TFTP_METRICS.retransmits, 'counter', 'TFTP packets sent again');
    m.declare(TFTP_METRICS.active, 'gauge', 'TFTP transfers in progress');
    m.onCollect(() => m.set(TFTP_METRICS.active, this.transfers.size));
  }

  get port(): number {
    return this.boundPort;
  }

  /** Transfers in progress (for status). */
  get active(): number {
    return this.transfers.size;
  }

  async start(): Promise<void> {
    if (this.socket) return;
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false, lookup: literalLookup });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (err) => {
        // the failed bind keeps its descriptor until closed
        try {
          sock.close();
        } catch {
          /* not running */
        }
        reject(err);
      });
      sock.bind({ address: this.opts.address, port: this.opts.port, exclusive: true }, () => {
        sock.removeAllListeners('error');
        resolve();
      });
    });
    const onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      try {
        this.onRequest(msg, { ip: rinfo.address, port: rinfo.port });
      } catch (err) {
        // never let one datagram take the service down
        this.drop('internal');
        this.log.error({ err }, 'request handling failed');
      }
    };
    sock.on('error', (err) => this.log.error({ err }, 'socket error'));
    sock.on('message', onMessage);
    this.socket = sock;
    this.boundPort = (sock.address() as AddressInfo).port;
    if (this.opts.address6) await this.listen6(onMessage);
    this.log.info({ address: this.opts.address, address6: this.opts.address6, port: this.boundPort }, 'listening');
  }

  private retry6?: NodeJS.Timeout;

  /**
   * The IPv6 listener on address6, same port. An address still in duplicate address
   * detection (EADDRNOTAVAIL, e.g. at router boot) costs no IPv4 service: tried again every
   * 2 s until it binds or the service stops. Other errors (the port taken) fail the start.
   */
  private async listen6(onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): Promise<void> {
    const s6 = dgram.createSocket({ type: 'udp6', reuseAddr: false, ipv6Only: true, lookup: literalLookup });
    try {
      await new Promise<void>((resolve, reject) => {
        s6.once('error', reject);
        s6.bind({ address: this.opts.address6, port: this.boundPort, exclusive: true }, () => {
          s6.removeAllListeners('error');
          resolve();
        });
      });
    } catch (err) {
      try {
        s6.close();
      } catch {
        /* never bound */
      }
      if ((err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL' && this.socket) {
        this.log.warn({ address6: this.opts.address6 }, 'IPv6 address not usable yet: TFTP over IPv6 waits for it');
        this.retry6 = setTimeout(() => {
          this.retry6 = undefined;
          if (this.socket && !this.socket6) this.listen6(onMessage).catch((e) => this.log.error({ err: e }, 'TFTP over IPv6 not started'));
        }, 2000);
        this.retry6.unref();
        return;
      }
      await this.stop();
      throw err;
    }
    if (!this.socket) {
      s6.close(); // stopped meanwhile
      return;
    }
    s6.on('error', (err) => this.log.error({ err }, 'socket error'));
    s6.on('message', onMessage);
    this.socket6 = s6;
  }

  /** @internal A socket for talking to `peer`: IPv6 peers from address6, the others from address. */
  socketFor(peer: Peer, reuseAddr = false): { sock: dgram.Socket; address: string } {
    if (peer.ip.includes(':') && !peer.ip.startsWith('::ffff:')) return { sock: dgram.createSocket({ type: 'udp6', ipv6Only: true, reuseAddr, lookup: literalLookup }), address: this.opts.address6 ?? '::' };
    return { sock: dgram.createSocket({ type: 'udp4', reuseAddr, lookup: literalLookup }), address: this.opts.address };
  }

  async stop(): Promise<void> {
    const socks = [this.socket, this.socket6];
    this.socket = this.socket6 = undefined;
    if (this.retry6) clearTimeout(this.retry6);
    this.retry6 = undefined;
    for (const t of [...this.transfers.values()]) t.stop();
    for (const sock of socks) if (sock) await new Promise<void>((r) => sock.close(() => r()));
  }

  // ---- internals shared with Transfer ----

  /** @internal */
  drop(reason: string): void {
    this.opts.metrics.inc(TFTP_METRICS.dropped, { reason });
  }

  /** @internal */
  traceIn(mac: string | undefined, peer: Peer, serverPort: number, payload: Buffer): void {
    if (!mac || !this.opts.trace) return;
    this.opts.trace.record({ mac, dir: 'in', clientIp: peer.ip, clientPort: peer.port, serverIp: this.opts.address, serverPort, payload });
  }

  /** @internal */
  traceOut(mac: string | undefined, peer: Peer, serverPort: number, payload: Buffer): void {
    if (!mac || !this.opts.trace) return;
    this.opts.trace.record({ mac, dir: 'out', clientIp: peer.ip, clientPort: peer.port, serverIp: this.opts.address, serverPort, payload });
  }

  /** @internal */
  release(t: Transfer): void {
    if (this.transfers.get(t.key) !== t) return;
    this.transfers.delete(t.key);
    const n = (this.perClient.get(t.peer.ip) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(t.peer.ip);
    else this.perClient.set(t.peer.ip, n);
    this.opts.metrics.set(TFTP_METRICS.active, this.transfers.size);
  }

  /** @internal */
  get deps(): TftpServiceOptions {
    return this.opts;
  }

  /** @internal */
  get logger(): Logger {
    return this.log;
  }

  private onRequest(msg: Buffer, peer: Peer): void {
    if (peer.port === 0) {
      // a forged source port 0 (raw socket): nothing can be sent back to it, and
      // dgram's send() throws on port 0, which would leak the transfer slot
      this.drop('bad-port');
      return;
    }
    if (msg.length > MAX_REQUEST_BYTES) {
      // RFC 2347 §2: a request fits in 512 octets; a 64 KB one of thousands of options is only work
      this.drop('oversize');
      return;
    }
    const mac = this.opts.macForIp?.(peer.ip);
    this.traceIn(mac, peer, this.boundPort, msg);
    let pkt: TftpPacket;
    try {
      pkt = decodeTftp(msg);
    } catch (err) {
      this.drop('decode');
      this.log.debug({ ip: peer.ip, err: (err as Error).message }, 'undecodable request dropped');
      return;
    }
    if (pkt.op === 'wrq') {
      this.drop('wrq');
      this.log.info({ ip: peer.ip, file: pkt.file }, 'write request refused');
      this.refuse(peer, mac, TftpErr.AccessViolation, 'write not supported');
      return;
    }
    if (pkt.op !== 'rrq') {
      this.drop('unexpected-opcode');
      return;
    }
    const key = `${peer.ip}:${peer.port}`;
    const existing = this.transfers.get(key);
    if (existing) {
      if (!existing.supersededBy(msg)) {
        // the client repeated its RRQ while we were opening the file or waiting for ACK 0
        this.drop('duplicate-rrq');
        return;
      }
      // a new request from the same port before any DATA: the earlier one was a probe
      // whose ERROR we have not seen (yet); it is replaced
    }
    if (pkt.mode !== 'octet' && pkt.mode !== 'netascii') {
      this.drop('mode');
      this.refuse(peer, mac, TftpErr.NotDefined, `unsupported mode ${pkt.mode}`);
      return;
    }
    const cfg = this.opts.config;
    if (this.transfers.size >= cfg.maxTransfers || (this.perClient.get(peer.ip) ?? 0) >= cfg.maxTransfersPerClient) {
      this.drop('too-many-transfers');
      this.log.warn({ ip: peer.ip, file: pkt.file, active: this.transfers.size }, 'too many transfers');
      this.refuse(peer, mac, TftpErr.NotDefined, 'too many transfers');
      return;
    }
    let path: string;
    try {
      path = normalizeBootPath(pkt.file);
    } catch (err) {
      this.drop('path');
      this.opts.metrics.inc(TFTP_METRICS.transfers, { result: 'refused' });
      this.log.warn({ ip: peer.ip, mac, file: pkt.file, reason: (err as Error).message }, 'file name refused');
      this.refuse(peer, mac, TftpErr.AccessViolation, 'access violation');
      return;
    }
    const t = new Transfer(this, key, peer, mac, pkt, path, msg);
    this.transfers.set(key, t);
    this.perClient.set(peer.ip, (this.perClient.get(peer.ip) ?? 0) + 1);
    this.opts.metrics.set(TFTP_METRICS.active, this.transfers.size);
    void t.run();
  }

  /** An ERROR answer to a request, from a fresh port (the TID a transfer would have had). */
  private refuse(peer: Peer, mac: string | undefined, code: number, message: string): void {
    const buf = encodeError(code, message);
    const { sock: s, address } = this.socketFor(peer);
    const close = () => {
      try {
        s.close();
      } catch {
        /* already closed */
      }
    };
    s.on('error', (err) => {
      this.log.debug({ err }, 'refusal socket error');
      close();
    });
    s.bind({ address, port: 0 }, () => {
      const port = (s.address() as AddressInfo).port;
      this.traceOut(mac, peer, port, buf);
      try {
        s.send(buf, peer.port, peer.ip, close);
      } catch (err) {
        this.log.debug({ err }, 'refusal not sent');
        close();
      }
    });
  }
}

/** One read transfer on its own socket. */
class Transfer {
  private socket: dgram.Socket | undefined;
  /** connected to the client (see connectToPeer) */
  private connected = false;
  /** the local address the transfer socket is bound to */
  private address = '';
  /** shares the port: answers datagrams from other senders with ERROR 5 */
  private stray: dgram.Socket | undefined;
  private localPort = 0;
  private file: OpenedFile | undefined;
  private stream: Readable | undefined;
  private ended = false;
  /** bytes read from the stream, not yet cut into blocks */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private sender: TftpSender | undefined;
  private neg: Negotiated | undefined;
  private oackBuf: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** when the running timer fires (ms, Date.now clock) */
  private timerDue = 0;
  /** when the retransmission is really due: later than timerDue after progress */
  private deadline = 0;
  private readonly onTimer = () => {
    this.timer = undefined;
    const left = this.deadline - Date.now();
    if (left > 0) {
      this.startTimer(left);
      return;
    }
    this.onTimeout();
  };
  private baseMs = 1000;
  private finished = false;
  /** an ERROR is on its way out; ignore the client meanwhile */
  private closing = false;
  /** done without the final ACK */
  private unconfirmed = false;
  private started = false;
  private t0 = Date.now();
  private lastProgress = 0;
  private bytesCounted = 0;
  private readonly abort = new AbortController();
  private readonly log: Logger;
  private readonly settle = () => this.sender?.settle();

  constructor(
    private readonly svc: TftpService,
    readonly key: string,
    readonly peer: Peer,
    private readonly mac: string | undefined,
    private readonly rrq: TftpRequest,
    private readonly path: string,
    private readonly raw: Buffer,
  ) {
    this.log = svc.logger.child({ ip: peer.ip, port: peer.port, mac, file: path });
  }

  async run(): Promise<void> {
    const { deps } = this.svc;
    try {
      // SO_REUSEADDR: a second socket shares the port (the stray socket, connectToPeer)
      const { sock, address } = this.svc.socketFor(this.peer, true);
      this.socket = sock;
      this.address = address;
      sock.on('error', (err) => this.log.debug({ err }, 'transfer socket error'));
      await bindP(sock, address, 0);
      this.localPort = (sock.address() as AddressInfo).port;
      if (this.finished) return;
      await this.connectToPeer(sock);
      if (this.finished) return;
      sock.on('message', (msg, rinfo) => {
        try {
          this.onMessage(msg, rinfo);
        } catch (err) {
          this.svc.drop('internal');
          this.log.error({ err }, 'transfer message handling failed');
        }
      });

      let opened: OpenedFile;
      try {
        // lock-step reads a block per round trip: a thread-pool hop per chunk costs more than the read
        opened = await deps.source.open(this.path, { mac: this.mac, signal: this.abort.signal, syncReads: true });
      } catch (err) {
        if (this.finished) return;
        if (err instanceof UpstreamError && err.code === 'ENOENT') {
          this.log.info('file not found');
          this.fail('not-found', TftpErr.FileNotFound, 'file not found', 'file not found');
        } else if (err instanceof PathError) {
          this.fail('refused', TftpErr.AccessViolation, 'access violation', (err as Error).message);
        } else {
          this.log.warn({ err }, 'source open failed');
          this.fail('upstream-error', TftpErr.NotDefined, 'upstream error', `upstream error: ${(err as Error).message}`);
        }
        return;
      }
      this.file = opened;
      if (this.finished) {
        opened.stream.destroy();
        return;
      }
      const netascii = this.rrq.mode === 'netascii';
      if (!netascii && opened.size === undefined && this.rrq.options.tsize !== undefined && opened.sizeWhenKnown) {
        // RFC 2349 §3: the OACK carries the size; learn it from the fill before answering
        opened.size = await opened.sizeWhenKnown(deps.tsizeWaitMs ?? TSIZE_WAIT_MS);
        if (this.finished) return;
        this.log.debug({ size: opened.size }, opened.size === undefined ? 'size still unknown: OACK without tsize' : 'size learnt for tsize');
      }
      this.stream = netascii ? opened.stream.pipe(netasciiEncoder()) : opened.stream;
      if (netascii) opened.stream.on('error', (err) => this.stream?.destroy(err));
      const cfg = deps.config;
      const neg = negotiate(this.rrq.options, {
        maxBlksize: cfg.maxBlksize,
        maxWindowsize: cfg.maxWindowsize,
        size: netascii ? undefined : opened.size,
      });
      this.neg = neg;
      this.baseMs = Math.max(1, (neg.timeout ?? cfg.timeout) * 1000);
      const hasOack = Object.keys(neg.oack).length > 0;
      if (hasOack) this.oackBuf = encodeTftp({ op: 'oack', options: neg.oack });
      this.sender = new TftpSender({ blksize: neg.blksize, windowsize: neg.windowsize, retries: cfg.retries, rolloverTo: neg.rolloverTo, oack: hasOack });
      this.log.debug({ options: this.rrq.options, oack: neg.oack }, 'negotiated');

      this.stream.on('readable', () => this.safeFill());
      this.stream.on('end', () => {
        this.ended = true;
        this.safeFill();
      });
      this.stream.on('error', (err) => {
        if (this.finished) return;
        this.log.warn({ err }, 'source stream failed');
        this.fail('upstream-error', TftpErr.NotDefined, 'upstream error', `upstream error: ${err.message}`);
      });
      this.send(this.sender.begin());
      this.fill();
    } catch (err) {
      this.log.error({ err }, 'transfer failed');
      this.fail('upstream-error', TftpErr.NotDefined, 'internal error', (err as Error).message);
    }
  }

  /**
   * The transfer socket is connected to the client (RFC 1350 §4: the TIDs are
   * fixed now): each send skips the address lookup and parse, the kernel keeps
   * other senders' datagrams away from it. Those reach a second socket on the
   * same port, which answers ERROR 5 (unknown transfer ID) and nothing else.
   * If that socket cannot be had, the transfer socket stays unconnected and
   * answers strays itself.
   */
  private async connectToPeer(sock: dgram.Socket): Promise<void> {
    const { sock: stray } = this.svc.socketFor(this.peer, true);
    stray.on('error', (err) => this.log.debug({ err }, 'stray socket error'));
    try {
      await bindP(stray, this.address, this.localPort);
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.connect(this.peer.port, this.peer.ip, () => {
          sock.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.log.debug({ err }, 'transfer socket not connected: strays answered by it');
      closeQuietly(stray);
      return;
    }
    if (this.finished) {
      closeQuietly(stray);
      return;
    }
    this.stray = stray;
    this.connected = true;
    stray.on('message', (_msg, rinfo) => {
      // RFC 1350 §4: a packet from a foreign TID gets ERROR 5, the transfer goes on
      this.svc.drop(rinfo.port === 0 ? 'bad-port' : 'unknown-tid');
      if (rinfo.port !== 0) stray.send(encodeError(TftpErr.UnknownTid, 'unknown transfer ID'), rinfo.port, rinfo.address);
    });
  }

  /** Sends to the client, through the connected socket or with its address. */
  private out(sock: dgram.Socket, buf: Buffer | Buffer[], cb?: () => void): void {
    if (this.connected) sock.send(buf, cb);
    else sock.send(buf, this.peer.port, this.peer.ip, cb);
  }

  /**
   * A different RRQ from the same client port while this one has sent no DATA
   * (PXE ROMs probe tsize, then ask again): this transfer ends quietly as a
   * probe and the new request goes ahead. An identical RRQ is a retransmission.
   */
  supersededBy(rrq: Buffer): boolean {
    if (this.finished || this.started || this.closing || rrq.equals(this.raw)) return false;
    this.log.info('superseded by a new request before any DATA');
    this.abort.abort();
    this.finish('tsize-probe');
    return true;
  }

  /** Service stopping: close without events. */
  stop(): void {
    if (this.finished) return;
    this.abort.abort();
    this.finish('stopped');
  }

  private safeFill(): void {
    try {
      this.fill();
    } catch (err) {
      this.log.error({ err }, 'reading the source failed');
      this.fail('upstream-error', TftpErr.NotDefined, 'internal error', (err as Error).message);
    }
  }

  /**
   * Cuts blocks from the stream while the window wants them; otherwise leaves
   * the data in the stream (backpressure). Works with byte and object-mode
   * streams of any chunk size: at most one chunk is held here beyond a block.
   */
  private fill(): void {
    const sender = this.sender;
    const stream = this.stream;
    if (this.finished || this.closing || !sender || !stream) return;
    const blk = sender.blksize;
    while (sender.wanted() > 0) {
      if (this.pendingLen >= blk) {
        this.send(sender.push(this.take(blk)));
        continue;
      }
      const chunk = stream.read() as Buffer | string | null;
      if (chunk !== null) {
        const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        if (b.length) {
          this.pending.push(b);
          this.pendingLen += b.length;
        }
        continue;
      }
      // the rest, shorter than a block (possibly empty), is the final block
      if (this.ended) this.send(sender.push(this.take(this.pendingLen)));
      break;
    }
  }

  /** The next `n` pending bytes: a view of the first chunk when it holds them, else only those n bytes copied. */
  private take(n: number): Buffer {
    const first = this.pending[0];
    if (first && first.length >= n) {
      if (first.length === n) this.pending.shift();
      else this.pending[0] = first.subarray(n);
      this.pendingLen -= n;
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.pending[0]!;
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.pending.shift();
      else this.pending[0] = c.subarray(k);
    }
    this.pendingLen -= n;
    return out;
  }

  private send(items: SendItem[]): void {
    const sock = this.socket;
    if (!sock || this.finished || items.length === 0) return;
    const { deps } = this.svc;
    let retransmits = 0;
    for (const it of items) {
      if (it.retransmit) retransmits++;
      if (it.kind === 'oack') {
        this.out(sock, this.oackBuf!);
        if (this.mac && deps.trace) this.svc.traceOut(this.mac, this.peer, this.localPort, this.oackBuf!);
        continue;
      }
      if (!this.started) this.onStarted();
      // header and block as two pieces of one datagram (sendmsg iovec): the block is not copied
      const hdr = Buffer.allocUnsafe(4);
      hdr.writeUInt16BE(TFTP_DATA_OPCODE, 0);
      hdr.writeUInt16BE(it.block, 2);
      this.out(sock, [hdr, it.data]);
      if (this.mac && deps.trace) this.svc.traceOut(this.mac, this.peer, this.localPort, encodeData(it.block, it.data.subarray(0, TRACE_DATA_BYTES)));
    }
    if (retransmits) deps.metrics.inc(TFTP_METRICS.retransmits, {}, retransmits);
    this.rearm();
  }

  private onStarted(): void {
    this.started = true;
    this.t0 = Date.now();
    const neg = this.neg!;
    this.log.info({ totalBytes: this.file?.size, blksize: neg.blksize, windowsize: neg.windowsize }, 'transfer started');
    this.svc.deps.emit({
      type: 'tftp.start',
      mac: this.mac,
      ip: this.peer.ip,
      file: this.path,
      role: this.role(),
      totalBytes: this.file?.size,
      blksize: neg.blksize,
      windowsize: neg.windowsize,
    });
  }

  /**
   * Moves the retransmission deadline. In lock-step this runs per ACK, so it
   * only records the new deadline; the one running timer notices it when it
   * fires and sleeps for the rest (no timer re-insert per block).
   */
  private rearm(): void {
    const sender = this.sender;
    if (this.finished || !sender || !sender.outstanding) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    const now = Date.now();
    this.deadline = now + sender.timeoutMs(this.baseMs);
    if (this.timer && this.timerDue <= this.deadline) return;
    if (this.timer) clearTimeout(this.timer);
    this.startTimer(this.deadline - now);
  }

  private startTimer(ms: number): void {
    this.timerDue = Date.now() + ms;
    this.timer = setTimeout(this.onTimer, ms);
  }

  private onTimeout(): void {
    this.timer = undefined;
    const sender = this.sender;
    if (this.finished || !sender) return;
    const finalPending = sender.onlyFinalUnacked;
    const r = sender.onTimeout();
    if (r.giveUp && finalPending) {
      // every block but the last was acknowledged: the client almost surely has the file
      // and moved on; its final ACK was lost (RFC 1350 §6 "dallying" is optional for it)
      this.log.info('final ACK never came; counting the transfer as done');
      this.unconfirmed = true;
      this.finish('ok-unconfirmed');
      return;
    }
    if (r.giveUp) {
      this.log.info({ retries: this.svc.deps.config.retries }, 'client silent, transfer timed out');
      this.fail('timeout', TftpErr.NotDefined, 'timeout', 'timeout');
      return;
    }
    this.log.debug({ resend: r.send.length, timeouts: sender.timeoutCount }, 'retransmit on timeout');
    if (r.send.length) this.send(r.send);
    else this.rearm();
  }

  private onMessage(msg: Buffer, rinfo: { address: string; port: number }): void {
    if (this.finished || this.closing) return;
    if (rinfo.address !== this.peer.ip || rinfo.port !== this.peer.port) {
      // RFC 1350 §4: a packet from a foreign TID gets ERROR 5, the transfer goes on
      this.svc.drop(rinfo.port === 0 ? 'bad-port' : 'unknown-tid');
      if (rinfo.port !== 0) this.socket?.send(encodeError(TftpErr.UnknownTid, 'unknown transfer ID'), rinfo.port, rinfo.address);
      return;
    }
    if (this.mac) this.svc.traceIn(this.mac, this.peer, this.localPort, msg);
    let pkt: TftpPacket;
    if (msg.length === 4 && msg[0] === 0 && msg[1] === 4) {
      // the one packet of the steady state (ACK, RFC 1350 §5), read in place
      pkt = { op: 'ack', block: (msg[2]! << 8) | msg[3]! };
    } else {
      try {
        pkt = decodeTftp(msg);
      } catch {
        this.svc.drop('decode');
        return;
      }
    }
    const sender = this.sender;
    if (pkt.op === 'ack') {
      if (!sender) return; // not started: the client cannot be acking anything yet
      const r = sender.onAck(pkt.block);
      switch (r.result) {
        case 'done':
          this.countBytes();
          this.finish('ok');
          return;
        case 'start':
        case 'progress':
          this.send(r.send);
          this.fill();
          this.rearm();
          // a duplicate ACK is a gap report only once the window has left (proto/tftp/sender)
          if (sender.windowsize > 1) setImmediate(this.settle);
          if (r.result === 'progress') this.progress();
          return;
        case 'resend':
          this.log.debug({ block: pkt.block }, 'client reported a gap before the window: resent');
          this.send(r.send);
          return;
        case 'duplicate':
          this.svc.drop('duplicate-ack');
          return;
        default:
          this.svc.drop('stale-ack');
          return;
      }
    }
    if (pkt.op === 'error') {
      if (sender?.inOack && (pkt.code === TftpErr.OptionRefused || pkt.code === TftpErr.NotDefined)) {
        // PXE ROMs ask for tsize, read the OACK and end the exchange with ERROR 8 (or 0)
        this.log.info({ code: pkt.code }, 'tsize probe done');
        this.finish('tsize-probe');
        return;
      }
      this.log.info({ code: pkt.code, message: pkt.message }, 'client aborted the transfer');
      this.finish('aborted', `client sent ERROR ${pkt.code}: ${pkt.message}`);
      return;
    }
    this.svc.drop('unexpected-opcode');
  }

  private countBytes(): void {
    const acked = this.sender?.bytesAcked ?? 0;
    if (acked > this.bytesCounted) {
      this.svc.deps.metrics.inc(TFTP_METRICS.bytes, {}, acked - this.bytesCounted);
      this.bytesCounted = acked;
    }
  }

  private progress(): void {
    const now = Date.now();
    const every = this.svc.deps.progressIntervalMs ?? 250;
    if (now - this.lastProgress < every) return;
    this.lastProgress = now;
    this.countBytes();
    this.svc.deps.emit({ type: 'tftp.progress', mac: this.mac, ip: this.peer.ip, file: this.path, bytes: this.sender?.bytesAcked ?? 0, totalBytes: this.file?.size });
  }

  private role(): FileRole | undefined {
    const plan = this.svc.deps.plan;
    return plan?.fileRole(this.path, plan.profileName(this.mac));
  }

  /** Ends with an ERROR to the client and a tftp.error event. */
  private fail(result: TransferResult, code: number, clientMessage: string, error: string): void {
    if (this.finished) return;
    const buf = encodeError(code, clientMessage);
    if (this.socket && this.localPort) {
      try {
        this.out(this.socket, buf, () => this.finish(result, error, code));
      } catch {
        // the ERROR cannot leave (socket gone, bad peer): the slot is freed all the same
        this.finish(result, error, code);
        return;
      }
      this.svc.traceOut(this.mac, this.peer, this.localPort, buf);
      this.finishing();
    } else this.finish(result, error, code);
  }

  /** Stops everything but the pending ERROR send. */
  private finishing(): void {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.sender) this.sender.failed = true;
  }

  /** `code`: the TFTP error code we sent the client, if any. */
  private finish(result: TransferResult, error?: string, code?: number): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.stream?.destroy();
    if (this.file && this.file.stream !== this.stream) this.file.stream.destroy();
    const sock = this.socket;
    this.socket = undefined;
    if (sock) closeQuietly(sock);
    if (this.stray) closeQuietly(this.stray);
    this.stray = undefined;
    this.svc.release(this);
    const { deps } = this.svc;
    deps.metrics.inc(TFTP_METRICS.transfers, { result });
    this.countBytes();
    if (result === 'stopped' || result === 'tsize-probe') return;
    const s = this.sender;
    const bytes = s?.bytesAcked ?? 0;
    const base = { mac: this.mac, ip: this.peer.ip, file: this.path, role: this.role(), bytes, totalBytes: this.file?.size };
    if (result === 'ok' || result === 'ok-unconfirmed') {
      const ms = Date.now() - this.t0;
      this.log.info({ bytes, ms, blksize: s?.blksize, windowsize: s?.windowsize, retransmits: s?.retransmits }, 'transfer done');
      const last = this.unconfirmed && s ? { bytes: bytes + s.unackedBytes, confirmed: false as const } : {};
      deps.emit({ type: 'tftp.done', ...base, ms, blksize: s?.blksize, windowsize: s?.windowsize, retransmits: s?.retransmits ?? 0, ...last });
    } else {
      deps.emit({ type: 'tftp.error', ...base, error: error ?? result, reason: result, ...(code !== undefined ? { code } : {}) });
    }
  }
}

function bindP(sock: dgram.Socket, address: string, port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address, port }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}

function closeQuietly(sock: dgram.Socket): void {
  try {
    sock.close();
  } catch {
    /* already closed */
  }
}

/** netascii (RFC 764): LF → CR LF, CR → CR NUL. */
export function netasciiEncoder(): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      let extra = 0;
      for (const c of chunk) if (c === 0x0a || c === 0x0d) extra++;
      if (extra === 0) return cb(null, chunk);
      const out = Buffer.allocUnsafe(chunk.length + extra);
      let o = 0;
      for (const c of chunk) {
        if (c === 0x0a) {
          out[o++] = 0x0d;
          out[o++] = 0x0a;
        } else if (c === 0x0d) {
          out[o++] = 0x0d;
          out[o++] = 0x00;
        } else out[o++] = c;
      }
      cb(null, out);
    },
  });
}
