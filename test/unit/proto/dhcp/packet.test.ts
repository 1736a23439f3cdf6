import { describe, expect, it, vi } from 'vitest';
import { createRequire } from 'node:module';
import { DecodeError } from '../../../../proto/errors';
import { decodeDhcp, encodeDhcp, messageTypeName, BOOTP_MIN_SIZE, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { Opt, OptionMap } from '../../../../proto/dhcp/options';
import { renderDhcp } from '../../../../proto/dhcp/render';
import { dhcpDatagrams } from '../../../helpers/udp-frames';
import { mulberry32 } from '../../../helpers/prng';

const FIX = new URL('../../../fixtures/pcap/', import.meta.url).pathname;
const CAPTURES = ['bios-boot', 'uefi-boot-full', 'proxydhcp-bios-boot', 'proxydhcp-uefi-boot'];
const packets = CAPTURES.flatMap((c) => dhcpDatagrams(`${FIX}${c}.dhcp.pcap`).map((d, i) => ({ name: `${c}#${i + 1}`, ...d })));

/** Only DecodeError may come out of the decoder. */
function tryDecode(b: Buffer): DhcpMessage | DecodeError {
  try {
    return decodeDhcp(b);
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw new Error(`decoder threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
}

/** Where the End option of the options area is (first 255 at an option boundary). */
function endOffset(b: Buffer): number {
  let i = 240;
  while (i < b.length) {
    if (b[i] === 0) i++;
    else if (b[i] === 255) return i;
    else i += 2 + b[i + 1]!;
  }
  return -1;
}

function sample(): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, 1).setStr(Opt.VendorClassIdentifier, 'PXEClient:Arch:00007:UNDI:003000').setU16(Opt.ClientSystemArch, 7);
  return {
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0x12345678,
    secs: 3,
    flags: 0x8000,
    ciaddr: '0.0.0.0',
    yiaddr: '0.0.0.0',
    siaddr: '0.0.0.0',
    giaddr: '0.0.0.0',
    chaddr: Buffer.from('525400123456' + '00'.repeat(10), 'hex'),
    mac: '52:54:00:12:34:56',
    sname: '',
    file: '',
    options,
  };
}

describe('decodeDhcp / encodeDhcp', () => {
  it('reads every DHCP datagram of the lab captures', () => {
    expect(packets.length).toBeGreaterThanOrEqual(30);
    for (const p of packets) expect(decodeDhcp(p.payload).mac).toMatch(/^52:54:00:/);
  });

  it.each([
    ['bios-boot', 'seabios-ipxe'],
    ['uefi-boot-full', 'ovmf-x64'],
    ['proxydhcp-bios-boot', 'proxydhcp-bios'],
    ['proxydhcp-uefi-boot', 'proxydhcp-uefi'],
  ])('renders %s like the golden file', async (cap, golden) => {
    const text = dhcpDatagrams(`${FIX}${cap}.dhcp.pcap`)
      .map((d) => `# ${d.srcIp}:${d.srcPort} -> ${d.dstIp}:${d.dstPort} (${d.payload.length} bytes)\n${renderDhcp(decodeDhcp(d.payload))}\n`)
      .join('\n');
    await expect(text).toMatchFileSnapshot(`../../../fixtures/golden/${golden}.txt`);
  });

  it('round-trips every captured packet: decode(encode(decode(p))) equals decode(p)', () => {
    let byteEqual = 0;
    for (const p of packets) {
      const m = decodeDhcp(p.payload);
      const again = decodeDhcp(encodeDhcp(m));
      expect(again, p.name).toEqual(m);
      if (encodeDhcp(m, { minSize: p.payload.length }).equals(p.payload)) byteEqual++;
    }
    // clients that put no pad bytes between options come back byte for byte
    expect(byteEqual).toBeGreaterThan(packets.length / 2);
  });

  it('throws DecodeError for every cut inside an option, serves a cut at an option boundary (no End), and decodes the same after End', () => {
    for (const p of packets) {
      const end = endOffset(p.payload);
      expect(end, p.name).toBeGreaterThan(240);
      const whole = decodeDhcp(p.payload);
      // option boundaries of the options field (after each whole option)
      const bounds = new Set<number>();
      for (let i = 240; i < end; ) {
        i += p.payload[i] === 0 ? 1 : 2 + p.payload[i + 1]!;
        bounds.add(i);
      }
      for (let n = 0; n < p.payload.length; n++) {
        const r = tryDecode(p.payload.subarray(0, n));
        if (n < 240) expect(r, `${p.name} cut at ${n}`).toBeInstanceOf(DecodeError);
        else if (n <= end && !bounds.has(n) && n !== 240) expect(r, `${p.name} cut at ${n}`).toBeInstanceOf(DecodeError);
        else if (n <= end) expect(r, `${p.name} cut at ${n}`).not.toBeInstanceOf(DecodeError);
        else expect(r).toEqual(whole);
      }
    }
  });

  it('gives a reason and an offset with each DecodeError', () => {
    const e = tryDecode(Buffer.alloc(100)) as DecodeError;
    expect(e).toBeInstanceOf(DecodeError);
    expect(e.reason).toBe('short');
    expect(e.offset).toBe(100);
    const b = encodeDhcp(sample());
    b[241] = 200; // message type length runs past the end
    const e2 = tryDecode(b) as DecodeError;
    expect(e2.reason).toBe('option-overrun');
    expect(e2.offset).toBe(240);
    const c = encodeDhcp(sample());
    c.writeUInt32BE(0x01020304, 236);
    expect((tryDecode(c) as DecodeError).reason).toBe('magic');
  });

  it('survives random bytes and random corruption with DecodeError or a decode', () => {
    const rnd = mulberry32(42);
    const base = packets.map((p) => p.payload);
    let decoded = 0;
    for (let k = 0; k < 3000; k++) {
      let b: Buffer;
      if (k % 3 === 0) {
        b = Buffer.alloc(Math.floor(rnd() * 600));
        for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
        if (b.length > 240 && rnd() < 0.7) b.writeUInt32BE(0x63825363, 236);
        if (b.length > 0) b[0] = 1 + Math.floor(rnd() * 2);
        if (b.length > 2) b[2] = 6;
      } else {
        b = Buffer.from(base[Math.floor(rnd() * base.length)]!);
        const flips = 1 + Math.floor(rnd() * 8);
        for (let f = 0; f < flips; f++) b[240 + Math.floor(rnd() * (b.length - 240))] = Math.floor(rnd() * 256);
      }
      const r = tryDecode(b);
      if (!(r instanceof DecodeError)) {
        decoded++;
        renderDhcp(r); // rendering a strange packet must not throw either
        expect(decodeDhcp(encodeDhcp(r))).toEqual(r);
      }
    }
    expect(decoded).toBeGreaterThan(0);
  });

  it('skips pad bytes anywhere between options', () => {
    const b = Buffer.concat([encodeDhcp(sample()).subarray(0, 240), Buffer.from([0, 0, 53, 1, 3, 0, 60, 3, 0x41, 0x42, 0x43, 0, 0, 255, 0, 0])]);
    const m = decodeDhcp(b);
    expect(messageTypeName(m)).toBe('REQUEST');
    expect(m.options.str(Opt.VendorClassIdentifier)).toBe('ABC');
    expect(m.options.codes()).toEqual([53, 60]);
  });

  it('keeps unknown options and concatenates split long options (RFC 3396)', () => {
    const m = sample();
    m.options.set(224, Buffer.from('private'));
    m.options.set(Opt.BootFileName, Buffer.alloc(600, 0x61));
    const b = encodeDhcp(m);
    const d = decodeDhcp(b);
    expect(d.options.get(224)?.toString()).toBe('private');
    expect(d.options.get(Opt.BootFileName)?.length).toBe(600);
    expect(d.options.codes()).toEqual([53, 60, 93, 224, 67]);
  });

  it('joins thousands of pieces of one option in linear time (no copy per piece: a fragmented 64 KB datagram cost 50 ms)', () => {
    const n = 21_000; // a 63 KB datagram (IP fragments) of 1-byte option 60 pieces
    const b = Buffer.alloc(240 + n * 3 + 1);
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b.writeUInt32BE(0x63825363, 236);
    for (let i = 0; i < n; i++) b.set([Opt.VendorClassIdentifier, 1, 0x41], 240 + i * 3);
    b[240 + n * 3] = 255;
    const spy = vi.spyOn(Buffer, 'concat');
    try {
      const m = decodeDhcp(b);
      expect(m.options.get(Opt.VendorClassIdentifier)!.length).toBe(n);
      const copied = spy.mock.calls.reduce((t, [list]) => t + (list as readonly Uint8Array[]).reduce((k, x) => k + x.length, 0), 0);
      expect(copied).toBeLessThanOrEqual(2 * n); // before: ~n²/2 bytes
    } finally {
      spy.mockRestore();
    }
  });

  it('reads options from file and sname when option 52 overloads them', () => {
    const b = encodeDhcp(sample());
    const opt = b.subarray(0, 240);
    const file = Buffer.alloc(128);
    Buffer.from([67, 4, 0x61, 0x2e, 0x65, 0x66, 255]).copy(file);
    file.copy(opt, 108);
    const sname = Buffer.alloc(64);
    Buffer.from([0, 66, 3, 0x31, 0x2e, 0x32]).copy(sname); // no End: ends at the field's end
    sname.copy(opt, 44);
    const d = decodeDhcp(Buffer.concat([opt, Buffer.from([53, 1, 2, 52, 1, 3, 255])]));
    expect(d.file).toBe('');
    expect(d.sname).toBe('');
    expect(d.options.str(Opt.BootFileName)).toBe('a.ef');
    expect(d.options.str(Opt.TftpServerName)).toBe('1.2');
    expect(decodeDhcp(encodeDhcp(d))).toEqual(d);
    // overload value out of range, and an overrun inside the file field
    expect(tryDecode(Buffer.concat([opt, Buffer.from([52, 1, 9, 255])]))).toBeInstanceOf(DecodeError);
    const bad = Buffer.from(opt);
    bad[108] = 67;
    bad[109] = 200;
    expect(tryDecode(Buffer.concat([bad, Buffer.from([52, 1, 1, 255])]))).toBeInstanceOf(DecodeError);
  });

  it('pads encoded packets to the BOOTP minimum of 300 bytes', () => {
    expect(encodeDhcp(sample()).length).toBe(BOOTP_MIN_SIZE);
  });

  it('normalizes chaddr into a lower-case MAC', () => {
    const m = sample();
    m.chaddr = Buffer.from('AABBCCDDEEFF' + '00'.repeat(10), 'hex');
    expect(decodeDhcp(encodeDhcp(m)).mac).toBe('aa:bb:cc:dd:ee:ff');
  });

  it('is read the same by the dhcp npm package (an independent decoder)', () => {
    const require = createRequire(import.meta.url);
    const proto = require('dhcp/lib/protocol.js') as { parse(b: Buffer): any };
    const m = sample();
    m.op = 2;
    m.yiaddr = '10.99.0.123';
    m.siaddr = '10.99.0.1';
    m.file = 'ipxe/snponly.efi';
    m.options = new OptionMap()
      .setU8(Opt.MessageType, 5)
      .setIp(Opt.ServerIdentifier, '10.99.0.1')
      .setU32(Opt.LeaseTime, 3600)
      .setIp(Opt.SubnetMask, '255.255.255.0')
      .setIps(Opt.Router, ['10.99.0.1'])
      .setIps(Opt.DomainNameServer, ['10.99.0.1', '10.99.0.2'])
      .setStr(Opt.TftpServerName, '10.99.0.1')
      .setStr(Opt.BootFileName, 'ipxe/snponly.efi');
    const p = proto.parse(encodeDhcp(m));
    expect(p.op).toBe(2);
    expect(p.xid).toBe(0x12345678);
    expect(p.yiaddr).toBe('10.99.0.123');
    expect(p.siaddr).toBe('10.99.0.1');
    expect(p.chaddr).toBe('52-54-00-12-34-56');
    expect(p.file).toBe('ipxe/snponly.efi');
    expect(p.options[53]).toBe(5);
    expect(p.options[54]).toBe('10.99.0.1');
    expect(p.options[51]).toBe(3600);
    expect(p.options[1]).toBe('255.255.255.0');
    expect(p.options[3]).toEqual(['10.99.0.1']);
    expect(p.options[6]).toEqual(['10.99.0.1', '10.99.0.2']);
    expect(p.options[66]).toBe('10.99.0.1');
    expect(p.options[67]).toBe('ipxe/snponly.efi');
  });
});
