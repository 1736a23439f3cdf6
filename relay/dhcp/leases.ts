/**
 * LeaseStore: leases in memory, made durable in `<stateDir>/leases.jsonl`
 * (append-only; compacted by write-tmp + fsync + rename).
 *
 * Durability (../journal/journal): commit() updates memory at once and
 * returns a promise that settles when the record is on disk (group commit:
 * the records of one burst share one O_DSYNC write); the service sends the
 * ACK only after that promise resolves, so an ACKed lease survives kill -9
 * and power loss.
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
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { intToIp, ipToInt } from '../../proto/dhcp/options';
import { Journal } from '../journal/journal';
import type { StageTimer } from './timing';

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

  /** the lease file (undefined: memory only) */
  private readonly journal?: Journal;
  /** records load() could not use (beside the journal's unreadable lines) */
  private badRecords = 0;
  /** mac → its binding's commit while that is on its way to the disk */
  private binding = new Map<string, Promise<void>>();

  /** fsyncs done (one per batch) */
  get fsyncs(): number {
    return this.journal?.fsyncs ?? 0;
  }
  /** records written */
  get records(): number {
    return this.journal?.records ?? 0;
  }
  /** renewals written without waiting for an fdatasync */
  get renewals(): number {
    return this.journal?.lazyRecords ?? 0;
  }
  /** unreadable lines or unusable records skipped at load (a torn last line counts here) */
  get skippedLines(): number {
    return (this.journal?.skippedLines ?? 0) + this.badRecords;
  }
  /** compactions that failed (the journal was kept as it was) */
  get compactFailures(): number {
    return this.journal?.compactFailures ?? 0;
  }

  constructor(private readonly opts: LeaseStoreOptions) {
    this.start = ipToInt(opts.range[0]);
    this.end = ipToInt(opts.range[1]);
    this.cursor = this.start;
    this.now = opts.now ?? Date.now;
    const file = this.file;
    this.journal = file
      ? new Journal({
          file,
          fsync: opts.fsync,
          timer: opts.timer,
          lazyMs: RENEW_SYNC_MS,
          live: () => this.byMac.size,
          snapshot: () => this.snapshot(),
        })
      : undefined;
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
    const journal = this.journal;
    if (!journal) return;
    mkdirSync(this.opts.stateDir!, { recursive: true });
    const { clean } = journal.read((r) => this.apply(r as Rec));
    if (!clean) this.coverLostRenewals();
    await journal.open();
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

  /** One journal record into memory; false: not a record this store knows. */
  private apply(r: Rec): boolean {
    if (r === null || typeof r !== 'object') return false;
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
    } else return false;
    return true;
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

  /** What a compaction writes: every lease, and the declines still running. */
  private *snapshot(): Iterable<string> {
    const now = this.now();
    for (const l of this.byMac.values()) yield JSON.stringify(this.commitRec(l));
    for (const [ip, until] of this.declined) if (until > now) yield JSON.stringify({ op: 'decline', ip, until });
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

  // ------------------------------------------------------------- the journal

  /** Queues a record (durable: settles once on disk; a renewal: at once, see the header). */
  private write(r: Rec, durable = true): Promise<void> {
    return this.journal ? this.journal.write(JSON.stringify(r), durable) : Promise.resolve();
  }

  /** Compacts the journal now (between batches). Never throws. */
  async compact(): Promise<void> {
    await this.journal?.compact();
  }

  /** Writes what is pending, ends the journal with a `clean` record (on disk) and closes the file. */
  async close(): Promise<void> {
    await this.journal?.close();
  }
}
