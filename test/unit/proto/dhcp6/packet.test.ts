import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../../../proto/errors';
import { decodeDhcp6, encodeDhcp6, innermost, isRelay, type Dhcp6Message, type Dhcp6Packet } from '../../../../proto/dhcp6/packet';
import {
  decodeBootParams,
  decodeDuid,
  decodeIa,
  decodeIaAddr,
  decodeOro,
  decodeStatus,
  DuidType,
  encodeBootParams,
  encodeDuidLl,
  encodeDuidLlt,
  encodeDuidUuid,
  encodeIa,
  encodeIaAddr,
  encodeNii,
  encodeStatus,
  encodeU16List,
  encodeUserClass,
  encodeVendorClass,
  ENTERPRISE_INTEL,
  macFromDuid,
  Msg6,
  Opt6,
  Options6,
} from '../../../../proto/dhcp6/options';
import { classifyClient6 } from '../../../../proto/dhcp6/classify';
import { udp6Datagrams } from '../../../helpers/udp-frames';
import { mulberry32 } from '../../../helpers/prng';

// Captured with test/fixtures/pcap/capture-dhcp6.sh: ISC dhclient 4.4.3 -6 (stateful,
// release, -S stateless, rapid commit), perfdhcp -6 (burst, relayed -A 1, renew/release)
// against dnsmasq's DHCPv6 server, in two network namespaces.
const FIX = new URL('../../../fixtures/pcap/', import.meta.url).pathname;
const captured = udp6Datagrams(`${FIX}dhcp6-clients.pcap`).filter((d) => d.dstPort === 547 || d.srcPort === 547);

