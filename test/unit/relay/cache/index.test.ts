import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { CacheIndex } from '../../../../relay/cache/index';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await fsp.rm(d, { recursive: true, force: true });
});

function entry(path: string, id: string, size: number) {
  return { path, id, size, sha256: '0'.repeat(64), fetchedAt: 1, validatedAt: 1, lastUsedAt: 1, hits: 0, pinned: false };
}

describe('CacheIndex', () => {
  it('round-trips through save/load and leaves no tmp file', async () => {
    const dir = fs.mkdtempSync(join(os.tmpdir(), 'br-idx-'));
    dirs.push(dir);
    const a = new CacheIndex(dir);
    await a.load();
    await fsp.writeFile(a.dataPath('id1'), 'hello');
    a.entries.set('k', entry('k', 'id1', 5));
    await Promise.all([a.save(), a.save(), a.save()]);
    expect(fs.existsSync(a.file + '.tmp')).toBe(false);
    const b = new CacheIndex(dir);
    await b.load();
    expect(b.entries.get('k')).toMatchObject({ id: 'id1', size: 5 });
  });

  it('drops entries whose data is missing or the wrong size, orphans, partials, bad ids and a torn index', async () => {
    const dir = fs.mkdtempSync(join(os.tmpdir(), 'br-idx-'));
    dirs.push(dir);
    const a = new CacheIndex(dir);
    await a.load();
    await fsp.writeFile(a.dataPath('ok'), '12345');
    await fsp.writeFile(a.dataPath('short'), '12');
    await fsp.writeFile(a.dataPath('orphan'), 'x');
    await fsp.writeFile(a.partialPath('p1'), 'x');
    const entries = [entry('ok', 'ok', 5), entry('short', 'short', 5), entry('gone', 'gone', 1), entry('evil', '../x', 1)];
    await fsp.writeFile(a.file, JSON.stringify({ version: 1, entries }));
    const r = await a.load();
    expect(r).toEqual({ partials: 1, orphans: 2, dropped: 3 });
    expect([...a.entries.keys()]).toEqual(['ok']);
    await fsp.writeFile(a.file, '{"version":1,"entr');
    await a.load();
    expect(a.entries.size).toBe(0);
    expect(await fsp.readdir(a.dataDir)).toEqual([]);
  });
});
