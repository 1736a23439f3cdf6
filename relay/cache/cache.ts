/**
 * FileCache: the read-through cache of `upstream.url + path`, the production FileSource.
 *
 *  - single-flight per path: one upstream fetch however many clients ask; the others
 *    stream along from the growing partial file (relay/cache/reader.ts);
 *  - integrity: SHA256SUMS in the file's directory or a profile's sha256 is checked
 *    before the commit; a mismatch never becomes a complete file for anyone;
 *  - atomic commit (partial → fsync → rename → index tmp+fsync+rename), LRU within
 *    maxBytes, pinned entries kept;
 *  - revalidation after ttlSeconds (If-None-Match / If-Modified-Since), stale copies
 *    served while the uplink is down, 404s remembered for negativeTtlSeconds,
 *    disk full → stream through without caching.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import type { BootPlan } from '../boot/plan';
import type { CacheConfig, UpstreamConfig } from './config';
import type { Logger } from 'pino';
import { RelayError, UpstreamError } from '../../proto/errors';
import type { EmitFn } from '../../proto/events';
import { normalizeBootPath } from '../../proto/path';
import type { Metrics } from '../metrics';
import type { FileSource, OpenedFile, OpenOptions } from '../source';
import { headerOne, isUplinkFault, parseContentRange, Upstream, type UpstreamResponse } from './fetch';
import { Fill, type FillDeps, type FillState } from './fill';
import { CacheIndex, fsyncDir, type IndexEntry } from './index';
import { CacheReader, type BypassSpec, type FillView } from './reader';
import { SumsStore } from './sums';

/** A Range that starts at or beyond the end of the file (HTTP 416). */
export class RangeNotSatisfiableError extends RelayError {
  constructor(readonly size: number) {
    super('ERANGE', `range not satisfiable (size ${size})`);
  }
}

export interface CacheEntryInfo {
  path: string;
  size: number;
  complete: boolean;
  pinned: boolean;
  sha256?: string;
  /** ISO-8601 */
  fetchedAt: string;
  lastUsedAt: string;
  hits: number;
}

export interface CacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  upstreamBytes: number;
  uplink: 'up' | 'down' | 'unknown';
  /** extras */
  stale: number;
  bypass: number;
  servedBytes: number;
  filling: number;
}

export interface FileCacheOptions {
  upstream: UpstreamConfig;
  cache: CacheConfig;
  log: Logger;
  metrics: Metrics;
  emit: EmitFn;
  /** the profiles' sha256 for a path (hex), checked before the commit */
  plan?: Pick<BootPlan, 'expectedSha256'>;
  now?: () => number;
  /** Resume attempts after a cut upstream connection (default 4) and the first backoff (default 250 ms, doubling). */
  retries?: number;
  backoffMs?: number;
  /** After a failed upstream contact, stale copies are served and misses fail without asking again for this long (default 3000 ms). */
  uplinkRetryMs?: number;
  /** Bound on a revalidation request (default min(timeoutMs, 5000)). */
  revalidateTimeoutMs?: number;
  /** How long uncached files are streamed through after the disk filled up (default 30 s). */
  diskFullHoldMs?: number;
}

type Revalidation = { kind: 'fresh' } | { kind: 'stale'; reason: string } | { kind: 'changed' } | { kind: 'gone' };

const NEGATIVE_MAX = 4096;

export class FileCache implements FileSource {
  private readonly index: CacheIndex;
  private readonly upstream: Upstream;
  private readonly sums: SumsStore;
  private readonly fills = new Map<string, Fill>();
  private readonly negative = new Map<string, number>();
  private readonly revalidating = new Map<string, Promise<Revalidation>>();
  private readonly pinPending = new Set<string>();
  private readonly now: () => number;
  private readonly log: Logger;
  private uplink: 'up' | 'down' | 'unknown' = 'unknown';
  /** set by the uplink monitor (setLinkState) */
  private linkDown = false;
  private lastUplinkFail = 0;
  private diskFullUntil = 0;
  private closed = false;
  private readonly counters = { hits: 0, misses: 0, stale: 0, bypass: 0, upstreamBytes: 0, servedBytes: 0 };

