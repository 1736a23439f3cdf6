/**
 * Journal: the durable half of the DHCPv4 and DHCPv6 lease stores. One JSON
 * record per line in an append-only file, made durable by group commit, and
 * compacted by write-tmp + fsync + rename when it holds four times what is
 * live. The stores keep their state in memory and say what a record means;
 * this file only gets the lines to the disk and back.
 *
 * Group commit: write() queues a line and returns a promise that settles
 * once it is on disk. Lines of one burst go out together in one positioned
 * write on the journal opened O_DSYNC (write + fdatasync in one system call);
 * a lone line's batch starts right after its own event-loop turn (no window).
 * Up to MAX_INFLIGHT batches are written at once: a burst arriving while one
 * batch syncs does not wait for that sync before its own starts. Each batch
 * has its own place in the file, taken in order, so the file keeps the order
 * of the batches whatever order the writes finish in; a crash between them
 * leaves a run of NULs, which read() skips. Zeros are kept written ahead of
 * the data (./space), so a batch overwrites existing blocks instead of
 * growing the file.
 *
 * A lazy line (durable = false: a DHCPv4 renewal) settles at once and rides
 * the next durable batch, LAZY_MAX lines, or `lazyMs`, whichever comes first.
 * close() ends the journal with a `{"op":"clean"}` line, so that the next
 * read() can tell a clean stop (every lazy line on disk) from a crash.
 *
 * read() and the compaction go through the file in pieces of CHUNK bytes: a
 * /16 of DHCPv4 leases is 5 MB of text, never held as one string.
 */
