/**
 * The sending side of one TFTP read transfer, as a pure state machine: no
 * timers, no sockets, no streams. The caller feeds it blocks (`push`), ACKs
 * (`onAck`) and timer expiries (`onTimeout`); it answers with what to send.
 *
 * Rules (RFC 1350 §4, RFC 2347, RFC 7440 §4):
 * - With options, an OACK goes first and ACK 0 opens the transfer.
 * - A window is `windowsize` blocks starting at the first unacknowledged one.
 *   An ACK for a block inside the sent window acknowledges everything up to it
 *   and starts a new window right after it (RFC 7440 §4), which resends the
 *   rest of the old window when the client reported a gap.
 * - An ACK for the block before the window (a duplicate of the last ACK we
 *   acted on) is ignored in lock-step: we react to one ACK value once. Only
 *   the timer resends then. This is the Sorcerer's Apprentice fix (RFC 1350
 *   §4 note, "Bugs in the Sorcerer's Apprentice" RFC 1123 §4.2.3.1).
 * - With windows (RFC 7440 §4), that same ACK is how a client reports that it
 *   lost the first block of the window (it ACKs the last block it has in
 *   order): the first such ACK of a window resends the window from its first
 *   block at once ('resend'). Not for true duplicates: one that arrives
 *   before the caller says the window has left (`settle()`, i.e. the event
 *   loop turned since the window went out: a network or client copy of the
 *   ACK that opened the window), nor in a window that follows a
 *   retransmission (the copies we resent make the client repeat its ACK;
 *   reacting to that again is the Apprentice's cascade), nor twice per window.
 * - Timeouts resend the window from its first block, with exponential
 *   backoff; `retries` consecutive timeouts without progress give up.
 * - Block numbers wrap after 65535 to 0 (tftp-hpa) or 1 (`rollover=1`).
 * - The last block is shorter than blksize; a file whose size is a multiple
 *   of blksize ends with an empty block (the caller pushes it).
 * Only the current window's blocks are held.
 */

export interface SenderOptions {
  blksize: number;
  windowsize: number;
  /** consecutive timeouts tolerated before giving up */
  retries: number;
  /** block number after 65535 (default 0) */
  rolloverTo?: 0 | 1;
  /** start with an OACK and wait for ACK 0 */
  oack?: boolean;
  /** largest backoff multiplier (default 16) */
  maxBackoff?: number;
  /** backoff never goes past this (default 10 s), nor below the base timeout */
  maxDelayMs?: number;
}

export type SendItem =
  | { kind: 'oack'; retransmit: boolean }
  | { kind: 'data'; /** 1-based, never wraps */ index: number; /** on the wire */ block: number; data: Buffer; retransmit: boolean };

export type AckResult = 'start' | 'progress' | 'resend' | 'done' | 'duplicate' | 'stale' | 'ignored';

export class TftpSender {
  readonly blksize: number;
  readonly windowsize: number;
  private readonly retries: number;
  private readonly rolloverTo: 0 | 1;
  private readonly maxBackoff: number;
  private readonly maxDelayMs: number;

  private oackPending: boolean;
  private oackSent = false;
  /** first unacknowledged block index */
  private base = 1;
  /** highest block index pushed by the caller */
  private pushed = 0;
  /** highest block index ever sent */
  private sentUpTo = 0;
  /** next block index to send in the current window */
  private nextSend = 1;
  private finalIndex: number | undefined;
  private blocks = new Map<number, Buffer>();
  private timeouts = 0;
  /** a duplicate ACK of base-1 may still resend this window (RFC 7440 §4) */
  private recoverable = false;
  /** the window has left: the event loop turned since it was sent */
  private settled = false;
  /** `retransmits` when the current window was opened */
  private retransmitsAtOpen = 0;

  done = false;
  failed = false;
  /** packets sent (OACK and DATA), retransmissions included */
  sent = 0;
  retransmits = 0;
  duplicateAcks = 0;
  /** windows resent on a client's gap ACK for the block before them */
  gapResends = 0;
  /** payload bytes the client acknowledged */
  bytesAcked = 0;

  constructor(opts: SenderOptions) {
    if (!(opts.blksize >= 1)) throw new RangeError('blksize must be >= 1');
    if (!(opts.windowsize >= 1)) throw new RangeError('windowsize must be >= 1');
    this.blksize = opts.blksize;
    this.windowsize = opts.windowsize;
    this.retries = opts.retries;
    this.rolloverTo = opts.rolloverTo ?? 0;
    this.maxBackoff = opts.maxBackoff ?? 16;
    this.maxDelayMs = opts.maxDelayMs ?? 10_000;
    this.oackPending = !!opts.oack;
  }

  /** Wire block number of a block index. */
  wire(index: number): number {
    return this.rolloverTo === 0 ? index & 0xffff : ((index - 1) % 0xffff) + 1;
  }

  /** What to send first: the OACK, or the blocks already pushed. */
  begin(): SendItem[] {
    if (this.oackPending) {
      const retransmit = this.oackSent;
      this.oackSent = true;
      return this.count([{ kind: 'oack', retransmit }]);
    }
    return this.pump();
  }

  /** How many more blocks the window can take now. */
  wanted(): number {
    if (this.finalIndex !== undefined || this.done || this.failed) return 0;
    return Math.max(0, this.base + this.windowsize - 1 - this.pushed);
  }

  /** True once the final (short) block has been pushed. */
  get complete(): boolean {
    return this.finalIndex !== undefined;
  }