  constructor(private readonly o: FileCacheOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log.child({ component: 'cache' });
    this.index = new CacheIndex(o.cache.dir);
    this.upstream = new Upstream(o.upstream);
    this.sums = new SumsStore(this.upstream, o.cache.ttlSeconds * 1000, this.now);
  }

  async init(): Promise<void> {
    const m = this.o.metrics;
    m.declare('bootrelay_cache_requests_total', 'counter', 'Cache opens by result (hit, miss, stale, bypass, negative)');
    m.declare('bootrelay_cache_upstream_bytes_total', 'counter', 'Bytes fetched from the upstream');
    m.declare('bootrelay_cache_served_bytes_total', 'counter', 'Bytes handed to clients by the cache');
    m.declare('bootrelay_cache_errors_total', 'counter', 'Cache failures by reason');
    m.onCollect(() => {
      m.set('bootrelay_cache_entries', this.index.entries.size, {}, 'Committed cache entries');
      m.set('bootrelay_cache_bytes', this.index.totalBytes(), {}, 'Bytes in committed cache entries');
      m.set('bootrelay_cache_uplink_up', this.uplink === 'up' ? 1 : 0, {}, 'Upstream reachable (1) or not (0)');
    });
    const r = await this.index.load();
    if (r.partials || r.orphans || r.dropped) this.log.info(r, 'cache cleaned at start');
  }

  // ---- FileSource ----------------------------------------------------------

  async open(rawPath: string, opts: OpenOptions = {}): Promise<OpenedFile> {
    if (this.closed) throw new RelayError('ECLOSED', 'cache closed');
    const path = normalizeBootPath(rawPath);
    const neg = this.negative.get(path);
    if (neg !== undefined) {
      if (neg > this.now()) {
        this.o.metrics.inc('bootrelay_cache_requests_total', { result: 'negative' });
        throw new UpstreamError(`${path} not found upstream (remembered)`, 404, this.upstream.urlFor(path));
      }
      this.negative.delete(path);
    }
    let entry = this.fills.has(path) ? undefined : this.index.entries.get(path);
    let kind: 'hit' | 'stale' = 'hit';
    let reason: string | undefined;
    if (entry && this.expired(entry)) {
      const r = await this.revalidate(path, entry);
      if (r.kind === 'gone') throw new UpstreamError(`${path} no longer exists upstream`, 404, this.upstream.urlFor(path));
      if (r.kind === 'stale') {
        kind = 'stale';
        reason = r.reason;
      }
      entry = r.kind === 'changed' ? undefined : this.index.entries.get(path);
    }
    if (entry && !this.fills.has(path)) {
      const opened = this.openEntry(entry, opts, kind, reason);
      if (opened) return opened;
    }
    let fill = this.fills.get(path);
    if (!fill) {
      this.failFastWhileDown(path);
      if (this.now() < this.diskFullUntil) return this.openBypass(path, opts);
      fill = this.startFill(path);
      if (!fill) return this.openBypass(path, opts);
    }
    await fill.ready;
    return this.openFill(fill, path, opts, true);
  }

  /**
   * Right after the upstream could not be reached, a miss fails at once instead of
   * waiting up to timeoutMs again (TFTP clients give up long before that).
   */
  private failFastWhileDown(path: string): void {
    if (this.upstreamOff()) {
      this.o.metrics.inc('bootrelay_cache_requests_total', { result: 'uplink-down' });
      throw new UpstreamError(`${path}: uplink down`, undefined, this.upstream.urlFor(path));
    }
  }

  /**
   * The size of `path` when the cache knows it without asking anyone: a
   * committed entry, or a fill whose upstream sent Content-Length (or that has
   * ended). For DHCP option 13 (boot file size). Undefined otherwise.
   */
  sizeOf(rawPath: string): number | undefined {
    let path: string;
    try {
      path = normalizeBootPath(rawPath);
    } catch {
      return undefined;
    }
    const fill = this.fills.get(path);
    if (fill) return fill.state === 'failed' ? undefined : fill.total;
    return this.index.entries.get(path)?.size;
  }

