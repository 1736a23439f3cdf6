/**
 * IPv6 addresses as text and bytes (RFC 4291 §2.2 input, RFC 5952 canonical
 * output), EUI-64 interface identifiers (RFC 4291 Appendix A) and the small
 * address arithmetic a DHCPv6 range needs. Pure.
 */

/** Parses any RFC 4291 §2.2 form (incl. an embedded IPv4 tail); undefined when it is not one. */
export function parseIp6(s: string): Buffer | undefined {
  let t = s.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const pct = t.indexOf('%');
  if (pct >= 0) t = t.slice(0, pct); // zone index: not part of the address
  if (!t || /[^0-9a-fA-F:.]/.test(t)) return undefined;
  const halves = t.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): number[] | undefined => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(p);
        if (!m) return undefined;
        const b = m.slice(1).map(Number);
        if (b.some((x) => x > 255)) return undefined;
        out.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return undefined;
      out.push(parseInt(p, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const n = head.length + tail.length;
  if (halves.length === 1 ? n !== 8 : n > 7) return undefined;
  const all = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  const b = Buffer.alloc(16);
  all.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}

export function isIp6(s: string): boolean {
  return parseIp6(s) !== undefined;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
export function formatIp6(b: Uint8Array, off = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[off + i * 2]! << 8) | b[off + i * 2 + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(g);
  return `${hex(g.slice(0, bestAt))}::${hex(g.slice(bestAt + bestLen))}`;
}

/** The canonical form of an address given as text; undefined when not IPv6. */
export function canonicalIp6(s: string): string | undefined {
  const b = parseIp6(s);
  return b ? formatIp6(b) : undefined;
}

export function ip6ToBigInt(s: string): bigint {
  const b = parseIp6(s);
  if (!b) throw new TypeError(`not an IPv6 address: ${s}`);
  return (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8);
}

export function bigIntToIp6(n: bigint): string {
  const b = Buffer.alloc(16);
  b.writeBigUInt64BE((n >> 64n) & 0xffffffffffffffffn, 0);
  b.writeBigUInt64BE(n & 0xffffffffffffffffn, 8);
  return formatIp6(b);
}

/** true when `ip` lies in `prefix/len`. */
export function inPrefix6(ip: string, prefix: string, len: number): boolean {
  const a = parseIp6(ip);
  const p = parseIp6(prefix);
  if (!a || !p || len < 0 || len > 128) return false;
  const shift = BigInt(128 - len);
  return ip6ToBigInt(ip) >> shift === ip6ToBigInt(prefix) >> shift;
}

export function isLinkLocal6(ip: string): boolean {
  return inPrefix6(ip, 'fe80::', 10);
}

/**
 * The MAC behind a modified EUI-64 interface identifier (RFC 4291 Appendix A:
 * `xx:xx:xx:ff:fe:xx:xx:xx` with the U/L bit flipped); undefined for
 * identifiers that are not EUI-64 derived (privacy or stable-opaque ones).
 */
export function macFromEui64(ip: string): string | undefined {
  const b = parseIp6(ip);
  if (!b || b[11] !== 0xff || b[12] !== 0xfe) return undefined;
  const m = [b[8]! ^ 0x02, b[9]!, b[10]!, b[13]!, b[14]!, b[15]!];
  return m.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** fe80::/64 address with the modified EUI-64 identifier of a MAC. */
export function linkLocalFromMac(mac: string): string {
  const m = mac.split(':').map((x) => parseInt(x, 16));
  const b = Buffer.alloc(16);
  b[0] = 0xfe;
  b[1] = 0x80;
  b.set([m[0]! ^ 0x02, m[1]!, m[2]!, 0xff, 0xfe, m[3]!, m[4]!, m[5]!], 8);
  return formatIp6(b);
}

/** `[v6]` for URLs (RFC 3986 §3.2.2; RFC 5970 §3.1), IPv4 unchanged. */
export function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
