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

export class PacketTrace {
  private byMac = new Map<string, Array<TracedDatagram & { ts: number }>>();

  constructor(
    private perClient = 2000,
    private maxClients = 256,
    private maxPayload = 1600,
  ) {}

  record(d: TracedDatagram): void {
    let list = this.byMac.get(d.mac);
    if (!list) {
      if (this.byMac.size >= this.maxClients) {
        const oldest = this.byMac.keys().next().value;
        if (oldest !== undefined) this.byMac.delete(oldest);
      }
      list = [];
      this.byMac.set(d.mac, list);
    }
    const payload = d.payload.length > this.maxPayload ? Buffer.from(d.payload.subarray(0, this.maxPayload)) : Buffer.from(d.payload);
    list.push({ ...d, payload, ts: d.ts ?? Date.now() / 1000 });
    if (list.length > this.perClient) list.splice(0, list.length - this.perClient);
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
