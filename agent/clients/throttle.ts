/**
 * The one throttle rule for client updates, used by every subscriber (MQTT retained state,
 * the dashboard's WebSocket feed, relayctl watch, stateDir/clients.jsonl), each with its own
 * interval: a `phase` update goes out at once (and replaces a waiting progress update); a
 * `progress` update goes out at most once per interval per key, the latest winning, and a
 * waiting one goes out when its interval is over.
 */
import type { ClientState, UpdateKind } from './record';

export interface ClientThrottleOptions<S extends { mac: string }> {
  intervalMs: number;
  send: (state: S) => void;
  /** what is throttled together (default: the client's MAC) */
  key?: (state: S) => string;
  now?: () => number;
  /** false: waiting updates go out only on flush() (tests that script the clock) */
  timers?: boolean;
}

export class ClientThrottle<S extends { mac: string } = ClientState> {
  private readonly last = new Map<string, number>();
  private readonly waiting = new Map<string, S>();
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly key: (s: S) => string;

  constructor(private readonly o: ClientThrottleOptions<S>) {
    this.now = o.now ?? Date.now;
    this.key = o.key ?? ((s) => s.mac);
  }

  offer(u: { state: S; kind: UpdateKind }): void {
    const k = this.key(u.state);
    const now = this.now();
    const at = this.last.get(k);
    if (u.kind === 'phase' || at === undefined || now - at >= this.o.intervalMs) {
      this.waiting.delete(k);
      this.sendNow(k, u.state, now);
      return;
    }
    this.waiting.set(k, u.state);
    this.arm(at + this.o.intervalMs - now);
  }

  /** Sends the waiting updates whose interval is over. */
  flush(now = this.now()): void {
    let next = Infinity;
    for (const [k, s] of this.waiting) {
      const due = (this.last.get(k) ?? -Infinity) + this.o.intervalMs;
      if (now < due) {
        next = Math.min(next, due - now);
        continue;
      }
      this.waiting.delete(k);
      this.sendNow(k, s, now);
    }
    if (next !== Infinity) this.arm(next);
  }

  /** Drops what is known about a key (a forgotten client). */
  forget(key: string): void {
    this.last.delete(key);
    this.waiting.delete(key);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.waiting.clear();
  }

  private sendNow(k: string, s: S, now: number): void {
    this.last.set(k, now);
    // keys are MACs anyone on the LAN can make up: remember only those still inside their interval
    if (this.last.size > 4096) for (const [key, at] of this.last) if (now - at >= this.o.intervalMs && !this.waiting.has(key)) this.last.delete(key);
    this.o.send(s);
  }

  private arm(ms: number): void {
    if (this.o.timers === false || this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.flush();
      },
      Math.max(0, ms),
    );
    this.timer.unref();
  }
}
