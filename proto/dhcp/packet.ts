/**
 * DHCP/BOOTP codec (RFC 2131 §2, RFC 2132). Pure: Buffer in → DhcpMessage out.
 * Every malformed or truncated input throws DecodeError (reason + offset),
 * never a RangeError.
 */
import { DecodeError } from '../errors';
import { formatMac } from '../mac';
import { ipFromBytes, ipToBytes, MESSAGE_TYPE_NAMES, Opt, OptionMap } from './options';

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
  if (!parseOptions(b, OPTIONS_OFF, b.length, pieces, 'options')) throw new DecodeError('no-end', 'dhcp: options end without the End option', b.length);
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

/** Size of the encoded options area including End. */
function optionsSize(opts: OptionMap): number {
  let n = 1;
  for (const [, v] of opts) n += v.length === 0 ? 2 : v.length + 2 * Math.ceil(v.length / 255);
  return n;
}

export interface EncodeOptions {
  /** pad the datagram to at least this many bytes (default 300, the BOOTP minimum) */
  minSize?: number;
}

export function encodeDhcp(msg: DhcpMessage, eo: EncodeOptions = {}): Buffer {
  const need = OPTIONS_OFF + optionsSize(msg.options);
  const b = Buffer.alloc(Math.max(need, eo.minSize ?? BOOTP_MIN_SIZE));
  b[0] = msg.op;
  b[1] = msg.htype;
  b[2] = msg.hlen;
  b[3] = msg.hops;
  b.writeUInt32BE(msg.xid >>> 0, 4);
  b.writeUInt16BE(msg.secs & 0xffff, 8);
  b.writeUInt16BE(msg.flags & 0xffff, 10);
  ipToBytes(msg.ciaddr).copy(b, 12);
  ipToBytes(msg.yiaddr).copy(b, 16);
  ipToBytes(msg.siaddr).copy(b, 20);
  ipToBytes(msg.giaddr).copy(b, 24);
  msg.chaddr.copy(b, 28, 0, Math.min(16, msg.chaddr.length));
  const sname = Buffer.from(msg.sname, 'latin1');
  const file = Buffer.from(msg.file, 'latin1');
  if (sname.length > 64) throw new RangeError(`sname longer than 64 bytes: ${msg.sname}`);
  if (file.length > 128) throw new RangeError(`file longer than 128 bytes: ${msg.file}`);
  sname.copy(b, SNAME_OFF);
  file.copy(b, FILE_OFF);
  b.writeUInt32BE(MAGIC_COOKIE, COOKIE_OFF);
  let o = OPTIONS_OFF;
  for (const [code, v] of msg.options) {
    if (v.length === 0) {
      b[o++] = code;
      b[o++] = 0;
      continue;
    }
    // RFC 3396 §7: values over 255 bytes go out as consecutive instances
    for (let s = 0; s < v.length; s += 255) {
      const chunk = v.subarray(s, Math.min(v.length, s + 255));
      b[o++] = code;
      b[o++] = chunk.length;
      chunk.copy(b, o);
      o += chunk.length;
    }
  }
  b[o] = Opt.End;
  return b;
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
