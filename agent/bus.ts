/**
 * The agent's typed event bus (z2m style): services' RelayEvents go out as
 * 'relay', the tracker's client updates ({state, kind}) as 'client'; each
 * subscriber throttles `progress` updates itself (agent/clients/throttle.ts). Every listener is
 * called in its own try/catch (and a rejected promise is caught too), so one
 * failing subscriber is logged and counted, never fatal and never skipping
 * the others.
 */
import { EventEmitter } from 'node:events';
import type { RelayEvent } from '../proto/events';
import type { ClientUpdate } from './clients/record';
import type { Logger } from './log';

export type BusEvents = { relay: [RelayEvent]; client: [ClientUpdate] };

export class Bus extends EventEmitter<BusEvents> {
  /** Listener failures so far (also logged). */
  failures = 0;

  constructor(private log?: Logger) {
    super({ captureRejections: false });
    this.setMaxListeners(1000); // one pair per relayctl watch and per WebSocket feed
  }

  private queue: Array<[keyof BusEvents, unknown[]]> = [];
  private dispatching = false;

  /**
   * Delivers to every listener, each isolated. An emit from inside a listener
   * (the tracker turning an event into a client state or a client.failed) is
   * queued and delivered after the current event reached every listener, so
   * all subscribers see events in the same order.
   */
  override emit<K>(eventName: K | keyof BusEvents, ...args: K extends keyof BusEvents ? BusEvents[K] : never): boolean {
    const name = eventName as keyof BusEvents;
    const has = this.listenerCount(name) > 0;
    if (this.dispatching) {
      this.queue.push([name, args as unknown[]]);
      return has;
    }
    this.dispatching = true;
    try {
      this.deliver(name, args as unknown[]);
      for (let next = this.queue.shift(); next; next = this.queue.shift()) this.deliver(next[0], next[1]);
    } finally {
      this.dispatching = false;
      this.queue.length = 0;
    }
    return has;
  }

  private deliver(name: keyof BusEvents, args: unknown[]): void {
    const listeners = this.rawListeners(name) as Array<(...a: unknown[]) => unknown>;
    for (const fn of listeners) {
      try {
        const r = fn.apply(this, args);
        if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, (err) => this.failed(name, err));
      } catch (err) {
        this.failed(name, err);
      }
    }
  }

  /** Subscribes and returns the unsubscribe function. */
  subscribe<K extends keyof BusEvents>(event: K, fn: (...args: BusEvents[K]) => void): () => void {
    this.on(event as never, fn as never);
    return () => this.off(event as never, fn as never);
  }

  private failed(event: string, err: unknown): void {
    this.failures++;
    try {
      this.log?.error({ err, event }, 'bus listener failed');
    } catch {
      // a broken logger must not break the bus either
    }
  }
}
