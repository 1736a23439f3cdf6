import { describe, expect, it } from 'vitest';
import type { ClientState } from '../../../../agent/clients/record';
import { ClientThrottle } from '../../../../agent/clients/throttle';

const state = (mac: string, phase: ClientState['phase'], bytes: number) => ({ mac, phase, bytes }) as ClientState;

function setup(intervalMs = 250) {
  let now = 1000;
  const sent: Array<[string, string, number]> = [];
  const t = new ClientThrottle({ intervalMs, now: () => now, timers: false, send: (s) => sent.push([s.mac, s.phase, s.bytes]) });
  return { t, sent, at: (ms: number) => ((now = 1000 + ms), t.flush(now)) };
}

describe('ClientThrottle (the rule every client-state subscriber shares)', () => {
  it('passes phase updates at once, and at most one progress update per interval per client, the latest winning', () => {
    const { t, sent, at } = setup();
    t.offer({ state: state('a', 'kernel', 0), kind: 'phase' });
    t.offer({ state: state('a', 'kernel', 10), kind: 'progress' });
    t.offer({ state: state('b', 'loader', 5), kind: 'progress' });
    t.offer({ state: state('a', 'kernel', 20), kind: 'progress' });
    expect(sent).toEqual([
      ['a', 'kernel', 0],
      ['b', 'loader', 5],
    ]);
    at(100);
    expect(sent).toHaveLength(2);
    at(250);
    expect(sent.at(-1)).toEqual(['a', 'kernel', 20]);
    expect(sent).toHaveLength(3);
  });

  it('lets a phase update replace a waiting progress update', () => {
    const { t, sent, at } = setup();
    t.offer({ state: state('a', 'kernel', 0), kind: 'phase' });
    t.offer({ state: state('a', 'kernel', 50), kind: 'progress' });
    t.offer({ state: state('a', 'initrd', 0), kind: 'phase' });
    at(1000);
    expect(sent).toEqual([
      ['a', 'kernel', 0],
      ['a', 'initrd', 0],
    ]);
  });

  it('sends a waiting update on its own timer', async () => {
    const sent: number[] = [];
    const t = new ClientThrottle({ intervalMs: 30, send: (s) => sent.push(s.bytes) });
    t.offer({ state: state('a', 'kernel', 1), kind: 'progress' });
    t.offer({ state: state('a', 'kernel', 2), kind: 'progress' });
    expect(sent).toEqual([1]);
    await new Promise((r) => setTimeout(r, 80));
    expect(sent).toEqual([1, 2]);
    t.stop();
  });
});
