/** Test helper: the UDP-over-IPv6 datagrams of a pcap (Ethernet or Linux cooked). */
import { readFileSync } from 'node:fs';
import { decodePcap } from '../../../../proto/pcap';
import { formatIp6 } from '../../../../proto/dhcp6/addr';

export interface Udp6Datagram {
  ts: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export function udp6Datagrams(file: string): Udp6Datagram[] {
  const { linktype, records } = decodePcap(readFileSync(file));
  const out: Udp6Datagram[] = [];
  for (const r of records) {
    const d = r.data;
    let off: number;
    let etype: number;
    if (linktype === 1) {
      off = 14;
      etype = d.readUInt16BE(12);
      if (etype === 0x8100) {
        etype = d.readUInt16BE(16);
        off = 18;
      }
    } else if (linktype === 113) {
      off = 16;
      etype = d.readUInt16BE(14);
    } else throw new Error(`linktype ${linktype}`);
    if (etype !== 0x86dd || d[off + 6] !== 17) continue; // IPv6, next header UDP (no extension headers here)
    const u = off + 40;
    const ulen = d.readUInt16BE(u + 4);
    out.push({ ts: r.ts, srcIp: formatIp6(d, off + 8), dstIp: formatIp6(d, off + 24), srcPort: d.readUInt16BE(u), dstPort: d.readUInt16BE(u + 2), payload: d.subarray(u + 8, u + ulen) });
  }
  return out;
}
