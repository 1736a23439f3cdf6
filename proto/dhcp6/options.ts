/**
 * DHCPv6 constants (RFC 8415 §7, §21; RFC 5970; RFC 6939), the option list
 * (every option kept as raw bytes, in wire order, repeats allowed), and the
 * codecs of the structured options. Every decoder throws DecodeError on a
 * value that is too short or runs past its end; offsets are relative to the
 * option value unless a caller adds its own base.
 */
import { DecodeError } from '../errors';
import { formatMac } from '../mac';
import { formatIp6, parseIp6 } from './addr';

/** RFC 8415 §7.3 message types. */
export const Msg6 = {
  SOLICIT: 1,
  ADVERTISE: 2,
  REQUEST: 3,
  CONFIRM: 4,
  RENEW: 5,
  REBIND: 6,
  REPLY: 7,
  RELEASE: 8,
  DECLINE: 9,
  RECONFIGURE: 10,
  INFORMATION_REQUEST: 11,
  RELAY_FORW: 12,
  RELAY_REPL: 13,
} as const;

export const MSG6_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Msg6).map(([k, v]) => [v, k.replace(/_/g, '-')]));

export function msg6Name(type: number): string {
  return MSG6_NAMES[type] ?? `TYPE${type}`;
}

/** Option codes (RFC 8415 §21, RFC 3646, RFC 4704, RFC 5970, RFC 6939). */
export const Opt6 = {
  ClientId: 1,
  ServerId: 2,
  IaNa: 3,
  IaTa: 4,
  IaAddr: 5,
  Oro: 6,
  Preference: 7,
  ElapsedTime: 8,
  RelayMsg: 9,
  Auth: 11,
  Unicast: 12,
  StatusCode: 13,
  RapidCommit: 14,
  UserClass: 15,
  VendorClass: 16,
  VendorOpts: 17,
  InterfaceId: 18,
  ReconfMsg: 19,
  ReconfAccept: 20,
  DnsServers: 23, // RFC 3646
  DomainList: 24, // RFC 3646
  IaPd: 25,
  IaPrefix: 26,
  InfoRefreshTime: 32,
  ClientFqdn: 39, // RFC 4704
  NtpServer: 56,
  BootFileUrl: 59, // RFC 5970 §3.1
  BootFileParam: 60, // RFC 5970 §3.2
  ClientArchType: 61, // RFC 5970 §3.3
  Nii: 62, // RFC 5970 §3.4
  ClientLinkLayerAddr: 79, // RFC 6939
  SolMaxRt: 82,
  InfMaxRt: 83,
} as const;

export const OPT6_NAMES: Record<number, string> = Object.fromEntries(Object.entries(Opt6).map(([k, v]) => [v, k]));

/** RFC 8415 §21.13 status codes. */
export const Status6 = {
  Success: 0,
  UnspecFail: 1,
  NoAddrsAvail: 2,
  NoBinding: 3,
  NotOnLink: 4,
  UseMulticast: 5,
  NoPrefixAvail: 6,
} as const;

/** RFC 8415 §11.1 DUID types (+ RFC 6355 UUID). */
export const DuidType = { LLT: 1, EN: 2, LL: 3, UUID: 4 } as const;

/** The enterprise number EDK2 puts in its vendor class (Intel; PxeBcDhcp6.h). */
export const ENTERPRISE_INTEL = 343;

export interface Option6 {
  code: number;
  data: Buffer;
}

/** Options of one message (or of one IA/IAADDR), in wire order; repeats kept. */
export class Options6 {
  readonly list: Option6[];

  constructor(list: Option6[] = []) {
    this.list = list;
  }

  get size(): number {
    return this.list.length;
  }
  has(code: number): boolean {
    return this.list.some((o) => o.code === code);
  }
  /** The first instance of a code. */
  get(code: number): Buffer | undefined {
    return this.list.find((o) => o.code === code)?.data;
  }
  all(code: number): Buffer[] {
    return this.list.filter((o) => o.code === code).map((o) => o.data);
  }
  add(code: number, data: Uint8Array): this {
    if (code < 0 || code > 0xffff) throw new RangeError(`option code ${code}`);
    if (data.length > 0xffff) throw new RangeError(`option ${code} longer than 65535 bytes`);
    this.list.push({ code, data: Buffer.from(data) });
    return this;
  }
  /** Replaces every instance of a code by one (appended when absent). */
  set(code: number, data: Uint8Array): this {
    const i = this.list.findIndex((o) => o.code === code);
    const rest = this.list.filter((o, j) => o.code !== code || j === i);
    this.list.length = 0;
    this.list.push(...rest);
    if (i < 0) return this.add(code, data);
    this.list.find((o) => o.code === code)!.data = Buffer.from(data);
    return this;
  }
  delete(code: number): boolean {
    const n = this.list.length;
    const rest = this.list.filter((o) => o.code !== code);
    this.list.length = 0;
    this.list.push(...rest);
    return rest.length !== n;
  }
  codes(): number[] {
    return this.list.map((o) => o.code);
  }
  [Symbol.iterator](): IterableIterator<Option6> {
    return this.list[Symbol.iterator]();
  }
}

