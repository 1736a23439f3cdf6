/**
 * What a booted system reports on `/booted?mac=…&secureboot=1&…`: the query's other
 * fields are kept (short text, a bounded number of them) and travel in the
 * `client.booted` event as `report`. Pure.
 */
export function cleanReport(q: Iterable<[string, string]>, maxFields = 16, maxLen = 256): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of q) {
    if (k === 'mac' || !/^[A-Za-z][\w.-]{0,31}$/.test(k) || Object.hasOwn(out, k)) continue;
    if (++n > maxFields) break;
    out[k] = v.replace(/[\x00-\x1f\x7f]/g, ' ').slice(0, maxLen);
  }
  return out;
}
