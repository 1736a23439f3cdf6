/**
 * LeaseStore: leases in memory, made durable in `<stateDir>/leases.jsonl`
 * (append-only; compacted by write-tmp + fsync + rename).
 *
 * Group commit: commit() updates memory at once and returns a promise that
 * settles when the record is on disk. Records of one burst are written and
 * fsynced together (one fdatasync per batch); the service sends the ACK only
 * after that promise resolves, so an ACKed lease survives kill -9.
 * Loading tolerates a torn last line (and skips any unparseable line).
 */
import { mkdirSync, openSync, readFileSync, closeSync, fsyncSync, writeSync, renameSync, existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { intToIp, ipToInt } from '../../proto/dhcp/options';

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

/** The key a lease is held under: the client identifier when sent, else the MAC. */
export function leaseKey(mac: string, id?: string): string {
  return id ? `id:${id}` : mac;
}
const keyOf = (l: Lease): string => leaseKey(l.mac, l.id);

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
}

type Rec =
  | { op: 'commit'; mac: string; ip: string; exp: number; h?: string; u?: string; i?: string; f?: string }
  | { op: 'release'; mac: string; ip: string; i?: string }
  | { op: 'decline'; ip: string; until: number };

export const LEASE_FILE = 'leases.jsonl';

export class LeaseStore {
  private byMac = new Map<string, Lease>();
  private byIp = new Map<string, Lease>();
  private staticByMac = new Map<string, string>();
  private staticIps = new Set<string>();
  /** ip → {mac, until}: tentative holds for OFFERs (memory only) */
  private holds = new Map<string, { mac: string; until: number }>();
  private declined = new Map<string, number>();
  private readonly start: number;
  private readonly end: number;
  private readonly now: () => number;
  private cursor: number;

  private fh?: FileHandle;
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private flushing = false;
  private scheduled = false;
  private logLines = 0;
  private closed = false;