// ---------------------------------------------------------------------------
// TLV walking

/**
 * Walks the option area b[start, end): code(2) len(2) value(len), RFC 8415 §21.1.
 * Throws DecodeError('option-truncated' | 'option-overrun') with the absolute offset.
 */
export function walkOptions6(b: Buffer, start: number, end: number, where: string): Option6[] {
  const out: Option6[] = [];
  let i = start;
  while (i < end) {
    if (i + 4 > end) throw new DecodeError('option-truncated', `${where}: option header cut after ${end - i} bytes`, i);
    const code = b.readUInt16BE(i);
    const len = b.readUInt16BE(i + 2);
    if (i + 4 + len > end) throw new DecodeError('option-overrun', `${where}: option ${code} length ${len} runs past the end`, i);
    out.push({ code, data: Buffer.from(b.subarray(i + 4, i + 4 + len)) });
    i += 4 + len;
  }
  return out;
}

export function encodeOptions6(opts: Iterable<Option6>): Buffer {
  const parts: Buffer[] = [];
  for (const o of opts) {
    const h = Buffer.alloc(4);
    h.writeUInt16BE(o.code, 0);
    h.writeUInt16BE(o.data.length, 2);
    parts.push(h, o.data);
  }
  return Buffer.concat(parts);
}

function need(d: Buffer, n: number, reason: string, what: string): void {
  if (d.length < n) throw new DecodeError(reason, `${what}: ${d.length} bytes, needs ${n}`, d.length);
}

// ---------------------------------------------------------------------------
// Identity associations (RFC 8415 §21.4, §21.5, §21.6, §21.21, §21.22)

export interface Ia {
  /** Opt6.IaNa, Opt6.IaTa or Opt6.IaPd */
  code: number;
  iaid: number;
  /** absent for IA_TA */
  t1?: number;
  t2?: number;
  options: Options6;
}

export function decodeIa(code: number, d: Buffer): Ia {
  const head = code === Opt6.IaTa ? 4 : 12;
  need(d, head, 'ia-truncated', `option ${code}`);
  const iaid = d.readUInt32BE(0);
  const options = new Options6(walkOptions6(d, head, d.length, `option ${code}`));
  if (code === Opt6.IaTa) return { code, iaid, options };
  return { code, iaid, t1: d.readUInt32BE(4), t2: d.readUInt32BE(8), options };
}

export function encodeIa(ia: Ia): Buffer {
  const head = Buffer.alloc(ia.code === Opt6.IaTa ? 4 : 12);
  head.writeUInt32BE(ia.iaid >>> 0, 0);
  if (ia.code !== Opt6.IaTa) {
    head.writeUInt32BE((ia.t1 ?? 0) >>> 0, 4);
    head.writeUInt32BE((ia.t2 ?? 0) >>> 0, 8);
  }
  return Buffer.concat([head, encodeOptions6(ia.options)]);
}

export interface IaAddr {
  address: string;
  preferred: number;
  valid: number;
  options: Options6;
}

export function decodeIaAddr(d: Buffer): IaAddr {
  need(d, 24, 'iaaddr-truncated', 'IAADDR');
  return { address: formatIp6(d, 0), preferred: d.readUInt32BE(16), valid: d.readUInt32BE(20), options: new Options6(walkOptions6(d, 24, d.length, 'IAADDR')) };
}

export function encodeIaAddr(a: IaAddr): Buffer {
  const b = Buffer.alloc(24);
  const ip = parseIp6(a.address);
  if (!ip) throw new TypeError(`not an IPv6 address: ${a.address}`);
  ip.copy(b, 0);
  b.writeUInt32BE(a.preferred >>> 0, 16);
  b.writeUInt32BE(a.valid >>> 0, 20);
  return Buffer.concat([b, encodeOptions6(a.options)]);
}

export interface IaPrefix {
  preferred: number;
  valid: number;
  prefixLength: number;
  prefix: string;
  options: Options6;
}

