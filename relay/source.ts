import type { Readable } from 'node:stream';

/**
 * Where boot files come from. TFTP and HTTP both read through this;
 * the cache (relay/cache) is the production implementation.
 * Paths are already normalised (proto/path.normalizeBootPath).
 */
export interface FileInfo {
  path: string;
  /** Total size of the whole file, when known. */
  size?: number;
  etag?: string;
  lastModified?: string;
}

export interface OpenOptions {
  /** First byte wanted (default 0). */
  start?: number;
  /** Last byte wanted, inclusive (default: end of file). */
  end?: number;
  /** The client asking, for events. */
  mac?: string;
  signal?: AbortSignal;
  /**
   * Read what is on disk synchronously, chunk by chunk as the stream is read,
   * instead of through the thread pool: for a reader that paces itself in small
   * steps (TFTP lock-step), where each pool round trip costs more than the read.
   */
  syncReads?: boolean;
}

export interface OpenedFile extends FileInfo {
  /** Bytes start..end. Errors mid-stream (upstream cut, integrity failure) are stream errors. */
  stream: Readable;
  /** How the cache served it. */
  cache: 'hit' | 'miss' | 'stale' | 'bypass';
  /**
   * When `size` is not known yet (a fill from an upstream that sent no
   * Content-Length): resolves with the size once the fill has it, or undefined
   * after `timeoutMs` or if the fill fails. Reading the stream meanwhile is fine.
   */
  sizeWhenKnown?(timeoutMs: number): Promise<number | undefined>;
  /**
   * The consumer no longer needs a chunk it read from `stream` (its socket
   * write completed): the source may reuse the memory. Optional on both sides.
   */
  release?(chunk: Buffer): void;
}

export interface FileSource {
  /** Throws UpstreamError (status 404 → code ENOENT) or PathError. */
  open(path: string, opts?: OpenOptions): Promise<OpenedFile>;
}
