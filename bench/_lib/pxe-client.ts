/** Shared parts of the benches' simulated PXE clients (bench/flash.ts, bench/mqtt.ts): the DHCP requests a BIOS PXE ROM (or iPXE) sends, and curl. */
import { spawn } from 'node:child_process';
import { Opt, OptionMap } from '../../proto/dhcp/options';
import { encodeDhcp } from '../../proto/dhcp/packet';
import { encodeIpxeOptions } from '../../proto/dhcp/pxe';

export interface PxeMsg {
  type: number;
  xid: number;
  mac: Buffer;
  uuid: Buffer;
  /** iPXE's user class and its encapsulated options */
  ipxe?: boolean;
  sid?: string;
  /** requested address (option 50) */
  ip?: string;
  /** a renewing client's address (unicast reply, no broadcast flag) */
  ciaddr?: string;
}

/** A BIOS PXE client's (arch 0, UNDI 2.1) DHCP message. */
export function encodePxe(m: PxeMsg): Buffer {
  const chaddr = Buffer.alloc(16);
  m.mac.copy(chaddr);
  const o = new OptionMap().setU8(Opt.MessageType, m.type);
  o.setStr(Opt.VendorClassIdentifier, 'PXEClient:Arch:00000:UNDI:002001');
  o.setU16(Opt.ClientSystemArch, 0);
  o.set(Opt.ClientNetworkInterface, Buffer.from([1, 2, 1]));
  o.set(Opt.ClientMachineId, Buffer.concat([Buffer.from([0]), m.uuid]));
  o.set(Opt.ParameterRequestList, Buffer.from([1, 3, 6, 43, 60, 66, 67, 175]));
  if (m.ipxe) {
    o.set(Opt.UserClass, Buffer.from('iPXE'));
    o.set(Opt.IpxeEncapsulated, encodeIpxeOptions([[19, Buffer.from([1])]]));
  }
  if (m.sid) o.setIp(Opt.ServerIdentifier, m.sid);
  if (m.ip) o.setIp(Opt.RequestedIpAddress, m.ip);
  const ciaddr = m.ciaddr ?? '0.0.0.0';
  return encodeDhcp({ op: 1, htype: 1, hlen: 6, hops: 0, xid: m.xid, secs: 0, flags: m.ciaddr ? 0 : 0x8000, ciaddr, yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac: '', sname: '', file: '', options: o });
}

/** curl -s (60 s at most) with `args`: its exit code and stdout. */
export function curlIn(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('curl', ['-s', '--max-time', '60', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('close', (code) => resolve({ code, out }));
  });
}