export function decodeIaPrefix(d: Buffer): IaPrefix {
  need(d, 25, 'iaprefix-truncated', 'IAPREFIX');
  return { preferred: d.readUInt32BE(0), valid: d.readUInt32BE(4), prefixLength: d[8]!, prefix: formatIp6(d, 9), options: new Options6(walkOptions6(d, 25, d.length, 'IAPREFIX')) };
}

// ---------------------------------------------------------------------------
// Status code (§21.13)

export interface StatusCode {
  code: number;
  message: string;
}

export function decodeStatus(d: Buffer): StatusCode {
  need(d, 2, 'status-truncated', 'status code');
  return { code: d.readUInt16BE(0), message: d.toString('utf8', 2) };
}

export function encodeStatus(code: number, message = ''): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code, 0);
  return Buffer.concat([b, Buffer.from(message, 'utf8')]);
}

// ---------------------------------------------------------------------------
// DUID (§11)

export interface Duid {
  type: number;
  /** LLT, LL: hardware type (1 = Ethernet) */
  hwtype?: number;
  /** LLT: seconds since 2000-01-01 UTC */
  time?: number;
  /** LLT, LL: the link-layer address as lower-case hex with colons */
  linkLayer?: string;
  /** EN */
  enterprise?: number;
  /** EN: identifier, UUID: the 16 bytes, as hex */
  id?: string;
  /** the whole DUID as hex (the key a server stores) */
  hex: string;
}

export function decodeDuid(d: Buffer): Duid {
  need(d, 2, 'duid-truncated', 'DUID');
  const type = d.readUInt16BE(0);
  const hex = d.toString('hex');
  switch (type) {
    case DuidType.LLT:
      need(d, 8, 'duid-truncated', 'DUID-LLT');
      return { type, hwtype: d.readUInt16BE(2), time: d.readUInt32BE(4), linkLayer: formatMac(d.subarray(8), d.length - 8), hex };
    case DuidType.EN:
      need(d, 6, 'duid-truncated', 'DUID-EN');
      return { type, enterprise: d.readUInt32BE(2), id: d.toString('hex', 6), hex };
    case DuidType.LL:
      need(d, 4, 'duid-truncated', 'DUID-LL');
      return { type, hwtype: d.readUInt16BE(2), linkLayer: formatMac(d.subarray(4), d.length - 4), hex };
    case DuidType.UUID:
      if (d.length !== 18) throw new DecodeError('duid-truncated', `DUID-UUID: ${d.length} bytes, needs 18`, d.length);
      return { type, id: d.toString('hex', 2), hex };
    default:
      return { type, hex };
  }
}

/** The MAC carried by an Ethernet DUID-LLT/LL (hwtype 1, 6 bytes). */
export function macFromDuid(duid: Duid): string | undefined {
  if ((duid.type === DuidType.LLT || duid.type === DuidType.LL) && duid.hwtype === 1 && duid.linkLayer?.length === 17) return duid.linkLayer;
  return undefined;
}

export function encodeDuidLlt(mac: string, time: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt16BE(DuidType.LLT, 0);
  b.writeUInt16BE(1, 2);
  b.writeUInt32BE(time >>> 0, 4);
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(b, 8);
  return b;
}

export function encodeDuidLl(mac: string): Buffer {
  const b = Buffer.alloc(10);
  b.writeUInt16BE(DuidType.LL, 0);
  b.writeUInt16BE(1, 2);
  Buffer.from(mac.replace(/:/g, ''), 'hex').copy(b, 4);
  return b;
}

export function encodeDuidUuid(uuidHex: string): Buffer {
  const id = Buffer.from(uuidHex.replace(/-/g, ''), 'hex');
  if (id.length !== 16) throw new TypeError('a UUID has 16 bytes');
  const b = Buffer.alloc(2);
  b.writeUInt16BE(DuidType.UUID, 0);
  return Buffer.concat([b, id]);
}

// ---------------------------------------------------------------------------
// Lists: ORO (§21.7), client arch (RFC 5970 §3.3)

function u16List(d: Buffer, what: string): number[] {
  if (d.length % 2 !== 0) throw new DecodeError('odd-length', `${what}: odd length ${d.length}`, d.length - 1);
  const out: number[] = [];
  for (let i = 0; i < d.length; i += 2) out.push(d.readUInt16BE(i));
  return out;
}

export function decodeOro(d: Buffer): number[] {
  return u16List(d, 'ORO');
}

export function decodeClientArch(d: Buffer): number[] {
  return u16List(d, 'client architecture');
}

export function encodeU16List(xs: number[]): Buffer {
  const b = Buffer.alloc(xs.length * 2);
  xs.forEach((x, i) => b.writeUInt16BE(x, i * 2));
  return b;
}

