/** MAC addresses are normalised once, at decode: lower case, colon separated. */
export function formatMac(buf: Uint8Array, len = 6): string {
  const parts: string[] = [];
  for (let i = 0; i < len && i < buf.length; i++) parts.push(buf[i]!.toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** `aa:bb:cc:dd:ee:ff`, lower case: checked by character, nothing allocated */
function isCanonicalMac(s: string): boolean {
  if (s.length !== 17) return false;
  for (let i = 0; i < 17; i++) {
    const c = s.charCodeAt(i);
    if (i % 3 === 2) {
      if (c !== 58) return false; // ':'
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false; // 0-9 a-f
  }
  return true;
}

const MAC_RE = /^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i;

/** Accepts `52:54:00:12:34:56`, `52-54-00-12-34-56`, `525400123456`; returns the canonical form or undefined. */
export function normalizeMac(s: string): string | undefined {
  if (isCanonicalMac(s)) return s; // the common case (decoded packets, events): no allocation
  const t = s.trim();
  if (!MAC_RE.test(t)) return undefined;
  const hex = t.replace(/[:-]/g, '').toLowerCase();
  return hex.match(/../g)!.join(':');
}

export function hex32(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0');
}
