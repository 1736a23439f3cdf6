/** Dhcp6Service over real UDP sockets on ::1 (port 0; replies to our client socket). */
import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../../agent/log';
import type { RelayEvent } from '../../../../proto/events';
import {
  decodeIa,
  decodeIaAddr,
  decodeStatus,
  decodeVendorClass,
  encodeDuidLlt,
  encodeDuidUuid,
  encodeIa,
  encodeIaAddr,
  encodeNii,
  encodeU16List,
  encodeUserClass,
  encodeVendorClass,
  ENTERPRISE_INTEL,
  Msg6,
  Opt6,
  Options6,
  Status6,
} from '../../../../proto/dhcp6/options';
import { decodeDhcp6, encodeDhcp6, innermost, isRelay, type Dhcp6Message, type Dhcp6Packet } from '../../../../proto/dhcp6/packet';
import { Metrics } from '../../../../relay/metrics';
import type { Dhcp6Config } from '../../../../relay/dhcp6/config';
import { Dhcp6Service, DUID_FILE } from '../../../../relay/dhcp6/service';
import { LEASE6_FILE } from '../../../../relay/dhcp6/leases';
import { waitFor } from '../../../helpers/netns';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MAC = '52:54:00:6a:00:07';

async function setup(over: Partial<Dhcp6Config> = {}, stateDir = mkdtempSync(join(tmpdir(), 'br6-svc-'))) {
  const client = dgram.createSocket({ type: 'udp6' });
  await new Promise<void>((r) => client.bind(0, '::1', () => r()));
  const replies: Dhcp6Packet[] = [];
  client.on('message', (b) => replies.push(decodeDhcp6(b)));
  const events: RelayEvent[] = [];
  const metrics = new Metrics();
  const svc = new Dhcp6Service({
    dhcp6: { mode: 'server', port: 0, range: ['fd99:6::100', 'fd99:6::103'], leaseSeconds: 600, preference: 255, ...over },
    interface: 'lo',
    address6: 'fd99:6::1',
    prefix6: 64,
    loaders: { 'uefi-x64': ['ipxe/snponly.efi'], 'uefi-arm64': 'ipxe/arm64.efi' },
    httpPort: 8080,
    tftpPort: 69,
    tftpEnabled: true,
    stateDir,
    log: silentLogger,
    metrics,
    emit: (e) => events.push(e as RelayEvent),
    listenAddress: '::1',
    proxyPort: 0,
  });
  await svc.start();
  let stopped = false;
  const stop = async () => {
    if (!stopped) await svc.stop();
    stopped = true;
  };
  cleanups.push(async () => {
    await stop();
    client.close();
    rmSync(stateDir, { recursive: true, force: true });
  });
  const ask = async (m: Dhcp6Packet, port = svc.port): Promise<Dhcp6Packet> => {
    const n = replies.length;
    client.send(encodeDhcp6(m), port, '::1');
    await waitFor(() => replies.length > n, 3000, 'a DHCPv6 reply');
    return replies[n]!;
  };
  return { svc, client, replies, events, metrics, stateDir, ask, stop };
}

function solicit(opts: { mac?: string; iaid?: number; rapid?: boolean; vendor?: string; arch?: number; user?: string; duid?: Buffer; xid?: number; ia?: boolean } = {}): Dhcp6Message {
  const o = new Options6().add(Opt6.ClientId, opts.duid ?? encodeDuidLlt(opts.mac ?? MAC, 1000));
  if (opts.ia !== false) o.add(Opt6.IaNa, encodeIa({ code: Opt6.IaNa, iaid: opts.iaid ?? 1, t1: 0, t2: 0, options: new Options6() }));
  o.add(Opt6.ElapsedTime, Buffer.from([0, 0])).add(Opt6.Oro, encodeU16List([Opt6.BootFileUrl, Opt6.DnsServers]));
  if (opts.rapid) o.add(Opt6.RapidCommit, Buffer.alloc(0));
  if (opts.arch !== undefined) o.add(Opt6.ClientArchType, encodeU16List([opts.arch])).add(Opt6.Nii, encodeNii({ type: 1, major: 3, minor: 16 }));
  if (opts.vendor) o.add(Opt6.VendorClass, encodeVendorClass({ enterprise: ENTERPRISE_INTEL, data: [opts.vendor] }));
  if (opts.user) o.add(Opt6.UserClass, encodeUserClass([opts.user]));
  return { type: Msg6.SOLICIT, xid: opts.xid ?? 0x123456, options: o };
}

