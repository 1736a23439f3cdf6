/** The cache's options (config sections `upstream` and `cache`). */
export interface UpstreamConfig {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** CA bundle file for https upstreams (optional). */
  caFile?: string;
}

export interface CacheConfig {
  dir: string;
  maxBytes: number;
  /** Seconds a cached file is trusted before it is revalidated with the upstream. */
  ttlSeconds: number;
  /** Seconds an upstream 404 is remembered. */
  negativeTtlSeconds: number;
}
