/**
 * EventJournal: a bounded on-disk journal (JSONL in stateDir) of events the
 * MQTT broker has not acknowledged yet.
 *
 * File format, one JSON object per line:
 *   {"s":12,"e":{…event…}}   an event, sequence number 12
 *   {"a":12}                  event 12 was acknowledged (PUBACK)
 *   {"d":12}                  event 12 was dropped (journal full)
 *
 * Writes are batched: records go to an in-memory buffer, flushed (write +
 * fdatasync) after `flushMs` or once `flushLines` records wait, never per
 * event. An event acknowledged before its batch reached the disk is never
 * written at all. When the file holds more dead lines than live ones (and at
 * least `compactMinLines`), it is compacted: the live events are written to a
 * tmp file, fsynced, renamed over the journal, and the directory fsynced.
 * On open, a torn last line (crash in mid-write) is tolerated and the file is
 * compacted at once so new records never follow a partial line.
 *
 * Bound: at most `maxEvents` pending events; appending past it drops the
 * oldest pending one and counts it (`dropped`).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log';
import type { Metrics } from '../../relay/metrics';

export interface JournalEntry {
  seq: number;
  /** the event, serialized once (this is also the MQTT payload) */
  json: string;
}

interface Slot extends JournalEntry {
  done: boolean;
  written: boolean;
}

type Rec = { k: 'e'; slot: Slot } | { k: 'a' | 'd'; slot: Slot };

export interface EventJournalOptions {
  dir: string;
  /** default 'events.jsonl' */
  file?: string;
  /** bound on pending events; default 10000 */
  maxEvents?: number;
  /** batch window before a write + fdatasync; default 200 ms */
  flushMs?: number;
  /** flush at once when this many records wait; default 256 */
  flushLines?: number;
  /** never compact a file with fewer dead lines than this; default 1000 */
  compactMinLines?: number;
  metrics?: Metrics;
  log?: Logger;
}

export interface JournalLoadResult {
  /** pending events found on disk */
  loaded: number;
  /** true when the last line was partial */
  torn: boolean;
  /** unparseable lines skipped (not counting a torn tail) */
  corrupt: number;
  /** pending events dropped because the file held more than maxEvents */
  dropped: number;
}

export const JOURNAL_METRICS = {
  size: 'bootrelay_mqtt_journal_events',
  dropped: 'bootrelay_mqtt_journal_dropped_total',
  errors: 'bootrelay_mqtt_journal_errors_total',
  corrupt: 'bootrelay_mqtt_journal_corrupt_lines_total',
} as const;

export class EventJournal {
  readonly path: string;
  readonly maxEvents: number;
  private readonly flushMs: number;
  private readonly flushLines: number;
  private readonly compactMinLines: number;

  /** pending (and some done) slots in sequence order; slots[head..] may hold live ones */
  private slots: Slot[] = [];
  private head = 0;
  private bySeq = new Map<number, Slot>();
  private live = 0;
  private nextSeq = 1;
  private droppedCount = 0;

