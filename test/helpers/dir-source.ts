/**
 * A FileSource over a local directory, for tests: fs streams, Range through
 * start/end, size from stat; paths, ranges and errors as the cache has them
 * (test/integration/file-source.test.ts holds both to one contract). `slow` makes the stream yield the file in small
 * pieces with a pause between them, like a file still arriving from upstream.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { UpstreamError } from '../../proto/errors';
import { RangeNotSatisfiableError } from '../../relay/cache/cache';
import { normalizeBootPath } from '../../proto/path';
import type { FileSource, OpenOptions, OpenedFile } from '../../relay/source';

export interface DirSourceOptions {
  /** stream in pieces of chunkBytes with delayMs between them */
  slow?: { chunkBytes: number; delayMs: number };
  /** report no size (like a chunked upstream) */
  hideSize?: boolean;
}

export class DirSource implements FileSource {
  /** every open() call, for assertions */
  readonly opened: Array<{ path: string; opts?: OpenOptions }> = [];
  /** streams handed out and not yet closed */
  openStreams = 0;

  constructor(
    readonly dir: string,
    private opts: DirSourceOptions = {},
  ) {}

  async open(rawPath: string, opts: OpenOptions = {}): Promise<OpenedFile> {
    const path = normalizeBootPath(rawPath);
    this.opened.push({ path, opts });
    const file = join(this.dir, path);
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile()) throw new Error('not a file');
      size = st.size;
    } catch {
      throw new UpstreamError(`not found: ${path}`, 404, `file://${file}`);
    }
    const start = opts.start ?? 0;
    if ((start > 0 && start >= size) || (opts.end !== undefined && opts.end < start)) throw new RangeNotSatisfiableError(size);
    const end = Math.min(opts.end ?? size - 1, size - 1);
    let stream: Readable = end < start ? Readable.from([]) : createReadStream(file, { start, end, signal: opts.signal });
    if (this.opts.slow) stream = slowly(stream, this.opts.slow.chunkBytes, this.opts.slow.delayMs);
    this.openStreams++;
    let closed = false;
    stream.once('close', () => {
      if (!closed) this.openStreams--;
      closed = true;
    });
    return { path, size: this.opts.hideSize ? undefined : size, stream, cache: 'bypass' };
  }
}

/** Re-emits a stream in pieces of `chunk` bytes with `delayMs` between them. */
export function slowly(src: Readable, chunk: number, delayMs: number): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    for await (const b of src as AsyncIterable<Buffer>) {
      for (let off = 0; off < b.length; off += chunk) {
        await new Promise((r) => setTimeout(r, delayMs));
        yield b.subarray(off, off + chunk);
      }
    }
  }
  return Readable.from(gen(), { objectMode: false, highWaterMark: chunk });
}
