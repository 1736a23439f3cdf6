/**
 * HttpService: the relay's LAN-side HTTP server (node:http).
 *
 *   /files/<path>      GET/HEAD through the FileSource, Range (206/416), ETag, If-None-Match (304)
 *   /boot.ipxe?mac=    the client's iPXE script (generated, or the profile's upstream script)
 *   /booted?mac=       GET or POST: emits client.booted — the only state change on the LAN side
 *   /api/status, /api/clients   read-only JSON
 *   /api/events        WebSocket live feed (ws, noServer)
 *   /dashboard/        the dashboard page
 *   /metrics           Prometheus text
 */
import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { extname, join } from 'node:path';
import { pipeline } from 'node:stream';
import type { Duplex, Readable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, WebSocket } from 'ws';
import type { BootPlan } from '../boot/plan';
import type { Logger } from 'pino';
import type { EmitFn } from '../../proto/events';
import { normalizeMac } from '../../proto/mac';
import { normalizeBootPath } from '../../proto/path';
import { cleanReport } from './report';
import type { Metrics } from '../metrics';
import type { FileSource, OpenedFile } from '../source';
import { renderBootScript, renderFailScript } from './ipxe-script';

export interface HttpServiceOptions {
  address: string;
  /** also listen on this IPv6 address (same port) */
  address6?: string;
  port: number;
  source: FileSource;
  log: Logger;
  metrics: Metrics;
  emit: EmitFn;
  macForIp: (ip: string) => string | undefined;
  /** which profile a client boots (/boot.ipxe) */
  plan: Pick<BootPlan, 'profileFor'>;
  api: { status(): unknown; clients(): unknown[] };
  subscribe: (fn: (msg: unknown) => void) => () => void;
  /** Static files for /dashboard/ (index.html and its assets). */
  dashboardDir?: string;
  /** The dashboard page served at /dashboard/ (wins over dashboardDir/index.html). */
  dashboardHtml?: string;
  /** Base URL written into generated scripts; default: from the request's Host header. */
  publicUrl?: string;
  /** WebSocket clients whose unsent bytes exceed this are dropped (default 1 MiB). */
  wsMaxBuffered?: number;
  /** Live-feed (WebSocket) clients at most; more are answered 503 (default 32). */
  wsMaxClients?: number;
  /** Open connections at most; more are closed at once (default 256: each holds a descriptor, the router has few). */
  maxConnections?: number;
}

type PathClass = 'files' | 'boot.ipxe' | 'booted' | 'api' | 'events' | 'dashboard' | 'metrics' | 'other';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.ipxe': 'text/plain; charset=utf-8',
  '.cfg': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  // EDK2 HttpBootDxe (HttpBootCheckImageType) decides the image type by these exact
  // Content-Types first, by the URL's extension only when the type says nothing
  '.efi': 'application/efi',
  '.iso': 'application/vnd.efi-iso',
  '.img': 'application/vnd.efi-img',
};

/**
 * Splits a request target into path and query. Absolute-form (RFC 9112 §3.2.2,
 * `GET http://host/files/x`) gives its path and its authority, which replaces
 * Host. Empty segments (`//`) in the path are only separators: they collapse,
 * so `//host/x` is a path, never an authority.
 */
export function splitTarget(url: string): { path: string; query: string; authority?: string } {
  let rest = url;
  let authority: string | undefined;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)(.*)$/s.exec(url);
  if (abs) {
    authority = abs[1]!.replace(/^[^@]*@/, '');
    rest = abs[2]!.startsWith('/') ? abs[2]! : `/${abs[2]!}`;
  }
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  const path = (q >= 0 ? rest.slice(0, q) : rest).replace(/\/{2,}/g, '/');
  return { path, query: q >= 0 ? rest.slice(q + 1) : '', ...(authority !== undefined ? { authority } : {}) };
}

const BUILTIN_DASHBOARD = `<!doctype html><html><head><meta charset="utf-8"><title>bootrelay</title></head>
<body><h1>bootrelay</h1><p><a href="/api/status">status</a> · <a href="/api/clients">clients</a> · <a href="/metrics">metrics</a></p>
<pre id="log"></pre><script>
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/events');
ws.onmessage = (m) => { const l = document.getElementById('log'); l.textContent = m.data + '\\n' + l.textContent.slice(0, 20000); };
</script></body></html>`;

const PROGRESS_MS = 250;

