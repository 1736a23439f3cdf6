/**
 * Lease6Store: DHCPv6 bindings (RFC 8415 §6.2: one per client DUID + IAID),
 * in memory and durable in `<stateDir>/leases6.jsonl` through the same
 * journal as the IPv4 store (../journal/journal: group commit on an O_DSYNC
 * file with room written ahead, compaction by write-tmp + fsync + rename,
 * read in pieces): commit() resolves only once its record is on disk, and
 * the service sends its REPLY after that. A torn last line (kill -9
 * mid-write) is skipped at load.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { bigIntToIp6, canonicalIp6, ip6ToBigInt } from '../../proto/dhcp6/addr';
import { Journal } from '../journal/journal';

export interface Lease6 {
  /** client DUID, hex */
  duid: string;
  iaid: number;
  ip: string;
  /** ms since the epoch */
  expiresAt: number;
  mac?: string;
}

export interface Lease6Info {
  duid: string;
  iaid: number;
  ip: string;
  mac?: string;
  expiresAt: string;
  active: boolean;
}

export interface Lease6StoreOptions {
  /** directory for leases6.jsonl; undefined: memory only */
  stateDir?: string;
  range: [string, string];
  leaseSeconds: number;
  /** how long an ADVERTISEd address is held (s); default 60 */
  offerHoldSeconds?: number;
  /** how long a DECLINEd address stays out of the pool (s); default 600 */
  declineSeconds?: number;
  now?: () => number;
  fsync?: boolean;
}

type Rec =
  | { op: 'commit'; d: string; i: number; ip: string; exp: number; m?: string }
  | { op: 'release'; d: string; i: number; ip: string }
  | { op: 'decline'; ip: string; until: number };

export const LEASE6_FILE = 'leases6.jsonl';

export function bindingKey(duid: string, iaid: number): string {
  return `${duid}/${iaid >>> 0}`;
}

export class Lease6Store {
  private byKey = new Map<string, Lease6>();
  private byIp = new Map<string, Lease6>();
  private holds = new Map<string, { key: string; until: number }>();
  private declined = new Map<string, number>();
  private readonly first: bigint;
  private readonly last: bigint;
  private cursor: bigint;
  private readonly now: () => number;

  /** the lease file (undefined: memory only) */
  private readonly journal?: Journal;

  /** batches written (one flush each) */
  get fsyncs(): number {
    return this.journal?.fsyncs ?? 0;
  }
  /** records written */
  get records(): number {
    return this.journal?.records ?? 0;
  }
  /** unreadable lines or unusable records skipped at load */
  get skippedLines(): number {
    return this.journal?.skippedLines ?? 0;
  }

  constructor(private readonly opts: Lease6StoreOptions) {
    this.first = ip6ToBigInt(opts.range[0]);
    this.last = ip6ToBigInt(opts.range[1]);
    this.cursor = this.first;
    this.now = opts.now ?? Date.now;
    const file = this.file;
    this.journal = file
      ? new Journal({
          file,
          fsync: opts.fsync,
          live: () => this.byKey.size,
          snapshot: () => this.snapshot(),
        })
      : undefined;
  }

  get file(): string | undefined {
    return this.opts.stateDir ? join(this.opts.stateDir, LEASE6_FILE) : undefined;
  }

  async load(): Promise<void> {
    const journal = this.journal;
    if (!journal) return;
    mkdirSync(this.opts.stateDir!, { recursive: true });
    journal.read((r) => this.apply(r as Rec));
    await journal.open();
  }

  /** One journal record into memory; false: not a record this store knows. */
  private apply(r: Rec): boolean {
    if (r === null || typeof r !== 'object') return false;
    if (r.op === 'commit' && typeof r.d === 'string' && typeof r.ip === 'string' && typeof r.exp === 'number') {
      this.setLease({ duid: r.d, iaid: r.i >>> 0, ip: r.ip, expiresAt: r.exp, mac: r.m });
    } else if (r.op === 'release' && typeof r.d === 'string') {
      const l = this.byKey.get(bindingKey(r.d, r.i));
      if (l && l.ip === r.ip) l.expiresAt = Math.min(l.expiresAt, 0);
    } else if (r.op === 'decline' && typeof r.ip === 'string') {
      this.declined.set(r.ip, r.until);
      const l = this.byIp.get(r.ip);
      if (l) this.drop(l);
    } else return false;
    return true;
  }

  private setLease(l: Lease6): void {
    const key = bindingKey(l.duid, l.iaid);
    const old = this.byKey.get(key);
    if (old && this.byIp.get(old.ip) === old) this.byIp.delete(old.ip);
    const other = this.byIp.get(l.ip);
    if (other && other !== old) this.drop(other);
    this.byKey.set(key, l);
    this.byIp.set(l.ip, l);
  }

  private drop(l: Lease6): void {
    const key = bindingKey(l.duid, l.iaid);
    if (this.byKey.get(key) === l) this.byKey.delete(key);
    if (this.byIp.get(l.ip) === l) this.byIp.delete(l.ip);
  }

  /** What a compaction writes: every binding, and the declines still running. */
  private *snapshot(): Iterable<string> {
    const now = this.now();
    for (const l of this.byKey.values()) yield JSON.stringify(this.commitRec(l));
    for (const [ip, until] of this.declined) if (until > now) yield JSON.stringify({ op: 'decline', ip, until });
  }