  // ---- management ----------------------------------------------------------

  list(): CacheEntryInfo[] {
    const out: CacheEntryInfo[] = [...this.index.entries.values()].map((e) => this.info(e));
    for (const f of this.fills.values()) {
      out.push({
        path: f.path,
        size: f.total ?? f.written,
        complete: false,
        pinned: this.pinPending.has(f.path),
        fetchedAt: new Date(f.startedAt).toISOString(),
        lastUsedAt: new Date(f.startedAt).toISOString(),
        hits: 0,
      });
    }
    return out.sort((a, b) => a.path.localeCompare(b.path));
  }

  async prefetch(rawPath: string, pin = false): Promise<CacheEntryInfo> {
    const path = normalizeBootPath(rawPath);
    let entry = this.fills.has(path) ? undefined : this.index.entries.get(path);
    if (entry && this.expired(entry)) {
      const r = await this.revalidate(path, entry);
      if (r.kind === 'gone') throw new UpstreamError(`${path} no longer exists upstream`, 404, this.upstream.urlFor(path));
      entry = r.kind === 'changed' ? undefined : this.index.entries.get(path);
    }
    if (!entry) {
      if (pin) this.pinPending.add(path);
      const fill = this.fills.get(path) ?? this.startFill(path);
      if (!fill) {
        this.pinPending.delete(path);
        throw new RelayError('ENOSPC', `cannot cache ${path}: disk full`);
      }
      await fill.finished;
      if (fill.state !== 'done') throw fill.error ?? new RelayError('EFILL', `prefetch of ${path} failed`);
      entry = this.index.entries.get(path);
      if (!entry) throw new RelayError('EFILL', `prefetch of ${path} was not kept (larger than the cache?)`);
    }
    if (pin && !entry.pinned) {
      entry.pinned = true;
      await this.saveIndex();
    }
    return this.info(entry);
  }

  async purge(rawPath?: string): Promise<number> {
    let n = 0;
    if (rawPath !== undefined) {
      const path = normalizeBootPath(rawPath);
      this.negative.delete(path);
      const e = this.index.entries.get(path);
      if (e) {
        this.removeEntry(e);
        n = 1;
      }
    } else {
      this.negative.clear();
      this.sums.clear();
      for (const e of [...this.index.entries.values()]) {
        this.removeEntry(e);
        n++;
      }
    }
    if (n) await this.saveIndex();
    return n;
  }

  /** Re-hashes every committed entry; corrupt or missing ones are dropped (refetched on next use). */
  async verify(): Promise<Array<{ path: string; ok: boolean; reason?: string }>> {
    const out: Array<{ path: string; ok: boolean; reason?: string }> = [];
    let changed = false;
    for (const e of [...this.index.entries.values()]) {
      try {
        const h = createHash('sha256');
        let size = 0;
        for await (const chunk of fs.createReadStream(this.index.dataPath(e.id)) as AsyncIterable<Buffer>) {
          h.update(chunk);
          size += chunk.length;
        }
        const got = h.digest('hex');
        if (size !== e.size) throw new Error(`size ${size}, expected ${e.size}`);
        if (got !== e.sha256) throw new Error(`sha256 ${got}, expected ${e.sha256}`);
        out.push({ path: e.path, ok: true });
      } catch (err) {
        const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'data file missing' : (err as Error).message;
        out.push({ path: e.path, ok: false, reason });
        if (this.index.entries.get(e.path) === e) {
          this.removeEntry(e);
          changed = true;
        }
        this.o.emit({ type: 'cache.error', file: e.path, reason: 'verify', error: reason });
        this.o.metrics.inc('bootrelay_cache_errors_total', { reason: 'verify' });
      }
    }
    if (changed) await this.saveIndex();
    return out;
  }

