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
import { join } from 'node:path';
import { normalizeBootPath } from '../../proto/path';
import { decodeTftp, encodeError, encodeTftp, TftpErr } from '../../proto/tftp/packet';

const OP_DATA = 3;
const OP_ACK = 4;

/** RRQ → { file, blksize, oack } (undefined: not a read request it serves), with the project's codec */
function parseRrq(msg: Buffer): { file: string; blksize: number; oack: boolean } | undefined {
  try {
    const p = decodeTftp(msg);
    if (p.op !== 'rrq') return undefined;
    const opt = Object.entries(p.options).find(([k]) => k.toLowerCase() === 'blksize');
    const blksize = opt ? Math.min(65464, Math.max(8, Number(opt[1]) || 512)) : 512;
    return { file: normalizeBootPath(p.file), blksize, oack: !!opt };
  } catch {
    return undefined; // undecodable, or a path escape
  }
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
      if (withOack) s.send(encodeTftp({ op: 'oack', options: { blksize: String(blksize) } }));
      else sendBlock(++block);
    }),
  );
}

export function serveBareTftp(root: string, ip: string): void {
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  sock.on('message', (msg, rinfo) => {
    const rrq = parseRrq(msg);
    if (!rrq) return;
    let data: Buffer;
    try {
      data = readFileSync(join(root, rrq.file));
    } catch {
      sock.send(encodeError(TftpErr.FileNotFound, 'file not found'), rinfo.port, rinfo.address);
      return;
    }
    transfer(ip, rinfo, data, rrq.blksize, rrq.oack);
  });
  sock.bind(69, ip, () => process.stdout.write('ready\n'));
  process.on('SIGTERM', () => process.exit(0));
}
