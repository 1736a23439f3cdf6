/**
 * The control socket relayctl talks to: a unix socket (mode 0600), one JSON
 * object per line each way.
 *
 *   request   {"id": 1, "cmd": "status", "args": {}}
 *   response  {"id": 1, "ok": true, "result": …}
 *             {"id": 1, "ok": false, "error": "message", "code": "EUSAGE"}
 *   streaming {"id": 2, "cmd": "watch", "args": {"mac": …}} is answered once with
 *             ok/result, then {"id": 2, "event": "client"|"relay", "data": …} lines
 *             follow until the connection closes (or {"cmd": "unwatch", "args": {"id": 2}}).
 *
 * The server knows no services: handlers and the watch source are injected.
 * A stale socket file (nobody listening) is replaced; a live one is an error.
 * The file is removed on stop().
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { RelayError } from '../../proto/errors';
import type { Logger } from '../log';

export class CommandError extends RelayError {
  constructor(code: 'EUSAGE' | 'ENOTFOUND' | 'EUNAVAILABLE' | 'EFAILED', message: string) {
    super(code, message);
  }
}

export type CommandHandler = (args: Record<string, unknown>) => unknown;

/** A watch subscription: call `send` for each message; return the unsubscribe function. */
export type WatchSource = (args: Record<string, unknown>, send: (event: string, data: unknown) => void) => { initial?: unknown; stop: () => void };

export interface ControlServerOptions {
  socket: string;
  handlers: Record<string, CommandHandler>;
  watch?: WatchSource;
  log: Logger;
  /** longest request line accepted (default 1 MiB) */
  maxLine?: number;
  /** a watcher whose unread output exceeds this is disconnected (default 8 MiB) */
  maxBacklog?: number;
}

interface Conn {
  sock: Socket;
  buf: string;
  watches: Map<unknown, () => void>;
}

export class ControlServer {
  private server?: Server;
  private conns = new Set<Conn>();
  private readonly maxLine: number;
  private readonly maxBacklog: number;
  private listening = false;

  constructor(private readonly o: ControlServerOptions) {
    this.maxLine = o.maxLine ?? 1 << 20;
    this.maxBacklog = o.maxBacklog ?? 8 << 20;
  }

  get path(): string {
    return this.o.socket;
  }

  /** Replaces handlers (config reload) without dropping connections. */
  setHandlers(h: Record<string, CommandHandler>): void {
    this.o.handlers = h;
  }

