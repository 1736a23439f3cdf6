/**
 * LeaseStore: leases in memory, made durable in `<stateDir>/leases.jsonl`
 * (append-only; compacted by write-tmp + fsync + rename).
 *
 * Group commit: commit() updates memory at once and returns a promise that
 * settles when the record is on disk. Records of one burst are written
 * together in one write to the O_DSYNC-opened journal (write + fdatasync in
 * one system call); the service sends the ACK only after that promise
 * resolves, so an ACKed lease survives kill -9 and power loss. A lone
 * packet's batch starts right after its own event-loop turn (no window).
 * Zeros are kept written ahead of the journal's end, so a batch overwrites
 * existing blocks instead of growing the file (./journal-space: no
 * filesystem-journal commit in the ACK's path).
 * Loading tolerates a torn last line, NUL runs (and skips any unparseable line).
 *
 * Renewals (the durability decision): a commit that only
 * extends an active lease of the same client on the same address (same
 * hostname/uuid) is a renewal. Its ACK does not wait for its record: the
 * line rides the next durable batch (the next new binding's, or at most
 * RENEW_SYNC_MS later), so a renewal's ACK costs no fsync and the flash no
 * write per renewal. RFC 2131 §3.1 asks the binding to be committed to
 * persistent storage before the ACK; a renewal creates no binding, and what
 * its lost expiry extension could break (§4.3.2: the address given to
 * another client while this one still holds it) cannot happen: close()
 * ends the journal with a `clean` record, and a load without it (kill -9,
 * power loss) holds every lease for one more lease time plus RENEW_SYNC_MS
 * past its recorded expiry (capped at that far past the load), which covers
 * any renewal that did not reach the disk.
 *
 * Allocation (no scan of the range per DISCOVER): addresses never handed out
 * come from a cursor that only moves forward; every address handed out
 * since (leased, offered, declined, released) sits in an indexed min-heap
 * keyed by the time it is (or becomes) free: max(lease expiry, offer hold,
 * decline end). The heap's top is the address free the longest; an OFFER
 * takes it when that time has passed. Every change to an address re-keys it
 * (O(log n)); OFFER holds are indexed by client too.
 */
import { mkdirSync, openSync, readSync, closeSync, fsyncSync, writeSync, renameSync, existsSync, constants as fsConstants } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { intToIp, ipToInt } from '../../proto/dhcp/options';
import { StageTimer } from './timing';
import { dataEnd, JournalSpace } from './journal-space';

export interface Lease {
  mac: string;
  /** option 61 as hex, when the client sent one: then the lease is the identifier's, not the MAC's (RFC 2131 §4.2, RFC 6842) */
  id?: string;
  ip: string;
  /** ms since the epoch */
  expiresAt: number;
  hostname?: string;
  /** option 81's domain name (RFC 4702) */
  fqdn?: string;
  uuid?: string;
  static: boolean;
}

/**
 * The key a client's lease and hold are kept under: its client identifier when it sends
 * one, else its MAC. Methods take (mac, …, id); the MAC alone still picks static addresses.
 */
export function leaseKey(mac: string, id?: string): string {
  return id ? `id:${id}` : mac;
}
const keyOf = (l: Lease): string => (l.id ? `id:${l.id}` : l.mac);

export interface LeaseInfo {
  mac: string;
  ip: string;
  /** ISO-8601 */
  expiresAt: string;
  hostname?: string;
  fqdn?: string;
  /** option 61 (hex) the lease is keyed by */
  clientId?: string;
  static: boolean;
  uuid?: string;
  active: boolean;
}

export interface LeaseStoreOptions {
  /** directory for leases.jsonl; undefined: memory only */
  stateDir?: string;
  range: [string, string];
  static?: Record<string, string>;
  leaseSeconds: number;
  /** how long an OFFERed address is held for its client (s); default 30 */
  offerHoldSeconds?: number;
  /** how long a DECLINEd address stays out of the pool (s); default 600 */
  declineSeconds?: number;
  now?: () => number;
  /** fsync the data (default true; false only for benchmarks of the rest) */
  fsync?: boolean;
  /** bench-only: batch write / fdatasync times and batch sizes */
  timer?: StageTimer;
}