  private commitRec(l: Lease6): Rec {
    const r: Rec = { op: 'commit', d: l.duid, i: l.iaid, ip: l.ip, exp: l.expiresAt };
    if (l.mac) r.m = l.mac;
    return r;
  }

  // ------------------------------------------------------------------ queries

  get(duid: string, iaid: number): Lease6 | undefined {
    return this.byKey.get(bindingKey(duid, iaid));
  }

  /** Active lease holding `ip`. */
  holder(ip: string): Lease6 | undefined {
    const l = this.byIp.get(canonicalIp6(ip) ?? ip);
    return l && l.expiresAt > this.now() ? l : undefined;
  }

  macForIp(ip: string): string | undefined {
    return this.holder(ip)?.mac;
  }

  inRange(ip: string): boolean {
    let n: bigint;
    try {
      n = ip6ToBigInt(ip);
    } catch {
      return false;
    }
    return n >= this.first && n <= this.last;
  }

  /** May binding (duid, iaid) hold `ip` now? */
  canAssign(duid: string, iaid: number, ip: string): boolean {
    if (!this.inRange(ip)) return false;
    const key = bindingKey(duid, iaid);
    const now = this.now();
    const d = this.declined.get(ip);
    if (d !== undefined && d > now) return false;
    const l = this.byIp.get(ip);
    if (l && bindingKey(l.duid, l.iaid) !== key && l.expiresAt > now) return false;
    const h = this.holds.get(ip);
    if (h && h.key !== key && h.until > now) return false;
    return true;
  }

  /**
   * An address for an ADVERTISE (held for a while) or a REQUEST: the binding's
   * own > the one the client asks for (IAADDR hint) > a never-used one > the
   * longest expired. undefined: the pool is exhausted.
   */
  pick(duid: string, iaid: number, hint?: string): string | undefined {
    const key = bindingKey(duid, iaid);
    const now = this.now();
    const hold = (ip: string): string => {
      this.holds.set(ip, { key, until: now + (this.opts.offerHoldSeconds ?? 60) * 1000 });
      return ip;
    };
    const mine = this.byKey.get(key);
    if (mine && this.canAssign(duid, iaid, mine.ip)) return hold(mine.ip);
    for (const [ip, h] of this.holds) if (h.key === key && h.until > now && this.canAssign(duid, iaid, ip)) return hold(ip);
    const want = hint ? canonicalIp6(hint) : undefined;
    if (want && this.canAssign(duid, iaid, want)) return hold(want);
    const size = this.last - this.first + 1n;
    // never-used addresses first, round robin; bounded so a huge range costs no more than 65536 probes
    const probes = size < 65536n ? size : 65536n;
    for (let k = 0n; k < probes; k++) {
      let n = this.cursor + k;
      if (n > this.last) n -= size;
      const ip = bigIntToIp6(n);
      if (this.byIp.has(ip) || !this.canAssign(duid, iaid, ip)) continue;
      this.cursor = n + 1n > this.last ? this.first : n + 1n;
      return hold(ip);
    }
    let best: Lease6 | undefined;
    for (const l of this.byIp.values()) if (l.expiresAt <= now && this.canAssign(duid, iaid, l.ip) && (!best || l.expiresAt < best.expiresAt)) best = l;
    return best ? hold(best.ip) : undefined;
  }

  // ---------------------------------------------------------------- mutations

  /** Binds; resolves once durable (group commit). */
  commit(duid: string, iaid: number, ip: string, mac?: string, leaseSeconds = this.opts.leaseSeconds): Promise<Lease6> {
    const l: Lease6 = { duid, iaid: iaid >>> 0, ip, expiresAt: this.now() + leaseSeconds * 1000, mac };
    this.setLease(l);
    this.holds.delete(ip);
    return this.write(this.commitRec(l)).then(() => l);
  }

  release(duid: string, iaid: number, ip: string): Promise<boolean> {
    const l = this.byKey.get(bindingKey(duid, iaid));
    if (!l || l.ip !== ip) return Promise.resolve(false);
    l.expiresAt = Math.min(l.expiresAt, this.now());
    return this.write({ op: 'release', d: duid, i: iaid >>> 0, ip }).then(() => true);
  }

  decline(duid: string, iaid: number, ip: string): Promise<boolean> {
    const l = this.byKey.get(bindingKey(duid, iaid));
    if (!l || l.ip !== ip) return Promise.resolve(false);
    const until = this.now() + (this.opts.declineSeconds ?? 600) * 1000;
    this.declined.set(ip, until);
    this.drop(l);
    this.holds.delete(ip);
    return this.write({ op: 'decline', ip, until }).then(() => true);
  }

  list(): Lease6Info[] {
    const now = this.now();
    return [...this.byKey.values()].map((l) => ({ duid: l.duid, iaid: l.iaid, ip: l.ip, mac: l.mac, expiresAt: new Date(l.expiresAt).toISOString(), active: l.expiresAt > now }));
  }

  // ------------------------------------------------------------- the journal

  /** Queues a record; settles once it is on disk. */
  private write(r: Rec): Promise<void> {
    return this.journal ? this.journal.write(JSON.stringify(r)) : Promise.resolve();
  }

  /** Writes what is pending and closes the journal. */
  async close(): Promise<void> {
    await this.journal?.close();
  }
}
