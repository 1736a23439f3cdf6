/**
 * A dgram `lookup` that answers IP literals at once.
 *
 * dgram's send() resolves its destination through `lookup` even for an
 * address literal, and dns.lookup answers a literal on the next tick: the
 * datagram leaves only after everything else the current callback does (for a
 * DHCP reply: the events, the tracker, the logs). With this lookup the
 * literal comes back synchronously and send() hands the datagram to the
 * kernel there and then. Names (never used by the services) still go to
 * dns.lookup.
 */
import dns from 'node:dns';
import { isIP } from 'node:net';

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

export function literalLookup(host: string, options: number | dns.LookupOneOptions, cb: LookupCallback): void {
  const family = isIP(host);
  if (family) {
    cb(null, host, family);
    return;
  }
  const opts: dns.LookupOneOptions = typeof options === 'number' ? { family: options } : options;
  dns.lookup(host, opts, cb);
}
