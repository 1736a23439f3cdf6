/**
 * The LAN socket pair (shared/DEPENDENCIES.md, "Staying on the LAN"):
 * Node's dgram cannot bind to a device nor tell the ingress interface, so
 *  - a socket bound to `listenAddress` (0.0.0.0) receives the broadcasts,
 *  - a second socket bound to `lan.address` on the same port sends, so that
 *    broadcasts leave through the LAN device with the right source address.
 * Datagrams arriving on either socket are handled. Both use reuseAddr.
 */
import dgram, { type RemoteInfo, type Socket } from 'node:dgram';
import { literalLookup } from './lookup';

/** The LAN side (config section `lan`): the services listen on this address. */
export interface LanConfig {
  interface: string;
  address: string;
  prefix: number;
  /** the LAN's own IPv6 address (global or ULA; not link-local): DHCPv6 boot URLs point here */
  address6?: string;
  /** its prefix length (default 64) */
  prefix6?: number;
}

export type LanMessageHandler = (msg: Buffer, rinfo: RemoteInfo) => void;

export interface LanSocketOptions {
  /** our address on the LAN: the send socket binds here */
  lanAddress: string;
  /** 0 picks a free port (tests); the send socket then takes the same port */
  port: number;
  /** where the receive socket binds; default 0.0.0.0 */
  listenAddress?: string;
  onMessage: LanMessageHandler;
  /** socket errors after start (logged by the owner; never thrown) */
  onError?: (err: Error) => void;
}

function bind(sock: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (e: Error) => reject(e);
    sock.once('error', fail);
    sock.bind({ port, address, exclusive: true }, () => {
      sock.off('error', fail);
      resolve();
    });
  });
}

export class LanSocketPair {
  private recv?: Socket;
  private sendSock?: Socket;
  private boundPort = 0;

  constructor(private readonly opts: LanSocketOptions) {}

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const { lanAddress, port, onMessage } = this.opts;
    const listen = this.opts.listenAddress ?? '0.0.0.0';
    const onError = (e: Error) => this.opts.onError?.(e);
    const recv = dgram.createSocket({ type: 'udp4', reuseAddr: true, lookup: literalLookup });
    recv.on('message', onMessage);
    this.recv = recv;
    try {
      await bind(recv, port, listen);
      recv.on('error', onError);
      recv.setBroadcast(true);
      this.boundPort = recv.address().port;
      if (listen === lanAddress) {
        this.sendSock = recv; // one address: one socket does both
        return;
      }
      const send = dgram.createSocket({ type: 'udp4', reuseAddr: true, lookup: literalLookup });
      send.on('message', onMessage);
      this.sendSock = send;
      await bind(send, this.boundPort, lanAddress);
      send.on('error', onError);
      send.setBroadcast(true);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Sends from lan.address:port. Never throws; errors go to onError. */
  send(buf: Buffer, port: number, address: string): void {
    const s = this.sendSock;
    if (!s) return;
    s.send(buf, port, address, (err) => {
      if (err) this.opts.onError?.(err);
    });
  }

  async stop(): Promise<void> {
    const socks = new Set([this.recv, this.sendSock].filter((s): s is Socket => !!s));
    this.recv = this.sendSock = undefined;
    await Promise.all(
      [...socks].map(
        (s) =>
          new Promise<void>((r) => {
            try {
              s.close(() => r());
            } catch {
              r(); // never bound
            }
          }),
      ),
    );
  }
}
