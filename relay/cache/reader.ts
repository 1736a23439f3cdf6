/**
 * A Readable over one cached file, committed or still filling. It reads the file
 * on disk through its own descriptor in bounded chunks (memory does not grow with
 * the file), waits for the fill's 'progress' when it has caught up, and holds back
 * the last byte of the file until the fill has been verified and committed: a
 * client never receives a complete file that turns out corrupt, it gets a stream
 * error instead. When the disk filled up mid-fill, the rest comes straight from
 * the upstream (Range from where the disk copy stops), still verified.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { Hash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { UpstreamError } from '../../proto/errors';
import type { FillState } from './fill';
import { IntegrityError, ifRangeValidator } from './fill';
import { headerOne, parseContentRange, type Upstream, type UpstreamResponse } from './fetch';

const CHUNK = 64 * 1024;
/** chunks kept for reuse per reader (a consumer that releases them holds about this many in flight) */
const SPARE = 2;

export interface BypassSpec {
  upstream: Upstream;
  path: string;
  etag?: string;
  lastModified?: string;
  /** Hash of [0, pos) when the reader covers the whole file (continues the fill's). */
  hash?: Hash;
  expected(): Promise<string | undefined>;
  /** An already open upstream response whose body starts at byte `pos`. */
  initial?: UpstreamResponse;
  onUpstreamBytes(n: number): void;
}

/** What a reader needs of a Fill (a bypass-only reader gets a stand-in). */
export interface FillView {
  readonly state: FillState;
  readonly written: number;
  readonly total: number | undefined;
  readonly error: Error | undefined;
  once(ev: 'progress', fn: () => void): unknown;
  off(ev: 'progress', fn: () => void): unknown;
}

export interface ReaderOptions {
  /** Own descriptor on the data or partial file (closed with the reader); -1 for none. */
  fd: number;
  /** Size of a committed file (no fill). */
  size?: number;
  fill?: FillView;
  start: number;
  /** Inclusive; undefined: to the end. */
  end?: number;
  onBytes(n: number): void;
  /** How to continue from the upstream once the disk copy stops (disk full / no cache). */
  bypass?: (pos: number, wholeFile: boolean) => BypassSpec;
  /** Read from disk with readSync (no thread-pool round trip per chunk). */
  syncReads?: boolean;
}

export class CacheReader extends Readable {
  private pos: number;
  private busy = false;
  private waitFn: (() => void) | undefined;
  private body: IncomingMessage | undefined;
  private inBypass = false;
  private afterRead: (() => void) | undefined;
  /** chunk buffers given back by the consumer (release), reused for the next reads */
  private spare: Buffer[] = [];
  private readonly mine = new WeakSet<ArrayBufferLike>();

  constructor(private readonly o: ReaderOptions) {
    super({ highWaterMark: CHUNK });
    this.pos = o.start;
  }

  /**
   * The consumer is done with a chunk this reader pushed (e.g. its socket write
   * completed): the memory is reused for a later read instead of waiting for the
   * garbage collector, which lets tens of MiB of dead chunks pile up under load.
   * Chunks that are not ours, or not whole, are ignored.
   */
  release(chunk: Buffer): void {
    if (chunk.byteOffset !== 0 || chunk.buffer.byteLength !== CHUNK || this.spare.length >= SPARE || !this.mine.has(chunk.buffer)) return;
    this.mine.delete(chunk.buffer);
    this.spare.push(chunk.length === CHUNK ? chunk : Buffer.from(chunk.buffer, 0, CHUNK));
  }

  /** A buffer for the next read of n bytes: a released chunk when there is one. */
  private chunk(n: number): Buffer {
    if (n < CHUNK && this.spare.length === 0) return Buffer.allocUnsafe(n);
    const b = this.spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
    this.mine.add(b.buffer);
    return n === CHUNK ? b : b.subarray(0, n);
  }

  /** Bytes that may be handed out now. */
  private available(): number {
    const f = this.o.fill;
    if (!f) return this.o.size ?? 0;
    switch (f.state) {
      case 'done':
      case 'diskfull':
        return f.written;
      case 'failed':
        return 0;
      case 'filling':
        // Hold back the final byte until the fill is verified and committed.
        return f.total !== undefined ? Math.min(f.written, f.total - 1) : Math.max(0, f.written - 1);
    }
  }

  private limit(): number {
    const f = this.o.fill;
    const total = f ? f.total : this.o.size;
    const endLimit = this.o.end !== undefined ? this.o.end + 1 : Infinity;
    return Math.min(endLimit, total ?? Infinity);
  }

  override _read(): void {
    if (this.inBypass) {
      if (this.body?.isPaused()) this.body.resume();
      return;
    }
    this.pump();
  }

