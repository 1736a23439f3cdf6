/**
 * DHCPv6 message codec (RFC 8415 §8 client/server, §9 relay-forw/relay-repl).
 * Pure: Buffer in → Dhcp6Packet out. Every option is kept (in order, repeats
 * too), so encodeDhcp6(decodeDhcp6(b)) gives b back. The structured options
 * a server reads (IA_NA/TA/PD and their addresses, status, DUIDs, ORO, the
 * RFC 5970 boot options, classes) are checked at decode: any truncation or
 * overrun anywhere, nested ones included, is a DecodeError with an absolute
 * offset, never a RangeError.
 */
import { DecodeError } from '../errors';
import { formatIp6, parseIp6 } from './addr';
import {
  decodeAddrList,
  decodeBootParams,
  decodeClientArch,
  decodeClientLinkLayer,
  decodeDuid,
  decodeElapsed,
  decodeIa,
  decodeIaAddr,
  decodeIaPrefix,
  decodeNii,
  decodeOro,
  decodePreference,
  decodeStatus,
  decodeUserClass,
  decodeVendorClass,
  decodeVendorOpts,
  encodeOptions6,
  Msg6,
  Opt6,
  Options6,
  walkOptions6,
  type Option6,
} from './options';

export interface Dhcp6Message {
  type: number;
  /** 24-bit transaction id */
  xid: number;
  options: Options6;
}

export interface Dhcp6RelayMessage {
  type: typeof Msg6.RELAY_FORW | typeof Msg6.RELAY_REPL;
  hopCount: number;
  linkAddress: string;
  peerAddress: string;
  options: Options6;
  /** the decoded Relay Message option (§21.10) */
  inner?: Dhcp6Packet;
}

export type Dhcp6Packet = Dhcp6Message | Dhcp6RelayMessage;

export function isRelay(p: Dhcp6Packet): p is Dhcp6RelayMessage {
  return p.type === Msg6.RELAY_FORW || p.type === Msg6.RELAY_REPL;
}

/** RFC 8415 §7.6 HOP_COUNT_LIMIT */
export const HOP_COUNT_LIMIT = 8;
const RELAY_HEADER = 34;

export function decodeDhcp6(buf: Buffer): Dhcp6Packet {
  return decodeAt(buf, 0, buf.length, 0);
}

function decodeAt(b: Buffer, start: number, end: number, depth: number): Dhcp6Packet {
  if (end - start < 1) throw new DecodeError('empty', 'empty DHCPv6 message', start);
  const type = b[start]!;
  if (type === 0) throw new DecodeError('bad-type', 'message type 0', start);
  if (type === Msg6.RELAY_FORW || type === Msg6.RELAY_REPL) {
    if (end - start < RELAY_HEADER) throw new DecodeError('header-truncated', `relay header: ${end - start} bytes, needs ${RELAY_HEADER}`, end);
    if (depth > HOP_COUNT_LIMIT) throw new DecodeError('too-deep', `relay messages nested more than ${HOP_COUNT_LIMIT} deep`, start);
    const opts = walkOptions6(b, start + RELAY_HEADER, end, msgWhere(type));
    const msg: Dhcp6RelayMessage = {
      type,
      hopCount: b[start + 1]!,
      linkAddress: formatIp6(b, start + 2),
      peerAddress: formatIp6(b, start + 18),
      options: new Options6(opts),
    };
    let off = start + RELAY_HEADER;
    for (const o of opts) {
      if (o.code === Opt6.RelayMsg) {
        if (msg.inner) throw new DecodeError('duplicate-relay-msg', 'two relay message options', off);
        msg.inner = decodeAt(b, off + 4, off + 4 + o.data.length, depth + 1);
      } else checkOption(o, off);
      off += 4 + o.data.length;
    }
    return msg;
  }
  if (end - start < 4) throw new DecodeError('header-truncated', `header: ${end - start} bytes, needs 4`, end);
  const opts = walkOptions6(b, start + 4, end, msgWhere(type));
  let off = start + 4;
  for (const o of opts) {
    checkOption(o, off);
    off += 4 + o.data.length;
  }
  return { type, xid: b.readUIntBE(start + 1, 3), options: new Options6(opts) };
}

function msgWhere(type: number): string {
  return `message ${type}`;
}

/** Re-throws a nested decoder's error with the absolute offset of the option value. */
function at<T>(base: number, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof DecodeError && !(e as { absolute?: boolean }).absolute) {
      const err = new DecodeError(e.reason, e.message, base + Math.max(0, e.offset));
      (err as { absolute?: boolean }).absolute = true;
      throw err;
    }
    throw e;
  }
}