  stats(): CacheStats {
    return {
      entries: this.index.entries.size,
      bytes: this.index.totalBytes(),
      maxBytes: this.o.cache.maxBytes,
      hits: this.counters.hits,
      misses: this.counters.misses,
      upstreamBytes: this.counters.upstreamBytes,
      uplink: this.uplink,
      stale: this.counters.stale,
      bypass: this.counters.bypass,
      servedBytes: this.counters.servedBytes,
      filling: this.fills.size,
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const fills = [...this.fills.values()];
    for (const f of fills) f.abort('cache closed');
    await Promise.all(fills.map((f) => f.finished));
    await this.index.flush().catch(() => {});
    this.upstream.close();
  }

  /** Upstream requests made for SHA256SUMS files (tests). */
  get sumsFetches(): number {
    return this.sums.fetches;
  }

  // ---- internals -----------------------------------------------------------

  private info(e: IndexEntry): CacheEntryInfo {
    return {
      path: e.path,
      size: e.size,
      complete: true,
      pinned: e.pinned,
      sha256: e.sha256,
      fetchedAt: new Date(e.fetchedAt).toISOString(),
      lastUsedAt: new Date(e.lastUsedAt).toISOString(),
      hits: e.hits,
    };
  }

  private expired(e: IndexEntry): boolean {
    return this.now() - e.validatedAt >= this.o.cache.ttlSeconds * 1000;
  }

  private async expectedSha(path: string, fresh: boolean): Promise<{ sha256: string; source: 'profile' | 'sums' } | undefined> {
    const p = this.o.plan?.expectedSha256(path);
    if (p) return { sha256: p.toLowerCase(), source: 'profile' };
    const s = await this.sums.expected(path, fresh);
    return s ? { sha256: s, source: 'sums' } : undefined;
  }

  /**
   * The uplink monitor's word (OpenWrt ubus/iwinfo, or `ip` elsewhere): while the link is
   * down the cache serves what it has and does not try the upstream at all; misses fail at
   * once. The monitor emits its own uplink.up/uplink.down events, so none are emitted here.
   */
  setLinkState(up: boolean, reason?: string): void {
    this.linkDown = !up;
    if (!up) {
      this.upstream.dropConnections();
      this.lastUplinkFail = this.now();
      if (this.uplink !== 'down') this.log.warn({ reason }, 'uplink link down: serving from the cache only');
      this.uplink = 'down';
    } else if (this.uplink === 'down') {
      this.log.info('uplink link up');
      this.uplink = 'unknown'; // the next upstream request tells
    }
  }

  private upstreamOff(): boolean {
    const retryMs = this.o.uplinkRetryMs ?? 3000;
    return this.linkDown || (this.uplink === 'down' && this.now() - this.lastUplinkFail < retryMs);
  }

  private setUplink(ok: boolean, reason?: string): void {
    if (ok) {
      if (this.uplink === 'down') {
        this.log.info('uplink up');
        this.o.emit({ type: 'uplink.up' });
      }
      this.uplink = 'up';
    } else {
      this.lastUplinkFail = this.now();
      if (this.uplink !== 'down') {
        this.log.warn({ reason }, 'uplink down');
        this.o.emit({ type: 'uplink.down', reason });
      }
      this.uplink = 'down';
    }
  }

  private countServed = (n: number): void => {
    this.counters.servedBytes += n;
    this.o.metrics.inc('bootrelay_cache_served_bytes_total', {}, n);
  };

  private countUpstream = (n: number): void => {
    this.counters.upstreamBytes += n;
    this.o.metrics.inc('bootrelay_cache_upstream_bytes_total', {}, n);
  };

  private remember404(path: string): void {
    this.negative.delete(path);
    this.negative.set(path, this.now() + this.o.cache.negativeTtlSeconds * 1000);
    if (this.negative.size > NEGATIVE_MAX) this.negative.delete(this.negative.keys().next().value!);
  }

  private diskFull(path: string, err: Error): void {
    this.diskFullUntil = this.now() + (this.o.diskFullHoldMs ?? 30_000);
    this.log.warn({ file: path, err: err.message }, 'disk full: streaming through without caching');
    this.o.emit({ type: 'cache.error', file: path, reason: 'disk full', error: err.message });
    this.o.metrics.inc('bootrelay_cache_errors_total', { reason: 'disk-full' });
  }

  private startFill(path: string, initial?: UpstreamResponse): Fill | undefined {
    const id = `${createHash('sha1').update(path).digest('hex').slice(0, 16)}-${randomBytes(4).toString('hex')}`;
    const deps: FillDeps = {
      upstream: this.upstream,
      log: this.log,
      expected: (p, fresh) => this.expectedSha(p, fresh),
      commit: (f) => this.commit(f),
      onUpstreamBytes: this.countUpstream,
      onUplink: (ok, reason) => this.setUplink(ok, reason),
      onDiskFull: (f, err) => this.diskFull(f.path, err),
      retries: this.o.retries ?? 4,
      backoffMs: this.o.backoffMs ?? 250,
    };
    let fill: Fill;
    try {
      fill = new Fill(path, id, this.index.partialPath(id), deps);
    } catch (err) {
      initial?.body.destroy();
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        this.diskFull(path, err as Error);
        return undefined;
      }
      throw err;
    }
    this.fills.set(path, fill);
    // Look up SHA256SUMS while the body flows.
    if (!this.o.plan?.expectedSha256(path)) this.sums.expected(path).catch(() => {});
    fill.ready.then(
      () => {
        // A file larger than the whole cache is streamed but not kept: it evicts nothing.
        if (fill.total !== undefined && fill.total <= this.o.cache.maxBytes) this.evict(fill.total);
      },
      () => {},
    );
    fill.start(initial);
    void fill.finished.then(() => {
      if (this.fills.get(path) === fill) this.fills.delete(path);
      // a pin asked for by a prefetch that did not end in a commit (failed, disk full) lapses
      if (fill.state !== 'done') this.pinPending.delete(path);
      if (fill.state === 'failed') {
        const err = fill.error;
        if (err instanceof UpstreamError && err.status === 404) {
          this.remember404(path);
        } else if (!this.closed) {
          const reason = (err as RelayError | undefined)?.code === 'EINTEGRITY' ? 'integrity' : 'upstream';
          this.log.warn({ file: path, err: err?.message }, 'fill failed');
          this.o.emit({ type: 'cache.error', file: path, reason, error: err?.message });
          this.o.metrics.inc('bootrelay_cache_errors_total', { reason });
        }
      }
    });
    return fill;
  }

