import { describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseSums, SumsStore, SUMS_DIRS_MAX } from '../../../../relay/cache/sums';
import { parseContentRange, encodePath, Upstream } from '../../../../relay/cache/fetch';
import { ifRangeValidator } from '../../../../relay/cache/fill';

const H = 'ab'.repeat(32);

describe('parseSums', () => {
  it('reads sha256sum text and binary lines, ./ prefixes, and skips junk', () => {
    const m = parseSums(`${H}  vmlinuz\n${H.toUpperCase()} *initrd.img\n${H}  ./boot/x\nnot a line\n\n`);
    expect([...m.entries()]).toEqual([
      ['vmlinuz', H],
      ['initrd.img', H],
      ['boot/x', H],
    ]);
  });
});

describe('fetch helpers', () => {
  it('parses Content-Range', () => {
    expect(parseContentRange('bytes 10-19/100')).toEqual({ start: 10, end: 19, total: 100 });
    expect(parseContentRange('bytes 10-19/*')).toEqual({ start: 10, end: 19, total: undefined });
    expect(parseContentRange('bytes */100')).toBeUndefined();
    expect(parseContentRange(undefined)).toBeUndefined();
  });
  it('encodes path segments but keeps slashes', () => {
    expect(encodePath('a b/c?d/e#f')).toBe('a%20b/c%3Fd/e%23f');
  });
  it('uses a strong ETag for If-Range, else Last-Modified', () => {
    expect(ifRangeValidator('"x"', 'Mon')).toBe('"x"');
    expect(ifRangeValidator('W/"x"', 'Mon')).toBe('Mon');
    expect(ifRangeValidator(undefined, undefined)).toBeUndefined();
  });
});

describe('SumsStore', () => {
  it('remembers a bounded number of directories however many paths clients ask for', async () => {
    let asked = 0;
    const srv = http.createServer((_req, res) => {
      asked++;
      res.writeHead(404, { 'content-length': 0 });
      res.end();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const up = new Upstream({ url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}/`, headers: {}, timeoutMs: 5000 });
    try {
      const sums = new SumsStore(up, 3_600_000, Date.now);
      const n = SUMS_DIRS_MAX + 40;
      for (let i = 0; i < n; i++) expect(await sums.expected(`d${i}/vmlinuz`)).toBeUndefined();
      expect(asked).toBe(n);
      expect(sums.size).toBe(SUMS_DIRS_MAX);
      // the most recent directories are still known (no new request)
      await sums.expected(`d${n - 1}/initrd`);
      expect(asked).toBe(n);
    } finally {
      up.close();
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
