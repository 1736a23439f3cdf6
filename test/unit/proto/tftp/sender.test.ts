import { describe, expect, it } from 'vitest';
import { TftpSender, type SendItem } from '../../../../proto/tftp/sender';

type Data = Extract<SendItem, { kind: 'data' }>;

/** A file of n blocks of blksize (the last one `lastLen` long) fed on demand. */
function feeder(s: TftpSender, blocks: number, lastLen: number) {
  let next = 1;
  return (): SendItem[] => {
    const out: SendItem[] = [];
    while (s.wanted() > 0 && next <= blocks) {
      const len = next === blocks ? lastLen : s.blksize;
      out.push(...s.push(Buffer.alloc(len, next & 0xff)));
      next++;
    }
    return out;
  };
}

const data = (items: SendItem[]) => items.filter((i): i is Data => i.kind === 'data');
const blocks = (items: SendItem[]) => data(items).map((d) => d.block);

describe('proto/tftp/sender', () => {
  it('sends a file in lock-step with exactly one DATA per block', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 1, retries: 5 });
    const feed = feeder(s, 5, 100);
    const sent: SendItem[] = [...s.begin(), ...feed()];
    expect(blocks(sent)).toEqual([1]);
    for (let b = 1; b <= 5; b++) {
      const r = s.onAck(b);
      sent.push(...r.send, ...feed());
      expect(r.result).toBe(b === 5 ? 'done' : 'progress');
    }
    expect(blocks(sent)).toEqual([1, 2, 3, 4, 5]);
    expect(s.sent).toBe(5);
    expect(s.retransmits).toBe(0);
    expect(s.done).toBe(true);
    expect(s.bytesAcked).toBe(4 * 512 + 100);
  });

  it('ends a file that is a multiple of blksize with an empty block', () => {
    const s = new TftpSender({ blksize: 8, windowsize: 1, retries: 5 });
    const feed = feeder(s, 3, 0); // 2 full blocks + the empty one
    const sent = [...s.begin(), ...feed()];
    sent.push(...s.onAck(1).send, ...feed());
    sent.push(...s.onAck(2).send, ...feed());
    expect(data(sent).map((d) => d.data.length)).toEqual([8, 8, 0]);
    expect(s.onAck(3).result).toBe('done');
  });

  it('costs exactly one retransmission for one lost DATA in lock-step', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 1, retries: 5 });
    const feed = feeder(s, 10, 1);
    const wire: number[] = [];
    let pending = [...s.begin(), ...feed()];
    let lostOnce = false;
    for (let guard = 0; guard < 100 && !s.done; guard++) {
      const arrived: number[] = [];
      for (const d of data(pending)) {
        wire.push(d.block);
        if (d.block === 4 && !lostOnce) lostOnce = true; // dropped on the way
        else arrived.push(d.block);
      }
      pending = [];
      if (arrived.length === 0) {
        // the client waits; it re-ACKs block 3 (its own timeout) and then our timer fires
        expect(s.onAck(3).send).toEqual([]);
        pending.push(...s.onTimeout().send);
        continue;
      }
      for (const b of arrived) pending.push(...s.onAck(b).send, ...feed());
    }
    expect(s.done).toBe(true);
    expect(wire).toEqual([1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10]);
    expect(s.retransmits).toBe(1);
    expect(s.sent).toBe(11);
  });

  it('never resends on duplicate ACKs (no Sorcerer’s Apprentice)', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 1, retries: 5 });
    const feed = feeder(s, 20, 10);
    let out = [...s.begin(), ...feed()];
    // the timer fires once for block 1 (its ACK was slow): two copies of DATA 1 reach the client,
    // which ACKs both; then every ACK is duplicated by the network for the whole transfer
    out.push(...s.onTimeout().send);
    expect(blocks(out)).toEqual([1, 1]);
    let total = 2;
    for (let b = 1; b <= 20; b++) {
      const first = s.onAck(b);
      const again = s.onAck(b);
      const third = s.onAck(b);
      expect(again.result === 'duplicate' || again.result === 'ignored').toBe(true);
      expect(again.send).toEqual([]);
      expect(third.send).toEqual([]);
      out = [...first.send, ...feed()];
      total += data(out).length;
      // one new block per ACK, never a second copy
      expect(data(out).length).toBe(b === 20 ? 0 : 1);
    }
    expect(s.done).toBe(true);
    expect(total).toBe(21);
    expect(s.retransmits).toBe(1);
    expect(s.duplicateAcks).toBe(2 * 19); // the ACKs after the last one are ignored, not counted
  });

  it('with windows, resends from the block after an in-window ACK once, and not on its duplicates (RFC 7440 §4)', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 4, retries: 5 });
    const feed = feeder(s, 10, 5);
    const first = [...s.begin(), ...feed()];
    expect(blocks(first)).toEqual([1, 2, 3, 4]);
    // block 2 lost: the client times out and ACKs 1
    const r = s.onAck(1);
    expect(r.result).toBe('progress');
    const resend = [...r.send, ...feed()];
    expect(blocks(resend)).toEqual([2, 3, 4, 5]);
    expect(s.retransmits).toBe(3);
    // the client's duplicate of ACK 1: nothing
    expect(s.onAck(1).send).toEqual([]);
    expect(s.onAck(1).send).toEqual([]);
    // window complete
    const next = [...s.onAck(5).send, ...feed()];
    expect(blocks(next)).toEqual([6, 7, 8, 9]);
    const last = [...s.onAck(9).send, ...feed()];
    expect(blocks(last)).toEqual([10]);
    expect(s.onAck(10).result).toBe('done');
    expect(s.sent).toBe(4 + 4 + 4 + 1);
    expect(s.retransmits).toBe(3);
  });

  it('resends a window at once on the first gap ACK for the block before it, once, not before it left, and not after a resend (RFC 7440 §4)', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 4, retries: 5 });
    const feed = feeder(s, 40, 5);
    expect(blocks([...s.begin(), ...feed()])).toEqual([1, 2, 3, 4]);
    expect(blocks([...s.onAck(4).send, ...feed()])).toEqual([5, 6, 7, 8]);
    // a copy of ACK 4 before the window left (same event-loop turn): a true duplicate
    expect(s.onAck(4).result).toBe('duplicate');
    s.settle();
    // block 5 lost: the client ACKs 4 on block 6
    const r = s.onAck(4);
    expect(r.result).toBe('resend');
    expect(blocks(r.send)).toEqual([5, 6, 7, 8]);
    expect(s.gapResends).toBe(1);
    // further copies in this window: nothing
    expect(s.onAck(4).result).toBe('duplicate');
    // the next window follows a resend: the client may repeat ACK 8 for the copies, no early resend
    expect(blocks([...s.onAck(8).send, ...feed()])).toEqual([9, 10, 11, 12]);
    s.settle();
    expect(s.onAck(8).result).toBe('duplicate');
    // a clean window after that recovers early again
    expect(blocks([...s.onAck(12).send, ...feed()])).toEqual([13, 14, 15, 16]);
    s.settle();
    expect(s.onAck(12).result).toBe('resend');
    expect(s.retransmits).toBe(8);
  });

  it('never resends on a gap ACK in lock-step (windowsize 1)', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 1, retries: 5 });
    const feed = feeder(s, 5, 5);
    expect(blocks([...s.begin(), ...feed()])).toEqual([1]);
    expect(blocks([...s.onAck(1).send, ...feed()])).toEqual([2]);
    s.settle();
    expect(s.onAck(1).result).toBe('duplicate');
    expect(s.retransmits).toBe(0);
  });

  it('holds at most one window of blocks', () => {
    const s = new TftpSender({ blksize: 16, windowsize: 8, retries: 5 });
    const feed = feeder(s, 1000, 3);
    s.begin();
    feed();
    let maxHeld = s.held;
    for (let b = 8; !s.done; b = Math.min(b + 8, 1000)) {
      s.onAck(b);
      feed();
      maxHeld = Math.max(maxHeld, s.held);
    }
    expect(maxHeld).toBe(8);
    expect(s.held).toBe(0);
  });

  it('resends the window on timeout with exponential backoff, then gives up', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 2, retries: 3 });
    const feed = feeder(s, 5, 1);
    expect(blocks([...s.begin(), ...feed()])).toEqual([1, 2]);
    expect(s.timeoutMs(1000)).toBe(1000);
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = s.onTimeout();
      expect(r.giveUp).toBe(false);
      expect(blocks(r.send)).toEqual([1, 2]);
      delays.push(s.timeoutMs(1000));
    }
    expect(delays).toEqual([2000, 4000, 8000]);
    const last = s.onTimeout();
    expect(last.giveUp).toBe(true);
    expect(s.failed).toBe(true);
    expect(s.sent).toBe(2 + 6);
    expect(s.retransmits).toBe(6);
  });

  it('resets the backoff on progress', () => {
    const s = new TftpSender({ blksize: 512, windowsize: 1, retries: 2 });
    const feed = feeder(s, 5, 1);
    s.begin();
    feed();
    s.onTimeout();
    s.onTimeout();
    expect(s.timeoutMs(100)).toBe(400);
    s.onAck(1);
    feed();
    expect(s.timeoutMs(100)).toBe(100);
    expect(s.onTimeout().giveUp).toBe(false);
  });

  it('starts with an OACK, resends it on timeout, and starts on ACK 0 once', () => {
    const s = new TftpSender({ blksize: 1468, windowsize: 1, retries: 3, oack: true });
    const feed = feeder(s, 2, 1);
    expect(s.begin()).toEqual([{ kind: 'oack', retransmit: false }]);
    expect(feed()).toEqual([]); // nothing before ACK 0
    expect(s.inOack).toBe(true);
    expect(s.onTimeout().send).toEqual([{ kind: 'oack', retransmit: true }]);
    expect(s.onAck(1).result).toBe('stale');
    const r = s.onAck(0);
    expect(r.result).toBe('start');
    expect(blocks(r.send)).toEqual([1]);
    expect(s.onAck(0).send).toEqual([]);
    expect(blocks([...s.onAck(1).send, ...feed()])).toEqual([2]);
    expect(s.onAck(2).result).toBe('done');
    expect(s.retransmits).toBe(1);
  });

  it('waits for blocks that have not arrived yet and sends them when pushed', () => {
    const s = new TftpSender({ blksize: 4, windowsize: 3, retries: 3 });
    expect(s.begin()).toEqual([]);
    expect(s.outstanding).toBe(false);
    expect(blocks(s.push(Buffer.from('abcd')))).toEqual([1]);
    expect(s.outstanding).toBe(true);
    expect(s.onAck(1).send).toEqual([]);
    expect(s.outstanding).toBe(false);
    expect(s.onTimeout()).toEqual({ send: [], giveUp: false });
    expect(blocks(s.push(Buffer.from('efgh')))).toEqual([2]);
    expect(blocks(s.push(Buffer.from('ij')))).toEqual([3]);
    expect(s.wanted()).toBe(0);
    expect(s.onAck(3).result).toBe('done');
  });

  it('tells when only the final block is unacknowledged', () => {
    const s = new TftpSender({ blksize: 4, windowsize: 2, retries: 1 });
    const feed = feeder(s, 3, 2);
    s.begin();
    feed();
    expect(s.onlyFinalUnacked).toBe(false);
    s.onAck(2);
    feed();
    expect(s.onlyFinalUnacked).toBe(true);
    expect(s.unackedBytes).toBe(2);
    s.onTimeout();
    expect(s.onTimeout().giveUp).toBe(true);
    expect(s.unackedBytes).toBe(2);
  });

  it('ignores ACKs for blocks never sent', () => {
    const s = new TftpSender({ blksize: 4, windowsize: 2, retries: 3 });
    const feed = feeder(s, 10, 0);
    s.begin();
    feed();
    expect(s.onAck(7).result).toBe('stale');
    expect(s.onAck(40000).send).toEqual([]);
    expect(s.sent).toBe(2);
  });

  it.each([0, 1] as const)('rolls block numbers over past 65535 to %i', (to) => {
    const s = new TftpSender({ blksize: 1, windowsize: 1, retries: 1, rolloverTo: to });
    const n = 65535 + 10;
    const feed = feeder(s, n, 0);
    let out = [...s.begin(), ...feed()];
    const seen: number[] = [];
    for (let i = 0; i < n + 5 && !s.done; i++) {
      const d = data(out);
      expect(d.length).toBe(1);
      const { index, block } = d[0];
      if (index >= 65534 && index <= 65538) seen.push(block);
      out = [...s.onAck(block).send, ...feed()];
    }
    expect(s.done).toBe(true);
    expect(s.sent).toBe(n);
    expect(seen).toEqual(to === 0 ? [65534, 65535, 0, 1, 2] : [65534, 65535, 1, 2, 3]);
  });
});
