/**
 * A real upstream boot server for tests: node:http on 127.0.0.1:0 serving files from
 * a tmp dir with ETag, Last-Modified, Range, If-Range, conditional GET and HEAD.
 * Knobs to misbehave: per-request log, slow mode (bytes/s), cut the connection after
 * N bytes (once), serve an altered body, truncate the body (Content-Length stays
 * full), SHA256SUMS writer, stop/start on the same port. The benchmarks serve their
 * upstream with it too (bench/_lib/common.ts: another address, files at `/`, a line
 * per finished request with the body bytes sent).
 */
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { createHash } from 'node:crypto';
import { dirname, join, posix } from 'node:path';
import type { AddressInfo, Socket } from 'node:net';

export interface UpstreamRequestLog {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  status: number;
  /** body bytes sent */
  bytes: number;
}

export class TestUpstream {
  readonly dir: string;
  port = 0;
  private server: http.Server | undefined;
  private sockets = new Set<Socket>();
  readonly requests: UpstreamRequestLog[] = [];
  /** bytes/s for every body (0: unlimited) */
  rate = 0;
  /** path → absolute byte offset at which the connection is cut once */
  readonly cutOnce = new Map<string, number>();
  /** path → offset at which every body stops (Content-Length stays the full size) */
  readonly truncate = new Map<string, number>();
  /** path → content served instead of the file (headers still describe the file) */
  readonly alter = new Map<string, Buffer>();
  /** paths whose Range requests are answered 200 with the whole body */
  readonly ignoreRange = new Set<string>();
  /** paths sent without Content-Length (chunked) */
  readonly chunked = new Set<string>();
  /** paths answered 500 */
  readonly fail500 = new Set<string>();
  /** called once a request is over (answered, cut, or the client gone) */
  onDone?: (r: UpstreamRequestLog) => void;
  private host = '127.0.0.1';

  /** tls: serve https with this key and certificate (PEM); files are served below `prefix`. */
  constructor(
    dir?: string,
    private readonly tls?: { key: Buffer | string; cert: Buffer | string },
    readonly prefix = '/boot/',
  ) {
    this.dir = dir ?? fs.mkdtempSync(join(os.tmpdir(), 'br-upstream-'));
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://${this.host}:${this.port}${this.prefix}`;
  }

