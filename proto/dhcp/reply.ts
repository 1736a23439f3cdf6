/**
 * Pure reply builders: request + decision → DhcpMessage (RFC 2131 §4.3.1, table 3;
 * PXE 2.1 §2.2 for proxyDHCP). No I/O: relay/dhcp/policy decides, these only shape.
 */
import type { ArchKey, FileRole } from '../events';
import { Opt, MessageType, OptionMap } from './options';
import { encodeDhcpFit, replyTo, type DhcpMessage, type EncodeResult } from './packet';
import { DiscoveryControl, encodeIpxeOptions, encodePxeOptions, IpxeSub, PxeSub, decodeSubOptions, type ClientClass } from './pxe';

/** What a client is told to boot. */
export interface BootChoice {
  /** the BOOTP `file` / option 67 value: a TFTP path or an http:// URL */
  file: string;
  /** the path relative to upstream.url (loaders) or the HTTP path ('/boot.ipxe') */
  path: string;
  role: FileRole;
  /** 'tftp' (siaddr + option 66 name the TFTP server) or 'http' */
  via: 'tftp' | 'http';
  /** index of the loader in boot.loaders[arch] (fallbacks) */
  loaderIndex?: number;
  /** option 60 to echo: PXEClient for PXE, HTTPClient for UEFI HTTP boot */
  vendorClass?: 'PXEClient' | 'HTTPClient';
  /** iPXE: send 175.176 = 1 (no-pxedhcp) */
  ipxeNoProxyDhcp?: boolean;
  /** BIOS PXE: option 43 with PXE_DISCOVERY_CONTROL */
  discoveryControl?: number;
  /** BIOS PXE: a boot menu (option 43 sub-options 6, 8, 9, 10) instead of discoveryControl */
  pxeMenu?: PxeMenu;
  /** the boot file's size in bytes, when known (option 13, RFC 2132 §3.7) */
  size?: number;
}

/** A PXE boot menu (PXE 2.1 §2.4.3 / Intel PXE spec table 2-1, option 43 sub-options 6, 8, 9, 10). */
export interface PxeMenu {
  prompt: string;
  /** seconds the prompt waits (0: the first item at once, 255: wait for a key) */
  timeout: number;
  /** type 0 is "local boot"; the others are boot server types answered by this server */
  items: Array<{ type: number; label: string }>;
  /**
   * PXE_DISCOVERY_CONTROL: default 2 (no multicast: the ROM broadcasts its choice to port 67,
   * where a DHCP server hears it); 3 makes it unicast to the boot server list on 4011 (proxyDHCP)
   */
  discoveryControl?: number;
}

export interface ServerParams {
  /** our address on the LAN: siaddr, option 54 */
  serverIp: string;
  subnetMask: string;
  router?: string;
  dns: string[];
  leaseSeconds: number;
  /** configured extra options (dhcp.options / a profile's dhcpOptions): code → value, with their rule */
  extra?: ExtraOption[];
}

/** One configured option: sent when the client's parameter request list asks for it (or has none), or always when `force`. */
export interface ExtraOption {
  code: number;
  value: Buffer;
  force?: boolean;
}

export interface LeaseDecision {
  yiaddr: string;
  server: ServerParams;
  boot?: BootChoice;
}

export function httpBase(lanAddress: string, httpPort: number): string {
  return httpPort === 80 ? `http://${lanAddress}` : `http://${lanAddress}:${httpPort}`;
}

export function ipxeScriptUrl(lanAddress: string, httpPort: number, mac: string): string {
  return `${httpBase(lanAddress, httpPort)}/boot.ipxe?mac=${mac}`;
}

export interface BootParams {
  lanAddress: string;
  httpPort: number;
  tftpEnabled: boolean;
  loaders: Record<string, string[]>;
  ipxeNoProxyDhcp: boolean;
}

/**
 * What to boot, from the client's class: iPXE → the script URL; UEFI HTTP → an
 * http:// URL to the loader; firmware PXE → the loader over TFTP.
 * `undefined` with `missing` set: no loader for this arch (or TFTP off).
 */
