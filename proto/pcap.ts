/**
 * Classic libpcap files (not pcapng): read and write, LINKTYPE_ETHERNET.
 * Used for test fixtures (lab captures) and `relayctl trace MAC -o file.pcap`.
 */
import { parseIp6 } from './dhcp6/addr';
import { DecodeError } from './errors';

export const LINKTYPE_ETHERNET = 1;

export interface PcapRecord {
  /** seconds since the epoch, with microseconds as a fraction */
  ts: number;
  data: Buffer;
  origLen?: number;
}

export function encodePcap(records: PcapRecord[], linktype = LINKTYPE_ETHERNET, snaplen = 65535): Buffer {
  const hdr = Buffer.alloc(24);
  hdr.writeUInt32LE(0xa1b2c3d4, 0);
  hdr.writeUInt16LE(2, 4);
  hdr.writeUInt16LE(4, 6);
  hdr.writeInt32LE(0, 8);
  hdr.writeUInt32LE(0, 12);
  hdr.writeUInt32LE(snaplen, 16);
  hdr.writeUInt32LE(linktype, 20);
  const parts: Buffer[] = [hdr];
  for (const r of records) {
    const rh = Buffer.alloc(16);
    const sec = Math.floor(r.ts);
    rh.writeUInt32LE(sec >>> 0, 0);
    rh.writeUInt32LE(Math.round((r.ts - sec) * 1e6) % 1e6, 4);
    rh.writeUInt32LE(r.data.length, 8);
    rh.writeUInt32LE(r.origLen ?? r.data.length, 12);
    parts.push(rh, r.data);
  }
  return Buffer.concat(parts);
}

export function decodePcap(buf: Buffer): { linktype: number; records: PcapRecord[] } {
  if (buf.length < 24) throw new DecodeError('short', 'pcap: file shorter than its header', buf.length);
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  let nano = false;
  if (magic === 0xa1b2c3d4) le = true;
  else if (magic === 0xd4c3b2a1) le = false;
  else if (magic === 0xa1b23c4d) (le = true), (nano = true);
  else if (magic === 0x4d3cb2a1) (le = false), (nano = true);
  else throw new DecodeError('magic', `pcap: bad magic 0x${magic.toString(16)}`, 0);
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linktype = u32(20);
  const records: PcapRecord[] = [];
  let off = 24;
  while (off < buf.length) {
    if (off + 16 > buf.length) throw new DecodeError('short', 'pcap: truncated record header', off);
    const sec = u32(off);
    const frac = u32(off + 4);
    const incl = u32(off + 8);
    const orig = u32(off + 12);
    if (off + 16 + incl > buf.length) throw new DecodeError('short', 'pcap: truncated record', off);
    records.push({ ts: sec + frac / (nano ? 1e9 : 1e6), data: buf.subarray(off + 16, off + 16 + incl), origLen: orig });
    off += 16 + incl;
  }
  return { linktype, records };
}

function ipBytes(ip: string): number[] {
  return ip.split('.').map((x) => Number(x) & 255);
}

function macBytes(mac: string): number[] {
  return mac.split(':').map((x) => parseInt(x, 16) & 255);
}

function checksum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length & 1) s += b[b.length - 1]! << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

/**
 * Wraps a UDP payload in Ethernet + IPv4 + UDP headers (UDP checksum 0 = none), or
 * Ethernet + IPv6 + UDP when the addresses are IPv6 (a zone `%if` is dropped; the UDP
 * checksum, mandatory over IPv6 (RFC 8200 §8.1), is computed).
 */
export function udpFrame(p: {
  srcMac: string;
  dstMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}): Buffer {
  if (p.srcIp.includes(':') || p.dstIp.includes(':')) return udp6Frame(p);
  const udpLen = 8 + p.payload.length;
  const ipLen = 20 + udpLen;
  const f = Buffer.alloc(14 + ipLen);
  Buffer.from(macBytes(p.dstMac)).copy(f, 0);
  Buffer.from(macBytes(p.srcMac)).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ip = f.subarray(14, 34);
  ip[0] = 0x45;
  ip.writeUInt16BE(ipLen, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from(ipBytes(p.srcIp)).copy(ip, 12);
  Buffer.from(ipBytes(p.dstIp)).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  f.writeUInt16BE(p.srcPort, 34);
  f.writeUInt16BE(p.dstPort, 36);
  f.writeUInt16BE(udpLen, 38);
  p.payload.copy(f, 42);
  return f;
}

function ip6Bytes(ip: string): Buffer {
  return parseIp6(ip.split('%')[0]!) ?? Buffer.alloc(16);
}

function udp6Frame(p: { srcMac: string; dstMac: string; srcIp: string; dstIp: string; srcPort: number; dstPort: number; payload: Buffer }): Buffer {
  const udpLen = 8 + p.payload.length;
  const f = Buffer.alloc(14 + 40 + udpLen);
  const dst = ip6Bytes(p.dstIp);
  // multicast IPv6 → 33:33 + the low 32 bits (RFC 2464 §7)
  const dstMac = dst[0] === 0xff ? Buffer.from([0x33, 0x33, dst[12]!, dst[13]!, dst[14]!, dst[15]!]) : Buffer.from(macBytes(p.dstMac));
  dstMac.copy(f, 0);
  Buffer.from(macBytes(p.srcMac)).copy(f, 6);
  f.writeUInt16BE(0x86dd, 12);
  const ip = f.subarray(14, 54);
  ip[0] = 0x60;
  ip.writeUInt16BE(udpLen, 4);
  ip[6] = 17;
  ip[7] = 64;
  ip6Bytes(p.srcIp).copy(ip, 8);
  dst.copy(ip, 24);
  const udp = f.subarray(54);
  udp.writeUInt16BE(p.srcPort, 0);
  udp.writeUInt16BE(p.dstPort, 2);
  udp.writeUInt16BE(udpLen, 4);
  p.payload.copy(udp, 8);
  // pseudo-header: source, destination, UDP length, next header
  const pseudo = Buffer.alloc(40);
  ip.copy(pseudo, 0, 8, 40);
  pseudo.writeUInt32BE(udpLen, 32);
  pseudo[39] = 17;
  const sum = checksum(Buffer.concat([pseudo, udp]));
  udp.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return f;
}
