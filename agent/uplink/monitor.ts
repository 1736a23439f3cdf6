/**
 * UplinkMonitor: polls the uplink's state and reports transitions.
 *
 * `change` fires on the first reading and whenever `up`, the interface, the address or the
 * SSID changes (signal and bit rate move all the time: they are in `current()` but are not
 * transitions). The agent turns a change of `up` into an `uplink.up` / `uplink.down` event,
 * puts `current()` into `…/status`, and on `down` tells the cache to serve what it has.
 *
 * A poll reads through UplinkReader (status.ts): the kernel's files every time (no process: a
 * launch cost the event loop ~45 ms, issue 15), ubus/iwinfo on OpenWrt only on a change of that
 * view or every 30 s.
 */
import { EventEmitter } from 'node:events';
import type { EmitFn, UplinkDownEvent, UplinkUpEvent } from '../../proto/events';
import type { Logger } from '../log';
import { UplinkReader, type UplinkReaderOptions, type UplinkStatus } from './status';

export interface UplinkMonitorOptions extends UplinkReaderOptions {
  /** poll period; default 10 s */
  intervalMs?: number;
  log?: Logger;
  /** called on every transition (same as the `change` event) */
  onChange?: (status: UplinkStatus, prev: UplinkStatus | undefined) => void;
  /** override the reader (tests) */
  read?: () => Promise<UplinkStatus>;
}

type Events = { change: [UplinkStatus, UplinkStatus | undefined] };

/** True when `next` differs from `prev` in a way worth an event. */
export function isUplinkTransition(prev: UplinkStatus | undefined, next: UplinkStatus): boolean {
  if (!prev) return true;
  return prev.up !== next.up || prev.interface !== next.interface || prev.address !== next.address || prev.ssid !== next.ssid;
}

/** The relay event for a change of `up` (undefined when `up` did not change). */
export function uplinkEvent(
  prev: UplinkStatus | undefined,
  next: UplinkStatus,
): Omit<UplinkUpEvent | UplinkDownEvent, 'ts'> | undefined {
  if (prev && prev.up === next.up) return undefined;
  if (!prev && next.up) return undefined; // starting with a working uplink is not news
  const ev: Omit<UplinkDownEvent, 'ts' | 'type'> & { type: 'uplink.up' | 'uplink.down' } = { type: next.up ? 'uplink.up' : 'uplink.down' };
  if (next.interface) ev.interface = next.interface;
  if (next.ssid) ev.ssid = next.ssid;
  if (next.address) ev.address = next.address;
  if (!next.up && next.reason) ev.reason = next.reason;
  return ev;
}

export class UplinkMonitor extends EventEmitter<Events> {
  private timer: NodeJS.Timeout | undefined;
  private last: UplinkStatus | undefined;
  private inFlight: Promise<UplinkStatus> | undefined;
  private stopped = true;
  private reader: UplinkReader | undefined;

  constructor(private readonly o: UplinkMonitorOptions = {}) {
    super();
  }

  /** The latest reading (undefined before the first). */
  current(): UplinkStatus | undefined {
    return this.last;
  }

  /** Reads once, then every intervalMs until stop(). Resolves with the first reading. */
  async start(): Promise<UplinkStatus> {
    this.stopped = false;
    const first = await this.poll();
    if (!this.stopped) this.schedule();
    return first;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One reading now; concurrent callers share it. Emits `change` on a transition. */
  poll(): Promise<UplinkStatus> {
    this.inFlight ??= this.readOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.poll().finally(() => {
        if (!this.stopped) this.schedule();
      });
    }, this.o.intervalMs ?? 10_000);
    this.timer.unref?.();
  }

  private async readOnce(): Promise<UplinkStatus> {
    let next: UplinkStatus;
    try {
      next = this.o.read ? await this.o.read() : await (this.reader ??= new UplinkReader(this.o)).read();
    } catch (err) {
      next = { up: false, source: 'none', reason: `uplink check failed: ${(err as Error).message}`, checkedAt: new Date().toISOString() };
    }
    const prev = this.last;
    this.last = next;
    if (isUplinkTransition(prev, next)) {
      this.o.log?.info({ up: next.up, interface: next.interface, ssid: next.ssid, address: next.address, reason: next.reason }, next.up ? 'uplink up' : 'uplink down');
      try {
        this.o.onChange?.(next, prev);
      } catch (err) {
        this.o.log?.error({ err }, 'uplink onChange failed');
      }
      // a failing listener is logged, not fatal (z2m style)
      for (const l of this.listeners('change')) {
        try {
          l(next, prev);
        } catch (err) {
          this.o.log?.error({ err }, 'uplink listener failed');
        }
      }
    }
    return next;
  }
}

export interface UplinkHooks {
  /** the uplink went away: e.g. switch the cache to serve what it has */
  down?: (status: UplinkStatus) => void;
  /** the uplink came back */
  up?: (status: UplinkStatus) => void;
}

/**
 * Wires a monitor to the relay: `uplink.up` / `uplink.down` events through `emit` (with
 * `interface`, `ssid`, `address`, `reason`), and the hooks. Returns the unsubscribe function.
 */
export function bindUplinkEvents(monitor: UplinkMonitor, emit: EmitFn, hooks: UplinkHooks = {}): () => void {
  const fn = (next: UplinkStatus, prev: UplinkStatus | undefined): void => {
    const ev = uplinkEvent(prev, next);
    if (!ev) return;
    emit(ev);
    if (ev.type === 'uplink.down') hooks.down?.(next);
    else hooks.up?.(next);
  };
  monitor.on('change', fn);
  return () => monitor.off('change', fn);
}
