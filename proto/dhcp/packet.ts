/**
 * DHCP/BOOTP codec (RFC 2131 §2, RFC 2132). Pure: Buffer in → DhcpMessage out.
 * Every malformed or truncated input throws DecodeError (reason + offset),
 * never a RangeError.
 */
import { DecodeError } from '../errors';
import { formatMac } from '../mac';
import { ipFromBytes, MESSAGE_TYPE_NAMES, Opt, OptionMap, writeIp } from './options';

export const BOOTP_MIN_SIZE = 300; // RFC 951 / RFC 1542 §2.1: some ROMs drop anything shorter
export const MAGIC_COOKIE = 0x63825363; // RFC 2131 §3
export const HEADER_SIZE = 236;
const SNAME_OFF = 44;
const FILE_OFF = 108;
const COOKIE_OFF = 236;
const OPTIONS_OFF = 240;

export const BootOp = { REQUEST: 1, REPLY: 2 } as const;
/** RFC 2131 §2: the leftmost bit of `flags`. */
export const FLAG_BROADCAST = 0x8000;

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** the 16 raw bytes of chaddr */
  chaddr: Buffer;
  /** chaddr's first hlen bytes, lower case with colons */
  mac: string;
  /** server host name (empty when overloaded with options) */
  sname: string;
  /** boot file name (empty when overloaded with options) */
  file: string;
  options: OptionMap;
}

export function messageType(msg: DhcpMessage): number | undefined {
  return msg.options.u8(Opt.MessageType);
}

export function messageTypeName(msg: DhcpMessage): string {
  const t = messageType(msg);
  if (t === undefined) return 'BOOTP';
  return MESSAGE_TYPE_NAMES[t] ?? `TYPE${t}`;
}

function cstr(b: Buffer, start: number, end: number): string {
  const z = b.indexOf(0, start);
  return b.toString('latin1', start, z < 0 || z > end ? end : z);
}

/**
 * Option values as they come, in order of first appearance: [start, end) offsets
 * into the datagram for each piece of a code, joined once at the end.
 */
type Pieces = Map<number, number[]>;

/**
 * Walks a TLV option area. Pad (0) is skipped; End (255) stops.
 * Returns true when End was seen.
 */
function parseOptions(b: Buffer, start: number, end: number, into: Pieces, where: string): boolean {
  let i = start;
  while (i < end) {
    const code = b[i]!;
    if (code === Opt.Pad) {
      i++;
      continue;
    }
    if (code === Opt.End) return true;
    if (i + 1 >= end) throw new DecodeError('option-truncated', `${where}: option ${code} has no length byte`, i);
    const len = b[i + 1]!;
    if (i + 2 + len > end) throw new DecodeError('option-overrun', `${where}: option ${code} length ${len} runs past the end`, i);
    const list = into.get(code);
    if (list) list.push(i + 2, i + 2 + len);
    else into.set(code, [i + 2, i + 2 + len]);
    i += 2 + len;
  }
  return false;
}

/** RFC 3396 §7: the instances of one code are concatenated (once: a datagram of thousands of tiny pieces stays linear). */
function joined(b: Buffer, parts: number[]): Buffer {
  if (parts.length === 2) return b.subarray(parts[0], parts[1]);
  let n = 0;
  for (let k = 0; k < parts.length; k += 2) n += parts[k + 1]! - parts[k]!;
  const out = Buffer.allocUnsafe(n);
  let o = 0;
  for (let k = 0; k < parts.length; k += 2) {
    const len = parts[k + 1]! - parts[k]!;
    if (len === 1) out[o] = b[parts[k]!]!;
    else if (len > 0) b.copy(out, o, parts[k]!, parts[k + 1]!);
    o += len;
  }
  return out;
}