  async start(): Promise<void> {
    await this.clearStale();
    const server = createServer((sock) => this.onConnection(sock));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error) => reject(err);
      server.once('error', onErr);
      const old = process.umask(0o177); // the socket file is created 0600
      try {
        server.listen(this.o.socket, () => {
          server.off('error', onErr);
          resolve();
        });
      } finally {
        process.umask(old);
      }
    });
    this.listening = true;
    try {
      chmodSync(this.o.socket, 0o600);
    } catch (err) {
      this.o.log.warn({ err, socket: this.o.socket }, 'chmod of the control socket failed');
    }
    server.on('error', (err) => this.o.log.error({ err }, 'control socket error'));
  }

  /** A socket file nobody answers on is left from a crash: remove it. A live one means another agent. */
  private async clearStale(): Promise<void> {
    const p = this.o.socket;
    let st;
    try {
      st = lstatSync(p);
    } catch {
      return;
    }
    if (!st.isSocket()) throw new RelayError('EEXIST', `${p} exists and is not a socket`);
    const alive = await new Promise<boolean>((resolve) => {
      const c = createConnection(p);
      const done = (v: boolean) => {
        c.destroy();
        resolve(v);
      };
      c.once('connect', () => done(true));
      c.once('error', () => done(false));
      setTimeout(() => done(false), 1000).unref();
    });
    if (alive) throw new RelayError('EADDRINUSE', `another agent is listening on ${p}`);
    unlinkSync(p);
    this.o.log.info({ socket: p }, 'stale control socket replaced');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const c of this.conns) {
      for (const stop of c.watches.values()) stop();
      c.watches.clear();
      c.sock.destroy();
    }
    this.conns.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    if (this.listening) {
      this.listening = false;
      try {
        unlinkSync(this.o.socket);
      } catch {
        // already gone (node removes it on close on some platforms)
      }
    }
  }

  private onConnection(sock: Socket): void {
    const c: Conn = { sock, buf: '', watches: new Map() };
    this.conns.add(c);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      c.buf += d;
      let i;
      while ((i = c.buf.indexOf('\n')) >= 0) {
        const line = c.buf.slice(0, i);
        c.buf = c.buf.slice(i + 1);
        if (line.trim()) void this.onLine(c, line);
      }
      if (c.buf.length > this.maxLine) {
        this.write(c, { id: null, ok: false, error: `request line longer than ${this.maxLine} bytes`, code: 'EUSAGE' });
        sock.end();
        c.buf = '';
      }
    });
    const cleanup = () => {
      for (const stop of c.watches.values()) stop();
      c.watches.clear();
      this.conns.delete(c);
    };
    sock.on('close', cleanup);
    sock.on('error', () => cleanup());
  }

  private write(c: Conn, msg: unknown): void {
    if (c.sock.destroyed || !c.sock.writable) return;
    let line: string;
    try {
      line = JSON.stringify(msg) + '\n';
    } catch (err) {
      line = JSON.stringify({ id: (msg as { id?: unknown }).id ?? null, ok: false, error: `result not serialisable: ${(err as Error).message}`, code: 'EFAILED' }) + '\n';
    }
    c.sock.write(line);
    if (c.sock.writableLength > this.maxBacklog) {
      this.o.log.warn({ backlog: c.sock.writableLength }, 'control client not reading: disconnected');
      c.sock.destroy();
    }
  }

  private async onLine(c: Conn, line: string): Promise<void> {
    let req: { id?: unknown; cmd?: unknown; args?: unknown };
    try {
      req = JSON.parse(line);
    } catch {
      this.write(c, { id: null, ok: false, error: 'request is not JSON', code: 'EUSAGE' });
      return;
    }
    if (typeof req !== 'object' || req === null) {
      this.write(c, { id: null, ok: false, error: 'request is not a JSON object', code: 'EUSAGE' });
      return;
    }
    const id = req.id ?? null;
    const cmd = req.cmd;
    const args = (typeof req.args === 'object' && req.args !== null && !Array.isArray(req.args) ? req.args : {}) as Record<string, unknown>;
    if (typeof cmd !== 'string') {
      this.write(c, { id, ok: false, error: 'missing "cmd"', code: 'EUSAGE' });
      return;
    }
    if (cmd === 'watch') {
      this.startWatch(c, id, args);
      return;
    }
    if (cmd === 'unwatch') {
      const stop = c.watches.get(args.id);
      stop?.();
      c.watches.delete(args.id);
      this.write(c, { id, ok: true, result: { stopped: !!stop } });
      return;
    }
    const h = Object.prototype.hasOwnProperty.call(this.o.handlers, cmd) ? this.o.handlers[cmd] : undefined;
    if (!h) {
      this.write(c, { id, ok: false, error: `unknown command "${cmd}"`, code: 'EUSAGE' });
      return;
    }
    try {
      const result = await h(args);
      this.write(c, { id, ok: true, result: result ?? null });
    } catch (err) {
      const e = err as Error & { code?: unknown };
      if (!(err instanceof CommandError)) this.o.log.warn({ err, cmd }, 'control command failed');
      this.write(c, { id, ok: false, error: e?.message ?? String(err), code: typeof e?.code === 'string' ? e.code : 'EFAILED' });
    }
  }

  private startWatch(c: Conn, id: unknown, args: Record<string, unknown>): void {
    if (!this.o.watch) {
      this.write(c, { id, ok: false, error: 'watch is not available', code: 'EUNAVAILABLE' });
      return;
    }
    if (c.watches.has(id)) c.watches.get(id)!();
    try {
      // the first answer goes out before any streamed line
      let ready = false;
      const queued: unknown[] = [];
      const sub = this.o.watch(args, (event, data) => {
        const msg = { id, event, data };
        if (ready) this.write(c, msg);
        else queued.push(msg);
      });
      c.watches.set(id, sub.stop);
      this.write(c, { id, ok: true, result: sub.initial ?? null });
      ready = true;
      for (const m of queued) this.write(c, m);
    } catch (err) {
      this.write(c, { id, ok: false, error: (err as Error).message, code: err instanceof CommandError ? err.code : 'EFAILED' });
    }
  }
}
