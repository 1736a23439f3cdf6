/**
 * `SHA256SUMS` files published by the upstream, one per directory: fetched once,
 * kept in memory (a 404 is remembered too), refreshed after ttl.
 */
import { posix } from 'node:path';
import type { Upstream } from './fetch';
import { readSmallBody } from './fetch';

export const SUMS_NAME = 'SHA256SUMS';
/** Directories remembered at most (LAN clients choose the paths asked for: the map must not grow with them). */
export const SUMS_DIRS_MAX = 256;

/** Parses `sha256sum` output: `<hex>  <name>` or `<hex> *<name>`; names may start with `./`. */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64}) [ *]?(.+)$/.exec(line.trim());
    if (!m) continue;
    let name = m[2]!.trim();
    if (name.startsWith('./')) name = name.slice(2);
    out.set(name, m[1]!.toLowerCase());
  }
  return out;
}

interface SumsEntry {
  sums: Map<string, string> | undefined; // undefined: no SHA256SUMS there (404)
  at: number;
}

export class SumsStore {
  private byDir = new Map<string, SumsEntry>();
  private inflight = new Map<string, Promise<SumsEntry | undefined>>();
  /** Upstream requests made for SHA256SUMS (tests, metrics). */
  fetches = 0;

  constructor(
    private readonly upstream: Upstream,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Expected sha256 of `path` from its directory's SHA256SUMS, or undefined when
   * the upstream publishes none (or it does not list the file, or cannot be reached).
   * `fresh`: ignore what is cached (used once after a mismatch).
   */
  async expected(path: string, fresh = false): Promise<string | undefined> {
    const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
    const base = posix.basename(path);
    if (base === SUMS_NAME) return undefined;
    const e = await this.load(dir, fresh);
    return e?.sums?.get(base);
  }

  /** When the cached sums for `path`'s directory were fetched (ms), if any. */
  fetchedAt(path: string): number | undefined {
    const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
    return this.byDir.get(dir)?.at;
  }

  clear(): void {
    this.byDir.clear();
  }

  /** Directories remembered (tests). */
  get size(): number {
    return this.byDir.size;
  }

  private remember(dir: string, e: SumsEntry): SumsEntry {
    this.byDir.delete(dir);
    this.byDir.set(dir, e);
    if (this.byDir.size > SUMS_DIRS_MAX) this.byDir.delete(this.byDir.keys().next().value!);
    return e;
  }

  private load(dir: string, fresh: boolean): Promise<SumsEntry | undefined> {
    const have = this.byDir.get(dir);
    if (have && !fresh && this.now() - have.at < this.ttlMs) return Promise.resolve(have);
    let p = this.inflight.get(dir);
    if (!p) {
      p = this.fetch(dir).finally(() => this.inflight.delete(dir));
      this.inflight.set(dir, p);
    }
    return p;
  }

  private async fetch(dir: string): Promise<SumsEntry | undefined> {
    const path = dir ? `${dir}/${SUMS_NAME}` : SUMS_NAME;
    this.fetches++;
    try {
      const res = await this.upstream.request(path);
      if (res.status === 404 || res.status === 410) {
        res.body.resume();
        return this.remember(dir, { sums: undefined, at: this.now() });
      }
      if (res.status !== 200) {
        res.body.resume();
        return this.byDir.get(dir); // keep what we had; try again next time
      }
      const text = (await readSmallBody(res.body, 4 * 1024 * 1024)).toString('utf8');
      return this.remember(dir, { sums: parseSums(text), at: this.now() });
    } catch {
      return this.byDir.get(dir);
    }
  }
}