/** A follow-up message (REQUEST, RENEW …) for the address(es) of an ADVERTISE/REPLY. */
function follow(type: number, prev: Dhcp6Message, from: Dhcp6Message, withServer = true, xid = 0x654321): Dhcp6Message {
  const o = new Options6().add(Opt6.ClientId, from.options.get(Opt6.ClientId)!);
  if (withServer) o.add(Opt6.ServerId, prev.options.get(Opt6.ServerId)!);
  for (const ia of prev.options.all(Opt6.IaNa)) o.add(Opt6.IaNa, ia);
  for (const x of from.options.list) if ([Opt6.VendorClass, Opt6.UserClass, Opt6.ClientArchType, Opt6.Oro].includes(x.code as 6)) o.add(x.code, x.data);
  return { type, xid, options: o };
}

function addrOf(m: Dhcp6Packet): { address: string; valid: number } | undefined {
  const ia = (m as Dhcp6Message).options.get(Opt6.IaNa);
  const a = ia && decodeIa(Opt6.IaNa, ia).options.get(Opt6.IaAddr);
  return a ? decodeIaAddr(a) : undefined;
}

function iaStatus(m: Dhcp6Packet): number | undefined {
  const ia = (m as Dhcp6Message).options.get(Opt6.IaNa);
  const s = ia && decodeIa(Opt6.IaNa, ia).options.get(Opt6.StatusCode);
  return s ? decodeStatus(s).code : undefined;
}

const url = (m: Dhcp6Packet) => (m as Dhcp6Message).options.get(Opt6.BootFileUrl)?.toString();

