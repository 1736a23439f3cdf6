/**
 * Upstream HTTP(S) client for the read-through cache: node:http/https only.
 * One request = one `UpstreamResponse`; redirects are followed (up to 5),
 * `timeoutMs` bounds connect, headers and every idle gap in the body.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from './config';
import { UpstreamError } from '../../proto/errors';

export interface UpstreamResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
  url: string;
}

export interface UpstreamRequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Overrides upstream.timeoutMs for this request. */
  timeoutMs?: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Encodes each path segment; keeps the `/` separators. */
export function encodePath(path: string): string {
  return path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

/**
 * Transport failures that mean "the upstream cannot be reached" (a lost uplink, a dead
 * server), as opposed to an upstream that answered and then misbehaved (a reset or hang-up
 * after connecting, a malformed response): only the former switch the cache to
 * serve-what-we-have for every file.
 */
const UNREACHABLE = new Set(['ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEOUT', 'EADDRNOTAVAIL']);

export function isUplinkFault(err: unknown): boolean {
  const code = (err as { transportCode?: string } | undefined)?.transportCode;
  return code !== undefined && UNREACHABLE.has(code);
}

export class Upstream {
  private readonly base: string;
  private httpAgent!: http.Agent;
  private httpsAgent!: https.Agent;
  private readonly ca?: Buffer;

  constructor(private readonly cfg: UpstreamConfig) {
    this.base = cfg.url.endsWith('/') ? cfg.url : cfg.url + '/';
    this.ca = cfg.caFile ? readFileSync(cfg.caFile) : undefined;
    this.makeAgents();
  }

  private makeAgents(): void {
    this.httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    // Certificate checks stay on (rejectUnauthorized defaults to true).
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32, ca: this.ca });
  }

  /**
   * The uplink is gone: drop every upstream connection, idle or busy. A request on a kept-alive
   * socket over a dead link would otherwise wait out the whole timeout; in-flight requests fail
   * now (ECONNRESET-like) and the next ones open fresh connections.
   */
  dropConnections(): void {
    const old = [this.httpAgent, this.httpsAgent];
    this.makeAgents();
    for (const a of old) a.destroy();
  }

  urlFor(path: string): string {
    return this.base + encodePath(path);
  }

  /** Any HTTP answer resolves (the caller judges the status); transport failures reject with UpstreamError(status undefined). */
  request(path: string, opts: UpstreamRequestOptions = {}): Promise<UpstreamResponse> {
    return this.requestUrl(this.urlFor(path), opts, 0);
  }

  private requestUrl(url: string, opts: UpstreamRequestOptions, hops: number, retried = false): Promise<UpstreamResponse> {
    return new Promise<UpstreamResponse>((resolve, reject) => {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        reject(new UpstreamError(`bad upstream url ${url}`, undefined, url));
        return;
      }
      const isHttps = u.protocol === 'https:';
      if (!isHttps && u.protocol !== 'http:') {
        reject(new UpstreamError(`unsupported upstream protocol ${u.protocol}`, undefined, url));
        return;
      }
      const mod = isHttps ? https : http;
      const timeoutMs = opts.timeoutMs ?? this.cfg.timeoutMs;
      const req = mod.request(u, {
        method: opts.method ?? 'GET',
        // a retry after a dead kept-alive socket goes on a fresh connection of its own (the pool may hold more dead ones)
        agent: retried ? (isHttps ? new https.Agent({ keepAlive: false, ca: this.ca }) : false) : isHttps ? this.httpsAgent : this.httpAgent,
        headers: { 'accept-encoding': 'identity', 'user-agent': 'bootrelay', ...this.cfg.headers, ...opts.headers },
        signal: opts.signal,
      });
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`upstream timeout after ${timeoutMs} ms`), { code: 'ETIMEOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the server closed while idle: GET and HEAD are idempotent,
        // so try once more on a fresh connection before calling it a failure.
        if (req.reusedSocket && !retried && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && !opts.signal?.aborted) {
          this.requestUrl(url, opts, hops, true).then(resolve, reject);
          return;
        }
        reject(new UpstreamError(`upstream ${url}: ${err.message}`, undefined, url, err.code));
      });
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const loc = res.headers.location;
        if (REDIRECTS.has(status) && loc && hops < 5) {
          res.resume();
          const next = new URL(loc, u).toString();
          this.requestUrl(next, opts, hops + 1).then(resolve, reject);
          return;
        }
        // Body errors after this point surface on `res` itself.
        res.on('error', () => {});
        resolve({ status, headers: res.headers, body: res, url });
      });
      req.end();
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** `bytes START-END/TOTAL` → numbers (TOTAL may be `*`). */
export function parseContentRange(v: string | undefined): { start: number; end: number; total?: number } | undefined {
  if (!v) return undefined;
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(v.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

export function headerOne(h: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads a small body (SHA256SUMS, scripts) up to `limit` bytes. */
export async function readSmallBody(body: http.IncomingMessage, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) {
      body.destroy();
      throw new Error(`body larger than ${limit} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}