import { closeSync, existsSync, fsyncSync, openSync, readSync, renameSync, writeSync, constants as fsConstants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { dataEnd, JournalSpace } from './space';

/** journal batches written at once */
const MAX_INFLIGHT = 2;
/** lazy lines waiting alone: written (durably) once this many are queued */
const LAZY_MAX = 512;
/** read() and the compaction go through the file in pieces of about this many bytes */
const CHUNK = 256 * 1024;
const CLEAN = '{"op":"clean"}';

export interface JournalOptions {
  file: string;
  /** O_DSYNC writes (default true; false only for benchmarks of the rest) */
  fsync?: boolean;
  /** every live record, one JSON text each: what a compaction writes */
  snapshot: () => Iterable<string>;
  /** how many records are live: a compaction comes when the file holds over 4 × this + 1000 lines */
  live: () => number;
  /** a lazy line is on disk at most this long after write() (ms; default 30 s) */
  lazyMs?: number;
  /** bench-only: batch write + sync times (ms) and batch sizes (relay/dhcp/timing) */
  timer?: { add(stage: string, value: number): void };
}

/**
 * Calls `fn` with every non-empty piece of a file between separators, reading
 * it in CHUNK blocks (a character split between two blocks stays whole).
 */
export function forEachLine(file: string, sep: RegExp, fn: (line: string) => void): void {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    const dec = new StringDecoder('utf8');
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

export class Journal {
  private fh?: FileHandle;
  /** zeros ahead of the data: batches overwrite in place (./space) */
  private space?: JournalSpace;
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  /** batches being written (at most MAX_INFLIGHT) */
  private inflight = 0;
  /** a compaction holds the journal: no batch starts */
  private compacting = false;
  private scheduled = false;
  /** where the next batch goes */
  private pos = 0;
  private opening?: Promise<void>;
  private lines = 0;
  private closed = false;
  /** lazyMs after the first lazy line waiting alone */
  private lazyTimer?: NodeJS.Timeout;

  /** batches written (each one flush to the disk) */
  fsyncs = 0;
  /** lines written */
  records = 0;
  /** lazy lines queued */
  lazyRecords = 0;
  /** unreadable lines skipped by read() (a torn last line counts here) */
  skippedLines = 0;
  /** compactions that failed (the journal was kept as it was) */
  compactFailures = 0;

  constructor(private readonly opts: JournalOptions) {}

  /**
   * Reads the journal (if there is one), handing every record to `apply`
   * (false: not a record it knows, counted as skipped). `clean`: the last
   * line was the clean-stop mark (or there was no journal).
   */
  read(apply: (rec: unknown) => boolean): { clean: boolean } {
    const file = this.opts.file;
    this.closed = false;
    if (!existsSync(file)) return { clean: true };
    let clean = true;
    // NUL runs: a batch that never reached the disk before a later one did (crash), or room ahead
    forEachLine(file, /[\n\0]+/, (line) => {
      let r: unknown;
      try {
        r = JSON.parse(line);
      } catch {
        this.skippedLines++;
        clean = false;
        return;
      }
      clean = r !== null && typeof r === 'object' && (r as { op?: unknown }).op === 'clean';
      if (!clean && !apply(r)) this.skippedLines++;
    });
    return { clean };
  }

  /** Rewrites the journal as the stores' state now (compaction) and opens it for batches. */
  async open(): Promise<void> {
    this.closed = false;
    this.compactSync();
    await this.reopen();
  }

  /**
   * Queues a line. `durable`: the promise settles once it is on disk; the
   * batch goes out after the current burst of datagrams (setImmediate). Lazy:
   * settles at once; the line waits for the next durable batch, LAZY_MAX
   * lines, or lazyMs.
   */
  write(line: string, durable = true): Promise<void> {
    if (this.closed) return durable ? Promise.reject(new Error('lease journal closed')) : Promise.resolve();
    this.pending.push(line);
    let p: Promise<void>;
    if (durable) p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    else {
      p = Promise.resolve();
      this.lazyRecords++;
    }
    if (this.scheduled) return p; // joins the batch about to start
    if (this.inflight >= MAX_INFLIGHT || this.compacting) return p; // a batch ending looks again
    if (durable || this.pending.length >= LAZY_MAX) {
      this.scheduled = true;
      // everything the current burst of datagrams writes joins this batch
      setImmediate(() => {
        this.scheduled = false;
        void this.flush();
      });
    } else this.armLazyTimer();
    return p;
  }

  private armLazyTimer(): void {
    if (this.lazyTimer) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      void this.flush();
    }, this.opts.lazyMs ?? 30_000);
    this.lazyTimer.unref();
  }

  /** One batch: a single positioned write on the O_DSYNC journal (data on disk when it returns). */
  private async flush(): Promise<void> {
    if (this.inflight >= MAX_INFLIGHT || this.compacting || this.pending.length === 0) return;
    this.inflight++;
    const lines = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    try {
      if (!this.fh && !this.closed) {
        // one open for the batches that find the journal closed (a failed compaction)
        this.opening ??= this.reopen().finally(() => (this.opening = undefined));
        await this.opening;
      }
      const fh = this.fh;
      if (!fh) throw new Error('lease journal not open');
      const tm = this.opts.timer;
      const t0 = tm ? performance.now() : 0;
      const buf = Buffer.from(lines.join('\n') + '\n');
      const at = this.pos;
      this.pos += buf.length;
      await this.space?.before(at, buf.length, this.pos);
      const { bytesWritten } = await fh.write(buf, 0, buf.length, at);
      if (bytesWritten !== buf.length) throw new Error(`lease journal: short write (${bytesWritten} of ${buf.length} bytes)`);
      if (tm) {
        tm.add('batch-write+sync', performance.now() - t0);
        tm.add('batch-records', lines.length);
      }
      this.fsyncs++;
      this.records += lines.length;
      this.lines += lines.length;
      for (const w of waiters) w.resolve();
    } catch (e) {
      for (const w of waiters) w.reject(e as Error);
    } finally {
      this.inflight--;
    }
    if (this.waiters.length || this.pending.length >= LAZY_MAX) void this.flush();
    else {
      if (this.pending.length) this.armLazyTimer();
      if (this.inflight === 0 && this.lines > 4 * this.opts.live() + 1000) await this.compact();
    }
  }

  /** Opens the journal and puts the write position at the end of its data (zeros ahead of it are room). */
  private async reopen(): Promise<void> {
    const c = fsConstants;
    // positioned writes: no O_APPEND (Linux would ignore the position)
    const fh = await open(this.opts.file, c.O_RDWR | c.O_CREAT | (this.opts.fsync === false ? 0 : c.O_DSYNC), 0o644);
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

  /** Rewrites the journal as the current state: tmp + fsync + rename + directory fsync. */
  private compactSync(): void {
    const file = this.opts.file;
    const tmp = file + '.tmp';
    const fd = openSync(tmp, 'w');
    let n = 0;
    try {
      let out = '';
      for (const line of this.opts.snapshot()) {
        out += line + '\n';
        n++;
        if (out.length >= CHUNK) {
          writeSync(fd, out);
          out = '';
        }
      }
      if (out) writeSync(fd, out);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    try {
      const dfd = openSync(dirname(file), 'r');
      fsyncSync(dfd);
      closeSync(dfd);
    } catch {
      /* directories cannot be fsynced everywhere */
    }
    this.lines = n;
  }

  /**
   * Compacts between batches (none in flight). Never throws: a compaction that
   * fails (state dir full) leaves the journal as it was, reopened, and is
   * tried again after later batches.
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

  /** Writes what is pending, ends the journal with the clean-stop line (on disk) and closes it. */
  async close(): Promise<void> {
    while (this.inflight > 0 || this.compacting || this.pending.length || this.scheduled) {
      if (this.inflight === 0 && !this.compacting && this.pending.length) await this.flush();
      else await new Promise((r) => setImmediate(r));
    }
    if (this.lazyTimer) clearTimeout(this.lazyTimer);
    this.lazyTimer = undefined;
    if (this.fh && !this.closed) {
      try {
        await this.space?.settle();
        const buf = Buffer.from(CLEAN + '\n');
        await this.fh.write(buf, 0, buf.length, this.pos); // O_DSYNC: on disk
        this.pos += buf.length;
      } catch {
        /* no clean line: the next read() reports an unclean stop */
      }
    }
    this.closed = true;
    await this.fh?.close();
    this.fh = undefined;
    this.space = undefined;
  }
}
