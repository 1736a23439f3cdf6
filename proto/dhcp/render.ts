/** A stable text rendering of a DhcpMessage (golden files, debug logs). */
import { hex32 } from '../mac';
import { Opt, OPT_NAMES } from './options';
import { messageTypeName, type DhcpMessage } from './packet';
import { decodeIpxeOptions, decodePxeOptions, decodeUserClass, formatGuid } from './pxe';

function printable(b: Buffer): boolean {
  let n = b.length;
  while (n > 0 && b[n - 1] === 0) n--; // a trailing NUL (dnsmasq sends one in option 67)
  return n > 0 && b.subarray(0, n).every((c) => c >= 0x20 && c < 0x7f);
}

function renderValue(code: number, v: Buffer, msg: DhcpMessage): string {
  const o = msg.options;
  try {
    switch (code) {
      case Opt.MessageType:
        return messageTypeName(msg);
      case Opt.SubnetMask:
      case Opt.RequestedIpAddress:
      case Opt.ServerIdentifier:
      case Opt.BroadcastAddress:
        return o.ip(code) ?? v.toString('hex');
      case Opt.Router:
      case Opt.DomainNameServer:
      case Opt.NtpServers:
        return o.ips(code)?.join(', ') ?? v.toString('hex');
      case Opt.LeaseTime:
      case Opt.RenewalTime:
      case Opt.RebindingTime:
        return String(o.u32(code) ?? v.toString('hex'));
      case Opt.MaxMessageSize:
      case Opt.InterfaceMtu:
        return v.length === 2 ? String(v.readUInt16BE(0)) : v.toString('hex');
      case Opt.ParameterRequestList:
        return [...v].join(',');
      case Opt.ClientSystemArch: {
        const a: number[] = [];
        for (let i = 0; i + 1 < v.length; i += 2) a.push(v.readUInt16BE(i));
        return a.join(',');
      }
      case Opt.ClientNetworkInterface:
        return v.length === 3 ? `type ${v[0]} v${v[1]}.${v[2]}` : v.toString('hex');
      case Opt.ClientMachineId:
        return formatGuid(v) ?? (v.length === 17 && v.every((x) => x === 0) ? 'zero GUID' : `raw ${v.toString('hex')}`);
      case Opt.UserClass:
        return JSON.stringify(decodeUserClass(v));
      case Opt.ClientIdentifier:
        return v.length === 7 && v[0] === 1 ? `hw ${[...v.subarray(1)].map((x) => x.toString(16).padStart(2, '0')).join(':')}` : v.toString('hex');
      case Opt.VendorSpecific:
        if (msg.options.str(Opt.VendorClassIdentifier)?.startsWith('PXEClient')) {
          const p = decodePxeOptions(v);
          return JSON.stringify({ ...p, other: p.other.map(([c, b]) => [c, b.toString('hex')]) });
        }
        return v.toString('hex');
      case Opt.IpxeEncapsulated:
        return [...decodeIpxeOptions(v)].map(([c, b]) => `${c}=${b.toString('hex')}`).join(' ');
    }
  } catch {
    /* fall through to raw */
  }
  return printable(v) ? JSON.stringify(v.toString('latin1')) : v.toString('hex');
}

export function renderDhcp(msg: DhcpMessage): string {
  const lines = [
    `${messageTypeName(msg)} op=${msg.op} htype=${msg.htype} hlen=${msg.hlen} hops=${msg.hops} xid=${hex32(msg.xid)} secs=${msg.secs} flags=0x${msg.flags.toString(16).padStart(4, '0')}`,
    `  ciaddr=${msg.ciaddr} yiaddr=${msg.yiaddr} siaddr=${msg.siaddr} giaddr=${msg.giaddr}`,
    `  mac=${msg.mac} sname=${JSON.stringify(msg.sname)} file=${JSON.stringify(msg.file)}`,
  ];
  for (const [code, v] of msg.options) {
    lines.push(`  ${String(code).padStart(3)} ${(OPT_NAMES[code] ?? '?').padEnd(22)} ${renderValue(code, v, msg)}`);
  }
  return lines.join('\n');
}
