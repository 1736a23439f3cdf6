/** An https upstream: certificates are checked; caFile trusts a private CA. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import type { Readable } from 'node:stream';
import { FileCache } from '../../relay/cache/cache';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';
import { TestUpstream } from '../helpers/upstream';
import { describeSkipIf, missingCmds } from '../helpers/skip';

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s as AsyncIterable<Buffer>) parts.push(c);
  return Buffer.concat(parts);
}

let work: string;
let up: TestUpstream;
const caches: FileCache[] = [];

function makeCache(caFile?: string): FileCache {
  const c = new FileCache({
    upstream: { url: up.url, headers: {}, timeoutMs: 5000, caFile },
    cache: { dir: fs.mkdtempSync(join(work, 'c-')), maxBytes: 1e9, ttlSeconds: 3600, negativeTtlSeconds: 60 },
    log: silentLogger,
    metrics: new Metrics(),
    emit: () => {},
  });
  caches.push(c);
  return c;
}

describeSkipIf(missingCmds('openssl'))('FileCache over https', () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(join(os.tmpdir(), 'br-https-'));
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem'), '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    up = new TestUpstream(undefined, { key: fs.readFileSync(join(work, 'key.pem')), cert: fs.readFileSync(join(work, 'cert.pem')) });
    await up.start();
    await up.addFile('tls/kernel', 'secure bytes');
  });

  afterAll(async () => {
    for (const c of caches) await c.close();
    await up?.cleanup();
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it('refuses an upstream whose certificate it cannot verify', async () => {
    const c = makeCache();
    await c.init();
    await expect(c.open('tls/kernel')).rejects.toMatchObject({ code: 'EUPSTREAM' });
    expect(up.count('tls/kernel')).toBe(0);
  });

  it('fetches through https when caFile trusts the certificate', async () => {
    const c = makeCache(join(work, 'cert.pem'));
    await c.init();
    const f = await c.open('tls/kernel');
    expect((await readAll(f.stream)).toString()).toBe('secure bytes');
  });
});
