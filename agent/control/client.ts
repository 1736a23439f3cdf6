/**
 * Client side of the control socket (relayctl, tests): requests by id over one
 * connection, plus watch streams.
 */
import { createConnection, type Socket } from 'node:net';

export class ControlRequestError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface StreamMessage {
  id: number;
  event: string;
  data: unknown;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; onEvent?: (m: StreamMessage) => void };

export class ControlClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private streams = new Map<number, (m: StreamMessage) => void>();
  private buf = '';
  private closedErr?: Error;
  onClose?: (err?: Error) => void;

  private constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', (err) => this.close(err));
    sock.on('close', () => this.close(new Error('the agent closed the connection')));
  }

  /** Connects; rejects with the socket error (ENOENT, ECONNREFUSED, EACCES …). */
  static connect(path: string, timeoutMs = 5000): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(Object.assign(new Error('ETIMEDOUT'), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new ControlClient(sock));
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  private onData(d: string): void {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      let msg: { id?: number; ok?: boolean; result?: unknown; error?: string; code?: string; event?: string; data?: unknown };
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof msg.event === 'string' && typeof msg.id === 'number') {
        this.streams.get(msg.id)?.(msg as StreamMessage);
        continue;
      }
      const p = typeof msg.id === 'number' ? this.pending.get(msg.id) : undefined;
      if (!p) continue;
      this.pending.delete(msg.id!);
      if (msg.ok) {
        if (p.onEvent) this.streams.set(msg.id!, p.onEvent);
        p.resolve(msg.result);
      } else p.reject(new ControlRequestError(msg.error ?? 'failed', msg.code ?? 'EFAILED'));
    }
  }

  private close(err: Error): void {
    if (this.closedErr) return;
    this.closedErr = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.streams.clear();
    this.onClose?.(err);
  }

  /** Sends one command; `timeoutMs` (0: none) bounds the wait for its answer. */
  request<T = unknown>(cmd: string, args: Record<string, unknown> = {}, onEvent?: (m: StreamMessage) => void, timeoutMs = 0): Promise<T> {
    if (this.closedErr) return Promise.reject(this.closedErr);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = <A>(fn: (a: A) => void) => (a: A) => {
        if (timer) clearTimeout(timer);
        fn(a);
      };
      this.pending.set(id, { resolve: done(resolve as (v: unknown) => void), reject: done(reject), onEvent });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          if (!this.pending.delete(id)) return;
          reject(new ControlRequestError(`the agent did not answer "${cmd}" within ${+(timeoutMs / 1000).toFixed(1)} s`, 'ETIMEDOUT'));
        }, timeoutMs);
      }
      this.sock.write(JSON.stringify({ id, cmd, args }) + '\n');
    });
  }

  /** Starts a watch: resolves with the initial result; `onEvent` gets every streamed message. */
  watch<T = unknown>(args: Record<string, unknown>, onEvent: (m: StreamMessage) => void): Promise<T> {
    return this.request<T>('watch', args, onEvent);
  }

  end(): void {
    this.sock.end();
    this.sock.destroy();
  }
}