/** Checks the structure of a known option (recursively for IAs); `off` is where its header starts. */
export function checkOption(o: Option6, off: number): void {
  const v = off + 4;
  const d = o.data;
  switch (o.code) {
    case Opt6.ClientId:
    case Opt6.ServerId:
      at(v, () => decodeDuid(d));
      return;
    case Opt6.IaNa:
    case Opt6.IaTa:
    case Opt6.IaPd: {
      const ia = at(v, () => decodeIa(o.code, d));
      let sub = v + (o.code === Opt6.IaTa ? 4 : 12);
      for (const s of ia.options) {
        checkOption(s, sub);
        sub += 4 + s.data.length;
      }
      return;
    }
    case Opt6.IaAddr:
    case Opt6.IaPrefix: {
      const a = at(v, () => (o.code === Opt6.IaAddr ? decodeIaAddr(d) : decodeIaPrefix(d)));
      let sub = v + (o.code === Opt6.IaAddr ? 24 : 25);
      for (const s of a.options) {
        checkOption(s, sub);
        sub += 4 + s.data.length;
      }
      return;
    }
    case Opt6.Oro:
      at(v, () => decodeOro(d));
      return;
    case Opt6.Preference:
      at(v, () => decodePreference(d));
      return;
    case Opt6.ElapsedTime:
      at(v, () => decodeElapsed(d));
      return;
    case Opt6.StatusCode:
      at(v, () => decodeStatus(d));
      return;
    case Opt6.RapidCommit:
    case Opt6.ReconfAccept:
      if (d.length !== 0) throw new DecodeError('bad-length', `option ${o.code} must be empty, has ${d.length} bytes`, v);
      return;
    case Opt6.Unicast:
      if (d.length !== 16) throw new DecodeError('bad-length', `server unicast: ${d.length} bytes, needs 16`, v);
      return;
    case Opt6.UserClass:
      at(v, () => decodeUserClass(d));
      return;
    case Opt6.VendorClass:
      at(v, () => decodeVendorClass(d));
      return;
    case Opt6.VendorOpts:
      at(v, () => decodeVendorOpts(d));
      return;
    case Opt6.DnsServers:
      at(v, () => decodeAddrList(d, 'DNS servers'));
      return;
    case Opt6.BootFileParam:
      at(v, () => decodeBootParams(d));
      return;
    case Opt6.ClientArchType:
      at(v, () => decodeClientArch(d));
      return;
    case Opt6.Nii:
      at(v, () => decodeNii(d));
      return;
    case Opt6.ClientLinkLayerAddr:
      at(v, () => decodeClientLinkLayer(d));
      return;
    case Opt6.InfoRefreshTime:
    case Opt6.SolMaxRt:
    case Opt6.InfMaxRt:
      if (d.length !== 4) throw new DecodeError('bad-length', `option ${o.code}: ${d.length} bytes, needs 4`, v);
      return;
    default:
      return; // unknown or free-form (boot-file URL, FQDN, domain list …): kept as bytes
  }
}

export function encodeDhcp6(p: Dhcp6Packet): Buffer {
  if (isRelay(p)) {
    const h = Buffer.alloc(RELAY_HEADER);
    h[0] = p.type;
    h[1] = p.hopCount;
    const la = parseIp6(p.linkAddress);
    const pa = parseIp6(p.peerAddress);
    if (!la || !pa) throw new TypeError('relay message needs IPv6 link and peer addresses');
    la.copy(h, 2);
    pa.copy(h, 18);
    // an `inner` message is (re)encoded into the Relay Message option
    const opts = p.inner ? replaceRelayMsg(p.options, encodeDhcp6(p.inner)) : p.options.list;
    return Buffer.concat([h, encodeOptions6(opts)]);
  }
  const h = Buffer.alloc(4);
  h[0] = p.type;
  h.writeUIntBE(p.xid & 0xffffff, 1, 3);
  return Buffer.concat([h, encodeOptions6(p.options)]);
}

function replaceRelayMsg(opts: Options6, inner: Buffer): Option6[] {
  const out = opts.list.map((o) => (o.code === Opt6.RelayMsg ? { code: o.code, data: inner } : o));
  if (!out.some((o) => o.code === Opt6.RelayMsg)) out.push({ code: Opt6.RelayMsg, data: inner });
  return out;
}

/** The client message inside any number of relay-forw layers. */
export function innermost(p: Dhcp6Packet): Dhcp6Message | undefined {
  let cur: Dhcp6Packet | undefined = p;
  while (cur && isRelay(cur)) cur = cur.inner;
  return cur;
}

export function xid6(xid: number): string {
  return '0x' + (xid & 0xffffff).toString(16).padStart(6, '0');
}
