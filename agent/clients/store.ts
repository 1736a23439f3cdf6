/**
 * ClientStore: the tracker's client states on flash, `<stateDir>/clients.jsonl`, so that after
 * a restart (or kill -9) the retained MQTT states, the dashboard and `relayctl clients` come
 * back as they were.
 *
 * Append-only: one line per write, the whole state of the one client that changed
 * (`{"mac":…,"phase":…,…}`); on reading, the last line of a MAC wins. A boot costs a dozen
 * short lines, whatever the number of clients known (a whole-file rewrite per phase, as
 * clients.json was, grew with every client). When the file holds more than twice what is live
 * (plus `compactMinBytes`) it is compacted: the live states go to a tmp file, fsynced, renamed
 * over the journal; a crash leaves the old or the new file. A torn or unreadable line (power
 * cut mid-write) is skipped and the next write compacts, so no line follows a partial one.
 * An earlier run's clients.json is read, and removed by that first compaction.
 *
 * When a client's state is written:
 *  - a `phase` update (a step of a boot: a few per boot): at once, before the update reaches
 *    the MQTT journal, so a crash right after it still has it;
 *  - a client that has only just appeared (one DISCOVER): within `freshMs`, all of them in
 *    one write: anyone on the LAN can make up MACs;
 *  - byte progress: within `progressMs`, and never when a `phase` write of the same client
 *    came first (that line carries the bytes too).
 * A write that fails is logged; the states hold in memory and the next write compacts.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, appendFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ClientState, ClientUpdate } from './record';

export const CLIENTS_FILE = 'clients.jsonl';
/** the whole-file form of earlier versions: read once, removed by the first compaction */
export const LEGACY_CLIENTS_FILE = 'clients.json';

export interface ClientStoreOptions {
  /** the state directory (it may change on reload) */
  dir: () => string;
  log: Logger;
  /** every client state (what a compaction writes) */
  clients: () => ClientState[];
  /** a client that has only just appeared is written within this (default 2000 ms) */
  freshMs?: number;
  /** byte progress is written within this (default 10000 ms) */
  progressMs?: number;
  /** no compaction below this many journal bytes (default 64 KiB) */
  compactMinBytes?: number;
}

/** One journal line: the state without what is not restored (rate, eta). */
function line(s: ClientState): string {
  return JSON.stringify({ ...s, etaSeconds: undefined, rate: undefined });
}

/** A newly seen client's first update: one DISCOVER, nothing else yet. */
function isFresh(s: ClientState): boolean {
  return s.phase === 'dhcp' && !s.error && s.startedAt === s.updatedAt;
}

export interface SavedClients {
  /** the last saved state of each MAC, in the order the MACs were first saved */
  states: unknown[];
  /** journal bytes and lines */
  bytes: number;
  lines: number;
  /** lines that could not be read (torn or malformed) */
  bad: number;
  /** an earlier run's clients.json was found */
  legacy: boolean;
}

/** Reads what an earlier run saved in `dir` (clients.json of old, then the journal over it). */
export function readSavedClients(dir: string, log?: Logger): SavedClients {
  const byMac = new Map<string, unknown>();
  const put = (raw: unknown) => {
    const mac = raw && typeof raw === 'object' ? (raw as { mac?: unknown }).mac : undefined;
    if (typeof mac !== 'string') return false;
    byMac.set(mac, raw);
    return true;
  };
  const out: SavedClients = { states: [], bytes: 0, lines: 0, bad: 0, legacy: false };
  const text = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log?.warn({ err, file: join(dir, name) }, 'state file unreadable: ignored');
      return undefined;
    }
  };
  const old = text(LEGACY_CLIENTS_FILE);
  if (old !== undefined) {
    out.legacy = true;
    try {
      const list = JSON.parse(old) as unknown;
      if (Array.isArray(list)) for (const raw of list) put(raw);
    } catch {
      out.bad++;
    }
  }
  const journal = text(CLIENTS_FILE);
  if (journal !== undefined) {
    out.bytes = Buffer.byteLength(journal);
    for (const l of journal.split('\n')) {
      if (!l) continue;
      out.lines++;
      try {
        if (!put(JSON.parse(l))) out.bad++;
      } catch {
        out.bad++;
      }
    }
    if (journal.length && !journal.endsWith('\n')) out.bad++;
  }
  out.states = [...byMac.values()];
  return out;
}

