/**
 * Upstream HTTP(S) client for the read-through cache: node:http/https only.
 * One request = one `UpstreamResponse`; redirects are followed (up to 5),
 * `timeoutMs` bounds connect, headers and every idle gap in the body.
 */
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { UpstreamConfig } from '../../agent/config/types';
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

export class Upstream {
  private readonly base: string;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  private readonly httpsAgent: https.Agent;

  constructor(private readonly cfg: UpstreamConfig) {
    this.base = cfg.url.endsWith('/') ? cfg.url : cfg.url + '/';
    const ca = cfg.caFile ? readFileSync(cfg.caFile) : undefined;
    // Certificate checks stay on (rejectUnauthorized defaults to true).
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 32, ca });
  }

  urlFor(path: string): string {
    return this.base + encodePath(path);
  }

  /** Any HTTP answer resolves (the caller judges the status); transport failures reject with UpstreamError(status undefined). */
  request(path: string, opts: UpstreamRequestOptions = {}): Promise<UpstreamResponse> {
    return this.requestUrl(this.urlFor(path), opts, 0);
  }

  private requestUrl(url: string, opts: UpstreamRequestOptions, hops: number): Promise<UpstreamResponse> {
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
        agent: isHttps ? this.httpsAgent : this.httpAgent,
        headers: { 'accept-encoding': 'identity', 'user-agent': 'bootrelay', ...this.cfg.headers, ...opts.headers },
        signal: opts.signal,
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`upstream timeout after ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new UpstreamError(`upstream ${url}: ${err.message}`, undefined, url)));
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
