/**
 * DHCP option codes (RFC 2132, RFC 4578, RFC 3004, RFC 3046, RFC 3396, iPXE)
 * and OptionMap: every option of a packet kept as raw bytes, in wire order.
 */

export const Opt = {
  Pad: 0,
  SubnetMask: 1,
  TimeOffset: 2,
  Router: 3,
  TimeServer: 4,
  NameServer: 5,
  DomainNameServer: 6,
  LogServer: 7,
  HostName: 12,
  BootFileSize: 13,
  DomainName: 15,
  RootPath: 17,
  ExtensionsPath: 18,
  IpForwarding: 19,
  InterfaceMtu: 26,
  BroadcastAddress: 28,
  StaticRoute: 33,
  NtpServers: 42,
  VendorSpecific: 43, // RFC 2132 §8.4; PXE sub-options
  RequestedIpAddress: 50,
  LeaseTime: 51,
  OptionOverload: 52, // RFC 2132 §9.3
  MessageType: 53,
  ServerIdentifier: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  VendorClassIdentifier: 60,
  ClientIdentifier: 61,
  TftpServerName: 66, // RFC 2132 §9.4
  BootFileName: 67, // RFC 2132 §9.5
  UserClass: 77, // RFC 3004
  ClientFqdn: 81,
  RelayAgentInformation: 82, // RFC 3046
  ClientSystemArch: 93, // RFC 4578 §2.1
  ClientNetworkInterface: 94, // RFC 4578 §2.2
  ClientMachineId: 97, // RFC 4578 §2.3 (UUID/GUID)
  DomainSearch: 119,
  ClasslessStaticRoute: 121,
  PxeLinuxMagic: 208,
  IpxeEncapsulated: 175, // iPXE: sub-options, 176 = no-pxedhcp
  End: 255,
} as const;

export type OptCode = (typeof Opt)[keyof typeof Opt];

/** Option code → name, for renderings and logs. */
export const OPT_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Opt).map(([k, v]) => [v, k]));

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

export type MessageTypeName = keyof typeof MessageType;
export const MESSAGE_TYPE_NAMES: Record<number, MessageTypeName> = Object.fromEntries(
  Object.entries(MessageType).map(([k, v]) => [v, k as MessageTypeName]),
);

/**
 * Options of one packet, in wire order. A code that appears several times is
 * concatenated (RFC 3396 §7: long options are split into consecutive instances).
 * Unknown codes are kept as they came.
 */
export class OptionMap {
  private m = new Map<number, Buffer>();

  static from(entries: Iterable<[number, Uint8Array]>): OptionMap {
    const o = new OptionMap();
    for (const [k, v] of entries) o.set(k, v);
    return o;
  }

  get size(): number {
    return this.m.size;
  }
  has(code: number): boolean {
    return this.m.has(code);
  }
  get(code: number): Buffer | undefined {
    return this.m.get(code);
  }
  /** Sets (or replaces, keeping its place) one option's raw value. */
  set(code: number, value: Uint8Array): this {
    if (code === Opt.Pad || code === Opt.End || code < 0 || code > 255) throw new RangeError(`option ${code} cannot carry data`);
    this.m.set(code, Buffer.from(value));
    return this;
  }
  /** Appends bytes to an option (RFC 3396 concatenation). */
  append(code: number, value: Uint8Array): void {
    const old = this.m.get(code);
    this.m.set(code, old ? Buffer.concat([old, value]) : Buffer.from(value));
  }
  delete(code: number): boolean {
    return this.m.delete(code);
  }
  codes(): number[] {
    return [...this.m.keys()];
  }
  entries(): IterableIterator<[number, Buffer]> {
    return this.m.entries();
  }
  [Symbol.iterator](): IterableIterator<[number, Buffer]> {
    return this.m.entries();
  }
  clone(): OptionMap {
    return OptionMap.from(this.m.entries());
  }

  // ---- typed getters: undefined when absent or of the wrong size (never throw) ----
  u8(code: number): number | undefined {
    const b = this.m.get(code);
    return b && b.length === 1 ? b[0] : undefined;
  }
  u16(code: number): number | undefined {
    const b = this.m.get(code);
    return b && b.length >= 2 ? b.readUInt16BE(0) : undefined;
  }
  u32(code: number): number | undefined {
    const b = this.m.get(code);
    return b && b.length === 4 ? b.readUInt32BE(0) : undefined;
  }
  ip(code: number): string | undefined {
    const b = this.m.get(code);
    return b && b.length === 4 ? ipFromBytes(b, 0) : undefined;
  }
  ips(code: number): string[] | undefined {
    const b = this.m.get(code);
    if (!b || b.length === 0 || b.length % 4 !== 0) return undefined;
    const out: string[] = [];
    for (let i = 0; i < b.length; i += 4) out.push(ipFromBytes(b, i));
    return out;
  }
  /** Text option (NUL-terminated values are cut at the NUL). */
  str(code: number): string | undefined {
    const b = this.m.get(code);
    if (!b) return undefined;
    const z = b.indexOf(0);
    return b.toString('latin1', 0, z < 0 ? b.length : z);
  }

  // ---- typed setters ----
  setU8(code: number, v: number): this {
    return this.set(code, Buffer.from([v & 255]));
  }
  setU16(code: number, v: number): this {
    const b = Buffer.allocUnsafe(2); // every byte written: the pooled allocation is safe
    b.writeUInt16BE(v & 0xffff);
    return this.set(code, b);
  }
  setU32(code: number, v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v >>> 0);
    return this.set(code, b);
  }
  setIp(code: number, ip: string): this {
    return this.set(code, ipToBytes(ip));
  }
  setIps(code: number, ips: string[]): this {
    return this.set(code, Buffer.concat(ips.map(ipToBytes)));
  }
  setStr(code: number, s: string): this {
    return this.set(code, Buffer.from(s, 'latin1'));
  }
}

export function ipFromBytes(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/**
 * A dotted quad as a uint32, or -1 when it is not one (1–3 digits a part, each ≤ 255):
 * read by character, nothing allocated (it runs several times per DHCP packet).
 */
function parseIpv4(ip: string): number {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return -1;
      n = n * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (++digits > 3) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + part;
}

export function ipToBytes(ip: string): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(ipToInt(ip), 0);
  return b;
}

export function ipToInt(ip: string): number {
  const n = parseIpv4(ip);
  if (n < 0) throw new TypeError(`not an IPv4 address: ${ip}`);
  return n;
}

/** Writes a dotted quad at `off` (4 bytes); throws TypeError when it is not one. */
export function writeIp(buf: Buffer, ip: string, off: number): void {
  buf.writeUInt32BE(ipToInt(ip), off);
}

export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
