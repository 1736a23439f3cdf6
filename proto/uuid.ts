/** SMBIOS / DHCP option 97 UUIDs as text: lower case 8-4-4-4-12 hex (proto/dhcp/pxe.ts formatGuid writes them so). */
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID in canonical form, or undefined (the all-zero UUID of firmware without one is not a UUID). */
export function normalizeUuid(s: string): string | undefined {
  const t = s.trim().replace(/^\{|\}$/g, '');
  if (!UUID_RE.test(t)) return undefined;
  const u = t.toLowerCase();
  return /^[0-]+$/.test(u) ? undefined : u;
}
