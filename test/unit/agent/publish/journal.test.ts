import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventJournal, JOURNAL_METRICS, type EventJournalOptions } from '../../../../agent/publish/journal';
import { Metrics } from '../../../../relay/metrics';

function ev(i: number) {
  return { ts: new Date(1_700_000_000_000 + i).toISOString(), mac: '52:54:00:00:00:01', type: 'tftp.start', i };
}

function lines(path: string): string[] {
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [];
}

describe('EventJournal', () => {
  let dir: string;
  const open: EventJournal[] = [];
  async function make(o: Partial<EventJournalOptions> = {}): Promise<EventJournal> {
    const j = new EventJournal({ dir, flushMs: 10_000, ...o });
    await j.open();
    open.push(j);
    return j;
  }

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'br-journal-'));
  });
  afterEach(async () => {
    for (const j of open.splice(0)) await j.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps appended events across a reopen, in order, and continues the sequence', async () => {
    const j = await make();
    const seqs = [1, 2, 3].map((i) => j.append(ev(i)).seq);
    expect(seqs).toEqual([1, 2, 3]);
    await j.close();
    const k = await make();
    expect(k.pending().map((e) => JSON.parse(e.json).i)).toEqual([1, 2, 3]);
    expect(k.pending().map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(k.append(ev(4)).seq).toBe(4);
  });

  it('batches writes: nothing reaches the file before the flush, then one batch', async () => {
    const j = await make();
    for (let i = 0; i < 5; i++) j.append(ev(i));
    expect(lines(j.path)).toHaveLength(0);
    await j.flush();
    expect(lines(j.path)).toHaveLength(5);
  });

  it('flushes on its own after flushMs, and at once when flushLines records wait', async () => {
    const j = await make({ flushMs: 20, flushLines: 1000 });
    j.append(ev(1));
    await new Promise<void>((resolve, reject) => {
      const t0 = Date.now();
      const poll = () => (lines(j.path).length === 1 ? resolve() : Date.now() - t0 > 2000 ? reject(new Error('no flush')) : setTimeout(poll, 10));
      poll();
    });
    const k = new EventJournal({ dir, file: 'b.jsonl', flushMs: 60_000, flushLines: 3 });
    await k.open();
    open.push(k);
    for (let i = 0; i < 3; i++) k.append(ev(i));
    await k.flush(); // already in flight: resolves when that batch is on disk
    expect(lines(k.path)).toHaveLength(3);
  });

  it('removes acknowledged events; a reopen sees only the unacknowledged', async () => {
    const j = await make();
    const a = [1, 2, 3, 4].map((i) => j.append(ev(i)));
    await j.flush();
    expect(j.ack(a[0]!.seq)).toBe(true);
    expect(j.ack(a[2]!.seq)).toBe(true);
    expect(j.ack(a[2]!.seq)).toBe(false);
    expect(j.ack(999)).toBe(false);
    expect(j.size).toBe(2);
    await j.close();
    const k = await make();
    expect(k.pending().map((e) => JSON.parse(e.json).i)).toEqual([2, 4]);
  });

  it('never writes an event acknowledged before its batch was flushed', async () => {
    const j = await make();
    const e = j.append(ev(1));
    j.ack(e.seq);
    await j.flush();
    expect(lines(j.path)).toHaveLength(0);
  });

  it('after(seq) returns pending events past a cursor, bounded by limit', async () => {
    const j = await make();
    for (let i = 1; i <= 6; i++) j.append(ev(i));
    j.ack(3);
    expect(j.after(0).map((e) => e.seq)).toEqual([1, 2, 4, 5, 6]);
    expect(j.after(2, 2).map((e) => e.seq)).toEqual([4, 5]);
    expect(j.after(6)).toEqual([]);
  });

  it('tolerates a torn last line and appends cleanly after it', async () => {
    const j = await make();
    j.append(ev(1));
    j.append(ev(2));
    await j.close();
    appendFileSync(j.path, '{"s":3,"e":{"ts":"2026-');
    const k = new EventJournal({ dir, flushMs: 10_000 });
    const r = await k.open();
    open.push(k);
    expect(r).toMatchObject({ loaded: 2, torn: true, corrupt: 0 });
    k.append(ev(7));
    await k.close();
    const m = await make();
    expect(m.pending().map((e) => JSON.parse(e.json).i)).toEqual([1, 2, 7]);
    expect(readFileSync(m.path, 'utf8').endsWith('\n')).toBe(true);
  });

  it('skips and counts a corrupt line in the middle', async () => {
    writeFileSync(join(dir, 'events.jsonl'), '{"s":1,"e":{"i":1}}\nnot json\n[1]\n{"s":2,"e":{"i":2}}\n{"a":1}\n');
    const metrics = new Metrics();
    const j = new EventJournal({ dir, metrics });
    const r = await j.open();
    open.push(j);
    expect(r).toMatchObject({ loaded: 1, corrupt: 2, torn: false });
    expect(metrics.get(JOURNAL_METRICS.corrupt)).toBe(2);
    expect(j.pending().map((e) => e.seq)).toEqual([2]);
    expect(j.append({ i: 3 }).seq).toBe(3);
  });

  it('is bounded: the oldest events are dropped and counted', async () => {
    const metrics = new Metrics();
    const j = await make({ maxEvents: 5, metrics });
    for (let i = 1; i <= 8; i++) j.append(ev(i));
    expect(j.size).toBe(5);
    expect(j.dropped).toBe(3);
    expect(metrics.get(JOURNAL_METRICS.dropped)).toBe(3);
    expect(metrics.get(JOURNAL_METRICS.size)).toBe(5);
    expect(j.pending().map((e) => JSON.parse(e.json).i)).toEqual([4, 5, 6, 7, 8]);
    await j.close();
    const k = await make({ maxEvents: 2 });
    expect(k.pending().map((e) => JSON.parse(e.json).i)).toEqual([7, 8]);
    expect(k.dropped).toBe(3);
  });

  it('compacts: the file shrinks to the pending events (tmp + rename)', async () => {
    const j = await make({ compactMinLines: 10 });
    const entries = Array.from({ length: 50 }, (_, i) => j.append(ev(i)));
    await j.flush();
    expect(lines(j.path)).toHaveLength(50);
    for (const e of entries.slice(0, 40)) j.ack(e.seq);
    await j.flush();
    expect(lines(j.path)).toHaveLength(10);
    expect(existsSync(j.path + '.tmp')).toBe(false);
    j.append(ev(100));
    await j.close();
    const k = await make();
    expect(k.pending().map((e) => JSON.parse(e.json).i)).toEqual([40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 100]);
  });

  it('stays consistent through interleaved appends, acks, flushes and compactions', async () => {
    const j = await make({ compactMinLines: 5, flushLines: 7 });
    const alive = new Set<number>();
    let x = 1;
    for (let round = 0; round < 300; round++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      if (x % 3 !== 0 || alive.size === 0) {
        alive.add(j.append(ev(round)).seq);
      } else {
        const seq = [...alive][x % alive.size]!;
        j.ack(seq);
        alive.delete(seq);
      }
      if (round % 37 === 0) void j.compact();
    }
    await j.close();
    const k = await make();
    expect(k.pending().map((e) => e.seq)).toEqual([...alive].sort((a, b) => a - b));
  });
});
