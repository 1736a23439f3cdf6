/** Test helper: the UDP datagrams of a pcap (Ethernet or Linux cooked, IPv4). */
import { readFileSync } from 'node:fs';
import { decodePcap } from '../../../../proto/pcap';

export interface UdpDatagram {
  ts: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export function udpDatagrams(file: string): UdpDatagram[] {
  const { linktype, records } = decodePcap(readFileSync(file));
  const out: UdpDatagram[] = [];
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
    if (etype !== 0x0800) continue;
    const ihl = (d[off]! & 15) * 4;
    if (d[off + 9] !== 17) continue;
    const ip = (o: number) => `${d[o]}.${d[o + 1]}.${d[o + 2]}.${d[o + 3]}`;
    const u = off + ihl;
    const ulen = d.readUInt16BE(u + 4);
    out.push({ ts: r.ts, srcIp: ip(off + 12), dstIp: ip(off + 16), srcPort: d.readUInt16BE(u), dstPort: d.readUInt16BE(u + 2), payload: d.subarray(u + 8, u + ulen) });
  }
  return out;
}

export function dhcpDatagrams(file: string): UdpDatagram[] {
  return udpDatagrams(file).filter((x) => [67, 68, 4011].includes(x.srcPort) || [67, 68, 4011].includes(x.dstPort));
}