export function decodeDhcp(input: Uint8Array): DhcpMessage {
  const b = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (b.length < OPTIONS_OFF) throw new DecodeError('short', `dhcp: ${b.length} bytes, shorter than the BOOTP header and cookie (240)`, b.length);
  const op = b[0]!;
  if (op !== BootOp.REQUEST && op !== BootOp.REPLY) throw new DecodeError('op', `dhcp: op ${op} is neither BOOTREQUEST nor BOOTREPLY`, 0);
  const hlen = b[2]!;
  if (hlen > 16) throw new DecodeError('hlen', `dhcp: hlen ${hlen} larger than chaddr (16)`, 2);
  if (b.readUInt32BE(COOKIE_OFF) !== MAGIC_COOKIE) throw new DecodeError('magic', 'dhcp: no DHCP magic cookie', COOKIE_OFF);
  const pieces: Pieces = new Map();
  // RFC 2131 §4.1 wants End, but a datagram whose options stop cleanly at its end without it
  // is served (dnsmasq and ISC dhcpd do): only an option cut short is malformed
  parseOptions(b, OPTIONS_OFF, b.length, pieces, 'options');
  let sname = cstr(b, SNAME_OFF, FILE_OFF);
  let file = cstr(b, FILE_OFF, COOKIE_OFF);
  const ovlParts = pieces.get(Opt.OptionOverload);
  if (ovlParts) {
    const ovl = joined(b, ovlParts);
    // RFC 2132 §9.3: 1 = file, 2 = sname, 3 = both; file is read before sname (RFC 2131 §4.1)
    if (ovl.length !== 1 || ovl[0]! < 1 || ovl[0]! > 3) throw new DecodeError('overload', 'dhcp: bad option overload value', OPTIONS_OFF);
    const v = ovl[0]!;
    if (v & 1) {
      parseOptions(b, FILE_OFF, COOKIE_OFF, pieces, 'file');
      file = '';
    }
    if (v & 2) {
      parseOptions(b, SNAME_OFF, FILE_OFF, pieces, 'sname');
      sname = '';
    }
  }
  const options = new OptionMap();
  for (const [code, parts] of pieces) options.set(code, joined(b, parts)); // set() copies: nothing refers to the datagram
  const chaddr = Buffer.from(b.subarray(28, 44));
  return {
    op,
    htype: b[1]!,
    hlen,
    hops: b[3]!,
    xid: b.readUInt32BE(4),
    secs: b.readUInt16BE(8),
    flags: b.readUInt16BE(10),
    ciaddr: ipFromBytes(b, 12),
    yiaddr: ipFromBytes(b, 16),
    siaddr: ipFromBytes(b, 20),
    giaddr: ipFromBytes(b, 24),
    chaddr,
    mac: formatMac(chaddr, hlen),
    sname,
    file,
    options,
  };
}

/** Bytes one option takes on the wire (RFC 3396 §7: values over 255 bytes are split). */
function optionWireSize(v: Buffer): number {
  return v.length === 0 ? 2 : v.length + 2 * Math.ceil(v.length / 255);
}

/** Size of the encoded options area including End. */
function optionsSize(opts: OptionMap): number {
  let n = 1;
  for (const [, v] of opts) n += optionWireSize(v);
  return n;
}

/** Writes one option at `o` (split into 255-byte instances); returns the new offset. */
function writeOption(b: Buffer, o: number, code: number, v: Buffer): number {
  if (v.length === 0) {
    b[o++] = code;
    b[o++] = 0;
    return o;
  }
  // RFC 3396 §7: values over 255 bytes go out as consecutive instances
  for (let s = 0; s < v.length; s += 255) {
    const end = Math.min(v.length, s + 255);
    b[o++] = code;
    b[o++] = end - s;
    v.copy(b, o, s, end);
    o += end - s;
  }
  return o;
}

export interface EncodeOptions {
  /** pad the datagram to at least this many bytes (default 300, the BOOTP minimum) */
  minSize?: number;
  /**
   * the largest datagram the client takes (UDP payload). When the options do not fit, they
   * spill into the unused `file` and `sname` fields (option overload, RFC 2132 §9.3) and,
   * if still too many, the last ones are left out (`EncodeResult.dropped`). Option 82 stays
   * last in the options field (RFC 3046 §2.2).
   */
  maxSize?: number;
}

export interface EncodeResult {
  buf: Buffer;
  /** option codes left out for want of room, in the order they were met */
  dropped: number[];
  /** the option overload value used (0: none) */
  overload: number;
}

function header(msg: DhcpMessage, size: number, withFile: boolean, withSname: boolean): Buffer {
  const b = Buffer.alloc(size);
  b[0] = msg.op;
  b[1] = msg.htype;
  b[2] = msg.hlen;
  b[3] = msg.hops;
  b.writeUInt32BE(msg.xid >>> 0, 4);
  b.writeUInt16BE(msg.secs & 0xffff, 8);
  b.writeUInt16BE(msg.flags & 0xffff, 10);
  writeIp(b, msg.ciaddr, 12);
  writeIp(b, msg.yiaddr, 16);
  writeIp(b, msg.siaddr, 20);
  writeIp(b, msg.giaddr, 24);
  msg.chaddr.copy(b, 28, 0, Math.min(16, msg.chaddr.length));
  const sname = Buffer.from(msg.sname, 'latin1');
  const file = Buffer.from(msg.file, 'latin1');
  if (sname.length > 64) throw new RangeError(`sname longer than 64 bytes: ${msg.sname}`);
  if (file.length > 128) throw new RangeError(`file longer than 128 bytes: ${msg.file}`);
  if (withSname) sname.copy(b, SNAME_OFF);
  if (withFile) file.copy(b, FILE_OFF);
  b.writeUInt32BE(MAGIC_COOKIE, COOKIE_OFF);
  return b;
}