  /** Something sent is waiting for an ACK (the caller's timer should run). */
  get outstanding(): boolean {
    if (this.done || this.failed) return false;
    return (this.oackPending && this.oackSent) || this.sentUpTo >= this.base;
  }

  /** Everything but the final block is acknowledged and the final block was sent. */
  get onlyFinalUnacked(): boolean {
    return this.finalIndex !== undefined && this.base === this.finalIndex && this.sentUpTo >= this.finalIndex;
  }

  /** Payload bytes pushed but not acknowledged yet. */
  get unackedBytes(): number {
    let n = 0;
    for (const b of this.blocks.values()) n += b.length;
    return n;
  }

  /** Blocks held in memory (at most one window). */
  get held(): number {
    return this.blocks.size;
  }

  /** Waiting for ACK 0 to our OACK. */
  get inOack(): boolean {
    return this.oackPending;
  }

  /** Consecutive timeouts so far. */
  get timeoutCount(): number {
    return this.timeouts;
  }

  /** Supplies the next block; a block shorter than blksize is the last. */
  push(data: Buffer): SendItem[] {
    if (this.finalIndex !== undefined) throw new Error('push after the final block');
    if (data.length > this.blksize) throw new RangeError(`block of ${data.length} bytes exceeds blksize ${this.blksize}`);
    const index = ++this.pushed;
    this.blocks.set(index, data);
    if (data.length < this.blksize) this.finalIndex = index;
    return this.pump();
  }

  /** An ACK from the client: returns what to send and what the ACK meant. */
  onAck(block: number): { send: SendItem[]; result: AckResult } {
    if (this.done || this.failed) return { send: [], result: 'ignored' };
    if (this.oackPending) {
      if (block !== 0 || !this.oackSent) return { send: [], result: 'stale' };
      this.oackPending = false;
      this.timeouts = 0;
      return { send: this.open(this.pump()), result: 'start' };
    }
    const a = this.resolve(block);
    if (a === undefined) return { send: [], result: 'stale' };
    if (a < this.base) {
      if (this.recoverable && this.settled && this.sentUpTo >= this.base) {
        // RFC 7440 §4: the client lost the window's first block and ACKs the last one it has
        this.recoverable = false;
        this.gapResends++;
        this.nextSend = this.base;
        return { send: this.pump(), result: 'resend' };
      }
      // the client repeats the last ACK we acted on: never resend on it
      this.duplicateAcks++;
      return { send: [], result: 'duplicate' };
    }
    for (let i = this.base; i <= a; i++) {
      const b = this.blocks.get(i);
      if (b) this.bytesAcked += b.length;
      this.blocks.delete(i);
    }
    this.base = a + 1;
    this.timeouts = 0;
    if (this.finalIndex !== undefined && a >= this.finalIndex) {
      this.done = true;
      this.blocks.clear();
      return { send: [], result: 'done' };
    }
    // RFC 7440 §4: a new window starts after the acknowledged block
    this.nextSend = this.base;
    return { send: this.open(this.pump()), result: 'progress' };
  }

  /**
   * The window sent last has left (the caller's event loop turned since): a
   * duplicate ACK from now on can be the client's report of a gap.
   */
  settle(): void {
    this.settled = true;
  }

  /** A new window was opened by an ACK; `sent` is what went out for it. */
  private open(sent: SendItem[]): SendItem[] {
    this.settled = false;
    // a window opened by or after a retransmission is not recovered early: the client may be
    // repeating its ACK for the copies we resent (the Apprentice's cascade)
    this.recoverable = this.windowsize > 1 && this.retransmits === this.retransmitsAtOpen;
    this.retransmitsAtOpen = this.retransmits;
    return sent;
  }

  /** The retransmission timer expired. */
  onTimeout(): { send: SendItem[]; giveUp: boolean } {
    if (this.done || this.failed) return { send: [], giveUp: false };
    if (!this.outstanding) return { send: [], giveUp: false };
    this.timeouts++;
    if (this.timeouts > this.retries) {
      this.failed = true;
      return { send: [], giveUp: true };
    }
    if (this.oackPending) return { send: this.begin(), giveUp: false };
    this.nextSend = this.base;
    this.recoverable = false;
    return { send: this.pump(), giveUp: false };
  }

  /** Delay before the next timeout, with exponential backoff. */
  timeoutMs(baseMs: number): number {
    return Math.max(baseMs, Math.min(this.maxDelayMs, baseMs * Math.min(this.maxBackoff, 2 ** this.timeouts)));
  }

  /** Maps a wire block number to the block index it acknowledges, within [base-1, sentUpTo]. */
  private resolve(block: number): number | undefined {
    for (let i = this.sentUpTo; i >= this.base - 1 && i >= 0; i--) {
      if ((i === 0 ? 0 : this.wire(i)) === block) return i;
    }
    return undefined;
  }

  private pump(): SendItem[] {
    if (this.oackPending || this.done || this.failed) return [];
    const out: SendItem[] = [];
    const last = Math.min(this.base + this.windowsize - 1, this.pushed);
    while (this.nextSend <= last) {
      const index = this.nextSend++;
      const data = this.blocks.get(index);
      if (!data) break;
      out.push({ kind: 'data', index, block: this.wire(index), data, retransmit: index <= this.sentUpTo });
      if (index > this.sentUpTo) this.sentUpTo = index;
    }
    return this.count(out);
  }

  private count(items: SendItem[]): SendItem[] {
    for (const it of items) {
      this.sent++;
      if (it.retransmit) this.retransmits++;
    }
    return items;
  }
}