  /** fsyncs done (one per batch) */
  fsyncs = 0;
  /** records written */
  records = 0;
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
    }
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
      const text = readFileSync(file, 'utf8');
      for (const line of text.split('\n')) {
        if (!line) continue;
        let r: Rec;
        try {
          r = JSON.parse(line) as Rec;
        } catch {
          this.skippedLines++;
          continue;
        }
        this.apply(r);
      }
    }
    this.compactSync();
    this.fh = await open(file, 'a');
  }

  private apply(r: Rec): void {
    if (r === null || typeof r !== 'object') {
      this.skippedLines++;
      return;
    }
    if (r.op === 'commit' && typeof r.mac === 'string' && typeof r.ip === 'string') {
      this.setLease({ mac: r.mac, id: r.i, ip: r.ip, expiresAt: r.exp, hostname: r.h, fqdn: r.f, uuid: r.u, static: this.staticByMac.get(r.mac) === r.ip });
    } else if (r.op === 'release' && typeof r.mac === 'string') {
      const l = this.byMac.get(leaseKey(r.mac, r.i));
      if (l && l.ip === r.ip) l.expiresAt = Math.min(l.expiresAt, 0);
    } else if (r.op === 'decline' && typeof r.ip === 'string') {
      this.declined.set(r.ip, r.until);
      const l = this.byIp.get(r.ip);
      if (l) this.dropLease(l);
    } else this.skippedLines++;
  }

  private setLease(l: Lease): void {
    const old = this.byMac.get(keyOf(l));
    if (old && this.byIp.get(old.ip) === old) this.byIp.delete(old.ip);
    const other = this.byIp.get(l.ip);
    if (other && keyOf(other) !== keyOf(l) && this.byMac.get(keyOf(other)) === other) this.byMac.delete(keyOf(other));
    this.byMac.set(keyOf(l), l);
    this.byIp.set(l.ip, l);
  }

  private dropLease(l: Lease): void {
    if (this.byMac.get(keyOf(l)) === l) this.byMac.delete(keyOf(l));
    if (this.byIp.get(l.ip) === l) this.byIp.delete(l.ip);
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
      const lines: string[] = [];
      for (const l of this.byMac.values()) {
        lines.push(JSON.stringify(this.commitRec(l)));
        n++;
      }
      for (const [ip, until] of this.declined) {
        if (until > now) {
          lines.push(JSON.stringify({ op: 'decline', ip, until }));
          n++;
        }
      }
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

  /** The lease of a client: by its identifier (option 61, hex) when it sends one, else by MAC. */
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
    // holds are keyed like leases (the `mac` field holds the lease key)
    const hold = (ip: string) => {
      this.holds.set(ip, { mac: k, until: now + (this.opts.offerHoldSeconds ?? 30) * 1000 });
      return ip;
    };
    const st = this.staticByMac.get(mac);
    if (st) return st;
    const mine = this.byMac.get(k);
    if (mine && this.canAssign(mac, mine.ip, id)) return hold(mine.ip);
    if (requested && this.canAssign(mac, requested, id)) return hold(requested);
    for (const [ip, h] of this.holds) {
      if (h.mac === k && h.until > now && this.canAssign(mac, ip, id)) return hold(ip);
    }
    // never-used addresses first, round robin from a cursor
    const size = this.end - this.start + 1;
    for (let k = 0; k < size; k++) {
      const n = this.cursor + k > this.end ? this.cursor + k - size : this.cursor + k;
      const ip = intToIp(n);
      if (this.byIp.has(ip) || this.staticIps.has(ip)) continue;
      if (!this.canAssign(mac, ip, id)) continue;
      this.cursor = n + 1 > this.end ? this.start : n + 1;
      return hold(ip);
    }
    // then the longest-expired lease
    let best: Lease | undefined;
    for (const l of this.byIp.values()) {
      if (l.expiresAt <= now && this.canAssign(mac, l.ip, id) && (!best || l.expiresAt < best.expiresAt)) best = l;
    }
    return best ? hold(best.ip) : undefined;
  }

  /** The address just offered to (held for) `mac`; with `orLease`, else its static or current lease's. */
  offeredTo(mac: string, orLease = true, id?: string): string | undefined {
    const now = this.now();
    const k = leaseKey(mac, id);
    for (const [ip, h] of this.holds) if (h.mac === k && h.until > now) return ip;
    if (!orLease) return undefined;
    return this.staticByMac.get(mac) ?? this.byMac.get(k)?.ip;
  }

  /** Drops the OFFER hold of `mac` (it chose another server). */
  unhold(mac: string, id?: string): void {
    const k = leaseKey(mac, id);
    for (const [ip, h] of this.holds) if (h.mac === k) this.holds.delete(ip);
  }

  // ---------------------------------------------------------------- mutations

  /** Binds `ip` to `mac`; resolves once durable (group commit). */
  commit(mac: string, ip: string, extra: { hostname?: string; fqdn?: string; uuid?: string; id?: string; leaseSeconds?: number } = {}): Promise<Lease> {
    const l: Lease = {
      mac,
      ...(extra.id ? { id: extra.id } : {}),
      ip,
      expiresAt: this.now() + (extra.leaseSeconds ?? this.opts.leaseSeconds) * 1000,
      hostname: extra.hostname,
      ...(extra.fqdn ? { fqdn: extra.fqdn } : {}),
      uuid: extra.uuid,
      static: this.staticByMac.get(mac) === ip,
    };
    this.setLease(l);
    this.holds.delete(ip);
    return this.write(this.commitRec(l)).then(() => l);
  }

  /** DHCPRELEASE (RFC 2131 §4.4.6): the address goes back to the pool. */
  release(mac: string, ip: string, id?: string): Promise<void> {
    const l = this.byMac.get(leaseKey(mac, id));
    if (!l || l.ip !== ip) return Promise.resolve();
    l.expiresAt = Math.min(l.expiresAt, this.now());
    return this.write(id ? { op: 'release', mac, ip, i: id } : { op: 'release', mac, ip });
  }

  /** DHCPDECLINE (RFC 2131 §4.4.3): the address is in use by someone else; keep it out for a while. */
  decline(mac: string, ip: string, id?: string): Promise<void> {
    const until = this.now() + (this.opts.declineSeconds ?? 600) * 1000;
    this.declined.set(ip, until);
    const l = this.byIp.get(ip);
    if (l && keyOf(l) === leaseKey(mac, id)) this.dropLease(l);
    this.holds.delete(ip);
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

  private write(r: Rec): Promise<void> {
    if (!this.opts.stateDir) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('lease store closed'));
    this.pending.push(JSON.stringify(r));
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.flushing && !this.scheduled) {
      this.scheduled = true;
      // everything the current burst of datagrams commits joins this batch
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
    else if (this.logLines > 4 * this.byMac.size + 1000) await this.compact();
  }

  /**
   * Compacts between batches (no batch in flight). Never throws: a compaction
   * that fails (state dir full) leaves the journal as it was, reopened for
   * appending, and is tried again after later batches.
   */
  async compact(): Promise<void> {
    if (!this.fh || this.flushing) return;
    this.flushing = true;
    const fh = this.fh;
    this.fh = undefined;
    try {
      await fh.close();
      this.compactSync();
    } catch {
      this.compactFailures++;
    }
    try {
      this.fh = await open(this.file!, 'a');
    } catch {
      /* flush() tries to open it again */
    } finally {
      this.flushing = false;
    }
    if (this.pending.length) void this.flush();
  }

  /** Flushes what is pending and closes the file. */
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