/** Parses one `bytes=` range; multiple or malformed ranges are ignored (RFC 9110 §14.2). */
export function parseRange(h: string | undefined): { start?: number; end?: number; suffix?: number } | undefined {
  if (!h) return undefined;
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(h);
  if (!m || (!m[1] && !m[2])) return undefined;
  if (!m[1]) return { suffix: Number(m[2]) };
  const start = Number(m[1]);
  const end = m[2] ? Number(m[2]) : undefined;
  if (end !== undefined && end < start) return undefined;
  return { start, end };
}

/**
 * pipeline(src, res, cb) that also hands each chunk back to the source
 * (`release`) once its socket write has completed, so a reader can reuse its
 * buffers: with 20 clients, waiting for the garbage collector to free them
 * costs tens of MiB of RSS. `cb` runs once: after 'finish', or with the error
 * (the source is then destroyed; the caller destroys the response).
 */
function pumpTo(src: Readable, res: http.ServerResponse, release: ((c: Buffer) => void) | undefined, cb: (err?: Error) => void): void {
  let done = false;
  const finish = (err?: Error) => {
    if (done) return;
    done = true;
    src.off('data', onData);
    res.off('drain', onDrain);
    if (err) src.destroy();
    cb(err);
  };
  const onData = (c: Buffer) => {
    const ok = release ? res.write(c, () => release(c)) : res.write(c);
    if (!ok) src.pause();
  };
  const onDrain = () => src.resume();
  src.on('data', onData);
  res.on('drain', onDrain);
  src.once('end', () => res.end());
  src.once('error', (err) => finish(err));
  res.once('error', (err) => finish(err));
  res.once('finish', () => finish());
  res.once('close', () => {
    if (!res.writableFinished) finish(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
  });
}

function cleanIp(a: string | undefined): string {
  if (!a) return '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function etagMatches(inm: string, etag: string): boolean {
  if (inm.trim() === '*') return true;
  const strip = (t: string) => t.trim().replace(/^W\//, '');
  return inm.split(',').some((t) => strip(t) === strip(etag));
}

export class HttpService {
  private server: http.Server | undefined;
  private server6: http.Server | undefined;
  private wss: WebSocketServer | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly log: Logger;
  private boundPort = 0;

  constructor(private readonly o: HttpServiceOptions) {
    this.log = o.log.child({ component: 'http' });
  }

  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const m = this.o.metrics;
    m.declare('bootrelay_http_requests_total', 'counter', 'HTTP requests by path class and status');
    m.declare('bootrelay_http_refused_total', 'counter', 'HTTP requests refused by reason (path escape, bad encoding, bad request)');
    m.declare('bootrelay_http_bytes_total', 'counter', 'Body bytes sent for /files and scripts');
    const server = http.createServer((req, res) => this.onRequest(req, res));
    server.keepAliveTimeout = 15_000;
    server.maxConnections = this.o.maxConnections ?? 256;
    server.on('clientError', (err, socket) => {
      m.inc('bootrelay_http_refused_total', { reason: 'bad-request' });
      this.log.debug({ err: err.message }, 'bad request');
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
    wss.on('connection', (ws) => {
      ws.on('error', () => {});
      ws.on('message', () => {}); // read-only feed: what clients send is ignored
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = splitTarget(req.url ?? '').path;
      if (path !== '/api/events') {
        m.inc('bootrelay_http_requests_total', { path: 'other', status: 404 });
        socket.destroy();
        return;
      }
      if (wss.clients.size >= (this.o.wsMaxClients ?? 32)) {
        // every client costs memory and a send per event: the LAN cannot open them without bound
        m.inc('bootrelay_http_requests_total', { path: 'events', status: 503 });
        socket.on('error', () => {});
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        m.inc('bootrelay_http_requests_total', { path: 'events', status: 101 });
        wss.emit('connection', ws, req);
      });
    });
    const max = this.o.wsMaxBuffered ?? 1024 * 1024;
    this.unsubscribe = this.o.subscribe((msg) => {
      if (wss.clients.size === 0) return;
      let text: string;
      try {
        text = JSON.stringify(msg);
      } catch {
        return;
      }
      for (const ws of wss.clients) {
        if (ws.readyState !== WebSocket.OPEN) continue;
        if (ws.bufferedAmount > max) {
          m.inc('bootrelay_http_ws_dropped_total', {}, 1, 'Slow WebSocket clients dropped');
          ws.terminate();
          continue;
        }
        ws.send(text);
      }
    });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.o.port, this.o.address, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      // a port that cannot be bound (a reload to a busy port): nothing may stay subscribed
      this.unsubscribe?.();
      this.unsubscribe = undefined;
      wss.close();
      throw err;
    }
    server.on('error', (err) => this.log.error({ err }, 'http server error'));
    this.server = server;
    this.wss = wss;
    this.boundPort = (server.address() as AddressInfo).port;
    if (this.o.address6) await this.listen6(server);
    this.log.info({ address: this.o.address, address6: this.o.address6, port: this.boundPort }, 'http listening');
  }

  private retry6?: NodeJS.Timeout;

  /**
   * The same handlers on a second listener: the IPv6 LAN address, same port. An address still
   * in duplicate address detection (EADDRNOTAVAIL) costs no IPv4 service: tried again every 2 s.
   */
  private async listen6(server: http.Server): Promise<void> {
    const s6 = http.createServer();
    s6.keepAliveTimeout = server.keepAliveTimeout;
    s6.maxConnections = server.maxConnections;
    for (const ev of ['request', 'clientError', 'upgrade'] as const) for (const l of server.listeners(ev)) s6.on(ev, l as (...a: unknown[]) => void);
    try {
      await new Promise<void>((resolve, reject) => {
        s6.once('error', reject);
        s6.listen({ port: this.boundPort, host: this.o.address6, ipv6Only: true }, () => {
          s6.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL' && this.server === server) {
        this.log.warn({ address6: this.o.address6 }, 'IPv6 address not usable yet: HTTP over IPv6 waits for it');
        this.retry6 = setTimeout(() => {
          this.retry6 = undefined;
          if (this.server === server && !this.server6) this.listen6(server).catch((e) => this.log.error({ err: e }, 'HTTP over IPv6 not started'));
        }, 2000);
        this.retry6.unref();
        return;
      }
      await this.stop();
      throw err;
    }
    if (this.server !== server) {
      s6.close(); // stopped meanwhile
      return;
    }
    s6.on('error', (err) => this.log.error({ err }, 'http server error'));
    this.server6 = s6;
  }

  async stop(): Promise<void> {
    if (this.retry6) clearTimeout(this.retry6);
    this.retry6 = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    for (const ws of this.wss?.clients ?? []) ws.terminate();
    this.wss?.close();
    this.wss = undefined;
    const servers = [this.server, this.server6];
    this.server = this.server6 = undefined;
    for (const s of servers) {
      if (!s) continue;
      await new Promise<void>((r) => {
        s.close(() => r());
        s.closeAllConnections();
      });
    }
  }

  // ---- routing ---------------------------------------------------------------

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    try {
      this.route(req, res);
    } catch (err) {
      // A throwing hook (api, macForIp, plan …) costs one request, never the server.
      this.log.error({ err, url: req.url }, 'request failed');
      if (!res.headersSent) this.text(res, 500, 'internal error\n');
      else res.destroy();
    }
  }

  private route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/';
    const target = splitTarget(url);
    const rawPath = target.path;
    const query = new URLSearchParams(target.query);
    // RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host
    if (target.authority) req.headers.host = target.authority;
    const ip = cleanIp(req.socket.remoteAddress);
    let cls: PathClass = 'other';
    res.on('finish', () => this.o.metrics.inc('bootrelay_http_requests_total', { path: cls, status: res.statusCode }));
    res.on('close', () => {
      if (!res.writableFinished) this.o.metrics.inc('bootrelay_http_requests_total', { path: cls, status: 'aborted' });
    });
    const done = (p: Promise<void>) =>
      p.catch((err) => {
        this.log.error({ err, url }, 'request failed');
        if (!res.headersSent) this.text(res, 500, 'internal error\n');
        else res.destroy();
      });
    if (rawPath.startsWith('/files/')) {
      cls = 'files';
      return void done(this.serveFiles(req, res, rawPath.slice('/files/'.length), ip));
    }
    // GRUB started by UEFI HTTP Boot asks for its config below its prefix, (http,<relay>)/grub/
    if (rawPath.startsWith('/grub/')) {
      cls = 'files';
      return void done(this.serveFiles(req, res, rawPath.slice(1), ip));
    }
    switch (rawPath) {
      case '/boot.ipxe':
        cls = 'boot.ipxe';
        return void done(this.serveBootScript(req, res, query, ip));
      case '/booted':
        cls = 'booted';
        return this.serveBooted(req, res, query, ip);
      case '/api/status':
      case '/api/clients':
        cls = 'api';
        if (!this.onlyGet(req, res)) return;
        return this.json(res, rawPath === '/api/status' ? this.o.api.status() : this.o.api.clients());
      case '/api/events':
        cls = 'events';
        return this.text(res, 426, 'WebSocket upgrade required\n', { upgrade: 'websocket', connection: 'Upgrade' });
      case '/metrics':
        cls = 'metrics';
        if (!this.onlyGet(req, res)) return;
        return this.send(res, 200, this.o.metrics.render(), 'text/plain; version=0.0.4; charset=utf-8', req.method === 'HEAD');
      case '/dashboard':
        cls = 'dashboard';
        res.writeHead(301, { location: '/dashboard/', 'content-length': 0 });
        return void res.end();
      case '/':
        cls = 'dashboard';
        res.writeHead(302, { location: '/dashboard/', 'content-length': 0 });
        return void res.end();
    }
    if (rawPath.startsWith('/dashboard/')) {
      cls = 'dashboard';
      return void done(this.serveDashboard(req, res, rawPath.slice('/dashboard/'.length)));
    }
    req.resume();
    this.text(res, 404, 'not found\n');
  }

  private onlyGet(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (req.method === 'GET' || req.method === 'HEAD') return true;
    req.resume();
    this.text(res, 405, 'method not allowed\n', { allow: 'GET, HEAD' });
    return false;
  }

  private send(res: http.ServerResponse, status: number, body: string, type: string, head = false, extra: http.OutgoingHttpHeaders = {}): void {
    const buf = Buffer.from(body);
    res.writeHead(status, { 'content-type': type, 'content-length': buf.length, 'cache-control': 'no-store', ...extra });
    res.end(head ? undefined : buf);
  }

  private text(res: http.ServerResponse, status: number, body: string, extra: http.OutgoingHttpHeaders = {}): void {
    this.send(res, status, body, 'text/plain; charset=utf-8', false, extra);
  }

  private json(res: http.ServerResponse, v: unknown): void {
    this.send(res, 200, JSON.stringify(v), 'application/json');
  }

  private refuse(res: http.ServerResponse, status: number, reason: string, msg: string): void {
    this.o.metrics.inc('bootrelay_http_refused_total', { reason });
    this.text(res, status, msg + '\n');
  }

  // ---- /files ----------------------------------------------------------------

  private async serveFiles(req: http.IncomingMessage, res: http.ServerResponse, rel: string, ip: string): Promise<void> {
    if (!this.onlyGet(req, res)) return;
    let decoded: string;
    try {
      decoded = decodeURIComponent(rel);
    } catch {
      return this.refuse(res, 400, 'bad-encoding', 'bad percent-encoding');
    }
    let path: string;
    try {
      path = normalizeBootPath(decoded);
    } catch (err) {
      this.log.debug({ ip, path: rel, err: (err as Error).message }, 'path refused');
      return this.refuse(res, 403, 'path', 'path refused');
    }
    const mac = this.o.macForIp(ip);
    await this.serveSourceFile(req, res, path, ip, mac, 'files');
  }

  private async serveSourceFile(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
    ip: string,
    mac: string | undefined,
    kind: 'files' | 'script',
  ): Promise<void> {
    const head = req.method === 'HEAD';
    let range = kind === 'files' ? parseRange(req.headers.range as string | undefined) : undefined;
    const ac = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    let opened: OpenedFile;
    try {
      opened = await this.o.source.open(path, { mac, signal: ac.signal, start: range?.start, end: range?.end });
      const ifRange = req.headers['if-range'];
      const needSize = range?.suffix !== undefined || (range && opened.size === undefined) || (range && opened.size === 0);
      // RFC 9110 §13.1.5: If-Range needs a strong validator match (a weak ETag never matches)
      const ifRangeFails = range && ifRange && !((ifRange === opened.etag && !ifRange.startsWith('W/')) || ifRange === opened.lastModified);
      if (range && (needSize || ifRangeFails)) {
        // Reopen knowing the size (suffix range) or without the range (If-Range mismatch, unknown size).
        opened.stream.destroy();
        if (ifRangeFails || opened.size === undefined || opened.size === 0) range = undefined;
        else {
          const size = opened.size;
          const n = Math.min(range.suffix!, size);
          if (n === 0) {
            res.writeHead(416, { 'content-range': `bytes */${size}`, 'content-length': 0 });
            return void res.end();
          }
          range = { start: size - n, end: size - 1 };
        }
        opened = await this.o.source.open(path, { mac, signal: ac.signal, start: range?.start, end: range?.end });
      }
    } catch (err) {
      return this.openFailed(res, err, path, ip, mac);
    }
    if (ac.signal.aborted) {
      opened.stream.destroy();
      return;
    }
    const size = opened.size;
    const headers: http.OutgoingHttpHeaders = {
      'content-type': TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream',
      'x-cache': opened.cache,
    };
    if (kind === 'files') headers['accept-ranges'] = 'bytes';
    if (opened.etag) headers.etag = opened.etag;
    if (opened.lastModified) headers['last-modified'] = opened.lastModified;
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    const notModified = inm
      ? !!opened.etag && etagMatches(inm, opened.etag)
      : !!ims && !!opened.lastModified && Date.parse(opened.lastModified) <= Date.parse(ims);
    if (kind === 'files' && notModified) {
      opened.stream.destroy();
      delete headers['content-type'];
      res.writeHead(304, headers);
      return void res.end();
    }
    let status = 200;
    let length = size;
    if (range && size !== undefined) {
      const start = range.start ?? 0;
      const end = Math.min(range.end ?? size - 1, size - 1);
      status = 206;
      length = end - start + 1;
      headers['content-range'] = `bytes ${start}-${end}/${size}`;
    }
    if (length !== undefined) headers['content-length'] = length;
    res.writeHead(status, headers);
    if (head) {
      opened.stream.destroy();
      return void res.end();
    }
    const file = path;
    const t0 = Date.now();
    const rangeText = status === 206 ? String(headers['content-range']).slice(6) : undefined;
    this.o.emit({ type: 'http.start', mac, ip, file, totalBytes: size, ...(rangeText ? { range: rangeText } : {}) });
    let bytes = 0;
    let last = t0;
    opened.stream.on('data', (c: Buffer) => {
      bytes += c.length;
      const now = Date.now();
      if (now - last >= PROGRESS_MS) {
        last = now;
        this.o.emit({ type: 'http.progress', mac, ip, file, bytes, totalBytes: size });
      }
    });
    pumpTo(opened.stream, res, opened.release, (err) => {
      this.o.metrics.inc('bootrelay_http_bytes_total', {}, bytes);
      if (err) {
        // Never end a body normally after a source error: the client must see a failed transfer.
        res.destroy();
        const msg = (err as Error).message;
        this.log.warn({ mac, ip, file, bytes, err: msg }, 'transfer failed');
        // the client closing the connection aborts the source (ac); anything else failed on our side
        const reason = ac.signal.aborted || (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE' ? 'aborted' : 'upstream-error';
        this.o.emit({ type: 'http.error', mac, ip, file, bytes, totalBytes: size, reason, error: msg });
      } else {
        this.o.emit({ type: 'http.done', mac, ip, file, bytes, totalBytes: size, ms: Date.now() - t0 });
      }
    });
  }

  private openFailed(res: http.ServerResponse, err: unknown, path: string, ip: string, mac: string | undefined): void {
    const e = err as { code?: string; message?: string; size?: number; status?: number };
    let status = 500;
    const extra: http.OutgoingHttpHeaders = {};
    switch (e.code) {
      case 'ENOENT':
        status = 404;
        break;
      case 'ERANGE':
        status = 416;
        extra['content-range'] = `bytes */${e.size ?? 0}`;
        break;
      case 'EPATH':
        status = 403;
        break;
      case 'EUPSTREAM':
        status = 502;
        break;
      default:
        if (e.code === 'ABORT_ERR') return;
    }
    if (status >= 500) this.log.warn({ mac, ip, file: path, err: e.message }, 'open failed');
    const reason = status === 404 ? 'not-found' : status === 403 ? 'refused' : 'upstream-error';
    if (status !== 416) this.o.emit({ type: 'http.error', mac, ip, file: path, reason, error: e.message ?? String(err), status });
    if (res.headersSent || res.destroyed) return;
    this.text(res, status, (status === 404 ? 'not found' : status === 416 ? 'range not satisfiable' : status === 502 ? 'upstream failed' : 'error') + '\n', extra);
  }

  // ---- /boot.ipxe, /booted ---------------------------------------------------

  private baseUrl(req: http.IncomingMessage): string {
    if (this.o.publicUrl) return this.o.publicUrl.replace(/\/+$/, '');
    const host = req.headers.host;
    // a bare IPv6 address (no brackets) cannot name a port: use the address we were reached on
    if (host && /^[A-Za-z0-9.\-:[\]]+$/.test(host) && (host.startsWith('[') || (host.match(/:/g)?.length ?? 0) < 2)) return `http://${host}`;
    // no Host header: the address the client reached us on (so an IPv6 client gets IPv6 URLs)
    const local = cleanIp(req.socket.localAddress).split('%')[0] || this.o.address;
    const a = local.includes(':') ? `[${local}]` : local;
    return this.boundPort === 80 ? `http://${a}` : `http://${a}:${this.boundPort}`;
  }

  private async serveBootScript(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams, ip: string): Promise<void> {
    if (!this.onlyGet(req, res)) return;
    const qmac = query.get('mac');
    const mac = (qmac ? normalizeMac(qmac) : undefined) ?? this.o.macForIp(ip);
    const r = this.o.plan.profileFor(mac);
    const type = 'text/plain; charset=utf-8';
    if (!r) {
      this.log.warn({ mac, ip }, 'no profile for client');
      this.o.emit({ type: 'http.error', mac, ip, file: '/boot.ipxe', reason: 'no-profile', error: 'no profile' });
      return this.send(res, 200, renderFailScript(`no boot profile for ${mac ?? ip}`), type, req.method === 'HEAD');
    }
    if (r.profile.script) {
      let path: string;
      try {
        path = normalizeBootPath(r.profile.script);
      } catch (err) {
        return this.send(res, 200, renderFailScript(`bad script path in profile ${r.name}`), type);
      }
      return this.serveSourceFile(req, res, path, ip, mac, 'script');
    }
    const body = renderBootScript({ profileName: r.name, profile: r.profile, baseUrl: this.baseUrl(req), mac });
    const t0 = Date.now();
    this.o.emit({ type: 'http.start', mac, ip, file: '/boot.ipxe', profile: r.name, totalBytes: body.length });
    this.send(res, 200, body, type, req.method === 'HEAD');
    this.o.emit({ type: 'http.done', mac, ip, file: '/boot.ipxe', profile: r.name, bytes: body.length, totalBytes: body.length, ms: Date.now() - t0 });
  }

  private serveBooted(req: http.IncomingMessage, res: http.ServerResponse, query: URLSearchParams, ip: string): void {
    if (req.method !== 'GET' && req.method !== 'POST') {
      req.resume();
      return this.text(res, 405, 'method not allowed\n', { allow: 'GET, POST' });
    }
    // A report body is not needed; read (and drop) a little of it, never more.
    let seen = 0;
    req.on('data', (c: Buffer) => {
      seen += c.length;
      if (seen > 64 * 1024) req.destroy();
    });
    const qmac = query.get('mac');
    const mac = qmac ? normalizeMac(qmac) : this.o.macForIp(ip);
    if (!mac) return this.refuse(res, 400, 'bad-mac', 'mac missing or malformed');
    // what the booted system reports (secureboot=0|1, its address, kernel …) is kept with the event
    const report = cleanReport(query);
    this.log.info({ mac, ip, ...(Object.keys(report).length ? { report } : {}) }, 'client booted');
    this.o.emit({ type: 'client.booted', mac, ip, ...(Object.keys(report).length ? { report } : {}), ...(report.secureboot !== undefined ? { secureboot: report.secureboot } : {}) });
    this.text(res, 200, 'ok\n');
  }

  // ---- /dashboard/ -----------------------------------------------------------

  private async serveDashboard(req: http.IncomingMessage, res: http.ServerResponse, rel: string): Promise<void> {
    if (!this.onlyGet(req, res)) return;
    const head = req.method === 'HEAD';
    const html = 'text/html; charset=utf-8';
    if (rel === '' || rel === 'index.html') {
      if (this.o.dashboardHtml !== undefined) return this.send(res, 200, this.o.dashboardHtml, html, head);
      if (!this.o.dashboardDir) return this.send(res, 200, BUILTIN_DASHBOARD, html, head);
      rel = 'index.html';
    }
    if (!this.o.dashboardDir) return this.text(res, 404, 'not found\n');
    let path: string;
    try {
      path = normalizeBootPath(decodeURIComponent(rel));
    } catch {
      return this.refuse(res, 403, 'path', 'path refused');
    }
    const file = join(this.o.dashboardDir, path);
    let st: fs.Stats;
    try {
      st = await fsp.stat(file);
      if (!st.isFile()) throw new Error('not a file');
    } catch {
      if (path === 'index.html') return this.send(res, 200, BUILTIN_DASHBOARD, html, head);
      return this.text(res, 404, 'not found\n');
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream', 'content-length': st.size });
    if (head) return void res.end();
    pipeline(fs.createReadStream(file), res, () => {});
  }
}