  async start(port = this.port, host = this.host): Promise<void> {
    this.host = host;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch(() => res.destroy());
    };
    const server: http.Server = this.tls ? https.createServer({ key: this.tls.key, cert: this.tls.cert }, handler) : http.createServer(handler);
    server.on(this.tls ? 'secureConnection' : 'connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Closes the kept-alive connections that are idle now (the server side of a keep-alive timeout). */
  dropIdle(): void {
    this.server?.closeIdleConnections();
  }

  /** Stops listening and cuts every open connection (uplink down). */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((r) => s.close(() => r()));
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  async addFile(path: string, content: Buffer | string, mtime?: Date): Promise<Buffer> {
    const p = join(this.dir, path);
    await fsp.mkdir(dirname(p), { recursive: true });
    const buf = typeof content === 'string' ? Buffer.from(content) : content;
    await fsp.writeFile(p, buf);
    if (mtime) await fsp.utimes(p, mtime, mtime);
    return buf;
  }

  /** Writes `<dir>/SHA256SUMS` listing the given files (names relative to dir) with their real hashes, or overrides. */
  async writeSums(dir: string, names: string[], override: Record<string, string> = {}): Promise<void> {
    const lines: string[] = [];
    for (const n of names) {
      const full = join(this.dir, dir, n);
      const h = override[n] ?? createHash('sha256').update(await fsp.readFile(full)).digest('hex');
      lines.push(`${h}  ${n}`);
    }
    await this.addFile(posix.join(dir, 'SHA256SUMS'), lines.join('\n') + '\n');
  }

  /** Requests for one path (relative to /boot/), optionally by method. */
  count(path: string, method?: string): number {
    return this.requests.filter((r) => r.path === path && (!method || r.method === method)).length;
  }

  rangeRequests(path: string): UpstreamRequestLog[] {
    return this.requests.filter((r) => r.path === path && r.headers.range);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = (req.url ?? '/').split('?')[0]!;
    const method = req.method ?? 'GET';
    const entry: UpstreamRequestLog = { method, path: '', headers: req.headers, status: 0, bytes: 0 };
    this.requests.push(entry);
    res.once('close', () => this.onDone?.(entry));
    const reply = (status: number, headers: http.OutgoingHttpHeaders = {}, body?: string) => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(method === 'HEAD' ? undefined : body);
    };
    if (!raw.startsWith(this.prefix)) return reply(404);
    const rel = decodeURIComponent(raw.slice(this.prefix.length));
    entry.path = rel;
    if (rel.split('/').includes('..')) return reply(403);
    if (this.fail500.has(rel)) return reply(500, {}, 'boom');
    const file = join(this.dir, rel);
    let st: fs.Stats;
    try {
      st = await fsp.stat(file);
      if (!st.isFile()) throw new Error('not a file');
    } catch {
      return reply(404, { 'content-type': 'text/plain' }, 'not found');
    }
    const size = st.size;
    const etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const lastModified = new Date(Math.floor(st.mtimeMs / 1000) * 1000).toUTCString();
    const base = { etag, 'last-modified': lastModified, 'accept-ranges': 'bytes' };
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if (inm ? inm === etag : ims ? Date.parse(ims) >= Date.parse(lastModified) : false) return reply(304, base);

    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = req.headers.range;
    const ifRange = req.headers['if-range'];
    const rangeOk = !ifRange || ifRange === etag || ifRange === lastModified;
    if (range && rangeOk && !this.ignoreRange.has(rel)) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range);
      if (m && (m[1] || m[2])) {
        if (m[1]) {
          start = Number(m[1]);
          if (m[2]) end = Math.min(Number(m[2]), size - 1);
        } else {
          start = Math.max(0, size - Number(m[2]));
        }
        if (start >= size) return reply(416, { ...base, 'content-range': `bytes */${size}` });
        status = 206;
      }
    }
    const headers: http.OutgoingHttpHeaders = { ...base, 'content-length': end - start + 1, 'content-type': 'application/octet-stream' };
    if (status === 206) headers['content-range'] = `bytes ${start}-${end}/${size}`;
    if (this.chunked.has(rel)) delete headers['content-length'];
    entry.status = status;
    res.writeHead(status, headers);
    if (method === 'HEAD') return void res.end();
    await this.sendBody(rel, file, res, start, end, entry);
  }

  private async sendBody(rel: string, file: string, res: http.ServerResponse, start: number, end: number, entry: UpstreamRequestLog): Promise<void> {
    const altered = this.alter.get(rel);
    let cut = this.cutOnce.get(rel);
    if (cut !== undefined && cut > start) this.cutOnce.delete(rel);
    else cut = undefined;
    const trunc = this.truncate.get(rel);
    const stopAt = Math.min(cut ?? Infinity, trunc ?? Infinity);
    const fh = await fsp.open(file, 'r');
    let closed = false;
    res.on('close', () => (closed = true));
    try {
      const chunk = this.rate > 0 ? Math.max(1024, Math.min(64 * 1024, Math.floor(this.rate / 20))) : 64 * 1024;
      const t0 = Date.now();
      let sent = 0;
      let pos = start;
      while (pos <= end && !closed) {
        if (pos >= stopAt) {
          res.socket?.destroy();
          return;
        }
        const n = Math.min(chunk, end - pos + 1, stopAt - pos);
        let buf: Buffer;
        if (altered) buf = altered.subarray(pos, pos + n);
        else {
          buf = Buffer.allocUnsafe(n);
          const { bytesRead } = await fh.read(buf, 0, n, pos);
          buf = buf.subarray(0, bytesRead);
        }
        if (buf.length === 0) break;
        pos += buf.length;
        sent += buf.length;
        entry.bytes += buf.length;
        if (!res.write(buf))
          await new Promise<void>((r) => {
            const done = () => {
              res.off('drain', done);
              res.off('close', done);
              r();
            };
            res.on('drain', done);
            res.on('close', done);
          });
        if (this.rate > 0) {
          const due = t0 + (sent / this.rate) * 1000;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
      }
      if (!closed) {
        if (pos >= stopAt && pos <= end) res.socket?.destroy();
        else res.end();
      }
    } finally {
      await fh.close();
    }
  }
}