export function decodeElapsed(d: Buffer): number {
  if (d.length !== 2) throw new DecodeError('bad-length', `elapsed time: ${d.length} bytes, needs 2`, 0);
  return d.readUInt16BE(0);
}

export function decodePreference(d: Buffer): number {
  if (d.length !== 1) throw new DecodeError('bad-length', `preference: ${d.length} bytes, needs 1`, 0);
  return d[0]!;
}

// ---------------------------------------------------------------------------
// Opaque-data lists: user class (§21.15), vendor class (§21.16),
// boot-file parameters (RFC 5970 §3.2): each item is len(2) + data

function opaqueList(d: Buffer, start: number, what: string): Buffer[] {
  const out: Buffer[] = [];
  let i = start;
  while (i < d.length) {
    if (i + 2 > d.length) throw new DecodeError('item-truncated', `${what}: item length cut`, i);
    const len = d.readUInt16BE(i);
    if (i + 2 + len > d.length) throw new DecodeError('item-overrun', `${what}: item length ${len} runs past the end`, i);
    out.push(Buffer.from(d.subarray(i + 2, i + 2 + len)));
    i += 2 + len;
  }
  return out;
}

function encodeOpaqueList(items: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const it of items) {
    const h = Buffer.alloc(2);
    h.writeUInt16BE(it.length, 0);
    parts.push(h, Buffer.from(it));
  }
  return Buffer.concat(parts);
}

export function decodeUserClass(d: Buffer): Buffer[] {
  return opaqueList(d, 0, 'user class');
}

export function encodeUserClass(items: Array<string | Uint8Array>): Buffer {
  return encodeOpaqueList(items.map((x) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : x)));
}

export interface VendorClass {
  enterprise: number;
  data: Buffer[];
}

export function decodeVendorClass(d: Buffer): VendorClass {
  need(d, 4, 'vendor-class-truncated', 'vendor class');
  return { enterprise: d.readUInt32BE(0), data: opaqueList(d, 4, 'vendor class') };
}

export function encodeVendorClass(v: { enterprise: number; data: Array<string | Uint8Array> }): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(v.enterprise >>> 0, 0);
  return Buffer.concat([h, encodeOpaqueList(v.data.map((x) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : x)))]);
}

export interface VendorOpts {
  enterprise: number;
  options: Option6[];
}

/** Vendor-specific information (§21.17): enterprise + code(2)/len(2) sub-options. */
export function decodeVendorOpts(d: Buffer): VendorOpts {
  need(d, 4, 'vendor-opts-truncated', 'vendor options');
  return { enterprise: d.readUInt32BE(0), options: walkOptions6(d, 4, d.length, 'vendor options') };
}

export function decodeBootParams(d: Buffer): string[] {
  return opaqueList(d, 0, 'boot-file parameters').map((x) => x.toString('utf8'));
}

export function encodeBootParams(params: string[]): Buffer {
  return encodeOpaqueList(params.map((p) => Buffer.from(p, 'utf8')));
}

// ---------------------------------------------------------------------------
// NII (RFC 5970 §3.4), client link-layer address (RFC 6939)

export interface Nii {
  type: number;
  major: number;
  minor: number;
}

export function decodeNii(d: Buffer): Nii {
  if (d.length !== 3) throw new DecodeError('bad-length', `NII: ${d.length} bytes, needs 3`, 0);
  return { type: d[0]!, major: d[1]!, minor: d[2]! };
}

export function encodeNii(n: Nii): Buffer {
  return Buffer.from([n.type, n.major, n.minor]);
}

export function decodeClientLinkLayer(d: Buffer): { hwtype: number; address: string } {
  need(d, 2, 'lladdr-truncated', 'client link-layer address');
  return { hwtype: d.readUInt16BE(0), address: formatMac(d.subarray(2), d.length - 2) };
}

/** Lists of IPv6 addresses (DNS servers §21 RFC 3646, unicast §21.12). */
export function decodeAddrList(d: Buffer, what: string): string[] {
  if (d.length % 16 !== 0) throw new DecodeError('bad-length', `${what}: ${d.length} bytes, not a multiple of 16`, d.length - (d.length % 16));
  const out: string[] = [];
  for (let i = 0; i < d.length; i += 16) out.push(formatIp6(d, i));
  return out;
}

export function encodeAddrList(addrs: string[]): Buffer {
  return Buffer.concat(
    addrs.map((a) => {
      const b = parseIp6(a);
      if (!b) throw new TypeError(`not an IPv6 address: ${a}`);
      return b;
    }),
  );
}

export function u32Buf(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}
