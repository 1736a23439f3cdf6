/**
 * Per-client packet trace for `relayctl trace MAC -o file.pcap`.
 * Services record the UDP datagrams they receive from and send to a client;
 * the trace keeps the last `perClient` of them per MAC (bounded memory) and
 * renders them as a pcap that Wireshark/tshark opens.
 */
import { encodePcap, udpFrame } from '../proto/pcap';

export interface TracedDatagram {
  mac: string;
  /** 'in' = from the client, 'out' = to the client */
  dir: 'in' | 'out';
  /** the client's address and port, and ours */
  clientIp: string;
  clientPort: number;
  serverIp: string;
  serverPort: number;
  payload: Buffer;
  ts?: number;
}

const SERVER_MAC = '02:00:00:00:00:01';
const BCAST_MAC = 'ff:ff:ff:ff:ff:ff';
/** what one held datagram costs beyond its payload (object, timestamps, strings) */
const ENTRY_OVERHEAD = 128;

export class PacketTrace {
  private byMac = new Map<string, Array<TracedDatagram & { ts: number }>>();
  private heldBytes = 0;

  /**
   * perClient × maxClients × maxPayload alone would allow ~800 MB (a DHCP flood
   * from 256 MACs); `maxBytes` bounds the whole trace, evicting the oldest
   * datagrams of the least recently active client first.
   */
  constructor(
    private perClient = 2000,
    private maxClients = 256,
    private maxPayload = 1600,
    private maxBytes = 8 * 1024 * 1024,
  ) {}

  /** Payload bytes held (plus a fixed cost per datagram). */
  get bytes(): number {
    return this.heldBytes;
  }

  private static cost(d: { payload: Buffer }): number {
    return d.payload.length + ENTRY_OVERHEAD;
  }

  record(d: TracedDatagram): void {
    let list = this.byMac.get(d.mac);
    if (!list) {
      if (this.byMac.size >= this.maxClients) {
        const oldest = this.byMac.keys().next().value;
        if (oldest !== undefined) this.dropClient(oldest);
      }
      list = [];
    } else this.byMac.delete(d.mac); // re-inserted last: the map is in order of last activity
    this.byMac.set(d.mac, list);
    const payload = d.payload.length > this.maxPayload ? Buffer.from(d.payload.subarray(0, this.maxPayload)) : Buffer.from(d.payload);
    const e = { ...d, payload, ts: d.ts ?? Date.now() / 1000 };
    list.push(e);
    this.heldBytes += PacketTrace.cost(e);
    while (list.length > this.perClient) this.heldBytes -= PacketTrace.cost(list.shift()!);
    while (this.heldBytes > this.maxBytes) {
      const [mac, oldest] = this.byMac.entries().next().value!;
      const gone = oldest.shift();
      if (gone) this.heldBytes -= PacketTrace.cost(gone);
      if (oldest.length === 0) this.byMac.delete(mac);
      if (!gone) break;
    }
  }

  private dropClient(mac: string): void {
    for (const e of this.byMac.get(mac) ?? []) this.heldBytes -= PacketTrace.cost(e);
    this.byMac.delete(mac);
  }

  count(mac: string): number {
    return this.byMac.get(mac)?.length ?? 0;
  }

  toPcap(mac: string): Buffer {
    const list = this.byMac.get(mac) ?? [];
    return encodePcap(
      list.map((d) => {
        const clientIp = d.clientIp || '0.0.0.0';
        const data =
          d.dir === 'in'
            ? udpFrame({ srcMac: d.mac, dstMac: SERVER_MAC, srcIp: clientIp, dstIp: d.serverIp, srcPort: d.clientPort, dstPort: d.serverPort, payload: d.payload })
            : udpFrame({
                srcMac: SERVER_MAC,
                dstMac: clientIp === '255.255.255.255' ? BCAST_MAC : d.mac,
                srcIp: d.serverIp,
                dstIp: clientIp,
                srcPort: d.serverPort,
                dstPort: d.clientPort,
                payload: d.payload,
              });
        return { ts: d.ts, data };
      }),
    );
  }
}
