/**
 * Reads the config file: JSON (comments and trailing commas allowed, as the
 * contract shows jsonc) or, when the file does not start with `{`, OpenWrt UCI
 * text (/etc/config/bootrelay) mapped by agent/config/uci.ts. Then validates it
 * with agent/config/schema.ts and returns the config or every issue.
 */
import { readFileSync } from 'node:fs';
import { issue, parseConfig, type ConfigIssue, type ParseResult } from './schema';
import { uciToConfigObject } from './uci';

export { parseConfig, type ConfigIssue, type ParseResult } from './schema';

/**
 * Removes // and /* *\/ comments and trailing commas outside strings, keeping
 * line breaks so JSON.parse positions still point at the right line.
 */
export function stripJsonComments(text: string): string {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i]!;
    if (ch === '"') {
      let j = i + 1;
      while (j < n && text[j] !== '"') {
        if (text[j] === '\\') j++;
        else if (text[j] === '\n') break;
        j++;
      }
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (ch === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n') i++;
    } else if (ch === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      out += text.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else if (ch === ',') {
      // trailing comma: the next significant char closes an object/array
      let j = i + 1;
      for (;;) {
        while (j < n && /\s/.test(text[j]!)) j++;
        if (text[j] === '/' && text[j + 1] === '/') {
          while (j < n && text[j] !== '\n') j++;
        } else if (text[j] === '/' && text[j + 1] === '*') {
          const e = text.indexOf('*/', j + 2);
          j = e < 0 ? n : e + 2;
        } else break;
      }
      out += text[j] === '}' || text[j] === ']' ? ' ' : ',';
      i++;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

function lineCol(text: string, pos: number): string {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `line ${line} column ${col}`;
}

/** Parses JSON(C) text or UCI text into the contract's config object. */
export function parseConfigText(
  text: string,
  file = 'config',
): { ok: true; obj: unknown; warnings?: string[] } | { ok: false; issues: ConfigIssue[] } {
  const body = text.replace(/^\uFEFF/, '');
  const first = body.replace(/^(\s|\/\/[^\n]*\n|\/\*[\s\S]*?\*\/)*/, '')[0];
  if (first === '{') {
    const clean = stripJsonComments(body);
    try {
      return { ok: true, obj: JSON.parse(clean) };
    } catch (e) {
      const msg = (e as Error).message;
      const m = /position (\d+)/.exec(msg);
      const where = m ? ` at ${lineCol(clean, Number(m[1]))}` : '';
      return { ok: false, issues: [issue('', `valid JSON in ${file}`, `a syntax error${where}: ${msg}`)] };
    }
  }
  if (first === undefined) return { ok: false, issues: [issue('', `a JSON object or UCI text in ${file}`, 'an empty file')] };
  if (first === '[' || first === '"') return { ok: false, issues: [issue('', `a JSON object in ${file}`, `a file starting with ${first}`)] };
  const r = uciToConfigObject(body);
  if (r.issues.length > 0) return { ok: false, issues: r.issues.map((s) => ({ path: /^[^:\s]+(?=:)/.exec(s)?.[0] ?? '', expected: '', got: '', message: s })) };
  return r.warnings.length ? { ok: true, obj: r.config, warnings: r.warnings } : { ok: true, obj: r.config };
}

/** Reads and validates a config file. Never throws. */
export function loadConfig(file: string): ParseResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { ok: false, issues: [issue('', `a readable config file at ${file}`, err.code ?? err.message)], warnings: [] };
  }
  const p = parseConfigText(text, file);
  if (!p.ok) return { ok: false, issues: p.issues, warnings: [] };
  const r = parseConfig(p.obj);
  // what uci silently ignores in the file comes first
  if (p.warnings) r.warnings.unshift(...p.warnings);
  return r;
}