type Rec =
  | { op: 'commit'; mac: string; ip: string; exp: number; h?: string; u?: string; i?: string; f?: string }
  | { op: 'release'; mac: string; ip: string; i?: string }
  | { op: 'decline'; ip: string; until: number }
  | { op: 'clean' };

export const LEASE_FILE = 'leases.jsonl';
/** a renewal's record is on disk at most this long after its ACK (ms) */
export const RENEW_SYNC_MS = 30_000;
/** renewal lines waiting alone: written (durably) once this many are queued */
const LAZY_MAX = 512;
/** journal batches written at once */
const MAX_INFLIGHT = 2;
/** load and compaction read and write the journal in pieces of about this many bytes */
const WRITE_CHUNK = 256 * 1024;

/**
 * Calls `fn` with every non-empty piece of a file between separators, reading it in
 * WRITE_CHUNK blocks (a /16 of leases is 5 MB: never the whole text and all its lines at once).
 */
export function forEachLine(file: string, sep: RegExp, fn: (line: string) => void): void {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(WRITE_CHUNK);
    const dec = new StringDecoder('utf8'); // a character split between two blocks stays whole
    let rest = '';
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      const parts = (rest + dec.write(buf.subarray(0, n))).split(sep);
      rest = parts.pop() ?? '';
      for (const p of parts) if (p) fn(p);
    }
    rest += dec.end();
    if (rest) fn(rest);
  } finally {
    closeSync(fd);
  }
}

/** a.b.c.d → uint32 (undefined: not a dotted quad); no allocation beyond the split */
function parseIp(ip: string): number | undefined {
  const p = ip.split('.');
  if (p.length !== 4) return undefined;
  let n = 0;
  for (const x of p) {
    const v = Number(x);
    if (!(x.length > 0 && x.length <= 3 && Number.isInteger(v) && v >= 0 && v <= 255)) return undefined;
    n = n * 256 + v;
  }
  return n;
}

/**
 * Min-heap of addresses keyed by a time, with a position index so that an
 * address's key can change in O(log n). One entry per address.
 */
class AddressHeap {
  private ips: string[] = [];
  private keys: number[] = [];
  private pos = new Map<string, number>();

  get size(): number {
    return this.ips.length;
  }
  has(ip: string): boolean {
    return this.pos.has(ip);
  }
  /** the address with the smallest key, and that key */
  peek(): { ip: string; key: number } | undefined {
    return this.ips.length ? { ip: this.ips[0]!, key: this.keys[0]! } : undefined;
  }
  /** inserts or re-keys */
  set(ip: string, key: number): void {
    const i = this.pos.get(ip);
    if (i === undefined) {
      this.ips.push(ip);
      this.keys.push(key);
      this.pos.set(ip, this.ips.length - 1);
      this.up(this.ips.length - 1);
    } else {
      const old = this.keys[i]!;
      this.keys[i] = key;
      if (key < old) this.up(i);
      else if (key > old) this.down(i);
    }
  }
  delete(ip: string): void {
    const i = this.pos.get(ip);
    if (i === undefined) return;
    const last = this.ips.length - 1;
    this.swap(i, last);
    this.ips.pop();
    this.keys.pop();
    this.pos.delete(ip);
    if (i < last) {
      this.up(i);
      this.down(i);
    }
  }
  private swap(a: number, b: number): void {
    if (a === b) return;
    const ip = this.ips[a]!;
    const k = this.keys[a]!;
    this.ips[a] = this.ips[b]!;
    this.keys[a] = this.keys[b]!;
    this.ips[b] = ip;
    this.keys[b] = k;
    this.pos.set(this.ips[a]!, a);
    this.pos.set(ip, b);
  }
  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.keys[p]! <= this.keys[i]!) return;
      this.swap(i, p);
      i = p;
    }
  }
  private down(i: number): void {
    const n = this.ips.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) return;
      const r = l + 1;
      const c = r < n && this.keys[r]! < this.keys[l]! ? r : l;
      if (this.keys[i]! <= this.keys[c]!) return;
      this.swap(i, c);
      i = c;
    }
  }
}