  private buffer: Rec[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private fh: fsp.FileHandle | undefined;
  private diskLines = 0;
  private diskDead = 0;
  private opened = false;
  private closed = false;

  constructor(private readonly opts: EventJournalOptions) {
    this.path = join(opts.dir, opts.file ?? 'events.jsonl');
    this.maxEvents = Math.max(1, opts.maxEvents ?? 10000);
    this.flushMs = opts.flushMs ?? 200;
    this.flushLines = opts.flushLines ?? 256;
    this.compactMinLines = opts.compactMinLines ?? 1000;
    const m = opts.metrics;
    if (m) {
      m.declare(JOURNAL_METRICS.size, 'gauge', 'Events in the MQTT journal not yet acknowledged by the broker');
      m.declare(JOURNAL_METRICS.dropped, 'counter', 'Events dropped from the MQTT journal because it was full');
      m.declare(JOURNAL_METRICS.errors, 'counter', 'MQTT journal write errors');
    }
  }

  /** Pending (unacknowledged) events. */
  get size(): number {
    return this.live;
  }

  /** Events dropped (journal full) since this journal object was created. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Loads the journal from disk (a missing file is an empty journal) and rewrites it compactly. */
  async open(): Promise<JournalLoadResult> {
    if (this.opened) throw new Error('journal already open');
    this.opened = true;
    await fsp.mkdir(this.opts.dir, { recursive: true });
    const res: JournalLoadResult = { loaded: 0, torn: false, corrupt: 0, dropped: 0 };
    let text = '';
    try {
      text = await fsp.readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const lines = text.split('\n');
    const tail = lines.pop() ?? ''; // text after the last newline: '' or a torn line
    if (tail.length > 0) {
      // a complete record without its newline is still a record
      if (this.loadLine(tail)) lines.push(tail);
      else res.torn = true;
    }
    const events = new Map<number, string>();
    for (const line of lines) {
      if (!line) continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        res.corrupt++;
        continue;
      }
      if (!rec || typeof rec !== 'object') {
        res.corrupt++;
        continue;
      }
      const r = rec as { s?: unknown; e?: unknown; a?: unknown; d?: unknown };
      if (typeof r.s === 'number' && r.e && typeof r.e === 'object') events.set(r.s, JSON.stringify(r.e));
      else if (typeof r.a === 'number') events.delete(r.a);
      else if (typeof r.d === 'number') events.delete(r.d);
      else res.corrupt++;
      const seq = typeof r.s === 'number' ? r.s : typeof r.a === 'number' ? r.a : typeof r.d === 'number' ? r.d : 0;
      if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    }
    const seqs = [...events.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      const slot: Slot = { seq, json: events.get(seq)!, done: false, written: true };
      this.slots.push(slot);
      this.bySeq.set(seq, slot);
      this.live++;
    }
    res.loaded = this.live;
    while (this.live > this.maxEvents) {
      this.dropOldest();
      res.dropped++;
    }
    if (res.corrupt) this.opts.metrics?.inc(JOURNAL_METRICS.corrupt, {}, res.corrupt);
    if (res.torn || res.corrupt) this.opts.log?.warn({ path: this.path, torn: res.torn, corrupt: res.corrupt }, 'journal damaged lines skipped');
    this.buffer = []; // drop records of load-time drops: the compaction below writes the state
    await this.compactNow();
    this.gauge();
    return res;
  }

  private loadLine(line: string): boolean {
    try {
      JSON.parse(line);
      return true;
    } catch {
      return false;
    }
  }

  /** Adds an event; returns its entry. Drops the oldest pending event when full. */
  append(ev: object): JournalEntry {
    if (!this.opened || this.closed) throw new Error('journal not open');
    const slot: Slot = { seq: this.nextSeq++, json: JSON.stringify(ev), done: false, written: false };
    this.slots.push(slot);
    this.bySeq.set(slot.seq, slot);
    this.live++;
    this.buffer.push({ k: 'e', slot });
    while (this.live > this.maxEvents) this.dropOldest();
    this.gauge();
    this.schedule();
    return { seq: slot.seq, json: slot.json };
  }

  /** Marks an event acknowledged; false when unknown (already acked or dropped). */
  ack(seq: number): boolean {
    const slot = this.bySeq.get(seq);
    if (!slot || slot.done) return false;
    this.finish(slot, 'a');
    this.gauge();
    return true;
  }

  /** Pending events in order, with sequence numbers greater than `afterSeq`, at most `limit`. */
  after(afterSeq: number, limit = Infinity): JournalEntry[] {
    const out: JournalEntry[] = [];
    // binary search the first slot with seq > afterSeq
    let lo = this.head;
    let hi = this.slots.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.slots[mid]!.seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.slots.length && out.length < limit; i++) {
      const s = this.slots[i]!;
      if (!s.done) out.push({ seq: s.seq, json: s.json });
    }
    return out;
  }

  /** All pending events, oldest first. */
  pending(): JournalEntry[] {
    return this.after(0);
  }

  has(seq: number): boolean {
    const s = this.bySeq.get(seq);
    return !!s && !s.done;
  }

  private dropOldest(): void {
    for (let i = this.head; i < this.slots.length; i++) {
      const s = this.slots[i]!;
      if (!s.done) {
        this.finish(s, 'd');
        this.droppedCount++;
        this.opts.metrics?.inc(JOURNAL_METRICS.dropped);
        return;
      }
    }
  }

