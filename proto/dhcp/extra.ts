/**
 * Encoders for the extra options dnsmasq users configure (dhcp-option): NTP (42),
 * domain (15), MTU (26), domain search list (119, RFC 3397), classless static
 * routes (121, RFC 3442), vendor-encapsulated (43). Pure; they throw TypeError with
 * a message naming what is wrong, which config validation turns into an issue.
 */
import { ipToBytes, Opt } from './options';
import type { ExtraOption } from './reply';

/** The shape of dhcp.options / a profile's dhcpOptions (agent/config/types.ts DhcpOptionsConfig). */
export interface ExtraOptionsInput {
  ntp?: string[];
  domain?: string;
  mtu?: number;
  searchList?: string[];
  classlessRoutes?: Array<{ network: string; gateway: string }>;
  vendorEncapsulated?: string;
}

const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** One domain name as RFC 1035 §3.1 labels ending in the root label. */
export function encodeDomainName(name: string): Buffer {
  const n = name.replace(/\.$/, '');
  if (!n) throw new TypeError('an empty domain name');
  const parts = n.split('.');
  for (const p of parts) if (!LABEL.test(p)) throw new TypeError(`"${p}" is not a DNS label (letters, digits, "-", at most 63)`);
  const b = Buffer.concat([...parts.flatMap((p) => [Buffer.from([p.length]), Buffer.from(p, 'ascii')]), Buffer.from([0])]);
  if (b.length > 255) throw new TypeError(`${name} is longer than 255 bytes`);
  return b;
}

/** RFC 3397 §2: the search list as a sequence of encoded names (no compression; RFC 3396 splits it past 255 bytes). */
export function encodeDomainSearch(list: string[]): Buffer {
  if (!list.length) throw new TypeError('an empty search list');
  return Buffer.concat(list.map(encodeDomainName));
}

/** RFC 3442 §3: per route the prefix length, the significant octets of the destination, the router. */
export function encodeClasslessRoutes(routes: Array<{ network: string; gateway: string }>): Buffer {
  if (!routes.length) throw new TypeError('no routes');
  const parts: Buffer[] = [];
  for (const r of routes) {
    const m = /^([\d.]+)\/(\d{1,2})$/.exec(r.network);
    if (!m || Number(m[2]) > 32) throw new TypeError(`${r.network} is not a CIDR network (10.0.0.0/8)`);
    const prefix = Number(m[2]);
    const dest = ipToBytes(m[1]!);
    const sig = Math.ceil(prefix / 8);
    // host bits must be zero (RFC 3442 §3: the destination is a network)
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    if ((dest.readUInt32BE(0) & ~mask) >>> 0 !== 0) throw new TypeError(`${r.network} has host bits set`);
    parts.push(Buffer.from([prefix]), dest.subarray(0, sig), ipToBytes(r.gateway));
  }
  return Buffer.concat(parts);
}

export function parseHex(s: string): Buffer {
  const h = s.replace(/[:\s]/g, '');
  if (!/^([0-9a-fA-F]{2})+$/.test(h)) throw new TypeError('not hex bytes (01:02:ff or 0102ff)');
  return Buffer.from(h, 'hex');
}

/** The configured options as wire values, in code order. Throws TypeError (with the key) on a bad value. */
export function extraOptions(cfg: ExtraOptionsInput | undefined): ExtraOption[] {
  if (!cfg) return [];
  const out: ExtraOption[] = [];
  const at = (key: string, f: () => Buffer, code: number) => {
    try {
      out.push({ code, value: f() });
    } catch (e) {
      throw new TypeError(`${key}: ${(e as Error).message}`);
    }
  };
  if (cfg.domain !== undefined) at('domain', () => (encodeDomainName(cfg.domain!), Buffer.from(cfg.domain!.replace(/\.$/, ''), 'ascii')), Opt.DomainName);
  if (cfg.mtu !== undefined)
    at(
      'mtu',
      () => {
        // RFC 2132 §5.1: at least 68
        if (!Number.isInteger(cfg.mtu) || cfg.mtu! < 68 || cfg.mtu! > 65535) throw new TypeError('an MTU from 68 to 65535');
        const b = Buffer.alloc(2);
        b.writeUInt16BE(cfg.mtu!);
        return b;
      },
      Opt.InterfaceMtu,
    );
  if (cfg.ntp !== undefined) at('ntp', () => Buffer.concat(cfg.ntp!.map(ipToBytes)), Opt.NtpServers);
  if (cfg.vendorEncapsulated !== undefined) at('vendorEncapsulated', () => parseHex(cfg.vendorEncapsulated!), Opt.VendorSpecific);
  if (cfg.searchList !== undefined) at('searchList', () => encodeDomainSearch(cfg.searchList!), Opt.DomainSearch);
  if (cfg.classlessRoutes !== undefined) at('classlessRoutes', () => encodeClasslessRoutes(cfg.classlessRoutes!), Opt.ClasslessStaticRoute);
  return out.sort((a, b) => a.code - b.code);
}

/** Profile options over global ones, code by code. */
export function mergeExtra(global: ExtraOption[], own: ExtraOption[]): ExtraOption[] {
  const m = new Map(global.map((x) => [x.code, x]));
  for (const x of own) m.set(x.code, x);
  return [...m.values()].sort((a, b) => a.code - b.code);
}
