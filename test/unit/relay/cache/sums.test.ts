import { describe, expect, it } from 'vitest';
import { parseSums } from '../../../../relay/cache/sums';
import { parseContentRange, encodePath } from '../../../../relay/cache/fetch';
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
