/** Test helper: the UDP datagrams of a pcap (Ethernet, 802.1Q or Linux cooked), over IPv4 or IPv6. */
import { readFileSync } from 'node:fs';
import { formatIp6 } from '../../proto/dhcp6/addr';
import { decodePcap } from '../../proto/pcap';

export interface UdpDatagram {
  ts: number;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

function datagrams(file: string, family: 4 | 6): UdpDatagram[] {
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
    let u: number;
    let srcIp: string;
    let dstIp: string;
    if (family === 4) {
      if (etype !== 0x0800 || d[off + 9] !== 17) continue;
      const ip = (o: number) => `${d[o]}.${d[o + 1]}.${d[o + 2]}.${d[o + 3]}`;
      u = off + (d[off]! & 15) * 4;
      srcIp = ip(off + 12);
      dstIp = ip(off + 16);
    } else {
      if (etype !== 0x86dd || d[off + 6] !== 17) continue; // IPv6, next header UDP (no extension headers here)
      u = off + 40;
      srcIp = formatIp6(d, off + 8);
      dstIp = formatIp6(d, off + 24);
    }
    const ulen = d.readUInt16BE(u + 4);
    out.push({ ts: r.ts, srcIp, dstIp, srcPort: d.readUInt16BE(u), dstPort: d.readUInt16BE(u + 2), payload: d.subarray(u + 8, u + ulen) });
  }
  return out;
}

/** UDP over IPv4. */
export function udpDatagrams(file: string): UdpDatagram[] {
  return datagrams(file, 4);
}

/** UDP over IPv6. */
export function udp6Datagrams(file: string): UdpDatagram[] {
  return datagrams(file, 6);
}

/** DHCPv4 / proxyDHCP datagrams (ports 67, 68, 4011). */
export function dhcpDatagrams(file: string): UdpDatagram[] {
  return udpDatagrams(file).filter((x) => [67, 68, 4011].includes(x.srcPort) || [67, 68, 4011].includes(x.dstPort));
}
