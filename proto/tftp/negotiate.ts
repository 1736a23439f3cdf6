/**
 * TFTP option negotiation for a read request: blksize (RFC 2348), tsize and
 * timeout (RFC 2349), windowsize (RFC 7440) and the de-facto `rollover`.
 * Pure. Unknown or malformed options are left out of the answer (RFC 2347 §2:
 * the server omits options it does not accept).
 */
import type { TftpOptions } from './packet';

export const DEFAULT_BLKSIZE = 512; // RFC 1350
export const MIN_BLKSIZE = 8; // RFC 2348
export const MAX_BLKSIZE = 65464; // RFC 2348
export const DEFAULT_MAX_BLKSIZE = 1468; // Ethernet MTU 1500 - IP 20 - UDP 8 - TFTP 4
export const DEFAULT_MAX_WINDOWSIZE = 64;

export interface NegotiateLimits {
  /** largest blksize we accept (default 1468) */
  maxBlksize?: number;
  /** largest windowsize we accept (default 64) */
  maxWindowsize?: number;
  /** the file's size when known: answers tsize (RFC 2349 §3) */
  size?: number;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** the client's retransmission timeout in seconds (RFC 2349), when it asked for one */
  timeout?: number;
  /** block number after 65535: 0 (default, as tftp-hpa) or 1 */
  rolloverTo: 0 | 1;
  /** what goes into the OACK; empty means no OACK (plain RFC 1350 transfer) */
  oack: TftpOptions;
}

function int(v: string | undefined): number | undefined {
  if (v === undefined || !/^\s*\d{1,10}\s*$/.test(v)) return undefined;
  return Number(v.trim());
}

export function negotiate(requested: TftpOptions, limits: NegotiateLimits = {}): Negotiated {
  const maxBlk = Math.max(MIN_BLKSIZE, Math.min(MAX_BLKSIZE, limits.maxBlksize ?? DEFAULT_MAX_BLKSIZE));
  const maxWin = Math.max(1, Math.min(65535, limits.maxWindowsize ?? DEFAULT_MAX_WINDOWSIZE));
  const out: Negotiated = { blksize: DEFAULT_BLKSIZE, windowsize: 1, rolloverTo: 0, oack: {} };
  // keys are lower case already (decodeTftp); lower-case again for callers that build the map by hand
  const req: TftpOptions = {};
  for (const [k, v] of Object.entries(requested)) if (!(k.toLowerCase() in req)) req[k.toLowerCase()] = v;

  const blk = int(req.blksize);
  if (blk !== undefined && blk >= MIN_BLKSIZE) {
    // RFC 2348 §2: the server may answer a smaller value
    out.blksize = Math.min(blk, maxBlk);
    out.oack.blksize = String(out.blksize);
  }

  const tsize = int(req.tsize);
  if (tsize !== undefined && limits.size !== undefined && limits.size >= 0) {
    // RFC 2349 §3: the client sends 0 in a RRQ, the server answers the size
    out.oack.tsize = String(limits.size);
  }

  const timeout = int(req.timeout);
  if (timeout !== undefined && timeout >= 1 && timeout <= 255) {
    // RFC 2349 §2: the server must accept the value as is or refuse the option
    out.timeout = timeout;
    out.oack.timeout = String(timeout);
  }

  const win = int(req.windowsize);
  if (win !== undefined && win >= 1 && win <= 65535) {
    // RFC 7440 §3: the server may answer a smaller value
    out.windowsize = Math.min(win, maxWin);
    out.oack.windowsize = String(out.windowsize);
  }

  const roll = int(req.rollover);
  if (roll === 0 || roll === 1) {
    out.rolloverTo = roll;
    out.oack.rollover = String(roll);
  }
  return out;
}
