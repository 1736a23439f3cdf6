/**
 * One upstream fetch of one path into `<dir>/partial/<id>` (single-flight: the
 * cache keeps at most one Fill per path). Readers follow the growing file on disk
 * through 'progress' notifications; nothing is buffered in memory beyond the
 * chunk being written.
 *
 * A cut connection is resumed with Range + If-Range from the bytes on disk
 * (a few retries with backoff). The sha256 is computed while filling and checked
 * against the expected one (SHA256SUMS or a profile) before the commit; a short
 * body, a mismatch or a changed upstream file fails the fill (readers get a stream
 * error, nothing is committed). A disk-full write switches the fill to 'diskfull':
 * readers serve what is on disk, then stream the rest straight from the upstream.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { promisify } from 'node:util';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { RelayError, UpstreamError } from '../../proto/errors';
import { headerOne, isUplinkFault, parseContentRange, type Upstream, type UpstreamResponse } from './fetch';

function writeP(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((res, rej) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? rej(err) : res(n))));
}
const fsyncP = promisify(fs.fsync);
const closeP = promisify(fs.close);

/** The bytes did not match the expected sha256: nothing was committed. */
export class IntegrityError extends RelayError {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super('EINTEGRITY', `sha256 mismatch for ${path}: expected ${expected}, got ${got}`);
  }
}

export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export type FillState = 'filling' | 'done' | 'failed' | 'diskfull';

export interface FillDeps {
  upstream: Upstream;
  log: Logger;
  /** Expected sha256 (hex) for the path, if any is published. `fresh` re-reads SHA256SUMS. */
  expected(path: string, fresh: boolean): Promise<{ sha256: string; source: 'profile' | 'sums' } | undefined>;
  /** Renames the partial into data/ and records it in the index. Must not throw. */
  commit(fill: Fill): Promise<void>;
  onUpstreamBytes(n: number): void;
  onUplink(ok: boolean, reason?: string): void;
  onDiskFull(fill: Fill, err: Error): void;
  retries: number;
  backoffMs: number;
}

/** Strong validator for If-Range (RFC 9110 §13.1.5): a strong ETag, else Last-Modified. */
export function ifRangeValidator(etag: string | undefined, lastModified: string | undefined): string | undefined {
  if (etag && !etag.startsWith('W/')) return etag;
  return lastModified;
}

export class Fill extends EventEmitter {
  state: FillState = 'filling';
  /** Bytes durably written to the partial file (readers may read [0, written)). */
  written = 0;
  total: number | undefined;
  etag: string | undefined;
  lastModified: string | undefined;
  error: Error | undefined;
  sha256: string | undefined;
  /** Hash of [0, written) at the moment the disk filled up (bypass readers continue it). */
  hashAtStop: Hash | undefined;
  readonly startedAt = Date.now();
  /** Resolves once the upstream answered 200 (size and validators known); rejects with UpstreamError. */
  readonly ready: Promise<void>;
  /** Resolves when the fill ends, whatever the outcome. */
  readonly finished: Promise<void>;
  fd: number;
  resumes = 0;
  private hash = createHash('sha256');
  private body: IncomingMessage | undefined;
  private aborted = false;
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private resolveFinished!: () => void;