export class LeaseStore {
  private byMac = new Map<string, Lease>();
  private byIp = new Map<string, Lease>();
  private staticByMac = new Map<string, string>();
  private staticIps = new Set<string>();
  /** ip → {mac: the lease key, until}: tentative holds for OFFERs (memory only) */
  private holds = new Map<string, { mac: string; until: number }>();
  /** mac → ip of its hold (one per client) */
  private holdOf = new Map<string, string>();
  private declined = new Map<string, number>();
  private readonly start: number;
  private readonly end: number;
  private readonly now: () => number;
  /** the lowest address never handed out (everything below is static or in `free`) */
  private cursor: number;
  /** every in-range, non-static address handed out so far, keyed by when it is free */
  private free = new AddressHeap();
  private staticInts = new Set<number>();

  private fh?: FileHandle;
  /** zeros ahead of the journal's end: batches overwrite in place (./journal-space) */
  private space?: JournalSpace;
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** batches being written (at most MAX_INFLIGHT) */
  private inflight = 0;
  /** a compaction holds the journal: no batch starts */
  private compacting = false;
  private scheduled = false;
  /** where the next batch goes in the journal */
  private pos = 0;
  private opening?: Promise<void>;
  private logLines = 0;
  private closed = false;
  /** RENEW_SYNC_MS after the first renewal line waiting alone */
  private syncTimer?: NodeJS.Timeout;
  /** mac → its binding's commit while that is on its way to the disk */
  private binding = new Map<string, Promise<void>>();

  /** fsyncs done (one per batch) */
  fsyncs = 0;
  /** records written */
  records = 0;
  /** renewals written without waiting for an fdatasync */
  renewals = 0;
  /** unreadable lines skipped at load (a torn last line counts here) */
  skippedLines = 0;
  /** compactions that failed (the journal was kept as it was) */
  compactFailures = 0;

  constructor(private readonly opts: LeaseStoreOptions) {
    this.start = ipToInt(opts.range[0]);
    this.end = ipToInt(opts.range[1]);
    this.cursor = this.start;
    this.now = opts.now ?? Date.now;
    for (const [mac, ip] of Object.entries(opts.static ?? {})) {
      this.staticByMac.set(mac.toLowerCase(), ip);
      this.staticIps.add(ip);
      const n = parseIp(ip);
      if (n !== undefined) this.staticInts.add(n);
    }
  }

  /** Re-keys `ip` in the free heap after any change to its lease, hold or decline. */
  private touch(ip: string, freedAt = this.now()): void {
    const n = parseIp(ip);
    if (n === undefined || n < this.start || n > this.end || this.staticInts.has(n)) {
      this.free.delete(ip);
      return;
    }
    const l = this.byIp.get(ip);
    const h = this.holds.get(ip);
    const d = this.declined.get(ip);
    let at = -Infinity;
    if (l) at = l.expiresAt;
    if (h && h.until > at) at = h.until;
    if (d !== undefined && d > at) at = d;
    // nothing on it any more (its client moved, a hold dropped): free since now
    this.free.set(ip, at === -Infinity ? freedAt : at);
  }

  get file(): string | undefined {
    return this.opts.stateDir ? join(this.opts.stateDir, LEASE_FILE) : undefined;
  }