export function chooseBoot(cls: ClientClass, p: BootParams, loaderIndex = 0): { boot?: BootChoice; missing?: string } {
  if (cls.isIpxe) {
    return {
      boot: {
        file: ipxeScriptUrl(p.lanAddress, p.httpPort, cls.mac),
        path: '/boot.ipxe',
        role: 'script',
        via: 'http',
        // no PXEClient echo: with it, iPXE goes on to ask for ProxyDHCP (proxy offers add it)
        ipxeNoProxyDhcp: p.ipxeNoProxyDhcp,
      },
    };
  }
  if (!cls.isPxe && !cls.isHttpClient) return {};
  const list = loadersFor(p.loaders, cls.arch);
  if (list.length === 0) return { missing: `no loader for arch ${cls.arch}${cls.archCode !== undefined ? ` (${cls.archCode})` : ''}` };
  const i = Math.min(loaderIndex, list.length - 1);
  const path = list[i]!;
  if (cls.isHttpClient) {
    // RFC 3986 §2.1: option 67 is a URI: a space or a '#' in a path must go out percent-encoded
    return { boot: { file: `${httpBase(p.lanAddress, p.httpPort)}/files/${encodeUriPath(path)}`, path, role: 'loader', via: 'http', loaderIndex: i, vendorClass: 'HTTPClient' } };
  }
  if (!p.tftpEnabled) return { missing: 'TFTP is off: firmware PXE cannot fetch a loader' };
  return {
    boot: {
      file: path,
      path,
      role: 'loader',
      via: 'tftp',
      loaderIndex: i,
      // BIOS PXE ROMs (PXE 2.1): PXEClient echoed, option 43 says "boot the file named here".
      // UEFI (EDK2 PxeBcDhcp4.c): an offer with PXEClient but no discovery options is a
      // "BINL" offer, which EDK2 follows with a REQUEST to port 4011 for the boot file;
      // a plain DHCP offer with a boot file is booted directly (the dnsmasq capture).
      // Proxy offers always carry PXEClient (buildProxyOffer).
      vendorClass: cls.firmware === 'bios' ? 'PXEClient' : undefined,
      discoveryControl: cls.firmware === 'bios' ? DiscoveryControl.UseBootFile : undefined,
    },
  };
}

/** Each path segment percent-encoded (RFC 3986 §3.3: pchar), '/' kept. */
export function encodeUriPath(path: string): string {
  return path
    .split('/')
    .map((seg) => encodeURIComponent(seg).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()))
    .join('/');
}