  private async commit(fill: Fill): Promise<void> {
    const path = fill.path;
    try {
      await fsp.rename(fill.partialPath, this.index.dataPath(fill.id));
      fsyncDir(this.index.dataDir);
    } catch (err) {
      this.log.error({ file: path, err: (err as Error).message }, 'commit failed');
      this.o.metrics.inc('bootrelay_cache_errors_total', { reason: 'commit' });
      return;
    }
    if (this.closed) return;
    if (fill.written > this.o.cache.maxBytes) {
      // Readers hold the file open; nobody else will find it.
      fs.rm(this.index.dataPath(fill.id), { force: true }, () => {});
      this.pinPending.delete(path);
      const stale = this.index.entries.get(path);
      if (stale) {
        this.removeEntry(stale);
        await this.saveIndex();
      }
      this.log.info({ file: path, bytes: fill.written }, 'larger than the cache: served, not kept');
      return;
    }
    const old = this.index.entries.get(path);
    const t = this.now();
    const entry: IndexEntry = {
      path,
      id: fill.id,
      size: fill.written,
      sha256: fill.sha256!,
      etag: fill.etag,
      lastModified: fill.lastModified,
      fetchedAt: t,
      validatedAt: t,
      lastUsedAt: t,
      hits: old?.hits ?? 0,
      pinned: (old?.pinned ?? false) || this.pinPending.has(path),
    };
    this.pinPending.delete(path);
    if (old && old.id !== entry.id) fs.rm(this.index.dataPath(old.id), { force: true }, () => {});
    this.index.entries.set(path, entry);
    this.evict(0, false);
    await this.saveIndex();
  }