describe('Dhcp6Service (server mode)', () => {
  it('SOLICIT → ADVERTISE, REQUEST → REPLY with the lease on disk before the REPLY', async () => {
    const { ask, events, stateDir, svc } = await setup();
    const sol = solicit();
    const adv = (await ask(sol)) as Dhcp6Message;
    expect(adv.type).toBe(Msg6.ADVERTISE);
    expect(adv.xid).toBe(sol.xid);
    expect(adv.options.get(Opt6.ClientId)!.equals(sol.options.get(Opt6.ClientId)!)).toBe(true);
    expect(adv.options.get(Opt6.Preference)).toEqual(Buffer.from([255]));
    const offered = addrOf(adv)!.address;
    expect(offered).toBe('fd99:6::100');
    expect(url(adv)).toBeUndefined(); // not a boot client
    const rep = await ask(follow(Msg6.REQUEST, adv, sol));
    expect(rep.type).toBe(Msg6.REPLY);
    expect(addrOf(rep)).toEqual(expect.objectContaining({ address: offered, valid: 600 }));
    const ia = decodeIa(Opt6.IaNa, (rep as Dhcp6Message).options.get(Opt6.IaNa)!);
    expect([ia.t1, ia.t2]).toEqual([300, 480]);
    const journal = readFileSync(join(stateDir, LEASE6_FILE), 'utf8');
    expect(journal).toContain('"ip":"fd99:6::100"');
    expect(journal).toContain(`"m":"${MAC}"`);
    expect(svc.macForIp6('fd99:6:0::100')).toBe(MAC);
    expect(events.map((e) => e.type)).toEqual(['dhcp6.solicit', 'dhcp6.advertise', 'dhcp6.request', 'dhcp6.reply']);
    expect(events[3]).toMatchObject({ mac: MAC, ip6: offered, xid: '0x654321' });
  });

  it('Rapid Commit: SOLICIT → REPLY at once; the same client keeps its address; two clients never share one', async () => {
    const { ask, svc } = await setup();
    const r1 = (await ask(solicit({ rapid: true }))) as Dhcp6Message;
    expect(r1.type).toBe(Msg6.REPLY);
    expect(r1.options.has(Opt6.RapidCommit)).toBe(true);
    const a1 = addrOf(r1)!.address;
    const again = await ask(solicit({ rapid: true, xid: 9 }));
    expect(addrOf(again)!.address).toBe(a1);
    const other = await ask(solicit({ rapid: true, mac: '52:54:00:00:00:02' }));
    expect(addrOf(other)!.address).not.toBe(a1);
    expect(svc.leases().filter((l) => l.active)).toHaveLength(2);
  });

  it('RENEW extends, RELEASE frees, REBIND of an unknown binding in range takes it on, CONFIRM says on-link or not', async () => {
    const { ask, svc } = await setup();
    const sol = solicit({ rapid: true });
    const r1 = (await ask(sol)) as Dhcp6Message;
    const a = addrOf(r1)!.address;
    const renew = await ask(follow(Msg6.RENEW, r1, sol));
    expect(renew.type).toBe(Msg6.REPLY);
    expect(addrOf(renew)).toMatchObject({ address: a, valid: 600 });
    // RENEW of an IA we do not know: NoBinding
    const unknown = follow(Msg6.RENEW, r1, solicit({ mac: '52:54:00:00:00:09' }));
    expect(iaStatus(await ask(unknown))).toBe(Status6.NoBinding);
    const rel = (await ask(follow(Msg6.RELEASE, r1, sol))) as Dhcp6Message;
    expect(decodeStatus(rel.options.get(Opt6.StatusCode)!).code).toBe(Status6.Success);
    expect(svc.leases()[0]!.active).toBe(false);
    // REBIND (no server id) from a client we lost: the address is free here, so it is taken on
    const rebind = follow(Msg6.REBIND, r1, solicit({ mac: '52:54:00:00:00:0a' }), false);
    expect(addrOf(await ask(rebind))).toMatchObject({ address: a, valid: 600 });
    // CONFIRM
    const conf = follow(Msg6.CONFIRM, r1, sol, false);
    expect(decodeStatus(((await ask(conf)) as Dhcp6Message).options.get(Opt6.StatusCode)!).code).toBe(Status6.Success);
    const offLink = new Options6().add(Opt6.ClientId, encodeDuidLlt(MAC, 1)).add(Opt6.IaNa, encodeIa({ code: Opt6.IaNa, iaid: 1, t1: 0, t2: 0, options: new Options6().add(Opt6.IaAddr, encodeIaAddr({ address: 'fd98::5', preferred: 0, valid: 0, options: new Options6() })) }));
    expect(decodeStatus(((await ask({ type: Msg6.CONFIRM, xid: 3, options: offLink })) as Dhcp6Message).options.get(Opt6.StatusCode)!).code).toBe(Status6.NotOnLink);
  });

  it('a full pool: ADVERTISE with NoAddrsAvail; DECLINE keeps an address out', async () => {
    const { ask, events, svc } = await setup();
    const firsts: Array<[Dhcp6Message, Dhcp6Message]> = [];
    for (let i = 0; i < 4; i++) {
      const s = solicit({ rapid: true, mac: `52:54:00:00:01:0${i}` });
      firsts.push([s, (await ask(s)) as Dhcp6Message]);
    }
    const [s0, r0] = firsts[0]!;
    const declined = addrOf(r0)!.address;
    const dec = (await ask(follow(Msg6.DECLINE, r0, s0))) as Dhcp6Message;
    expect(decodeStatus(dec.options.get(Opt6.StatusCode)!).code).toBe(Status6.Success);
    expect(svc.leases().map((l) => l.ip)).not.toContain(declined);
    const full = (await ask(solicit({ mac: '52:54:00:00:02:00' }))) as Dhcp6Message;
    expect(full.type).toBe(Msg6.ADVERTISE);
    expect(decodeStatus(full.options.get(Opt6.StatusCode)!).code).toBe(Status6.NoAddrsAvail);
    expect(events.some((e) => e.type === 'dhcp6.pool-exhausted')).toBe(true);
  });

  it('boot URLs: PXE → tftp://[v6]/loader, HTTPClient → http://[v6]/files/loader (vendor class echoed), iPXE → the script', async () => {
    const { ask } = await setup();
    const pxe = await ask(solicit({ arch: 7, vendor: 'PXEClient:Arch:00007:UNDI:003016', mac: '52:54:00:00:03:01' }));
    expect(url(pxe)).toBe('tftp://[fd99:6::1]/ipxe/snponly.efi');
    // with an address, no PXEClient: EDK2 would take it for a BINL offer and ask on 4011 first
    expect((pxe as Dhcp6Message).options.has(Opt6.VendorClass)).toBe(false);
    const http = (await ask(solicit({ arch: 16, vendor: 'HTTPClient:Arch:00016:UNDI:003016', mac: '52:54:00:00:03:02' }))) as Dhcp6Message;
    expect(url(http)).toBe('http://[fd99:6::1]:8080/files/ipxe/snponly.efi');
    expect(decodeVendorClass(http.options.get(Opt6.VendorClass)!).data[0]!.toString()).toBe('HTTPClient');
    const ipxe = await ask(solicit({ arch: 7, user: 'iPXE', mac: '52:54:00:00:03:03' }));
    expect(url(ipxe)).toBe('http://[fd99:6::1]:8080/boot.ipxe?mac=52:54:00:00:03:03');
    const arm = await ask(solicit({ arch: 11, vendor: 'PXEClient:Arch:00011:UNDI:003016', mac: '52:54:00:00:03:04' }));
    expect(url(arm)).toBe('tftp://[fd99:6::1]/ipxe/arm64.efi');
  });

  it('a DUID-UUID client is named by the EUI-64 of a relay peer address; relay-forw gets relay-repl with Interface-Id', async () => {
    const { ask, events } = await setup();
    const inner = solicit({ duid: encodeDuidUuid('00112233-4455-6677-8899-aabbccddeeff'), rapid: true });
    const relayed = { type: Msg6.RELAY_FORW, hopCount: 0, linkAddress: 'fd99:6::1', peerAddress: 'fe80::5054:ff:fe12:3456', options: new Options6().add(Opt6.InterfaceId, Buffer.from('port7')), inner } as const;
    const r = await ask(relayed);
    expect(isRelay(r) && r.type).toBe(Msg6.RELAY_REPL);
    expect(isRelay(r) && r.peerAddress).toBe('fe80::5054:ff:fe12:3456');
    expect(isRelay(r) && r.options.get(Opt6.InterfaceId)?.toString()).toBe('port7');
    expect(innermost(r)?.type).toBe(Msg6.REPLY);
    expect(events.find((e) => e.type === 'dhcp6.reply')).toMatchObject({ mac: '52:54:00:12:34:56' });
    expect(events.find((e) => e.type === 'dhcp6.solicit')).toMatchObject({ mac: '52:54:00:12:34:56', macFrom: 'eui64' });
  });

  it('drops garbage and messages for other servers, counts them, and keeps serving', async () => {
    const { ask, client, metrics, svc } = await setup();
    for (const g of [Buffer.alloc(0), Buffer.from([1, 2]), Buffer.from('0100000100', 'hex'), Buffer.from('0c00', 'hex'), Buffer.alloc(60, 0xff)]) client.send(g, svc.port, '::1');
    const req = follow(Msg6.REQUEST, { type: 2, xid: 1, options: new Options6().add(Opt6.ServerId, encodeDuidLlt('02:00:00:00:00:01', 5)) }, solicit());
    client.send(encodeDhcp6(req), svc.port, '::1');
    client.send(encodeDhcp6({ type: Msg6.ADVERTISE, xid: 1, options: new Options6() }), svc.port, '::1');
    expect((await ask(solicit())).type).toBe(Msg6.ADVERTISE);
    const dropped = metrics.total('bootrelay_dhcp6_dropped_total');
    expect(dropped).toBe(5);
    expect(metrics.get('bootrelay_dhcp6_ignored_total', { reason: 'other-server' })).toBe(1);
    expect(metrics.get('bootrelay_dhcp6_ignored_total', { reason: 'not-a-request' })).toBe(1);
  });

  it('keeps its DUID and the leases across a restart', async () => {
    const first = await setup();
    const r = await first.ask(solicit({ rapid: true }));
    const duid = (r as Dhcp6Message).options.get(Opt6.ServerId)!;
    const a = addrOf(r)!.address;
    expect(readFileSync(join(first.stateDir, DUID_FILE), 'utf8').trim()).toBe(duid.toString('hex'));
    await first.stop();
    const again = await setup({}, first.stateDir);
    const r2 = (await again.ask(solicit({ mac: '52:54:00:00:00:02', rapid: true }))) as Dhcp6Message;
    expect(r2.options.get(Opt6.ServerId)!.equals(duid)).toBe(true);
    expect(addrOf(r2)!.address).not.toBe(a);
    expect(again.svc.macForIp6(a)).toBe(MAC);
  });
});

