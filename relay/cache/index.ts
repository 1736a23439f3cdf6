/**
 * The on-disk cache index: one JSON file, written tmp + fsync + rename (+ dir fsync),
 * so a kill -9 leaves either the old or the new index, never a torn one.
 * Layout under cache.dir:  index.json, data/<id> (committed), partial/<id> (filling).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { join } from 'node:path';

export interface IndexEntry {
  path: string;
  /** File name under data/. */
  id: string;
  size: number;
  sha256: string;
  etag?: string;
  lastModified?: string;
  /** ms since epoch */
  fetchedAt: number;
  validatedAt: number;
  lastUsedAt: number;
  hits: number;
  pinned: boolean;
}

interface IndexFile {
  version: 1;
  entries: IndexEntry[];
}

export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* some filesystems refuse directory fsync; the rename is still atomic */
  }
}

export class CacheIndex {
  readonly entries = new Map<string, IndexEntry>();
  readonly file: string;
  readonly dataDir: string;
  readonly partialDir: string;
  private saving: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly dir: string) {
    this.file = join(dir, 'index.json');
    this.dataDir = join(dir, 'data');
    this.partialDir = join(dir, 'partial');
  }

  dataPath(id: string): string {
    return join(this.dataDir, id);
  }

  partialPath(id: string): string {
    return join(this.partialDir, id);
  }

  /**
   * Loads the index and makes the directory consistent with it: partial files are
   * removed (a fill cut by a crash is never served as whole), entries whose data
   * file is missing or has the wrong size are dropped, data files without an entry
   * are deleted. Returns what was cleaned.
   */
  async load(): Promise<{ partials: number; orphans: number; dropped: number }> {
    await fsp.mkdir(this.dataDir, { recursive: true });
    await fsp.mkdir(this.partialDir, { recursive: true });
    let partials = 0;
    for (const name of await fsp.readdir(this.partialDir)) {
      await fsp.rm(join(this.partialDir, name), { force: true, recursive: true });
      partials++;
    }
    await fsp.rm(this.file + '.tmp', { force: true });
    this.entries.clear();
    let raw: IndexFile | undefined;
    try {
      raw = JSON.parse(await fsp.readFile(this.file, 'utf8')) as IndexFile;
    } catch {
      raw = undefined; // missing or unreadable: start empty, orphans are removed below
    }
    let dropped = 0;
    for (const e of raw?.entries ?? []) {
      if (!e || typeof e.path !== 'string' || typeof e.id !== 'string' || !/^[\w.-]+$/.test(e.id)) {
        dropped++;
        continue;
      }
      try {
        const st = await fsp.stat(this.dataPath(e.id));
        if (st.size !== e.size) throw new Error('size');
        this.entries.set(e.path, { ...e, pinned: !!e.pinned, hits: e.hits ?? 0 });
      } catch {
        dropped++;
      }
    }
    const ids = new Set([...this.entries.values()].map((e) => e.id));
    let orphans = 0;
    for (const name of await fsp.readdir(this.dataDir)) {
      if (!ids.has(name)) {
        await fsp.rm(join(this.dataDir, name), { force: true, recursive: true });
        orphans++;
      }
    }
    if (dropped || orphans) await this.save();
    return { partials, orphans, dropped };
  }

  totalBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.size;
    return n;
  }

  /** Durable save; concurrent calls coalesce (the last state always lands). */
  save(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.saving) {
      this.again = true;
      return this.saving;
    }
    this.saving = (async () => {
      try {
        do {
          this.again = false;
          await this.writeOnce();
        } while (this.again);
      } finally {
        this.saving = undefined;
      }
    })();
    return this.saving;
  }

  /**
   * Save within a minute (for lastUsedAt/hits/validatedAt, which may be lost on a crash):
   * steady cache hits must not rewrite and fsync the index every few seconds on a router's flash.
   * Commits and evictions save at once; close() flushes.
   */
  saveSoon(ms = 60_000): void {
    if (this.timer || this.saving) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.save().catch(() => {});
    }, ms);
    this.timer.unref();
  }

  async flush(): Promise<void> {
    if (this.timer) await this.save();
    else if (this.saving) await this.saving;
  }

  private async writeOnce(): Promise<void> {
    const body: IndexFile = { version: 1, entries: [...this.entries.values()] };
    const tmp = this.file + '.tmp';
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(body));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, this.file);
    fsyncDir(this.dir);
  }
}
