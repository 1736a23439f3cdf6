import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendFileSync } from 'node:fs';
import { LeaseStore, LEASE_FILE } from '../../../../relay/dhcp/leases';
import { Lease6Store, LEASE6_FILE } from '../../../../relay/dhcp6/leases';
import { forEachLine } from '../../../../relay/journal/journal';
import { dataEnd, JournalSpace, MIN_CHUNK } from '../../../../relay/journal/space';

const tmp = mkdtempSync(join(tmpdir(), 'brd-journal-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const mac = (i: number) => `52:54:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
const tick = () => new Promise((r) => setImmediate(r));

describe('journal space: zeros ahead of the lease journal', () => {
  it('dataEnd finds the last record before a zero tail, across read blocks, and 0 for all zeros', async () => {
    const f = join(tmp, 'ends');
    const cases: Array<[Buffer, number]> = [
      [Buffer.from('abc\n'), 4],
      [Buffer.concat([Buffer.from('abc\n'), Buffer.alloc(200_000)]), 4],
      [Buffer.concat([Buffer.alloc(70_000, 0x61), Buffer.alloc(70_000)]), 70_000],
      [Buffer.alloc(100_000), 0],
      [Buffer.alloc(0), 0],
    ];
    for (const [content, end] of cases) {
      writeFileSync(f, content);
      const fh = await open(f, 'r');
      expect(await dataEnd(fh, content.length)).toBe(end);
      await fh.close();
    }
  });

  it('the journal is read in blocks: lines across block edges, multibyte characters split between blocks, NUL runs', () => {
    const f = join(tmp, 'blocks');
    const want: string[] = [];
    const parts: string[] = [];
    for (let i = 0; i < 9000; i++) {
      const line = `{"n":${i},"h":"${'é€'.repeat(i % 50)}"}`;
      want.push(line);
      parts.push(line + (i % 997 === 0 ? '\n\0\0\0\0\n' : '\n'));
    }
    writeFileSync(f, parts.join('') + Buffer.alloc(3000).toString('latin1'));
    expect(statSync(f).size).toBeGreaterThan(3 * 256 * 1024); // several blocks
    const got: string[] = [];
    forEachLine(f, /[\n\0]+/, (l: string) => got.push(l));
    expect(got).toEqual(want);
  });

  it('batches land inside the zeros written ahead: the file does not grow per batch, and a reload reads every lease', async () => {
    const dir = join(tmp, 'inplace');
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.0.10', '10.99.0.250'], leaseSeconds: 600 });
    await s.load();
    await s.commit(mac(1), '10.99.0.10');
    await tick();
    const file = join(dir, LEASE_FILE);
    const size1 = statSync(file).size;
    expect(size1).toBeGreaterThanOrEqual(MIN_CHUNK); // room written ahead after the first batch
    for (let i = 2; i <= 20; i++) {
      await s.commit(mac(i), `10.99.0.${9 + i}`);
      expect(statSync(file).size).toBe(size1); // each batch overwrote zeros
    }
    await s.close();
    const text = readFileSync(file, 'utf8');
    expect(text.replace(/\0+$/, '').split('\n').filter(Boolean).length).toBe(21); // 20 commits + clean
    expect(/\0+$/.test(text)).toBe(true);
    const r = new LeaseStore({ stateDir: dir, range: ['10.99.0.10', '10.99.0.250'], leaseSeconds: 600 });
    await r.load();
    expect(r.list().length).toBe(20);
    expect(r.get(mac(20))?.ip).toBe('10.99.0.29');
    await r.close();
  });

  it('a batch never lands where zeros are still being written: many batches past several extensions all survive', async () => {
    const dir = join(tmp, 'race');
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.1.0', '10.99.8.255'], leaseSeconds: 600 });
    await s.load();
    const all: Array<Promise<unknown>> = [];
    // ~100 bytes a record, 40 a turn: 4 KiB a batch, several chunks of zeros used up
    for (let b = 0; b < 50; b++) {
      for (let i = 0; i < 40; i++) all.push(s.commit(mac(b * 40 + i), `10.99.${1 + ((b * 40 + i) >> 8)}.${(b * 40 + i) & 255}`));
      await tick();
    }
    await Promise.all(all);
    await s.close();
    const r = new LeaseStore({ stateDir: dir, range: ['10.99.1.0', '10.99.8.255'], leaseSeconds: 600 });
    await r.load();
    expect(r.skippedLines).toBe(0);
    expect(r.list().length).toBe(2000);
    await r.close();
  });

  it('an extension that cannot be written (file opened read-only) turns the room off; the batch goes on', async () => {
    const f = join(tmp, 'ro');
    writeFileSync(f, 'x\n');
    const fh = await open(f, 'r');
    const space = new JournalSpace(fh, 2);
    await space.before(2, 10, 12); // starts an extension that fails
    await space.settle();
    await space.before(12, 10, 22); // no second try, no throw
    await space.settle();
    expect(space.extensions).toBe(0);
    await fh.close();
  });

  it('the DHCPv6 store rides the same journal: bindings in place in the room ahead, a clean mark at close, a torn line skipped after a crash', async () => {
    const dir = join(tmp, 'v6');
    const range: [string, string] = ['fd99::100', 'fd99::1ff'];
    const s = new Lease6Store({ stateDir: dir, range, leaseSeconds: 600 });
    await s.load();
    for (let i = 0; i < 10; i++) await s.commit(`0003000152540000${i.toString(16).padStart(4, '0')}`, 1, `fd99::${(0x100 + i).toString(16)}`);
    const file = join(dir, LEASE6_FILE);
    const size = statSync(file).size;
    expect(size).toBeGreaterThanOrEqual(MIN_CHUNK);
    await s.commit('00030001525400ffffff', 7, 'fd99::1ff');
    expect(statSync(file).size).toBe(size);
    expect(s.fsyncs).toBe(11);
    await s.close();
    const text = readFileSync(file, 'utf8').replace(/\0+$/, '');
    expect(text.trim().split('\n').pop()).toBe('{"op":"clean"}');
    appendFileSync(file, '{"op":"commit","d":"00030001'); // torn by a crash after the zeros (as a kill -9 mid-extension would leave it)
    const r = new Lease6Store({ stateDir: dir, range, leaseSeconds: 600 });
    await r.load();
    expect(r.skippedLines).toBe(1);
    expect(r.list().length).toBe(11);
    expect(r.list().find((l) => l.iaid === 7)?.ip).toBe('fd99::1ff');
    await r.close();
  });
});