export function encodeDhcp(msg: DhcpMessage, eo: EncodeOptions = {}): Buffer {
  return encodeDhcpFit(msg, eo).buf;
}

/** encodeDhcp with the layout decisions reported (what overflowed into file/sname, what was left out). */
export function encodeDhcpFit(msg: DhcpMessage, eo: EncodeOptions = {}): EncodeResult {
  const minSize = eo.minSize ?? BOOTP_MIN_SIZE;
  const need = OPTIONS_OFF + optionsSize(msg.options);
  if (eo.maxSize === undefined || need <= eo.maxSize) {
    const b = header(msg, Math.max(need, minSize), true, true);
    let o = OPTIONS_OFF;
    for (const [code, v] of msg.options) o = writeOption(b, o, code, v);
    b[o] = Opt.End;
    return { buf: b, dropped: [], overload: 0 };
  }
  // Too big: place options first-fit into options, then file, then sname (when those are unused).
  const size = Math.max(eo.maxSize, OPTIONS_OFF + 4);
  const fileFree = msg.file === '';
  const snameFree = msg.sname === '';
  const last = msg.options.get(Opt.RelayAgentInformation);
  const areas = [
    // options: End, option 52 (3 bytes), and option 82 kept back for the end
    { room: size - OPTIONS_OFF - 1 - (fileFree || snameFree ? 3 : 0) - (last ? optionWireSize(last) : 0), list: [] as Array<[number, Buffer]>, bit: 0 },
    { room: fileFree ? 128 - 1 : -1, list: [] as Array<[number, Buffer]>, bit: 1 },
    { room: snameFree ? 64 - 1 : -1, list: [] as Array<[number, Buffer]>, bit: 2 },
  ];
  const dropped: number[] = [];
  for (const [code, v] of msg.options) {
    if (code === Opt.RelayAgentInformation || code === Opt.OptionOverload) continue;
    const n = optionWireSize(v);
    const a = areas.find((x) => x.room >= n);
    if (!a) {
      dropped.push(code);
      continue;
    }
    a.list.push([code, v]);
    a.room -= n;
  }
  const ovl = (areas[1]!.list.length ? 1 : 0) | (areas[2]!.list.length ? 2 : 0);
  const main = areas[0]!.list;
  let used = 1 + (ovl ? 3 : 0) + (last ? optionWireSize(last) : 0);
  for (const [, v] of main) used += optionWireSize(v);
  const b = header(msg, Math.max(OPTIONS_OFF + used, minSize), !(ovl & 1), !(ovl & 2));
  let o = OPTIONS_OFF;
  main.forEach(([code, v], i) => {
    // RFC 2131 §4.1: option 52 is in the options field when file/sname carry options (after 53)
    if (ovl && i === (main[0]?.[0] === Opt.MessageType ? 1 : 0)) o = writeOption(b, o, Opt.OptionOverload, Buffer.from([ovl]));
    o = writeOption(b, o, code, v);
  });
  if (ovl && main.length <= (main[0]?.[0] === Opt.MessageType ? 1 : 0)) o = writeOption(b, o, Opt.OptionOverload, Buffer.from([ovl]));
  if (last) o = writeOption(b, o, Opt.RelayAgentInformation, last);
  b[o] = Opt.End;
  const spill: Array<[(typeof areas)[number], number, number]> = [
    [areas[1]!, FILE_OFF, 128],
    [areas[2]!, SNAME_OFF, 64],
  ];
  for (const [a, off, len] of spill) {
    if (!a.list.length) continue;
    let p = off;
    for (const [code, v] of a.list) p = writeOption(b, p, code, v);
    if (p < off + len) b[p] = Opt.End; // the rest of the field stays 0 (pad)
  }
  return { buf: b, dropped, overload: ovl };
}

/** A blank BOOTREPLY for `req` (RFC 2131 §4.3, table 3): xid, flags, giaddr, chaddr copied. */
export function replyTo(req: DhcpMessage): DhcpMessage {
  return {
    op: BootOp.REPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    flags: req.flags,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: req.giaddr,
    chaddr: Buffer.from(req.chaddr),
    mac: req.mac,
    sname: '',
    file: '',
    options: new OptionMap(),
  };
}