  constructor(
    readonly path: string,
    readonly id: string,
    readonly partialPath: string,
    private readonly deps: FillDeps,
  ) {
    super();
    this.setMaxListeners(0);
    this.ready = new Promise<void>((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    this.ready.catch(() => {});
    this.finished = new Promise<void>((res) => (this.resolveFinished = res));
    // Synchronous, so a reader attaching in the same tick always finds the file.
    this.fd = fs.openSync(partialPath, 'w+');
  }

  get url(): string {
    return this.deps.upstream.urlFor(this.path);
  }

  start(initial?: UpstreamResponse): void {
    void this.run(initial);
  }

  abort(reason = 'aborted'): void {
    if (this.state !== 'filling') return;
    this.aborted = true;
    this.body?.destroy();
    this.fail(new UpstreamError(`${this.path}: ${reason}`, undefined, this.url));
  }

  private async run(initial?: UpstreamResponse): Promise<void> {
    try {
      let res: UpstreamResponse;
      try {
        res = initial ?? (await this.deps.upstream.request(this.path));
      } catch (err) {
        if (isUplinkFault(err)) this.deps.onUplink(false, (err as Error).message);
        throw err;
      }
      this.deps.onUplink(true);
      if (res.status !== 200) {
        res.body.resume();
        throw new UpstreamError(`upstream answered ${res.status} for ${this.path}`, res.status, res.url);
      }
      const len = headerOne(res.headers, 'content-length');
      this.total = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
      this.etag = headerOne(res.headers, 'etag');
      this.lastModified = headerOne(res.headers, 'last-modified');
      if (this.aborted) throw new UpstreamError('aborted', undefined, this.url);
      this.resolveReady();

      let outcome = await this.pump(res.body, 0);
      let attempt = 0;
      while (outcome === 'short') {
        if (this.aborted) throw new UpstreamError('aborted', undefined, this.url);
        if (attempt >= this.deps.retries) {
          throw new UpstreamError(
            `upstream body of ${this.path} ended after ${this.written}${this.total !== undefined ? ` of ${this.total}` : ''} bytes; resume failed`,
            undefined,
            this.url,
          );
        }
        await new Promise((r) => setTimeout(r, this.deps.backoffMs * 2 ** attempt));
        attempt++;
        this.resumes++;
        const headers: Record<string, string> = { range: `bytes=${this.written}-` };
        const v = ifRangeValidator(this.etag, this.lastModified);
        if (v) headers['if-range'] = v;
        let r: UpstreamResponse;
        try {
          r = await this.deps.upstream.request(this.path, { headers });
        } catch (err) {
          // a hang-up from an upstream that answers is not a lost uplink
          if (isUplinkFault(err)) this.deps.onUplink(false, (err as Error).message);
          this.deps.log.warn({ file: this.path, bytes: this.written, err: (err as Error).message }, 'resume failed');
          continue;
        }
        this.deps.onUplink(true);
        if (r.status === 206) {
          const cr = parseContentRange(headerOne(r.headers, 'content-range'));
          if (!cr || cr.start !== this.written) {
            r.body.destroy();
            continue;
          }
          this.deps.log.info({ file: this.path, bytes: this.written }, 'upstream fetch resumed');
          outcome = await this.pump(r.body, 0);
        } else if (r.status === 200) {
          if (!this.sameVersion(r)) {
            r.body.destroy();
            throw new UpstreamError(`${this.path} changed upstream during the fill`, 200, this.url);
          }
          // The upstream ignores Range: skip what we already have.
          outcome = await this.pump(r.body, this.written);
        } else {
          r.body.resume();
          if (r.status === 404) throw new UpstreamError(`${this.path} vanished upstream during the fill`, 404, this.url);
        }
      }
      if (this.total === undefined) this.total = this.written;
      this.sha256 = this.hash.digest('hex');
      const exp = await this.deps.expected(this.path, false);
      if (exp && exp.sha256 !== this.sha256) {
        // SHA256SUMS may have been cached before the file changed upstream: look once more.
        const again = exp.source === 'sums' ? await this.deps.expected(this.path, true) : exp;
        if (again && again.sha256 !== this.sha256) throw new IntegrityError(this.path, again.sha256, this.sha256);
      }
      if (this.aborted) throw new UpstreamError('aborted', undefined, this.url);
      await fsyncP(this.fd);
      await closeP(this.fd);
      this.fd = -1;
      await this.deps.commit(this);
      this.state = 'done';
      this.emit('progress');
    } catch (err) {
      if (isDiskFull(err) && this.state === 'filling' && this.sha256 === undefined) this.diskFull(err as Error);
      else this.fail(err as Error);
    } finally {
      this.resolveFinished();
    }
  }

  private sameVersion(r: UpstreamResponse): boolean {
    const etag = headerOne(r.headers, 'etag');
    const lm = headerOne(r.headers, 'last-modified');
    if (this.etag && etag) return this.etag === etag;
    if (this.lastModified && lm) return this.lastModified === lm;
    const len = headerOne(r.headers, 'content-length');
    return this.total === undefined || len === undefined || Number(len) === this.total;
  }

  /** Writes the body to disk; 'short' when it ended before the whole file. */
  private async pump(body: IncomingMessage, skip: number): Promise<'complete' | 'short'> {
    this.body = body;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        let buf = chunk;
        if (skip > 0) {
          if (buf.length <= skip) {
            skip -= buf.length;
            continue;
          }
          buf = buf.subarray(skip);
          skip = 0;
        }
        if (this.total !== undefined && this.written + buf.length > this.total) {
          body.destroy();
          throw new UpstreamError(`upstream sent more than Content-Length ${this.total} for ${this.path}`, undefined, this.url);
        }
        let off = 0;
        while (off < buf.length) {
          const n = await writeP(this.fd, buf, off, buf.length - off, this.written + off);
          off += n;
        }
        this.hash.update(buf);
        this.written += buf.length;
        this.deps.onUpstreamBytes(buf.length);
        this.emit('progress');
      }
    } catch (err) {
      if (isDiskFull(err) || err instanceof RelayError || this.aborted) throw err;
      return 'short';
    } finally {
      this.body = undefined;
    }
    if (this.total === undefined) return body.complete ? 'complete' : 'short';
    return this.written === this.total ? 'complete' : 'short';
  }

  private diskFull(err: Error): void {
    this.hashAtStop = this.hash.copy();
    this.state = 'diskfull';
    this.error = err;
    this.body?.destroy();
    this.closeAndUnlink();
    this.deps.onDiskFull(this, err);
    this.emit('progress');
  }

  private fail(err: Error): void {
    if (this.state !== 'filling') return;
    this.state = 'failed';
    this.error = err;
    this.rejectReady(err);
    this.closeAndUnlink();
    this.emit('progress');
  }

  private closeAndUnlink(): void {
    if (this.fd >= 0) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = -1;
    }
    fs.rm(this.partialPath, { force: true }, () => {});
  }
}
