/**
 * DHCPv6 server policy: request + client class → the reply to send and the
 * lease changes to make durable first. Pure apart from the lease store's
 * memory (holds and lookups); relay/dhcp6/service.ts does the I/O.
 *
 * RFC 8415 §16 (which messages a server accepts), §18.3 (how it answers),
 * RFC 5970 §3 (boot-file URL; IPv6 literals in brackets), and what EDK2's
 * PXEv6 expects (PxeBcDhcp6.c PxeBcParseDhcp6Packet: an offer is a PXE offer
 * when its vendor class has enterprise 343 and "PXEClient"; one without a
 * usable IA_NA is a proxy offer, after which the firmware sends a REQUEST for
 * the boot file to the URL's server on port 4011).
 */
import type { ArchKey, Dhcp6IgnoreReason, FileRole } from '../../proto/events';
import { urlHost } from '../../proto/dhcp6/addr';
import type { Client6 } from '../../proto/dhcp6/classify';
import {
  decodeIa,
  decodeIaAddr,
  encodeIa,
  encodeIaAddr,
  encodeStatus,
  encodeVendorClass,
  ENTERPRISE_INTEL,
  Msg6,
  Opt6,
  Options6,
  Status6,
  u32Buf,
  type Ia,
} from '../../proto/dhcp6/options';
import type { Dhcp6Message } from '../../proto/dhcp6/packet';
import { inPrefix6 } from '../../proto/dhcp6/addr';
import type { Lease6Store } from './leases';

export type Dhcp6SentEvent = 'dhcp6.advertise' | 'dhcp6.reply';

export interface Boot6 {
  /** the boot-file URL (option 59) */
  url: string;
  /** path relative to upstream.url (loaders) or the HTTP path ('/boot.ipxe') */
  path: string;
  role: FileRole;
  via: 'tftp' | 'http';
  /** vendor class to send back */
  vendorClass?: { enterprise: number; data: string };
}

export interface LeaseOp {
  op: 'commit' | 'release' | 'decline';
  iaid: number;
  ip: string;
}

export type Decision6 =
  | { kind: 'ignore'; reason: Dhcp6IgnoreReason; detail?: string }
  | {
      kind: 'reply';
      reply: Dhcp6Message;
      event: Dhcp6SentEvent;
      /** lease changes to make durable before the reply goes out */
      ops: LeaseOp[];
      /** the address(es) the client gets (or keeps) */
      ips: string[];
      boot?: Boot6;
      /** a status other than Success the reply carries (for the event) */
      status?: 'NoAddrsAvail' | 'NotOnLink';
      side: Array<{ type: 'dhcp6.no-loader'; detail: string } | { type: 'dhcp6.pool-exhausted'; range: [string, string] }>;
    };

export interface Policy6Context {
  mode: 'server' | 'stateless';
  /** 'proxy': the datagram came to the boot-service port (4011) */
  via: 'dhcp' | 'proxy';
  serverDuid: Buffer;
  address6: string;
  prefix6: number;
  httpPort: number;
  tftpPort: number;
  tftpEnabled: boolean;
  loaders: Record<string, string[] | string>;
  leaseSeconds: number;
  preference: number;
  /** dhcp6.range (for the pool-exhausted event) */
  range: [string, string];
  leases: Lease6Store;
}

