/**
 * The floor of lock-step TFTP on Node's dgram: the least a Node server can do
 * per block, measured beside bootrelay and tftpd-hpa in bench/tftp so that the
 * gap between Node and C is a figure of the same run, not a claim.
 *
 * Read requests only, octet mode, blksize from the request (OACK) else 512; the
 * whole file is read into memory at the RRQ (no cache, no file reads, no
 * events, no timers, no retransmission, no checks beyond the block number). Per
 * transfer a socket connected to the client, and per block what bootrelay's
 * sender also does: a 4-byte header and a view of the block sent as one
 * datagram of two pieces. Not a server for anything but this measurement.
 *
 * Started as a bench helper: `<bench bundle> --bare-tftp ROOT IP` (prints `ready`).
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join, normalize } from 'node:path';

const OP_RRQ = 1;
const OP_DATA = 3;
const OP_ACK = 4;
const OP_OACK = 6;

/** RRQ → { file, blksize } (undefined: not a read request we serve) */
function parseRrq(msg: Buffer): { file: string; blksize: number; oack: boolean } | undefined {
  if (msg.length < 4 || msg.readUInt16BE(0) !== OP_RRQ) return undefined;
  const parts = msg.subarray(2).toString('latin1').split('\0');
  const file = parts[0];
  if (!file) return undefined;
  let blksize = 512;
  let oack = false;
  for (let i = 2; i + 1 < parts.length; i += 2) {
    if (parts[i]!.toLowerCase() !== 'blksize') continue;
    blksize = Math.min(65464, Math.max(8, Number(parts[i + 1]) || 512));
    oack = true;
  }
  return { file, blksize, oack };
}

function transfer(ip: string, to: dgram.RemoteInfo, data: Buffer, blksize: number, withOack: boolean): void {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  const last = Math.floor(data.length / blksize) + 1;
  let block = 0;
  const sendBlock = (n: number) => {
    const hdr = Buffer.allocUnsafe(4);
    hdr.writeUInt16BE(OP_DATA, 0);
    hdr.writeUInt16BE(n & 0xffff, 2);
    s.send([hdr, data.subarray((n - 1) * blksize, Math.min(data.length, n * blksize))]);
  };
  s.on('error', () => s.close());
  s.on('message', (m) => {
    if (m.length < 4 || m.readUInt16BE(0) !== OP_ACK || m.readUInt16BE(2) !== (block & 0xffff)) return;
    if (block === last) {
      s.close();
      return;
    }
    sendBlock(++block);
  });
  s.bind(0, ip, () =>
    s.connect(to.port, to.address, () => {
      if (withOack) s.send(Buffer.concat([Buffer.from([0, OP_OACK]), Buffer.from(`blksize\0${blksize}\0`, 'latin1')]));
      else sendBlock(++block);
    }),
  );
}

export function serveBareTftp(root: string, ip: string): void {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  sock.on('message', (msg, rinfo) => {
    const rrq = parseRrq(msg);
    if (!rrq) return;
    const path = normalize(join(root, rrq.file));
    if (!path.startsWith(normalize(root) + '/')) return;
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch {
      sock.send(Buffer.from('\0\x05\0\x01file not found\0', 'latin1'), rinfo.port, rinfo.address);
      return;
    }
    transfer(ip, rinfo, data, rrq.blksize, rrq.oack);
  });
  sock.bind(69, ip, () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => process.exit(0));
}
