/** A FileCache as the tests make one: over a test upstream, in its own dir, silent, no events. */
import { FileCache, type FileCacheOptions } from '../../relay/cache/cache';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';

/** `over` replaces any option; call init() before use. */
export function testCache(upstreamUrl: string, dir: string, over: Partial<FileCacheOptions> = {}): FileCache {
  return new FileCache({
    upstream: { url: upstreamUrl, headers: {}, timeoutMs: 5000 },
    cache: { dir, maxBytes: 1e9, ttlSeconds: 3600, negativeTtlSeconds: 60 },
    log: silentLogger,
    metrics: new Metrics(),
    emit: () => {},
    ...over,
  });
}