  private async saveIndex(): Promise<void> {
    try {
      await this.index.save();
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cache index save failed');
      this.o.emit({ type: 'cache.error', reason: 'index-save', error: (err as Error).message });
      this.o.metrics.inc('bootrelay_cache_errors_total', { reason: 'index' });
    }
  }

  private removeEntry(e: IndexEntry): void {
    this.index.entries.delete(e.path);
    // Readers holding the file open keep reading it (POSIX unlink semantics).
    fs.rm(this.index.dataPath(e.id), { force: true }, () => {});
  }

  /** LRU: drops unpinned entries, least recently used first, until `extra` more bytes fit. */
  private evict(extra: number, save = true): void {
    const max = this.o.cache.maxBytes;
    let total = this.index.totalBytes();
    if (total + extra <= max) return;
    const victims = [...this.index.entries.values()].filter((e) => !e.pinned).sort((a, b) => a.lastUsedAt - b.lastUsedAt);
    let removed = 0;
    for (const v of victims) {
      if (total + extra <= max) break;
      this.removeEntry(v);
      total -= v.size;
      removed++;
      this.log.debug({ file: v.path, bytes: v.size }, 'evicted');
    }
    if (removed) this.o.metrics.inc('bootrelay_cache_evictions_total', {}, removed, 'Entries evicted to stay within maxBytes');
    if (removed && save) void this.saveIndex();
  }

  private revalidate(path: string, entry: IndexEntry): Promise<Revalidation> {
    let p = this.revalidating.get(path);
    if (!p) {
      p = this.doRevalidate(path, entry).finally(() => this.revalidating.delete(path));
      this.revalidating.set(path, p);
    }
    return p;
  }

  private async doRevalidate(path: string, entry: IndexEntry): Promise<Revalidation> {
    if (this.upstreamOff()) return { kind: 'stale', reason: 'uplink down' };
    const headers: Record<string, string> = {};
    if (entry.etag) headers['if-none-match'] = entry.etag;
    if (entry.lastModified) headers['if-modified-since'] = entry.lastModified;
    let res: UpstreamResponse;
    try {
      res = await this.upstream.request(path, {
        headers,
        timeoutMs: this.o.revalidateTimeoutMs ?? Math.min(this.o.upstream.timeoutMs, 5000),
      });
    } catch (err) {
      if (isUplinkFault(err)) this.setUplink(false, (err as Error).message);
      return { kind: 'stale', reason: (err as Error).message };
    }
    this.setUplink(true);
    if (res.status === 304) {
      res.body.resume();
      entry.validatedAt = this.now();
      this.index.saveSoon();
      return { kind: 'fresh' };
    }
    if (res.status === 200) {
      if (this.fills.has(path) || this.closed) {
        res.body.destroy();
        return { kind: 'changed' };
      }
      const f = this.startFill(path, res);
      return f ? { kind: 'changed' } : { kind: 'stale', reason: 'disk full' };
    }
    res.body.resume();
    if (res.status === 404 || res.status === 410) {
      if (this.index.entries.get(path) === entry) {
        this.removeEntry(entry);
        await this.saveIndex();
      }
      this.remember404(path);
      return { kind: 'gone' };
    }
    return { kind: 'stale', reason: `upstream answered ${res.status}` };
  }

  private checkRange(opts: OpenOptions, size: number | undefined): { start: number; end: number | undefined } {
    const start = opts.start ?? 0;
    let end = opts.end;
    if (size !== undefined) {
      if (start > 0 && start >= size) throw new RangeNotSatisfiableError(size);
      if (end !== undefined && end >= size) end = size - 1;
    }
    if (end !== undefined && end < start) throw new RangeNotSatisfiableError(size ?? 0);
    return { start, end };
  }

  private wire(stream: CacheReader, opts: OpenOptions): void {
    const sig = opts.signal;
    if (!sig) return;
    if (sig.aborted) {
      stream.destroy();
      return;
    }
    const onAbort = () => stream.destroy();
    sig.addEventListener('abort', onAbort, { once: true });
    stream.once('close', () => sig.removeEventListener('abort', onAbort));
  }

