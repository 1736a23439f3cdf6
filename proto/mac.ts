/** MAC addresses are normalised once, at decode: lower case, colon separated. */
export function formatMac(buf: Uint8Array, len = 6): string {
  const parts: string[] = [];
  for (let i = 0; i < len && i < buf.length; i++) parts.push(buf[i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

const MAC_RE = /^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;

/** Accepts `52:54:00:12:34:56`, `52-54-00-12-34-56`, `525400123456`; returns the canonical form or undefined. */
export function normalizeMac(s: string): string | undefined {
  const t = s.trim();
  if (!MAC_RE.test(t)) return undefined;
  const hex = t.replace(/[:-]/g, '').toLowerCase();
  return hex.match(/../g)!.join(':');
}

export function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}