  /** Reads the journal (if any), compacts it, and opens it for appending. */
  async load(): Promise<void> {
    const file = this.file;
    this.closed = false;
    if (!file) return;
    mkdirSync(this.opts.stateDir!, { recursive: true });
    if (existsSync(file)) {
      let clean = true;
      // NUL runs: a batch that never reached the disk before a later one did (crash), or the room ahead
      forEachLine(file, /[\n\0]+/, (line) => {
        let r: Rec;
        try {
          r = JSON.parse(line) as Rec;
        } catch {
          this.skippedLines++;
          clean = false;
          return;
        }
        clean = r !== null && typeof r === 'object' && r.op === 'clean';
        if (!clean) this.apply(r);
      });
      if (!clean) this.coverLostRenewals();
    }
    this.compactSync();
    await this.reopen();
  }

  /**
   * After an unclean end (no `clean` record last): a renewal ACKed in the last
   * RENEW_SYNC_MS may not have reached the disk. It extended its lease to at
   * most (its time + leaseSeconds), and its time was before the lease's
   * recorded expiry + RENEW_SYNC_MS, and before now. Holding every lease that
   * long keeps its address from another client until the real expiry.
   */
  private coverLostRenewals(): void {
    const grace = this.opts.leaseSeconds * 1000 + RENEW_SYNC_MS;
    const cap = this.now() + grace;
    for (const l of this.byMac.values()) {
      const covered = Math.min(l.expiresAt + grace, cap);
      if (covered > l.expiresAt) {
        l.expiresAt = covered;
        this.touch(l.ip);
      }
    }
  }

  private apply(r: Rec): void {
    if (r === null || typeof r !== 'object') {
      this.skippedLines++;
      return;
    }
    if (r.op === 'commit' && typeof r.mac === 'string' && typeof r.ip === 'string') {
      this.setLease({ mac: r.mac, ...(r.i ? { id: r.i } : {}), ip: r.ip, expiresAt: r.exp, hostname: r.h, ...(r.f ? { fqdn: r.f } : {}), uuid: r.u, static: this.staticByMac.get(r.mac) === r.ip });
    } else if (r.op === 'release' && typeof r.mac === 'string') {
      const l = this.byMac.get(leaseKey(r.mac, r.i));
      if (l && l.ip === r.ip) {
        l.expiresAt = Math.min(l.expiresAt, 0);
        this.touch(l.ip);
      }
    } else if (r.op === 'decline' && typeof r.ip === 'string') {
      this.declined.set(r.ip, r.until);
      const l = this.byIp.get(r.ip);
      if (l) this.dropLease(l);
      this.touch(r.ip);
    } else this.skippedLines++;
  }

  private setLease(l: Lease): void {
    const old = this.byMac.get(keyOf(l));
    let moved: string | undefined;
    if (old && this.byIp.get(old.ip) === old) {
      this.byIp.delete(old.ip);
      if (old.ip !== l.ip) moved = old.ip;
    }
    const other = this.byIp.get(l.ip);
    if (other && keyOf(other) !== keyOf(l) && this.byMac.get(keyOf(other)) === other) this.byMac.delete(keyOf(other));
    this.byMac.set(keyOf(l), l);
    this.byIp.set(l.ip, l);
    this.touch(l.ip);
    if (moved) this.touch(moved);
  }

  private dropLease(l: Lease): void {
    if (this.byMac.get(keyOf(l)) === l) this.byMac.delete(keyOf(l));
    if (this.byIp.get(l.ip) === l) {
      this.byIp.delete(l.ip);
      this.touch(l.ip);
    }
  }

  private setHold(mac: string, ip: string, until: number): void {
    const prev = this.holdOf.get(mac);
    if (prev !== undefined && prev !== ip && this.holds.get(prev)?.mac === mac) {
      this.holds.delete(prev);
      this.touch(prev);
    }
    const other = this.holds.get(ip);
    if (other && other.mac !== mac && this.holdOf.get(other.mac) === ip) this.holdOf.delete(other.mac);
    this.holds.set(ip, { mac, until });
    this.holdOf.set(mac, ip);
    this.touch(ip);
  }

  private dropHold(ip: string): void {
    const h = this.holds.get(ip);
    if (!h) return;
    this.holds.delete(ip);
    if (this.holdOf.get(h.mac) === ip) this.holdOf.delete(h.mac);
    this.touch(ip);
  }