  private openEntry(e: IndexEntry, opts: OpenOptions, kind: 'hit' | 'stale' | 'miss', reason?: string): OpenedFile | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.index.dataPath(e.id), 'r');
    } catch {
      this.removeEntry(e);
      void this.saveIndex();
      return undefined;
    }
    let range: { start: number; end: number | undefined };
    try {
      range = this.checkRange(opts, e.size);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    e.lastUsedAt = this.now();
    e.hits++;
    this.index.saveSoon();
    if (kind === 'hit') {
      this.counters.hits++;
      this.o.metrics.inc('bootrelay_cache_requests_total', { result: 'hit' });
      this.o.emit({ type: 'cache.hit', file: e.path, mac: opts.mac, totalBytes: e.size });
    } else if (kind === 'stale') {
      this.counters.stale++;
      this.o.metrics.inc('bootrelay_cache_requests_total', { result: 'stale' });
      this.o.emit({ type: 'cache.stale', file: e.path, mac: opts.mac, detail: reason ?? 'stale' });
    }
    const stream = new CacheReader({ fd, size: e.size, start: range.start, end: range.end, onBytes: this.countServed, syncReads: opts.syncReads });
    this.wire(stream, opts);
    return {
      path: e.path,
      size: e.size,
      etag: e.etag ?? `"sha256-${e.sha256.slice(0, 32)}"`,
      lastModified: e.lastModified,
      stream,
      cache: kind,
      release: (c: Buffer) => stream.release(c),
    };
  }

  private async openFill(fill: Fill, path: string, opts: OpenOptions, retry: boolean): Promise<OpenedFile> {
    if (fill.state === 'failed') throw fill.error ?? new UpstreamError(`${path} failed`, undefined, fill.url);
    if (fill.state === 'diskfull') return this.openBypass(path, opts);
    if (fill.state === 'done') {
      const e = this.index.entries.get(path);
      const opened = e && this.openEntry(e, opts, 'miss');
      if (opened) {
        this.countMiss(path, opts, fill.total);
        return opened;
      }
      // Fetched but not kept (larger than the whole cache): fetch again, once.
      if (!retry) throw new RelayError('EFILL', `${path} was fetched but not kept`);
      const again = this.fills.get(path) ?? this.startFill(path);
      if (!again) return this.openBypass(path, opts);
      await again.ready;
      return this.openFill(again, path, opts, false);
    }
    this.countMiss(path, opts, fill.total);
    let fd: number;
    try {
      fd = fs.openSync(fill.partialPath, 'r');
    } catch {
      // Renamed into data/ between the state check and here (commit in progress).
      fd = fs.openSync(this.index.dataPath(fill.id), 'r');
    }
    let range: { start: number; end: number | undefined };
    try {
      range = this.checkRange(opts, fill.total);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    const stream = new CacheReader({
      fd,
      fill,
      start: range.start,
      end: range.end,
      onBytes: this.countServed,
      syncReads: opts.syncReads,
      bypass: (_pos, whole): BypassSpec => ({
        upstream: this.upstream,
        path,
        etag: fill.etag,
        lastModified: fill.lastModified,
        hash: whole ? fill.hashAtStop?.copy() : undefined,
        expected: () => this.expectedSha(path, false).then((x) => x?.sha256),
        onUpstreamBytes: this.countUpstream,
      }),
    });
    this.wire(stream, opts);
    return {
      path,
      size: fill.total,
      etag: fill.etag,
      lastModified: fill.lastModified,
      stream,
      cache: 'miss',
      release: (c: Buffer) => stream.release(c),
      ...(fill.total === undefined ? { sizeWhenKnown: (ms: number) => sizeOfFill(fill, ms) } : {}),
    };
  }

  private countMiss(path: string, opts: OpenOptions, total: number | undefined): void {
    this.counters.misses++;
    this.o.metrics.inc('bootrelay_cache_requests_total', { result: 'miss' });
    this.o.emit({ type: 'cache.miss', file: path, mac: opts.mac, totalBytes: total });
  }

  /** Streams straight from the upstream, nothing written to disk (disk full). */
  private async openBypass(path: string, opts: OpenOptions): Promise<OpenedFile> {
    const start = opts.start ?? 0;
    const headers: Record<string, string> = {};
    // an end before the start is no Range to send upstream: ask from the start, and checkRange refuses it (416) as on a hit
    const end = opts.end !== undefined && opts.end >= start ? opts.end : '';
    if (start > 0 || end !== '') headers.range = `bytes=${start}-${end}`;
    let res: UpstreamResponse;
    try {
      res = await this.upstream.request(path, { headers, signal: opts.signal });
    } catch (err) {
      if (isUplinkFault(err)) this.setUplink(false, (err as Error).message);
      throw err;
    }
    this.setUplink(true);
    let total: number | undefined;
    if (res.status === 206) {
      total = parseContentRange(headerOne(res.headers, 'content-range'))?.total;
    } else if (res.status === 200) {
      const len = headerOne(res.headers, 'content-length');
      total = len !== undefined ? Number(len) : undefined;
    } else {
      res.body.resume();
      if (res.status === 404 || res.status === 410) this.remember404(path);
      if (res.status === 416) {
        const m = /\/(\d+)$/.exec(headerOne(res.headers, 'content-range') ?? '');
        throw new RangeNotSatisfiableError(m ? Number(m[1]) : 0);
      }
      throw new UpstreamError(`upstream answered ${res.status} for ${path}`, res.status, res.url);
    }
    let range: { start: number; end: number | undefined };
    try {
      range = this.checkRange(opts, total);
    } catch (err) {
      res.body.destroy();
      throw err;
    }
    this.counters.bypass++;
    this.o.metrics.inc('bootrelay_cache_requests_total', { result: 'bypass' });
    this.o.emit({ type: 'cache.miss', file: path, mac: opts.mac, totalBytes: total, reason: 'bypass' });
    const etag = headerOne(res.headers, 'etag');
    const lastModified = headerOne(res.headers, 'last-modified');
    const standIn = new BypassView(total);
    const stream = new CacheReader({
      fd: -1,
      fill: standIn,
      start: range.start,
      end: range.end,
      onBytes: this.countServed,
      bypass: (_pos, whole): BypassSpec => ({
        upstream: this.upstream,
        path,
        etag,
        lastModified,
        hash: whole ? createHash('sha256') : undefined,
        expected: () => this.expectedSha(path, false).then((x) => x?.sha256),
        initial: res,
        onUpstreamBytes: this.countUpstream,
      }),
    });
    // The reader only takes the body over on its first read: a stream dropped before
    // that (HEAD, 304, client gone) must still release the upstream connection.
    stream.once('close', () => {
      if (!res.body.complete) res.body.destroy();
    });
    this.wire(stream, opts);
    return { path, size: total, etag, lastModified, stream, cache: 'bypass' };
  }
}

/** The fill's total once known (Content-Length, or the end of a chunked body); undefined after `ms` or on failure. */
function sizeOfFill(fill: Fill, ms: number): Promise<number | undefined> {
  if (fill.total !== undefined || fill.state !== 'filling') return Promise.resolve(fill.state === 'failed' ? undefined : fill.total);
  return new Promise((resolve) => {
    const check = () => {
      if (fill.total === undefined && fill.state === 'filling') return;
      done(fill.state === 'failed' || fill.state === 'diskfull' ? undefined : fill.total);
    };
    const timer = setTimeout(() => done(undefined), ms);
    const done = (v: number | undefined) => {
      clearTimeout(timer);
      fill.off('progress', check);
      resolve(v);
    };
    fill.on('progress', check);
  });
}

/** A fill that never wrote anything: readers go straight to the upstream. */
class BypassView extends EventEmitter implements FillView {
  readonly state: FillState = 'diskfull';
  readonly written = 0;
  readonly error = undefined;
  constructor(readonly total: number | undefined) {
    super();
  }
}