function tryDecode(b: Buffer): Dhcp6Packet | DecodeError {
  try {
    return decodeDhcp6(b);
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw new Error(`decoder threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

/** Top-level option boundaries: the only cuts after which a message is still whole. */
function boundaries(b: Buffer): Set<number> {
  const head = b[0] === Msg6.RELAY_FORW || b[0] === Msg6.RELAY_REPL ? 34 : 4;
  const out = new Set([head]);
  for (let i = head; i + 4 <= b.length; ) {
    i += 4 + b.readUInt16BE(i + 2);
    out.add(i);
  }
  return out;
}

const MAC = '52:54:00:6a:00:01';

/** What EDK2's PXEv6 sends (PxeBcDhcp6.c PxeBcDhcp6Sarr): IA_NA, ORO 59/60/23/24, arch 7, NII, vendor class. */
function pxeSolicit(arch = 7, vendor = 'PXEClient:Arch:00007:UNDI:003016'): Dhcp6Message {
  const options = new Options6()
    .add(Opt6.ClientId, encodeDuidUuid('8c1f8e5a-0d9b-4a4e-9a51-3b7d6f3b0001'))
    .add(Opt6.IaNa, encodeIa({ code: Opt6.IaNa, iaid: 0x1234, t1: 0, t2: 0, options: new Options6() }))
    .add(Opt6.Oro, encodeU16List([Opt6.BootFileUrl, Opt6.BootFileParam, Opt6.DnsServers, Opt6.DomainList]))
    .add(Opt6.ElapsedTime, Buffer.from([0, 0]))
    .add(Opt6.ClientArchType, encodeU16List([arch]))
    .add(Opt6.Nii, encodeNii({ type: 1, major: 3, minor: 16 }))
    .add(Opt6.VendorClass, encodeVendorClass({ enterprise: ENTERPRISE_INTEL, data: [vendor] }));
  return { type: Msg6.SOLICIT, xid: 0xabcdef, options };
}

describe('decodeDhcp6 on captures from real clients', () => {
  it('has the exchanges we captured', () => {
    const types = new Set(captured.map((d) => d.payload[0]));
    for (const t of [Msg6.SOLICIT, Msg6.ADVERTISE, Msg6.REQUEST, Msg6.RENEW, Msg6.REPLY, Msg6.RELEASE, Msg6.INFORMATION_REQUEST, Msg6.RELAY_FORW]) expect(types).toContain(t);
    expect(captured.length).toBeGreaterThan(100);
  });

  it('decodes every datagram and encodes it back byte for byte', () => {
    for (const d of captured) {
      const m = decodeDhcp6(d.payload);
      expect(encodeDhcp6(m).equals(d.payload)).toBe(true);
    }
  });

  it("reads dhclient's SOLICIT: DUID-LLT with its MAC, IA_NA, ORO, elapsed time", () => {
    const first = decodeDhcp6(captured.find((d) => d.payload[0] === Msg6.SOLICIT)!.payload) as Dhcp6Message;
    const duid = decodeDuid(first.options.get(Opt6.ClientId)!);
    expect(duid.type).toBe(DuidType.LLT);
    expect(macFromDuid(duid)).toBe(MAC);
    const ia = decodeIa(Opt6.IaNa, first.options.get(Opt6.IaNa)!);
    expect(ia.t1).toBeGreaterThanOrEqual(0);
    expect(decodeOro(first.options.get(Opt6.Oro)!)).toContain(Opt6.DnsServers);
    const c = classifyClient6(first, { address: 'fe80::5054:ff:fe6a:1' });
    expect(c).toMatchObject({ mac: MAC, macFrom: 'duid', firmware: 'other', rapidCommit: false });
  });

  it("reads dnsmasq's REPLY: the leased address inside IA_NA/IAADDR", () => {
    const reply = captured.map((d) => decodeDhcp6(d.payload)).find((m) => m.type === Msg6.REPLY && m.options.has(Opt6.IaNa)) as Dhcp6Message;
    const ia = decodeIa(Opt6.IaNa, reply.options.get(Opt6.IaNa)!);
    const addr = decodeIaAddr(ia.options.get(Opt6.IaAddr)!);
    expect(addr.address).toMatch(/^fd99:6::1[0-9a-f]{2}$/);
    expect(addr.valid).toBeGreaterThan(0);
    expect(decodeDuid(reply.options.get(Opt6.ServerId)!).type).toBeGreaterThan(0);
  });

  it('reads a RAPID-COMMIT SOLICIT and the REPLY to it', () => {
    const all = captured.map((d) => decodeDhcp6(d.payload));
    const sol = all.find((m) => m.type === Msg6.SOLICIT && m.options.has(Opt6.RapidCommit)) as Dhcp6Message;
    expect(sol).toBeDefined();
    expect(classifyClient6(sol).rapidCommit).toBe(true);
    const rep = all.find((m) => m.type === Msg6.REPLY && (m as Dhcp6Message).xid === sol.xid) as Dhcp6Message;
    expect(rep.options.has(Opt6.RapidCommit)).toBe(true);
  });

  it("reads perfdhcp's RELAY-FORW with the client's SOLICIT inside", () => {
    const relayed = captured.map((d) => decodeDhcp6(d.payload)).find(isRelay)!;
    expect(relayed.type).toBe(Msg6.RELAY_FORW);
    expect(relayed.inner?.type).toBe(Msg6.SOLICIT);
    expect(innermost(relayed)?.type).toBe(Msg6.SOLICIT);
  });

  it('reads the stateless INFORMATION-REQUEST (no IA)', () => {
    const ir = captured.map((d) => decodeDhcp6(d.payload)).find((m) => m.type === Msg6.INFORMATION_REQUEST) as Dhcp6Message;
    expect(ir.options.has(Opt6.IaNa)).toBe(false);
    expect(ir.options.has(Opt6.ClientId)).toBe(true);
  });

  it('every truncation of every captured datagram is a DecodeError, except at an option boundary', () => {
    let errors = 0;
    for (const d of captured) {
      const b = d.payload;
      const ok = boundaries(b);
      for (let n = 0; n < b.length; n++) {
        const r = tryDecode(b.subarray(0, n));
        if (ok.has(n)) {
          expect(r, `cut at ${n} of a ${b.length}-byte message ${b[0]}`).not.toBeInstanceOf(DecodeError);
        } else {
          expect(r, `cut at ${n} of a ${b.length}-byte message ${b[0]}`).toBeInstanceOf(DecodeError);
          errors++;
        }
      }
    }
    expect(errors).toBeGreaterThan(1000);
  });

  it('random corruption never throws anything but DecodeError', () => {
    const rnd = mulberry32(6);
    for (let k = 0; k < 3000; k++) {
      const src = captured[Math.floor(rnd() * captured.length)]!.payload;
      const b = Buffer.from(src);
      const flips = 1 + Math.floor(rnd() * 4);
      for (let f = 0; f < flips; f++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      const r = tryDecode(b);
      if (!(r instanceof DecodeError)) classifyClient6(innermost(r) ?? { type: 1, xid: 0, options: new Options6() });
    }
  });
});

describe('DHCPv6 options', () => {
  it('a PXE SOLICIT as EDK2 sends it round-trips and classifies as UEFI x64 PXE', () => {
    const m = pxeSolicit();
    const b = encodeDhcp6(m);
    const back = decodeDhcp6(b) as Dhcp6Message;
    expect(back.xid).toBe(0xabcdef);
    expect(back.options.codes()).toEqual(m.options.codes());
    const c = classifyClient6(back, { address: 'fe80::5054:ff:fe12:3456' });
    expect(c).toMatchObject({ firmware: 'uefi', arch: 'uefi-x64', archCode: 7, vendorEnterprise: 343, nii: { type: 1, major: 3, minor: 16 } });
    // DUID-UUID carries no MAC: it comes from the sender's EUI-64 link-local address
    expect(c).toMatchObject({ mac: '52:54:00:12:34:56', macFrom: 'eui64' });
    expect(c.oro).toContain(Opt6.BootFileUrl);
  });

  it('HTTPClient and iPXE are told apart', () => {
    expect(classifyClient6(pxeSolicit(16, 'HTTPClient:Arch:00016:UNDI:003016'))).toMatchObject({ firmware: 'uefi-http', arch: 'uefi-x64' });
    const ipxe = pxeSolicit(7);
    ipxe.options.add(Opt6.UserClass, encodeUserClass(['iPXE']));
    expect(classifyClient6(ipxe)).toMatchObject({ firmware: 'ipxe', userClass: ['iPXE'] });
    expect(classifyClient6(pxeSolicit(11, 'PXEClient:Arch:00011:UNDI:003016'))).toMatchObject({ firmware: 'uefi', arch: 'uefi-arm64' });
  });

  it('keeps repeated and unknown options in order', () => {
    const o = new Options6()
      .add(Opt6.IaNa, encodeIa({ code: Opt6.IaNa, iaid: 1, t1: 0, t2: 0, options: new Options6() }))
      .add(999, Buffer.from('x'))
      .add(Opt6.IaNa, encodeIa({ code: Opt6.IaNa, iaid: 2, t1: 0, t2: 0, options: new Options6() }));
    const back = decodeDhcp6(encodeDhcp6({ type: Msg6.SOLICIT, xid: 1, options: o })) as Dhcp6Message;
    expect(back.options.codes()).toEqual([3, 999, 3]);
    expect(back.options.all(Opt6.IaNa).map((d) => decodeIa(3, d).iaid)).toEqual([1, 2]);
  });

  it('DUID types LLT, EN, LL, UUID', () => {
    expect(decodeDuid(encodeDuidLlt(MAC, 12345))).toMatchObject({ type: 1, hwtype: 1, time: 12345, linkLayer: MAC });
    expect(decodeDuid(encodeDuidLl(MAC))).toMatchObject({ type: 3, hwtype: 1, linkLayer: MAC });
    expect(decodeDuid(Buffer.from('00020000015701020304', 'hex'))).toMatchObject({ type: 2, enterprise: 343, id: '01020304' });
    expect(decodeDuid(encodeDuidUuid('00112233-4455-6677-8899-aabbccddeeff'))).toMatchObject({ type: 4, id: '00112233445566778899aabbccddeeff' });
    expect(macFromDuid(decodeDuid(encodeDuidUuid('00112233-4455-6677-8899-aabbccddeeff')))).toBeUndefined();
    for (const bad of ['00', '000100010000', '0002000001', '000300', '0004001122']) expect(() => decodeDuid(Buffer.from(bad, 'hex'))).toThrow(DecodeError);
  });

  it('status code, boot-file parameters', () => {
    expect(decodeStatus(encodeStatus(2, 'no addresses'))).toEqual({ code: 2, message: 'no addresses' });
    expect(decodeBootParams(encodeBootParams(['root=/dev/nfs', 'quiet']))).toEqual(['root=/dev/nfs', 'quiet']);
  });

  it('a truncation inside an IAADDR inside an IA_NA is a DecodeError at its absolute offset', () => {
    const addr = encodeIaAddr({ address: 'fd99:6::100', preferred: 100, valid: 200, options: new Options6().add(Opt6.StatusCode, encodeStatus(0)) });
    const ia = encodeIa({ code: Opt6.IaNa, iaid: 7, t1: 50, t2: 80, options: new Options6().add(Opt6.IaAddr, addr.subarray(0, 20)) });
    const b = encodeDhcp6({ type: Msg6.REPLY, xid: 9, options: new Options6().add(Opt6.IaNa, ia) });
    const e = tryDecode(b) as DecodeError;
    expect(e).toBeInstanceOf(DecodeError);
    expect(e.reason).toBe('iaaddr-truncated');
    expect(e.offset).toBe(4 + 4 + 12 + 4 + 20);
  });

  it('rejects malformed fixed-size options', () => {
    const bad: Array<[number, string]> = [
      [Opt6.ElapsedTime, '00'],
      [Opt6.Oro, '001'.padEnd(6, '0')],
      [Opt6.RapidCommit, '00'],
      [Opt6.Nii, '0103'],
      [Opt6.ClientArchType, '000'],
      [Opt6.VendorClass, '000001'],
      [Opt6.VendorClass, '00000157000a5058'],
      [Opt6.UserClass, '0005697058'],
      [Opt6.StatusCode, '00'],
    ];
    for (const [code, hex] of bad) {
      const b = encodeDhcp6({ type: Msg6.SOLICIT, xid: 1, options: new Options6().add(code, Buffer.from(hex.length % 2 ? hex + '0' : hex, 'hex').subarray(0, Math.floor(hex.length / 2))) });
      expect(tryDecode(b), `option ${code} ${hex}`).toBeInstanceOf(DecodeError);
    }
  });

  it('relay framing: relay-repl around an ADVERTISE encodes and decodes', () => {
    const inner: Dhcp6Message = { type: Msg6.ADVERTISE, xid: 5, options: new Options6().add(Opt6.ServerId, encodeDuidLl(MAC)) };
    const b = encodeDhcp6({ type: Msg6.RELAY_REPL, hopCount: 0, linkAddress: 'fd99:6::1', peerAddress: 'fe80::1', options: new Options6().add(Opt6.InterfaceId, Buffer.from('eth0')), inner });
    const r = decodeDhcp6(b);
    expect(isRelay(r) && r.linkAddress).toBe('fd99:6::1');
    expect(isRelay(r) && r.options.get(Opt6.InterfaceId)?.toString()).toBe('eth0');
    expect(innermost(r)).toMatchObject({ type: Msg6.ADVERTISE, xid: 5 });
    expect(tryDecode(b.subarray(0, 33))).toBeInstanceOf(DecodeError);
    expect(tryDecode(Buffer.alloc(0))).toBeInstanceOf(DecodeError);
    expect(tryDecode(Buffer.from([1, 0, 0]))).toBeInstanceOf(DecodeError);
  });
});
