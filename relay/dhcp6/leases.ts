/**
 * Lease6Store: DHCPv6 bindings (RFC 8415 §6.2: one per client DUID + IAID),
 * in memory and durable in `<stateDir>/leases6.jsonl` (append-only journal,
 * compacted by write-tmp + fsync + rename), with the same guarantee as the
 * IPv4 store: commit() resolves only once the record is fsynced, records of
 * one burst share one fdatasync, and the service sends its REPLY after that.
 * A torn last line (kill -9 mid-write) is skipped at load.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { bigIntToIp6, canonicalIp6, ip6ToBigInt } from '../../proto/dhcp6/addr';

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

  private fh?: FileHandle;
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private flushing = false;
  private scheduled = false;
  private logLines = 0;
  private closed = false;

  fsyncs = 0;
  records = 0;
  skippedLines = 0;

  constructor(private readonly opts: Lease6StoreOptions) {
    this.first = ip6ToBigInt(opts.range[0]);
    this.last = ip6ToBigInt(opts.range[1]);
    this.cursor = this.first;
    this.now = opts.now ?? Date.now;
  }

  get file(): string | undefined {
    return this.opts.stateDir ? join(this.opts.stateDir, LEASE6_FILE) : undefined;
  }

  async load(): Promise<void> {
    const file = this.file;
    this.closed = false;
    if (!file) return;
    mkdirSync(this.opts.stateDir!, { recursive: true });
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        if (!line) continue;
        try {
          this.apply(JSON.parse(line) as Rec);
        } catch {
          this.skippedLines++;
        }
      }
    }
    this.compactSync();
    this.fh = await open(file, 'a');
  }

  private apply(r: Rec): void {
    if (r === null || typeof r !== 'object') throw new Error('not a record');
    if (r.op === 'commit' && typeof r.d === 'string' && typeof r.ip === 'string' && typeof r.exp === 'number') {
      this.setLease({ duid: r.d, iaid: r.i >>> 0, ip: r.ip, expiresAt: r.exp, mac: r.m });
    } else if (r.op === 'release' && typeof r.d === 'string') {
      const l = this.byKey.get(bindingKey(r.d, r.i));
      if (l && l.ip === r.ip) l.expiresAt = Math.min(l.expiresAt, 0);
    } else if (r.op === 'decline' && typeof r.ip === 'string') {
      this.declined.set(r.ip, r.until);
      const l = this.byIp.get(r.ip);
      if (l) this.drop(l);
    } else throw new Error('unknown record');
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

  private compactSync(): void {
    const file = this.file;
    if (!file) return;
    const tmp = file + '.tmp';
    const fd = openSync(tmp, 'w');
    const now = this.now();
    const lines: string[] = [];
    try {
      for (const l of this.byKey.values()) lines.push(JSON.stringify(this.commitRec(l)));
      for (const [ip, until] of this.declined) if (until > now) lines.push(JSON.stringify({ op: 'decline', ip, until }));
      if (lines.length) writeSync(fd, lines.join('\n') + '\n');
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
      /* not everywhere */
    }
    this.logLines = lines.length;
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

  // ------------------------------------------------------------- group commit

  private write(r: Rec): Promise<void> {
    if (!this.opts.stateDir) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('lease store closed'));
    this.pending.push(JSON.stringify(r));
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.flushing && !this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    }
    return p;
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.pending.length === 0) return;
    this.flushing = true;
    const lines = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    try {
      if (!this.fh && this.file && !this.closed) this.fh = await open(this.file, 'a');
      if (!this.fh) throw new Error('lease store not loaded');
      await this.fh.write(lines.join('\n') + '\n');
      if (this.opts.fsync !== false) await this.fh.datasync();
      this.fsyncs++;
      this.records += lines.length;
      this.logLines += lines.length;
      for (const w of waiters) w.resolve();
    } catch (e) {
      for (const w of waiters) w.reject(e as Error);
    } finally {
      this.flushing = false;
    }
    if (this.pending.length) void this.flush();
    else if (this.logLines > 4 * this.byKey.size + 1000) await this.compact();
  }

  private async compact(): Promise<void> {
    if (!this.fh || this.flushing) return;
    this.flushing = true;
    const fh = this.fh;
    this.fh = undefined;
    try {
      await fh.close();
      this.compactSync();
    } catch {
      /* the journal stays as it was */
    }
    try {
      this.fh = await open(this.file!, 'a');
    } catch {
      /* flush() opens it again */
    } finally {
      this.flushing = false;
    }
    if (this.pending.length) void this.flush();
  }

  async close(): Promise<void> {
    while (this.flushing || this.pending.length || this.scheduled) {
      if (!this.flushing && this.pending.length) await this.flush();
      else await new Promise((r) => setImmediate(r));
    }
    this.closed = true;
    await this.fh?.close();
    this.fh = undefined;
  }
}