  private pump(): void {
    if (this.busy || this.destroyed) return;
    const f0 = this.o.fill;
    if (f0?.state === 'failed') {
      this.destroy(f0.error ?? new Error('fill failed'));
      return;
    }
    const limit = this.limit();
    // The end of the file is only reached once the fill is verified (matters for empty files).
    const atFileEnd = !!f0 && f0.state === 'filling' && limit >= (f0.total ?? Infinity);
    if (this.pos >= limit && !atFileEnd) {
      this.push(null);
      return;
    }
    const avail = this.available();
    if (this.pos < avail && this.o.syncReads) {
      this.readSync(avail, limit);
      return;
    }
    if (this.pos < avail) {
      const n = Math.min(CHUNK, avail - this.pos, limit - this.pos);
      const buf = this.chunk(n);
      this.busy = true;
      fs.read(this.o.fd, buf, 0, n, this.pos, (err, got) => {
        this.busy = false;
        if (this.afterRead) {
          const f = this.afterRead;
          this.afterRead = undefined;
          return f();
        }
        if (this.destroyed) return;
        if (err) return this.destroy(err);
        if (got === 0) return this.destroy(new Error(`cache file ended early at ${this.pos}`));
        this.pos += got;
        this.o.onBytes(got);
        if (this.push(got === n ? buf : buf.subarray(0, got))) this.pump();
      });
      return;
    }
    const f = this.o.fill;
    if (!f || f.state === 'done') {
      this.push(null);
      return;
    }
    if (f.state === 'failed') {
      this.destroy(f.error ?? new Error('fill failed'));
      return;
    }
    if (f.state === 'diskfull') {
      if (!this.o.bypass) {
        this.destroy(f.error ?? new Error('disk full'));
        return;
      }
      this.inBypass = true;
      void this.runBypass(limit);
      return;
    }
    // Caught up with the fill: wait for more bytes.
    if (!this.waitFn) {
      this.waitFn = () => {
        this.waitFn = undefined;
        this.pump();
      };
      f.once('progress', this.waitFn);
    }
  }

  /** One chunk read in place; the stream asks again (_read) while it wants more. */
  private readSync(avail: number, limit: number): void {
    const n = Math.min(CHUNK, avail - this.pos, limit - this.pos);
    const buf = this.chunk(n);
    let got: number;
    try {
      got = fs.readSync(this.o.fd, buf, 0, n, this.pos);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (got === 0) {
      this.destroy(new Error(`cache file ended early at ${this.pos}`));
      return;
    }
    this.pos += got;
    this.o.onBytes(got);
    this.push(got === n ? buf : buf.subarray(0, got));
  }

  private async runBypass(limit: number): Promise<void> {
    const total = this.o.fill?.total;
    const whole = this.o.start === 0 && (this.o.end === undefined || (total !== undefined && this.o.end >= total - 1));
    const spec = this.o.bypass!(this.pos, whole);
    try {
      const exp = whole && spec.hash ? await spec.expected() : undefined;
      const hash = exp ? spec.hash : undefined;
      let res = spec.initial;
      const from = this.pos;
      if (!res) {
        const headers: Record<string, string> = {};
        if (from > 0 || limit !== Infinity) headers.range = `bytes=${from}-${limit === Infinity ? '' : limit - 1}`;
        const v = ifRangeValidator(spec.etag, spec.lastModified);
        if (v && headers.range) headers['if-range'] = v;
        res = await spec.upstream.request(spec.path, { headers });
      }
      if (this.destroyed) {
        res.body.destroy();
        return;
      }
      // Ours from here: destroying the reader (a refused answer below included) releases it.
      this.body = res.body;
      let skip = 0;
      if (res.status === 206) {
        const cr = parseContentRange(headerOne(res.headers, 'content-range'));
        if (!cr || cr.start !== from) throw new UpstreamError(`bad Content-Range from upstream for ${spec.path}`, 206, res.url);
      } else if (res.status === 200) {
        const etag = headerOne(res.headers, 'etag');
        if (from > 0 && spec.etag && etag && etag !== spec.etag) throw new UpstreamError(`${spec.path} changed upstream`, 200, res.url);
        skip = from;
      } else {
        throw new UpstreamError(`upstream answered ${res.status} for ${spec.path}`, res.status, res.url);
      }
      const body = res.body;
      let pending: Buffer | undefined;
      let ended = false;
      body.on('data', (chunk: Buffer) => {
        spec.onUpstreamBytes(chunk.length);
        let buf = chunk;
        if (skip > 0) {
          if (buf.length <= skip) {
            skip -= buf.length;
            return;
          }
          buf = buf.subarray(skip);
          skip = 0;
        }
        if (this.pos + buf.length > limit) buf = buf.subarray(0, Math.max(0, limit - this.pos));
        if (buf.length === 0) return;
        this.pos += buf.length;
        hash?.update(buf);
        let out: Buffer | undefined = buf;
        if (hash) {
          out = pending;
          pending = buf;
        }
        if (out) {
          this.o.onBytes(out.length);
          if (!this.push(out)) body.pause();
        }
      });
      body.on('end', () => {
        ended = true;
        void (async () => {
          if (this.destroyed) return;
          const want = limit !== Infinity ? limit : total;
          if (want !== undefined && this.pos < want) {
            this.destroy(new UpstreamError(`upstream body of ${spec.path} ended at ${this.pos} of ${want}`, undefined, res!.url));
            return;
          }
          if (hash && exp) {
            const got = hash.digest('hex');
            if (got !== exp) {
              this.destroy(new IntegrityError(spec.path, exp, got));
              return;
            }
          }
          if (pending) {
            this.o.onBytes(pending.length);
            this.push(pending);
          }
          this.push(null);
        })();
      });
      body.on('close', () => {
        if (!ended && !this.destroyed) this.destroy(new UpstreamError(`upstream connection lost for ${spec.path}`, undefined, res!.url));
      });
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    if (this.waitFn) this.o.fill?.off('progress', this.waitFn);
    this.waitFn = undefined;
    this.body?.destroy();
    if (this.busy) {
      // Never close the descriptor under a read in flight.
      this.afterRead = () => this._destroy(err, cb);
      return;
    }
    if (this.o.fd >= 0) {
      const fd = this.o.fd;
      this.o.fd = -1;
      fs.close(fd, () => cb(err));
    } else cb(err);
  }
}