  private finish(slot: Slot, k: 'a' | 'd'): void {
    slot.done = true;
    this.bySeq.delete(slot.seq);
    this.live--;
    this.buffer.push({ k, slot });
    // advance head past finished slots; trim the array now and then
    while (this.head < this.slots.length && this.slots[this.head]!.done) this.head++;
    if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
    this.schedule();
  }

  private gauge(): void {
    this.opts.metrics?.set(JOURNAL_METRICS.size, this.live);
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.buffer.length >= this.flushLines) {
      void this.flush();
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.flushMs);
      this.timer.unref?.();
    }
  }

  /** Writes (and fdatasyncs) what is buffered; resolves when it is on disk. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.buffer.length === 0) return this.chain;
    const recs = this.buffer;
    this.buffer = [];
    this.chain = this.chain.then(() => this.writeRecs(recs)).catch((err) => this.ioError(err));
    return this.chain;
  }

  private async writeRecs(recs: Rec[]): Promise<void> {
    const skipped = new Set<number>();
    let out = '';
    let lines = 0;
    let dead = 0;
    for (const r of recs) {
      if (r.k === 'e') {
        if (r.slot.done || r.slot.written) {
          // acknowledged or dropped before it reached the disk (or already in a compacted file)
          if (!r.slot.written) skipped.add(r.slot.seq);
          continue;
        }
        r.slot.written = true;
        out += `{"s":${r.slot.seq},"e":${r.slot.json}}\n`;
        lines++;
      } else {
        if (skipped.has(r.slot.seq) || !r.slot.written) continue;
        out += `{"${r.k}":${r.slot.seq}}\n`;
        lines++;
        dead += 2; // the record and the event line it cancels
      }
    }
    if (out) {
      const fh = await this.handle();
      await fh.appendFile(out);
      await fh.datasync();
      this.diskLines += lines;
      this.diskDead += dead;
    }
    if (this.diskDead >= this.compactMinLines && this.diskDead >= this.diskLines - this.diskDead) await this.compactNow();
  }

  private async handle(): Promise<fsp.FileHandle> {
    if (!this.fh) this.fh = await fsp.open(this.path, 'a');
    return this.fh;
  }

  /** Rewrites the file with the pending events only (tmp + fsync + rename + fsync dir). */
  compact(): Promise<void> {
    this.chain = this.chain.then(() => this.compactNow()).catch((err) => this.ioError(err));
    return this.chain;
  }

  private async compactNow(): Promise<void> {
    // the memory state is the truth: it includes everything buffered
    const snapshot: Slot[] = [];
    for (let i = this.head; i < this.slots.length; i++) if (!this.slots[i]!.done) snapshot.push(this.slots[i]!);
    // records buffered now are reflected in the snapshot; later ones are not
    const reflected = new Set(this.buffer);
    const tmp = this.path + '.tmp';
    const out = snapshot.map((s) => `{"s":${s.seq},"e":${s.json}}\n`).join('');
    const th = await fsp.open(tmp, 'w');
    try {
      await th.writeFile(out);
      await th.sync();
    } finally {
      await th.close();
    }
    if (this.fh) {
      await this.fh.close();
      this.fh = undefined;
    }
    await fsp.rename(tmp, this.path);
    await this.syncDir();
    for (const s of snapshot) s.written = true;
    if (reflected.size) this.buffer = this.buffer.filter((r) => !reflected.has(r));
    this.diskLines = snapshot.length;
    this.diskDead = 0;
  }

  private async syncDir(): Promise<void> {
    try {
      const dh = await fsp.open(this.opts.dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      /* some filesystems refuse fsync on a directory */
    }
  }

  private ioError(err: unknown): void {
    this.opts.metrics?.inc(JOURNAL_METRICS.errors);
    this.opts.log?.error({ err, path: this.path }, 'journal write failed');
  }

  /** Flushes and closes the file; the journal can no longer be appended to. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.chain;
    if (this.fh) {
      const fh = this.fh;
      this.fh = undefined;
      await fh.close().catch(() => undefined);
    }
  }
}
