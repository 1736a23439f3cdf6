/**
 * TFTP codec (RFC 1350 §5, option extension RFC 2347). Pure: Buffer in →
 * TftpPacket out. Every malformed or truncated input throws DecodeError
 * (reason + offset), never a RangeError.
 */
import { DecodeError } from '../errors';

/** RFC 1350 §5 opcodes, RFC 2347 OACK. */
export const Op = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 appendix error codes, RFC 2347 §2 code 8. */
export const TftpErr = {
  NotDefined: 0,
  FileNotFound: 1,
  AccessViolation: 2,
  DiskFull: 3,
  IllegalOperation: 4,
  UnknownTid: 5,
  FileExists: 6,
  NoSuchUser: 7,
  OptionRefused: 8,
} as const;

/** Option names are lower case (RFC 2347 §2: case-insensitive); values as sent. */
export type TftpOptions = Record<string, string>;

/** RRQ or WRQ; `mode` is lower case. */
export interface TftpRequest {
  op: 'rrq' | 'wrq';
  file: string;
  mode: string;
  options: TftpOptions;
}

export type TftpPacket =
  | TftpRequest
  | { op: 'data'; block: number; data: Buffer }
  | { op: 'ack'; block: number }
  | { op: 'error'; code: number; message: string }
  | { op: 'oack'; options: TftpOptions };

export type TftpOp = TftpPacket['op'];

/** Reads NUL-terminated strings; throws DecodeError when the NUL is missing. */
function strings(buf: Buffer, start: number, what: string): string[] {
  const out: string[] = [];
  let off = start;
  while (off < buf.length) {
    const z = buf.indexOf(0, off);
    if (z < 0) throw new DecodeError('unterminated-string', `${what}: string at ${off} has no NUL terminator`, off);
    out.push(buf.toString('utf8', off, z));
    off = z + 1;
  }
  return out;
}

function optionPairs(list: string[], off: number, what: string): TftpOptions {
  if (list.length % 2 !== 0) throw new DecodeError('odd-options', `${what}: option "${list[list.length - 1]}" has no value`, off);
  const options: TftpOptions = {};
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i].toLowerCase();
    if (name === '') throw new DecodeError('empty-option', `${what}: empty option name`, off);
    // first occurrence wins (RFC 2347 does not say; tftp-hpa does the same)
    if (!(name in options)) options[name] = list[i + 1];
  }
  return options;
}

export function decodeTftp(buf: Buffer): TftpPacket {
  if (!Buffer.isBuffer(buf)) throw new DecodeError('not-a-buffer', 'not a buffer', 0);
  if (buf.length < 2) throw new DecodeError('short', `packet too short (${buf.length} bytes)`, 0);
  const op = buf.readUInt16BE(0);
  switch (op) {
    case Op.RRQ:
    case Op.WRQ: {
      const what = op === Op.RRQ ? 'RRQ' : 'WRQ';
      const list = strings(buf, 2, what);
      if (list.length < 2) throw new DecodeError('short', `${what}: missing ${list.length === 0 ? 'file name' : 'mode'}`, buf.length);
      const [file, mode, ...rest] = list;
      return { op: op === Op.RRQ ? 'rrq' : 'wrq', file, mode: mode.toLowerCase(), options: optionPairs(rest, buf.length, what) };
    }
    case Op.DATA:
      if (buf.length < 4) throw new DecodeError('short', 'DATA: no block number', buf.length);
      return { op: 'data', block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case Op.ACK:
      // trailing bytes after the block number are tolerated (some ROMs pad)
      if (buf.length < 4) throw new DecodeError('short', 'ACK: no block number', buf.length);
      return { op: 'ack', block: buf.readUInt16BE(2) };
    case Op.ERROR: {
      if (buf.length < 4) throw new DecodeError('short', 'ERROR: no error code', buf.length);
      // lenient: some clients omit the message's NUL terminator
      const z = buf.indexOf(0, 4);
      return { op: 'error', code: buf.readUInt16BE(2), message: buf.toString('utf8', 4, z < 0 ? buf.length : z) };
    }
    case Op.OACK:
      return { op: 'oack', options: optionPairs(strings(buf, 2, 'OACK'), buf.length, 'OACK') };
    default:
      throw new DecodeError('bad-opcode', `unknown opcode ${op}`, 0);
  }
}

function cstrs(parts: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const p of parts) out.push(Buffer.from(p, 'utf8'), Buffer.alloc(1));
  return out;
}

function opBuf(op: number, extra = 0): Buffer {
  const b = Buffer.alloc(2 + extra);
  b.writeUInt16BE(op, 0);
  return b;
}

function optionList(options: TftpOptions): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(options)) out.push(k, String(v));
  return out;
}

export function encodeTftp(pkt: TftpPacket): Buffer {
  switch (pkt.op) {
    case 'rrq':
    case 'wrq':
      return Buffer.concat([opBuf(pkt.op === 'rrq' ? Op.RRQ : Op.WRQ), ...cstrs([pkt.file, pkt.mode, ...optionList(pkt.options)])]);
    case 'data':
      return encodeData(pkt.block, pkt.data);
    case 'ack': {
      const b = opBuf(Op.ACK, 2);
      b.writeUInt16BE(pkt.block & 0xffff, 2);
      return b;
    }
    case 'error': {
      const b = opBuf(Op.ERROR, 2);
      b.writeUInt16BE(pkt.code & 0xffff, 2);
      return Buffer.concat([b, ...cstrs([pkt.message])]);
    }
    case 'oack':
      return Buffer.concat([opBuf(Op.OACK), ...cstrs(optionList(pkt.options))]);
  }
}

/** DATA without going through the union (the hot path). */
export function encodeData(block: number, data: Buffer): Buffer {
  const b = Buffer.allocUnsafe(4 + data.length);
  b.writeUInt16BE(Op.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  data.copy(b, 4);
  return b;
}

export function encodeError(code: number, message: string): Buffer {
  return encodeTftp({ op: 'error', code, message });
}
