/**
 * kill -9 of a real process in the middle of a fill: the cache directory it leaves
 * behind must never serve the partial file as whole, and what it had committed
 * before must survive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { build } from 'esbuild';
import { TestUpstream } from '../helpers/upstream';
import { testCache } from '../helpers/cache';
import { waitFor } from '../helpers/netns';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

const FILLER = `
import { FileCache } from ${JSON.stringify(resolve('relay/cache/cache.ts'))};
import { Metrics } from ${JSON.stringify(resolve('relay/metrics.ts'))};
import { silentLogger } from ${JSON.stringify(resolve('agent/log.ts'))};
const [url, dir] = process.argv.slice(2);
const cache = new FileCache({
  upstream: { url, headers: {}, timeoutMs: 5000 },
  cache: { dir, maxBytes: 1e9, ttlSeconds: 3600, negativeTtlSeconds: 60 },
  log: silentLogger, metrics: new Metrics(), emit: () => {},
});
(async () => {
  await cache.init();
  await cache.prefetch('small/a', true);
  process.stdout.write('committed\\n');
  const f = await cache.open('slow/b');
  f.stream.on('data', () => {});
})();
`;

let up: TestUpstream;
let work: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  up = new TestUpstream();
  await up.start();
  work = fs.mkdtempSync(join(os.tmpdir(), 'br-crash-'));
});

afterAll(async () => {
  if (child?.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  await up.cleanup();
  await fsp.rm(work, { recursive: true, force: true });
});

describe('FileCache after kill -9 mid-fill', () => {
  it('keeps what was committed and serves no partial file as whole', async () => {
    const a = await up.addFile('small/a', randomBytes(5000));
    const b = await up.addFile('slow/b', randomBytes(2_000_000));
    up.rate = 400_000;
    const src = join(work, 'filler.ts');
    await fsp.writeFile(src, FILLER);
    await build({ entryPoints: [src], bundle: true, platform: 'node', target: 'node20', format: 'cjs', outfile: join(work, 'filler.cjs'), logLevel: 'error' });
    const dir = join(work, 'cache');
    child = spawn(process.execPath, [join(work, 'filler.cjs'), up.url, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor(() => out.includes('committed'), 10_000, 'child committed small/a');
    const partialDir = join(dir, 'partial');
    await waitFor(
      async () => {
        const names = await fsp.readdir(partialDir);
        return names.length === 1 && (await fsp.stat(join(partialDir, names[0]!))).size > 200_000;
      },
      10_000,
      'partial file growing',
    );
    const exited = new Promise((r) => child!.once('exit', r));
    process.kill(child.pid!, 'SIGKILL');
    await exited;
    expect((await fsp.readdir(partialDir)).length).toBe(1); // the crash left it behind

    up.rate = 0;
    const cache = testCache(up.url, dir);
    await cache.init();
    try {
      expect(cache.list().map((e) => [e.path, e.pinned])).toEqual([['small/a', true]]);
      expect(await fsp.readdir(partialDir)).toEqual([]);
      const fa = await cache.open('small/a');
      expect(fa.cache).toBe('hit');
      expect(sha(await readAll(fa.stream))).toBe(sha(a));
      const fb = await cache.open('slow/b');
      expect(fb.cache).toBe('miss');
      expect(sha(await readAll(fb.stream))).toBe(sha(b));
    } finally {
      await cache.close();
    }
  });
});