describe('Dhcp6Service (stateless mode)', () => {
  it('answers INFORMATION-REQUEST; a PXE SOLICIT gets a proxy ADVERTISE (no address, PXEClient) and 4011 answers the boot-service REQUEST', async () => {
    const { ask, svc, stateDir, client, metrics } = await setup({ mode: 'stateless' });
    const ir = (await ask({ type: Msg6.INFORMATION_REQUEST, xid: 77, options: new Options6().add(Opt6.ClientId, encodeDuidLlt(MAC, 1)).add(Opt6.UserClass, encodeUserClass(['iPXE'])) })) as Dhcp6Message;
    expect(ir.type).toBe(Msg6.REPLY);
    expect(url(ir)).toBe(`http://[fd99:6::1]:8080/boot.ipxe?mac=${MAC}`);
    const sol = solicit({ arch: 7, vendor: 'PXEClient:Arch:00007:UNDI:003016' });
    const adv = (await ask(sol)) as Dhcp6Message;
    expect(adv.type).toBe(Msg6.ADVERTISE);
    // EDK2's proxy offer: no IA, no status, no preference (see relay/dhcp6/policy.ts)
    expect(adv.options.codes()).toEqual([Opt6.ClientId, Opt6.ServerId, Opt6.BootFileUrl, Opt6.VendorClass]);
    const vc = decodeVendorClass(adv.options.get(Opt6.VendorClass)!);
    expect([vc.enterprise, vc.data[0]!.toString()]).toEqual([343, 'PXEClient']);
    expect(url(adv)).toBe('tftp://[fd99:6::1]/ipxe/snponly.efi');
    // EDK2 PxeBcRequestBootService: REQUEST with our server id and no IA, to port 4011
    const bs = follow(Msg6.REQUEST, { ...adv, options: new Options6().add(Opt6.ServerId, adv.options.get(Opt6.ServerId)!) }, sol);
    const rep = (await ask(bs, svc.proxyPort)) as Dhcp6Message;
    expect(rep.type).toBe(Msg6.REPLY);
    expect(url(rep)).toBe('tftp://[fd99:6::1]/ipxe/snponly.efi');
    // TFTP will see it at the address it asked from (given by another server): the MAC is known there
    expect(svc.macForIp6('::1')).toBe(MAC);
    // its REQUEST to the address server (multicast: we see it) names the address TFTP will see
    const other = new Options6()
      .add(Opt6.ClientId, encodeDuidLlt(MAC, 1000))
      .add(Opt6.ServerId, encodeDuidLlt('02:00:00:00:00:99', 5))
      .add(Opt6.IaNa, encodeIa({ code: Opt6.IaNa, iaid: 1, t1: 0, t2: 0, options: new Options6().add(Opt6.IaAddr, encodeIaAddr({ address: 'fd99:6::2c10', preferred: 0, valid: 0, options: new Options6() })) }));
    client.send(encodeDhcp6({ type: Msg6.REQUEST, xid: 5, options: other }), svc.port, '::1');
    await waitFor(() => metrics.get('bootrelay_dhcp6_ignored_total', { reason: 'other-server' }) === 1, 3000, 'the REQUEST to the other server seen');
    expect(svc.macForIp6('fd99:6::2c10')).toBe(MAC);
    // a plain client's SOLICIT is not answered (addresses come from SLAAC); no lease file
    client.send(encodeDhcp6(solicit({ mac: '52:54:00:00:00:05' })), svc.port, '::1');
    await waitFor(() => metrics.get('bootrelay_dhcp6_ignored_total', { reason: 'stateless' }) === 1, 3000, 'the SOLICIT ignored');
    expect(() => readFileSync(join(stateDir, LEASE6_FILE))).toThrow();
  });
});