export class ClientStore {
  /** states waiting for the timer (fresh clients, byte progress), the latest of each MAC */
  private readonly dirty = new Map<string, ClientState>();
  private timer?: NodeJS.Timeout;
  private due = Infinity;
  /** the directory the journal counts are for; a write elsewhere (stateDir reloaded) compacts first */
  private at?: string;
  /** journal bytes, and the bytes the last compaction left */
  private bytes = 0;
  private live = 0;
  /** the next write rewrites the whole file (a failed write, a torn line, clients.json of old) */
  private broken = false;
  /** counters (tests and the bench read them) */
  readonly stats = { appends: 0, lines: 0, compactions: 0, failures: 0 };

  constructor(private readonly o: ClientStoreOptions) {}

  /** What an earlier run saved; the journal is then appended to. */
  read(): unknown[] {
    const dir = this.o.dir();
    const saved = readSavedClients(dir, this.o.log);
    if (saved.bad) this.o.log.warn({ file: join(dir, CLIENTS_FILE), lines: saved.bad }, 'client states: unreadable lines skipped');
    this.at = dir;
    this.bytes = saved.bytes;
    // what a compaction would leave: the states known, at the journal's mean line length
    this.live = saved.lines ? Math.min(saved.bytes, Math.round((saved.bytes / saved.lines) * saved.states.length)) : 0;
    this.broken = saved.legacy || saved.bad > 0;
    return saved.states;
  }

  /** One client update from the tracker (see the header for when it is written). */
  changed(u: ClientUpdate): void {
    const s = u.state;
    const fresh = isFresh(s);
    if (u.kind === 'phase' && !fresh) {
      this.dirty.delete(s.mac);
      this.append([s]);
      return;
    }
    this.dirty.set(s.mac, s);
    this.schedule(fresh ? (this.o.freshMs ?? 2000) : (this.o.progressMs ?? 10_000));
  }

  /** Writes what waits (at stop). */
  flush(): void {
    this.clearTimer();
    if (!this.dirty.size) return;
    const states = [...this.dirty.values()];
    this.dirty.clear();
    this.append(states);
  }

  private schedule(ms: number): void {
    const due = Date.now() + ms;
    if (this.timer && this.due <= due) return;
    this.clearTimer();
    this.due = due;
    this.timer = setTimeout(() => this.flush(), ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.due = Infinity;
  }

  private append(states: ClientState[]): void {
    const dir = this.o.dir();
    if (this.broken || dir !== this.at) return this.compact();
    const text = states.map(line).join('\n') + '\n';
    try {
      appendFileSync(join(dir, CLIENTS_FILE), text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.compact(); // no stateDir yet
      this.fail(err, dir);
      return;
    }
    this.stats.appends++;
    this.stats.lines += states.length;
    this.bytes += Buffer.byteLength(text);
    if (this.bytes > 2 * this.live + (this.o.compactMinBytes ?? 64 * 1024)) this.compact();
  }

  /** The live states to a tmp file, fsync, rename over the journal; clients.json of old goes. */
  compact(): void {
    const dir = this.o.dir();
    const file = join(dir, CLIENTS_FILE);
    const tmp = `${file}.tmp`;
    const states = this.o.clients();
    const text = states.map((s) => line(s) + '\n').join('');
    try {
      mkdirSync(dir, { recursive: true });
      const fd = openSync(tmp, 'w');
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
      rmSync(join(dir, LEGACY_CLIENTS_FILE), { force: true });
    } catch (err) {
      this.fail(err, dir);
      return;
    }
    this.stats.compactions++;
    this.at = dir;
    this.bytes = this.live = Buffer.byteLength(text);
    this.broken = false;
    // every state is in the file now
    this.dirty.clear();
    this.clearTimer();
  }

  private fail(err: unknown, dir: string): void {
    this.stats.failures++;
    this.broken = true;
    this.o.log.warn({ err, file: join(dir, CLIENTS_FILE) }, 'client states not saved (they hold until restart)');
  }
}
