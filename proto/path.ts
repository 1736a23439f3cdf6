import { PathError } from './errors';

/**
 * Turns a client-supplied boot-file name (TFTP file name or the path after
 * `/files/`) into a clean relative path below `upstream.url`.
 * Contract: a leading `/` and `\` separators are accepted; `..`, NUL, drive
 * letters and anything that would escape the root are refused.
 */
export function normalizeBootPath(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new PathError('empty file name');
  if (name.length > 1024) throw new PathError('file name too long');
  if (/[\x00-\x1f\x7f]/.test(name)) throw new PathError('control character in file name');
  const s = name.replace(/\\/g, '/');
  if (/^[a-zA-Z]:/.test(s)) throw new PathError(`absolute path refused: ${name}`);
  if (s.startsWith('//')) throw new PathError(`absolute path refused: ${name}`);
  const out: string[] = [];
  for (const seg of s.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') throw new PathError(`path escape refused: ${name}`);
    out.push(seg);
  }
  if (out.length === 0) throw new PathError(`not a file: ${name}`);
  return out.join('/');
}