export function loadersFor(loaders: Record<string, string[] | string>, arch: ArchKey): string[] {
  const v = loaders[arch];
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

/** Option 43 for a BIOS PXE boot menu: discovery control, our boot servers, the menu and its prompt. */
export function encodePxeMenu(menu: PxeMenu, serverIp: string): Buffer {
  const served = menu.items.filter((i) => i.type !== 0);
  return encodePxeOptions({
    // no multicast discovery; broadcast (to our port 67) stays allowed so the ROM asks us for the chosen item
    discoveryControl: menu.discoveryControl ?? DiscoveryControl.DisableMulticast,
    bootServers: served.length ? served.map((i) => ({ type: i.type, ips: [serverIp] })) : undefined,
    bootMenu: menu.items.map((i) => ({ type: i.type, description: i.label.slice(0, 255) })),
    menuPrompt: { timeout: Math.max(0, Math.min(255, menu.timeout)), prompt: menu.prompt.slice(0, 254) },
  });
}

function applyBoot(r: DhcpMessage, req: DhcpMessage, boot: BootChoice, serverIp: string): void {
  const o = r.options;
  if (boot.vendorClass) o.setStr(Opt.VendorClassIdentifier, boot.vendorClass); // PXE 2.1 §2.2: echo
  if (boot.pxeMenu) o.set(Opt.VendorSpecific, encodePxeMenu(boot.pxeMenu, serverIp));
  else if (boot.discoveryControl !== undefined) o.set(Opt.VendorSpecific, encodePxeOptions({ discoveryControl: boot.discoveryControl }));
  if (boot.via === 'tftp') o.setStr(Opt.TftpServerName, serverIp);
  o.setStr(Opt.BootFileName, boot.file);
  // RFC 2132 §3.7: the boot file's size in 512-octet blocks (EDK2 can skip its tsize probe)
  if (boot.size !== undefined && boot.via === 'tftp' && boot.size > 0) o.setU16(Opt.BootFileSize, Math.min(0xffff, Math.ceil(boot.size / 512)));
  // the BOOTP file field: what PXE ROMs actually read (RFC 2131 §2: a NUL-terminated string
  // in 128 bytes); a longer name goes in option 67 only (config validation keeps BIOS loader
  // paths within 127 bytes, since a BIOS PXE ROM reads nothing else)
  r.file = Buffer.byteLength(boot.file, 'latin1') <= 127 ? boot.file : '';
  if (boot.ipxeNoProxyDhcp) o.set(Opt.IpxeEncapsulated, encodeIpxeOptions([[IpxeSub.NoPxeDhcp, Buffer.from([1])]]));
  const uuid = req.options.get(Opt.ClientMachineId);
  if (uuid && boot.vendorClass) o.set(Opt.ClientMachineId, uuid); // PXE 2.1: servers echo the client's GUID
}

function leaseOptions(r: DhcpMessage, s: ServerParams, withLease: boolean): void {
  const o = r.options;
  o.setIp(Opt.ServerIdentifier, s.serverIp);
  if (withLease) {
    o.setU32(Opt.LeaseTime, s.leaseSeconds);
    o.setU32(Opt.RenewalTime, Math.floor(s.leaseSeconds / 2)); // RFC 2131 §4.4.5 T1 = 0.5
    o.setU32(Opt.RebindingTime, Math.floor(s.leaseSeconds * 0.875)); // T2 = 0.875
  }
  o.setIp(Opt.SubnetMask, s.subnetMask);
  if (s.router) o.setIp(Opt.Router, s.router);
  if (s.dns.length) o.setIps(Opt.DomainNameServer, s.dns);
}

function base(req: DhcpMessage, type: number): DhcpMessage {
  const r = replyTo(req);
  r.options.setU8(Opt.MessageType, type);
  // RFC 6842 §3: a client identifier the client sent comes back unchanged in OFFER, ACK and NAK
  const id = req.options.get(Opt.ClientIdentifier);
  if (id) r.options.set(Opt.ClientIdentifier, id);
  // RFC 3046 §2.2: the relay agent information comes back as it came (encodeReply puts it last)
  const rai = req.options.get(Opt.RelayAgentInformation);
  if (rai && req.giaddr !== '0.0.0.0') r.options.set(Opt.RelayAgentInformation, rai);
  return r;
}

/** Adds the configured extra options the client asked for (PRL) or that are forced; a boot's option 43 wins. */
function applyExtra(r: DhcpMessage, req: DhcpMessage, extra: ExtraOption[] | undefined): void {
  if (!extra?.length) return;
  const prl = req.options.get(Opt.ParameterRequestList);
  for (const x of extra) {
    if (r.options.has(x.code) && (x.code === Opt.VendorSpecific || x.code === Opt.MessageType || x.code === Opt.ServerIdentifier)) continue;
    if (x.force || !prl || prl.includes(x.code)) r.options.set(x.code, x.value);
  }
}

export function buildOffer(req: DhcpMessage, d: LeaseDecision): DhcpMessage {
  const r = base(req, MessageType.OFFER);
  r.yiaddr = d.yiaddr;
  r.siaddr = d.server.serverIp;
  leaseOptions(r, d.server, true);
  if (d.boot) applyBoot(r, req, d.boot, d.server.serverIp);
  applyExtra(r, req, d.server.extra);
  return r;
}

export function buildAck(req: DhcpMessage, d: LeaseDecision): DhcpMessage {
  const r = base(req, MessageType.ACK);
  r.yiaddr = d.yiaddr;
  r.ciaddr = req.ciaddr;
  r.siaddr = d.server.serverIp;
  leaseOptions(r, d.server, true);
  if (d.boot) applyBoot(r, req, d.boot, d.server.serverIp);
  applyExtra(r, req, d.server.extra);
  return r;
}

/** RFC 2131 §3.4: ACK to an INFORM: no yiaddr, no lease time. */
export function buildInformAck(req: DhcpMessage, d: Omit<LeaseDecision, 'yiaddr'>): DhcpMessage {
  const r = base(req, MessageType.ACK);
  r.ciaddr = req.ciaddr;
  r.siaddr = d.server.serverIp;
  leaseOptions(r, d.server, false);
  if (d.boot) applyBoot(r, req, d.boot, d.server.serverIp);
  applyExtra(r, req, d.server.extra);
  return r;
}

export function buildNak(req: DhcpMessage, serverIp: string, message?: string): DhcpMessage {
  const r = base(req, MessageType.NAK);
  r.options.setIp(Opt.ServerIdentifier, serverIp);
  if (message) r.options.setStr(Opt.Message, message);
  // RFC 2131 §4.3.2: a NAK through a relay must be broadcast by it
  if (req.giaddr !== '0.0.0.0') r.flags |= 0x8000;
  return r;
}

function proxyBase(req: DhcpMessage, type: number, serverIp: string, boot: BootChoice | undefined): DhcpMessage {
  const r = base(req, type);
  r.siaddr = serverIp;
  r.options.setIp(Opt.ServerIdentifier, serverIp);
  // PXE 2.1 §2.2: a proxyDHCP offer names itself PXEClient (HTTPClient for UEFI HTTP Boot, which takes proxy URI offers too)
  const vc = boot?.vendorClass === 'HTTPClient' ? 'HTTPClient' : 'PXEClient';
  r.options.setStr(Opt.VendorClassIdentifier, vc);
  if (boot) applyBoot(r, req, { ...boot, vendorClass: vc }, serverIp);
  const uuid = req.options.get(Opt.ClientMachineId);
  if (uuid) r.options.set(Opt.ClientMachineId, uuid);
  return r;
}

/** proxyDHCP offer on port 67 (PXE 2.1 §2.2.5): no yiaddr, no lease. */
export function buildProxyOffer(req: DhcpMessage, serverIp: string, boot: BootChoice | undefined): DhcpMessage {
  return proxyBase(req, MessageType.OFFER, serverIp, boot);
}

/** Boot-server ACK on port 4011 (PXE 2.1 §2.2.6): unicast to the client, echoes its PXE_BOOT_ITEM. */
export function buildProxyAck(req: DhcpMessage, serverIp: string, boot: BootChoice | undefined): DhcpMessage {
  const r = proxyBase(req, MessageType.ACK, serverIp, boot);
  r.ciaddr = req.ciaddr;
  const v43 = req.options.get(Opt.VendorSpecific);
  if (v43) {
    try {
      const item = decodeSubOptions(v43).find(([c]) => c === PxeSub.BootItem);
      if (item) {
        const mine = r.options.get(Opt.VendorSpecific);
        const subs = mine ? decodeSubOptions(mine) : [];
        subs.push(item);
        r.options.set(Opt.VendorSpecific, Buffer.concat([...subs.flatMap(([c, v]) => [Buffer.from([c, v.length]), v]), Buffer.from([255])]));
      }
    } catch {
      /* a broken option 43 from the client: answer without the echo */
    }
  }
  return r;
}

export function prefixToMask(prefix: number): string {
  const n = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}


// ---------------------------------------------------------------------------
// Fitting a reply into what the client takes (RFC 2131 §2, RFC 2132 §9.10, §9.3)

/** RFC 791 / RFC 2131 §2: every host takes a 576-byte IP datagram: 548 bytes of DHCP. */
export const MIN_DHCP_DATAGRAM = 576;
const IP_UDP_HEADERS = 28;
/** We never send more than fits an Ethernet frame unfragmented. */
const MAX_DHCP_PAYLOAD = 1500 - IP_UDP_HEADERS;

/**
 * The largest DHCP message (UDP payload) the client takes: option 57 (RFC 2132 §9.10, which
 * counts the IP and UDP headers, as ISC dhcpd and dnsmasq read it), never under 576.
 */
export function maxReplySize(req: DhcpMessage): number {
  const v = req.options.get(Opt.MaxMessageSize);
  const mms = v && v.length === 2 ? v.readUInt16BE(0) : 0;
  return Math.min(MAX_DHCP_PAYLOAD, Math.max(MIN_DHCP_DATAGRAM, mms) - IP_UDP_HEADERS);
}

/** The datagram size of a reply encoded plainly (options field only, RFC 3396 splitting counted). */
function encodedSize(m: DhcpMessage): number {
  let n = 240 + 1;
  for (const [, v] of m.options) n += v.length === 0 ? 2 : v.length + 2 * Math.ceil(v.length / 255);
  return n;
}

/** Options a reply never goes without (in this order), before those the client listed. */
const ESSENTIAL = [
  Opt.MessageType,
  Opt.ServerIdentifier,
  Opt.LeaseTime,
  Opt.ClientIdentifier,
  Opt.SubnetMask,
  Opt.Router,
  Opt.VendorClassIdentifier,
  Opt.VendorSpecific,
  Opt.TftpServerName,
  Opt.BootFileName,
  Opt.IpxeEncapsulated,
  Opt.ClientMachineId,
  Opt.Message,
];

/**
 * Encodes a reply within the client's maximum message size. A reply that fits goes out as
 * built (option 82 last, RFC 3046 §2.2). One that does not is ordered by importance for this
 * client (the essential ones, then its parameter request list in its order, RFC 2132 §9.8,
 * then the rest; option 82 last of all) and spills into file/sname (option overload, RFC 2132
 * §9.3), the least important left out when even that is not enough.
 */
export function encodeReply(reply: DhcpMessage, req: DhcpMessage): EncodeResult {
  const max = maxReplySize(req);
  const rai = reply.options.get(Opt.RelayAgentInformation);
  if (encodedSize(reply) <= max) {
    // it fits: the options go out in the order they were built, option 82 moved last
    if (!rai) return encodeDhcpFit(reply);
    const o = new OptionMap();
    for (const [c, v] of reply.options) if (c !== Opt.RelayAgentInformation) o.set(c, v);
    o.set(Opt.RelayAgentInformation, rai);
    return encodeDhcpFit({ ...reply, options: o });
  }
  const prl = req.options.get(Opt.ParameterRequestList) ?? Buffer.alloc(0);
  const rank = new Map<number, number>();
  ESSENTIAL.forEach((c, i) => rank.set(c, i));
  [...prl].forEach((c, i) => {
    if (!rank.has(c)) rank.set(c, 100 + i);
  });
  rank.set(Opt.RelayAgentInformation, 10_000);
  const codes = reply.options.codes();
  const order = codes.map((c, i) => ({ c, k: rank.get(c) ?? 1000 + i })).sort((a, b) => a.k - b.k);
  const opts = new OptionMap();
  for (const { c } of order) opts.set(c, reply.options.get(c)!);
  const ordered = { ...reply, options: opts };
  const fit = encodeDhcpFit(ordered, { maxSize: max });
  // echoes the client or its relay made huge (61, 82) can crowd out the message type itself:
  // then the whole reply goes out over the limit rather than as no DHCP message at all
  if (fit.dropped.includes(Opt.MessageType) || fit.dropped.includes(Opt.ServerIdentifier)) return { ...encodeDhcpFit(ordered), dropped: [] };
  return fit;
}
