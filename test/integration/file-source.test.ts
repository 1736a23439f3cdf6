/**
 * The FileSource contract (relay/source.ts), one suite run against every
 * implementation TFTP and HTTP read through: the cache on a miss, on a hit and
 * streaming through (bypass, its disk full), and the directory source the
 * TFTP/HTTP tests stand in with. Same bytes, same path semantics, ranges,
 * ENOENT, refused escapes, abort by signal.
 */
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RangeNotSatisfiableError, type FileCache } from '../../relay/cache/cache';
import { PathError, UpstreamError } from '../../proto/errors';
import type { FileSource } from '../../relay/source';
import { TestUpstream } from '../helpers/upstream';
import { testCache } from '../helpers/cache';
import { DirSource } from '../helpers/dir-source';
import { isRoot } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

const up = new TestUpstream();
const files: Record<string, Buffer> = {
  'dir/small.txt': Buffer.from('the small file\n'),
  'ipxe/loader.efi': randomBytes(70_000),
  // large enough that a reader aborted after its first chunk cannot have been handed all of it
  'debian/big.bin': randomBytes(4 * 1024 * 1024),
};
const work = fs.mkdtempSync(join(os.tmpdir(), 'br-source-'));

beforeAll(async () => {
  await up.start();
  for (const [p, b] of Object.entries(files)) await up.addFile(p, b);
});

afterAll(async () => {
  await up.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
});

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

/** Resolves once the stream is closed, with the bytes it gave before that (errors are not the point here). */
function drainUntilClosed(s: Readable): Promise<number> {
  return new Promise((resolve) => {
    let n = 0;
    s.on('data', (c: Buffer) => (n += c.length));
    s.on('error', () => undefined);
    s.once('close', () => resolve(n));
  });
}

interface Impl {
  source: FileSource;
  close(): Promise<void>;
}

let n = 0;
async function makeCache(dir = join(work, `cache${n++}`), diskFullHoldMs?: number): Promise<FileCache> {
  const cache = testCache(up.url, dir, { backoffMs: 20, diskFullHoldMs });
  await cache.init();
  return cache;
}

/** The contract. `make` gives a fresh source for each test; `kinds` are the `cache` values it may report. */
function fileSourceContract(make: () => Promise<Impl>, kinds: string[]): void {
  let impl: Impl;
  let src: FileSource;
  beforeEach(async () => {
    impl = await make();
    src = impl.source;
  });
  afterEach(async () => {
    await impl.close();
  });

  it('gives a whole file, its normalised path and its size', async () => {
    for (const [p, body] of Object.entries(files)) {
      const f = await src.open(p);
      expect(f.path).toBe(p);
      expect(f.size).toBe(body.length);
      expect(kinds).toContain(f.cache);
      expect((await readAll(f.stream)).equals(body), p).toBe(true);
    }
  });

  it('takes a leading /, backslashes, . and doubled slashes as the same file', async () => {
    for (const name of ['/dir/small.txt', 'dir\\small.txt', './dir//small.txt', 'dir/./small.txt']) {
      const f = await src.open(name);
      expect(f.path, name).toBe('dir/small.txt');
      expect((await readAll(f.stream)).equals(files['dir/small.txt']!), name).toBe(true);
    }
  });

  it('refuses names that escape the root or are not paths, before reading anything', async () => {
    const before = up.requests.length;
    for (const name of ['../etc/passwd', 'dir/../../etc/passwd', 'C:/boot.ini', '//host/share', 'dir/small.txt\x00.efi', '', '/']) {
      await expect(src.open(name), JSON.stringify(name)).rejects.toBeInstanceOf(PathError);
    }
    expect(up.requests.length).toBe(before);
  });

  it('answers a missing file with ENOENT (UpstreamError, status 404), again when asked again', async () => {
    for (let i = 0; i < 2; i++) {
      const err = await src.open('dir/missing.txt').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(UpstreamError);
      expect(err).toMatchObject({ code: 'ENOENT', status: 404 });
    }
  });

  it('gives byte ranges: start, start..end inclusive, an end past the file clamped; size stays the whole file', async () => {
    const body = files['ipxe/loader.efi']!;
    const cases: Array<[number | undefined, number | undefined]> = [
      [1000, undefined],
      [1000, 1999],
      [0, 0],
      [body.length - 1, undefined],
      [65_000, body.length + 5000],
      [undefined, 99],
    ];
    for (const [start, end] of cases) {
      const f = await src.open('ipxe/loader.efi', { start, end });
      const want = body.subarray(start ?? 0, end === undefined ? undefined : end + 1);
      expect(f.size, `${start}-${end}`).toBe(body.length);
      expect((await readAll(f.stream)).equals(want), `${start}-${end}`).toBe(true);
    }
  });

  it('refuses a range that starts past the end or ends before it starts (416)', async () => {
    const len = files['ipxe/loader.efi']!.length;
    await expect(src.open('ipxe/loader.efi', { start: len })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
    await expect(src.open('ipxe/loader.efi', { start: len + 10, end: len + 20 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
    await expect(src.open('ipxe/loader.efi', { start: 200, end: 100 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
  });

  it('stops a stream when its signal aborts, before the end of the file', async () => {
    const ac = new AbortController();
    const f = await src.open('debian/big.bin', { signal: ac.signal });
    const got = drainUntilClosed(f.stream);
    f.stream.once('data', () => ac.abort());
    expect(await got).toBeLessThan(files['debian/big.bin']!.length);
    expect(f.stream.destroyed).toBe(true);
  });

  it('gives nothing for a signal aborted before the open: open rejects, or its stream closes empty', async () => {
    const ac = new AbortController();
    ac.abort();
    const delivered = await src.open('debian/big.bin', { signal: ac.signal }).then(
      (f) => drainUntilClosed(f.stream),
      () => 0,
    );
    expect(delivered).toBe(0);
  });
}

describe('FileSource contract: DirSource (the TFTP/HTTP tests\' stand-in)', () => {
  fileSourceContract(async () => ({ source: new DirSource(up.dir), close: async () => {} }), ['bypass']);
});

describe('FileSource contract: FileCache, every file a miss (a fresh cache each test)', () => {
  fileSourceContract(async () => {
    const cache = await makeCache();
    return { source: cache, close: () => cache.close() };
  }, ['miss']);
});

describe('FileSource contract: FileCache, every file a hit (read once first)', () => {
  fileSourceContract(async () => {
    const cache = await makeCache();
    for (const p of Object.keys(files)) await readAll((await cache.open(p)).stream);
    for (const p of Object.keys(files)) await expect.poll(() => cache.list().find((e) => e.path === p)?.complete).toBe(true);
    return { source: cache, close: () => cache.close() };
  }, ['hit']);
});

describeSkipIf(isRoot ? undefined : 'needs root to mount a tmpfs')('FileSource contract: FileCache streaming through (bypass: its disk is full)', () => {
  let mnt: string;
  beforeAll(() => {
    mnt = fs.mkdtempSync(join(os.tmpdir(), 'br-source-tmpfs-'));
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
  });
  afterAll(() => {
    spawnSync('umount', [mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  fileSourceContract(async () => {
    const dir = join(mnt, `c${n++}`);
    const cache = await makeCache(dir, 3_600_000);
    // the big file does not fit: the fill hits ENOSPC and the cache streams everything through from then on
    await readAll((await cache.open('debian/big.bin')).stream);
    const probe = await cache.open('dir/small.txt');
    await readAll(probe.stream);
    expect(probe.cache).toBe('bypass');
    return {
      source: cache,
      close: async () => {
        await cache.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }, ['bypass']);
});