  /** Rewrites the journal as the current state: tmp + fsync + rename + dir fsync. */
  private compactSync(): void {
    const file = this.file;
    if (!file) return;
    const tmp = file + '.tmp';
    const fd = openSync(tmp, 'w');
    const now = this.now();
    let n = 0;
    try {
      // written in pieces of about WRITE_CHUNK: a /16 of leases is 5 MB of text, not one string
      let out = '';
      const add = (line: string) => {
        out += line + '\n';
        n++;
        if (out.length >= WRITE_CHUNK) {
          writeSync(fd, out);
          out = '';
        }
      };
      for (const l of this.byMac.values()) add(JSON.stringify(this.commitRec(l)));
      for (const [ip, until] of this.declined) if (until > now) add(JSON.stringify({ op: 'decline', ip, until }));
      if (out) writeSync(fd, out);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    try {
      const dfd = openSync(this.opts.stateDir!, 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    } catch {
      /* directories cannot be fsynced everywhere */
    }
    this.logLines = n;
  }

  private commitRec(l: Lease): Rec {
    const r: Rec = { op: 'commit', mac: l.mac, ip: l.ip, exp: l.expiresAt };
    if (l.hostname) r.h = l.hostname;
    if (l.uuid) r.u = l.uuid;
    if (l.id) r.i = l.id;
    if (l.fqdn) r.f = l.fqdn;
    return r;
  }

  // ------------------------------------------------------------------ queries

  get(mac: string, id?: string): Lease | undefined {
    return this.byMac.get(leaseKey(mac, id));
  }

  /** The client holding `ip` now (active lease), if any. */
  macForIp(ip: string): string | undefined {
    const l = this.byIp.get(ip);
    return l && l.expiresAt > this.now() ? l.mac : undefined;
  }

  staticFor(mac: string): string | undefined {
    return this.staticByMac.get(mac);
  }

  inRange(ip: string): boolean {
    let n: number;
    try {
      n = ipToInt(ip);
    } catch {
      return false;
    }
    return n >= this.start && n <= this.end;
  }

  /** May `mac` (with client identifier `id`) hold `ip` now? (static for it, or in the pool and free or already its own) */
  canAssign(mac: string, ip: string, id?: string): boolean {
    const k = leaseKey(mac, id);
    const st = this.staticByMac.get(mac);
    if (st) return st === ip;
    if (!this.inRange(ip) || this.staticIps.has(ip)) return false;
    const now = this.now();
    const d = this.declined.get(ip);
    if (d !== undefined && d > now) return false;
    const l = this.byIp.get(ip);
    if (l && keyOf(l) !== k && l.expiresAt > now) return false;
    const h = this.holds.get(ip);
    if (h && h.mac !== k && h.until > now) return false;
    return true;
  }

  /**
   * Picks an address for an OFFER and holds it for a short while:
   * static > the client's current/last lease > the requested address > a
   * never-used address > the longest-expired one. undefined: pool exhausted.
   */
  offer(mac: string, requested?: string, id?: string): string | undefined {
    const now = this.now();
    const k = leaseKey(mac, id);
    const hold = (ip: string) => {
      this.setHold(k, ip, now + (this.opts.offerHoldSeconds ?? 30) * 1000);
      return ip;
    };
    const st = this.staticByMac.get(mac);
    if (st) return st;
    const mine = this.byMac.get(k);
    if (mine && this.canAssign(mac, mine.ip, id)) return hold(mine.ip);
    if (requested && this.canAssign(mac, requested, id)) return hold(requested);
    const held = this.holdOf.get(k);
    if (held !== undefined && (this.holds.get(held)?.until ?? 0) > now && this.canAssign(mac, held, id)) return hold(held);
    // never-handed-out addresses first, from a cursor that only moves forward
    while (this.cursor <= this.end) {
      const n = this.cursor++;
      if (this.staticInts.has(n)) continue;
      const ip = intToIp(n);
      if (this.free.has(ip)) continue; // leased or declined before (journal): the heap has it
      return hold(ip);
    }
    // then the address free the longest (an expired lease, a lapsed hold, a released one)
    const top = this.free.peek();
    if (!top || top.key > now) return this.reclaimOffer(now, hold);
    if (this.canAssign(mac, top.ip, id)) return hold(top.ip);
    // the key was stale (cannot happen if every change re-keys): fix it and give up this once
    this.touch(top.ip);
    return undefined;
  }

  /**
   * Pool exhausted: an address only OFFERed (held at least a second, never REQUESTed) goes to
   * this client instead, the oldest first. A DISCOVER flood from made-up clients (or mangled
   * client identifiers) then cannot starve a real client for the whole hold time; a robbed
   * client's REQUEST is NAKed and it starts over (RFC 2131 §4.3.1 lets the server reuse an
   * offered address; §4.3.2 NAKs a REQUEST for an address no longer its to take). Looks at a
   * bounded number of holds, in the order they were made.
   */
  private reclaimOffer(now: number, hold: (ip: string) => string): string | undefined {
    const holdMs = (this.opts.offerHoldSeconds ?? 30) * 1000;
    let looked = 0;
    for (const [ip, h] of this.holds) {
      if (++looked > 64) break;
      if (h.until - holdMs > now - 1000) continue; // offered under a second ago: its client may be REQUESTing now
      const l = this.byIp.get(ip);
      if (l && l.expiresAt > now) continue;
      const d = this.declined.get(ip);
      if ((d !== undefined && d > now) || !this.inRange(ip) || this.staticIps.has(ip)) continue;
      this.dropHold(ip);
      return hold(ip);
    }
    return undefined;
  }

  /** The address just offered to (held for) `mac`; with `orLease`, else its static or current lease's. */
  offeredTo(mac: string, orLease = true, id?: string): string | undefined {
    const k = leaseKey(mac, id);
    const ip = this.holdOf.get(k);
    if (ip !== undefined) {
      const h = this.holds.get(ip);
      if (h && h.mac === k && h.until > this.now()) return ip;
    }
    if (!orLease) return undefined;
    return this.staticByMac.get(mac) ?? this.byMac.get(k)?.ip;
  }

  /** Drops the OFFER hold of `mac` (it chose another server). */
  unhold(mac: string, id?: string): void {
    const k = leaseKey(mac, id);
    const ip = this.holdOf.get(k);
    if (ip !== undefined && this.holds.get(ip)?.mac === k) this.dropHold(ip);
    this.holdOf.delete(k);
  }

  // ---------------------------------------------------------------- mutations

  /**
   * Binds `ip` to `mac`; resolves once durable (group commit). A renewal (the
   * same client's active lease on the same address, same hostname/uuid, its
   * binding already on disk) resolves at once: its record rides a later
   * fdatasync (see the header).
   */
  commit(mac: string, ip: string, extra: { hostname?: string; fqdn?: string; uuid?: string; id?: string; leaseSeconds?: number } = {}): Promise<Lease> {
    const now = this.now();
    const k = leaseKey(mac, extra.id);
    const old = this.byMac.get(k);
    const renewal =
      !!old && old.ip === ip && old.expiresAt > now && this.byIp.get(ip) === old && old.hostname === extra.hostname && old.uuid === extra.uuid && old.fqdn === extra.fqdn && old.mac === mac;
    const l: Lease = {
      mac,
      ...(extra.id ? { id: extra.id } : {}),
      ip,
      expiresAt: now + (extra.leaseSeconds ?? this.opts.leaseSeconds) * 1000,
      hostname: extra.hostname,
      ...(extra.fqdn ? { fqdn: extra.fqdn } : {}),
      uuid: extra.uuid,
      static: this.staticByMac.get(mac) === ip,
    };
    this.dropHold(ip);
    this.setLease(l);
    if (renewal) {
      const done = this.write(this.commitRec(l), false);
      // the binding itself may still be on its way to the disk: wait for that one
      const bound = this.binding.get(k);
      return (bound ?? done).then(() => l);
    }
    const p = this.write(this.commitRec(l));
    this.binding.set(k, p);
    const settled = () => {
      if (this.binding.get(k) === p) this.binding.delete(k);
    };
    p.then(settled, settled);
    return p.then(() => l);
  }

  /** DHCPRELEASE (RFC 2131 §4.4.6): the address goes back to the pool. */
  release(mac: string, ip: string, id?: string): Promise<void> {
    const l = this.byMac.get(leaseKey(mac, id));
    if (!l || l.ip !== ip) return Promise.resolve();
    l.expiresAt = Math.min(l.expiresAt, this.now());
    this.touch(ip);
    return this.write(id ? { op: 'release', mac, ip, i: id } : { op: 'release', mac, ip });
  }

  /** DHCPDECLINE (RFC 2131 §4.4.3): the address is in use by someone else; keep it out for a while. */
  decline(mac: string, ip: string, id?: string): Promise<void> {
    const until = this.now() + (this.opts.declineSeconds ?? 600) * 1000;
    this.declined.set(ip, until);
    const l = this.byIp.get(ip);
    if (l && keyOf(l) === leaseKey(mac, id)) this.dropLease(l);
    this.dropHold(ip);
    this.touch(ip);
    return this.write({ op: 'decline', ip, until });
  }

  list(): LeaseInfo[] {
    const now = this.now();
    const out: LeaseInfo[] = [];
    for (const l of this.byMac.values()) {
      out.push({
        mac: l.mac,
        ip: l.ip,
        expiresAt: new Date(l.expiresAt).toISOString(),
        hostname: l.hostname,
        ...(l.fqdn ? { fqdn: l.fqdn } : {}),
        ...(l.id ? { clientId: l.id } : {}),
        static: l.static,
        uuid: l.uuid,
        active: l.expiresAt > now,
      });
    }
    return out;
  }

  // ------------------------------------------------------------- group commit

  /**
   * Queues a record. `durable`: the promise settles once the record is on
   * disk; the batch goes out after the current burst of datagrams (setImmediate).
   * Not durable (a renewal): settles at once; the line waits for the next
   * durable batch, LAZY_MAX lines, or RENEW_SYNC_MS, whichever comes first.
   */
  private write(r: Rec, durable = true): Promise<void> {
    if (!this.opts.stateDir) return Promise.resolve();
    if (this.closed) return durable ? Promise.reject(new Error('lease store closed')) : Promise.resolve();
    this.pending.push(JSON.stringify(r));
    let p: Promise<void>;
    if (durable) p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    else {
      p = Promise.resolve();
      this.renewals++;
    }
    if (this.scheduled) return p; // joins the batch about to start
    if (this.inflight >= MAX_INFLIGHT || this.compacting) return p; // a batch ending looks again
    if (durable || this.pending.length >= LAZY_MAX) {
      this.scheduled = true;
      // everything the current burst of datagrams commits joins this batch
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    } else this.armSyncTimer();
    return p;
  }

  private armSyncTimer(): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      void this.flush();
    }, RENEW_SYNC_MS);
    this.syncTimer.unref();
  }

  /**
   * One batch: a single positioned write on the O_DSYNC journal (data on
   * disk when it returns). Up to MAX_INFLIGHT batches are written at once: a
   * burst arriving while one batch syncs does not wait for that sync before
   * its own starts. Each batch has its own place in the file (taken here, in
   * order), so the file keeps the order of the batches whatever order the
   * writes finish in; a crash between them leaves a run of NULs, which load()
   * skips.
   */
  private async flush(): Promise<void> {
    if (this.inflight >= MAX_INFLIGHT || this.compacting || this.pending.length === 0) return;
    this.inflight++;
    const lines = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    try {
      if (!this.fh && this.file && !this.closed) {
        // one open for the batches that find the journal closed (a failed compaction)
        this.opening ??= this.reopen().finally(() => (this.opening = undefined));
        await this.opening;
      }
      const fh = this.fh;
      if (!fh) throw new Error('lease store not loaded');
      const tm = this.opts.timer;
      const t0 = tm ? StageTimer.now() : 0;
      const buf = Buffer.from(lines.join('\n') + '\n');
      const at = this.pos;
      this.pos += buf.length;
      await this.space?.before(at, buf.length, this.pos);
      const { bytesWritten } = await fh.write(buf, 0, buf.length, at);
      if (bytesWritten !== buf.length) throw new Error(`lease journal: short write (${bytesWritten} of ${buf.length} bytes)`);
      if (tm) {
        tm.add('batch-write+sync', StageTimer.now() - t0);
        tm.add('batch-records', lines.length);
      }
      this.fsyncs++;
      this.records += lines.length;
      this.logLines += lines.length;
      for (const w of waiters) w.resolve();
    } catch (e) {
      for (const w of waiters) w.reject(e as Error);
    } finally {
      this.inflight--;
    }
    if (this.waiters.length || this.pending.length >= LAZY_MAX) void this.flush();
    else {
      if (this.pending.length) this.armSyncTimer();
      if (this.inflight === 0 && this.logLines > 4 * this.byMac.size + 1000) await this.compact();
    }
  }

  /** Opens the journal and puts the write position at the end of its data (zeros ahead of it are room). */
  private async reopen(): Promise<void> {
    const fh = await this.openJournal();
    try {
      const size = (await fh.stat()).size;
      this.pos = await dataEnd(fh, size);
      this.space = this.opts.fsync === false ? undefined : new JournalSpace(fh, size);
    } catch (err) {
      await fh.close();
      throw err;
    }
    this.fh = fh;
  }

  /**
   * The journal for positioned writes (no O_APPEND: Linux would ignore the
   * position). With fsync on (always, but in benchmarks of the rest) it is
   * opened O_DSYNC: each batch is one write system call that returns with
   * the data on disk (one thread-pool round trip instead of a write and then
   * an fdatasync).
   */
  private openJournal(): Promise<FileHandle> {
    const c = fsConstants;
    return open(this.file!, c.O_RDWR | c.O_CREAT | (this.opts.fsync === false ? 0 : c.O_DSYNC), 0o644);
  }

  /**
   * Compacts between batches (no batch in flight). Never throws: a compaction
   * that fails (state dir full) leaves the journal as it was, reopened for
   * appending, and is tried again after later batches.
   */
  async compact(): Promise<void> {
    if (!this.fh || this.inflight > 0 || this.compacting) return;
    this.compacting = true;
    const fh = this.fh;
    this.fh = undefined;
    try {
      await this.space?.settle();
      this.space = undefined;
      await fh.close();
      this.compactSync();
    } catch {
      this.compactFailures++;
    }
    try {
      await this.reopen();
    } catch {
      /* flush() tries to open it again */
    } finally {
      this.compacting = false;
    }
    if (this.pending.length) void this.flush();
  }

  /** Flushes what is pending, ends the journal with a `clean` record (fdatasynced) and closes the file. */
  async close(): Promise<void> {
    while (this.inflight > 0 || this.compacting || this.pending.length || this.scheduled) {
      if (this.inflight === 0 && !this.compacting && this.pending.length) await this.flush();
      else await new Promise((r) => setImmediate(r));
    }
    if (this.syncTimer) clearTimeout(this.syncTimer);
    this.syncTimer = undefined;
    if (this.fh && !this.closed) {
      try {
        await this.space?.settle();
        const buf = Buffer.from(JSON.stringify({ op: 'clean' }) + '\n');
        await this.fh.write(buf, 0, buf.length, this.pos); // O_DSYNC: on disk
        this.pos += buf.length;
      } catch {
        /* no clean record: the next load covers the renewals as after a crash */
      }
    }
    this.closed = true;
    await this.fh?.close();
    this.fh = undefined;
    this.space = undefined;
  }
}