function loaderList(loaders: Record<string, string[] | string>, arch: ArchKey): string[] {
  const v = loaders[arch];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function httpBase6(address6: string, httpPort: number): string {
  return `http://${urlHost(address6)}${httpPort === 80 ? '' : `:${httpPort}`}`;
}

/** What the client is told to boot (RFC 5970 §3.1 URL), or why not. */
export function chooseBoot6(c: Client6, ctx: Pick<Policy6Context, 'address6' | 'httpPort' | 'tftpPort' | 'tftpEnabled' | 'loaders'>, proxy = false): { boot?: Boot6; missing?: string } {
  const http = httpBase6(ctx.address6, ctx.httpPort);
  if (c.firmware === 'ipxe') {
    return { boot: { url: `${http}/boot.ipxe${c.mac ? `?mac=${c.mac}` : ''}`, path: '/boot.ipxe', role: 'script', via: 'http' } };
  }
  if (c.firmware === 'other') return {};
  const list = loaderList(ctx.loaders, c.arch);
  const path = list[0];
  if (!path) return { missing: `no loader for arch ${c.arch}${c.archCode !== undefined ? ` (${c.archCode})` : ''}` };
  if (c.firmware === 'uefi-http') {
    // EDK2 HttpBootDhcp6.c: the offer must echo "HTTPClient" in the vendor class
    return { boot: { url: `${http}/files/${path}`, path, role: 'loader', via: 'http', vendorClass: { enterprise: c.vendorEnterprise ?? ENTERPRISE_INTEL, data: 'HTTPClient' } } };
  }
  if (!ctx.tftpEnabled) return { missing: 'TFTP is off: firmware PXE cannot fetch a loader' };
  const port = ctx.tftpPort === 69 ? '' : `:${ctx.tftpPort}`;
  // EDK2: "PXEClient" with an address is a BINL offer, which the firmware follows with a
  // REQUEST to port 4011 before it boots; without it, an offer with a boot-file URL is
  // booted directly. So only proxy ADVERTISEs (no address) and 4011 replies carry it.
  const vendorClass = proxy ? { enterprise: ENTERPRISE_INTEL, data: 'PXEClient' } : undefined;
  return { boot: { url: `tftp://${urlHost(ctx.address6)}${port}/${path}`, path, role: 'loader', via: 'tftp', vendorClass } };
}

const ignore = (reason: Dhcp6IgnoreReason, detail?: string): Decision6 => ({ kind: 'ignore', reason, detail });

function lifetimes(ctx: Policy6Context): { t1: number; t2: number; valid: number } {
  const valid = ctx.leaseSeconds;
  return { valid, t1: Math.floor(valid / 2), t2: Math.floor((valid * 4) / 5) };
}

function iaWith(ia: Ia, t: { t1: number; t2: number }, addrs: Array<{ ip: string; valid: number }>, status?: [number, string]): Buffer {
  const options = new Options6();
  for (const a of addrs) options.add(Opt6.IaAddr, encodeIaAddr({ address: a.ip, preferred: a.valid, valid: a.valid, options: new Options6() }));
  if (status) options.add(Opt6.StatusCode, encodeStatus(status[0], status[1]));
  return encodeIa({ code: ia.code, iaid: ia.iaid, t1: addrs.length ? t.t1 : 0, t2: addrs.length ? t.t2 : 0, options });
}

function addrsOf(ia: Ia): string[] {
  return ia.options.all(Opt6.IaAddr).map((d) => decodeIaAddr(d).address);
}

export function decide6(msg: Dhcp6Message, c: Client6, ctx: Policy6Context): Decision6 {
  const o = msg.options;
  const t = msg.type;
  if (t === Msg6.ADVERTISE || t === Msg6.REPLY || t === Msg6.RECONFIGURE || t === Msg6.RELAY_REPL) return ignore('not-a-request', `message ${t}`);
  const cid = o.get(Opt6.ClientId);
  const sid = o.get(Opt6.ServerId);
  const ours = sid !== undefined && sid.equals(ctx.serverDuid);
  const needsSid = t === Msg6.REQUEST || t === Msg6.RENEW || t === Msg6.DECLINE || t === Msg6.RELEASE;
  // RFC 8415 §16.2–§16.12
  if (t !== Msg6.INFORMATION_REQUEST && !cid) return ignore('no-client-id');
  if (needsSid && !ours) return ignore(sid ? 'other-server' : 'no-server-id');
  if ((t === Msg6.SOLICIT || t === Msg6.REBIND || t === Msg6.CONFIRM) && sid) return ignore('server-id-present');
  if (t === Msg6.INFORMATION_REQUEST && sid && !ours) return ignore('other-server');
  if (t === Msg6.SOLICIT && c.rapidCommit && ctx.via === 'proxy') return ignore('rapid-commit-on-proxy-port');

  const side: Extract<Decision6, { kind: 'reply' }>['side'] = [];
  const b = chooseBoot6(c, ctx, ctx.mode === 'stateless' || ctx.via === 'proxy');
  if (b.missing && (t === Msg6.SOLICIT || t === Msg6.INFORMATION_REQUEST)) side.push({ type: 'dhcp6.no-loader', detail: b.missing });
  const boot = b.boot;

  const reply = (type: number): Dhcp6Message => {
    const r = new Options6();
    if (cid) r.add(Opt6.ClientId, cid);
    r.add(Opt6.ServerId, ctx.serverDuid);
    return { type, xid: msg.xid, options: r };
  };
  const addBoot = (r: Dhcp6Message) => {
    if (!boot) return;
    r.options.add(Opt6.BootFileUrl, Buffer.from(boot.url, 'utf8'));
    if (boot.vendorClass) r.options.add(Opt6.VendorClass, encodeVendorClass({ enterprise: boot.vendorClass.enterprise, data: [boot.vendorClass.data] }));
  };
  const duid = c.duid?.hex ?? '';
  const lt = lifetimes(ctx);
  const ias = o.list.filter((x) => x.code === Opt6.IaNa || x.code === Opt6.IaTa || x.code === Opt6.IaPd).map((x) => decodeIa(x.code, x.data));

  // ---- boot-service port (4011): EDK2's request after a proxy ADVERTISE
  if (ctx.via === 'proxy') {
    if (t !== Msg6.REQUEST && t !== Msg6.INFORMATION_REQUEST) return ignore('not-boot-service', `message ${t} on the boot-service port`);
    if (!boot) return ignore('not-a-boot-client', c.reasons.join('; '));
    const r = reply(Msg6.REPLY);
    addBoot(r);
    return { kind: 'reply', reply: r, event: 'dhcp6.reply', ops: [], ips: [], boot, side };
  }

  if (t === Msg6.INFORMATION_REQUEST) {
    const r = reply(Msg6.REPLY);
    addBoot(r);
    r.options.add(Opt6.InfoRefreshTime, u32Buf(Math.max(600, lt.valid)));
    return { kind: 'reply', reply: r, event: 'dhcp6.reply', ops: [], ips: [], boot, side };
  }

  if (ctx.mode === 'stateless') {
    // no addresses here: a boot client's SOLICIT gets a proxy ADVERTISE (boot URL, PXEClient, no address)
    if (t !== Msg6.SOLICIT) return ignore('stateless', `message ${t} needs a stateful server`);
    if (!boot) return ignore('stateless', 'not a boot client');
    // What EDK2 takes for a proxy offer (PxeBcDhcp6.c, Dhcp6Io.c), not RFC 8415 §18.3.9's
    // NoAddrsAvail: no IA at all (an IA makes it a "BINL" address offer) and no status other
    // than Success (Dhcp6SeekStsOption drops the whole ADVERTISE), and no Preference (255 would
    // make the firmware take it at once instead of waiting for the address server's ADVERTISE).
    const r = reply(Msg6.ADVERTISE);
    addBoot(r);
    return { kind: 'reply', reply: r, event: 'dhcp6.advertise', ops: [], ips: [], boot, side };
  }

  switch (t) {
    case Msg6.SOLICIT:
    case Msg6.REQUEST: {
      const commit = t === Msg6.REQUEST || c.rapidCommit;
      const r = reply(commit ? Msg6.REPLY : Msg6.ADVERTISE);
      if (!commit) r.options.add(Opt6.Preference, Buffer.from([ctx.preference]));
      if (commit && t === Msg6.SOLICIT) r.options.add(Opt6.RapidCommit, Buffer.alloc(0));
      const ops: LeaseOp[] = [];
      const ips: string[] = [];
      let granted = 0;
      const iaOpts: Array<[number, Buffer]> = [];
      for (const ia of ias) {
        if (ia.code !== Opt6.IaNa) {
          iaOpts.push([ia.code, iaWith(ia, lt, [], [ia.code === Opt6.IaPd ? Status6.NoPrefixAvail : Status6.NoAddrsAvail, 'only IA_NA is served'])]);
          continue;
        }
        const ip = ctx.leases.pick(duid, ia.iaid, addrsOf(ia)[0]);
        if (!ip) {
          iaOpts.push([ia.code, iaWith(ia, lt, [], [Status6.NoAddrsAvail, 'no addresses left'])]);
          continue;
        }
        granted++;
        ips.push(ip);
        if (commit) ops.push({ op: 'commit', iaid: ia.iaid, ip });
        iaOpts.push([ia.code, iaWith(ia, lt, [{ ip, valid: lt.valid }])]);
      }
      if (ias.length > 0 && granted === 0 && ias.some((ia) => ia.code === Opt6.IaNa)) {
        side.push({ type: 'dhcp6.pool-exhausted', range: ctx.range });
        // RFC 8415 §18.3.1/§18.3.2: no address for any IA → a status NoAddrsAvail
        if (t === Msg6.SOLICIT && !boot) {
          r.options.add(Opt6.StatusCode, encodeStatus(Status6.NoAddrsAvail, 'no addresses left'));
          return { kind: 'reply', reply: r, event: commit ? 'dhcp6.reply' : 'dhcp6.advertise', ops: [], ips: [], side, status: 'NoAddrsAvail' };
        }
      }
      for (const [code, data] of iaOpts) r.options.add(code, data);
      addBoot(r);
      return { kind: 'reply', reply: r, event: commit ? 'dhcp6.reply' : 'dhcp6.advertise', ops, ips, boot, side, status: granted === 0 && ias.length ? 'NoAddrsAvail' : undefined };
    }
    case Msg6.RENEW:
    case Msg6.REBIND: {
      const r = reply(Msg6.REPLY);
      const ops: LeaseOp[] = [];
      const ips: string[] = [];
      for (const ia of ias) {
        if (ia.code !== Opt6.IaNa) {
          r.options.add(ia.code, iaWith(ia, lt, [], [ia.code === Opt6.IaPd ? Status6.NoPrefixAvail : Status6.NoAddrsAvail, 'only IA_NA is served']));
          continue;
        }
        const asked = addrsOf(ia);
        const binding = ctx.leases.get(duid, ia.iaid);
        let keep = binding && ctx.leases.canAssign(duid, ia.iaid, binding.ip) ? binding.ip : undefined;
        // REBIND without a binding (we lost it, or another server had it): take it on when it is free here
        if (!keep && t === Msg6.REBIND) keep = asked.find((a) => ctx.leases.canAssign(duid, ia.iaid, a));
        if (!keep && t === Msg6.RENEW) {
          r.options.add(ia.code, iaWith(ia, lt, [], [Status6.NoBinding, 'no binding for this IA']));
          continue;
        }
        const addrs: Array<{ ip: string; valid: number }> = [];
        if (keep) {
          ops.push({ op: 'commit', iaid: ia.iaid, ip: keep });
          ips.push(keep);
          addrs.push({ ip: keep, valid: lt.valid });
        }
        // addresses the client has that are not (or no longer) its own: lifetimes 0 (§18.3.4)
        for (const a of asked) if (a !== keep) addrs.push({ ip: a, valid: 0 });
        r.options.add(ia.code, iaWith(ia, lt, addrs));
      }
      addBoot(r);
      return { kind: 'reply', reply: r, event: 'dhcp6.reply', ops, ips, boot, side };
    }
    case Msg6.RELEASE:
    case Msg6.DECLINE: {
      const r = reply(Msg6.REPLY);
      const ops: LeaseOp[] = [];
      for (const ia of ias) {
        const mine = ia.code === Opt6.IaNa ? ctx.leases.get(duid, ia.iaid) : undefined;
        const asked = addrsOf(ia);
        const hit = asked.filter((a) => mine?.ip === a);
        for (const a of hit) ops.push({ op: t === Msg6.RELEASE ? 'release' : 'decline', iaid: ia.iaid, ip: a });
        if (hit.length === 0) r.options.add(ia.code, iaWith(ia, lt, [], [Status6.NoBinding, 'no binding for this IA']));
      }
      r.options.add(Opt6.StatusCode, encodeStatus(Status6.Success, t === Msg6.RELEASE ? 'released' : 'declined'));
      return { kind: 'reply', reply: r, event: 'dhcp6.reply', ops, ips: [], side };
    }
    case Msg6.CONFIRM: {
      const asked = ias.flatMap(addrsOf);
      if (asked.length === 0) return ignore('confirm-without-addresses'); // §18.3.3: no reply
      const onLink = asked.every((a) => inPrefix6(a, ctx.address6, ctx.prefix6));
      const r = reply(Msg6.REPLY);
      r.options.add(Opt6.StatusCode, onLink ? encodeStatus(Status6.Success, 'on link') : encodeStatus(Status6.NotOnLink, 'not on this link'));
      return { kind: 'reply', reply: r, event: 'dhcp6.reply', ops: [], ips: onLink ? asked : [], side, status: onLink ? undefined : 'NotOnLink' };
    }
    default:
      return ignore('unknown-type', `message ${t}`);
  }
}
