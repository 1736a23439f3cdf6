import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../../../proto/errors';
import { decodeDhcp, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { Opt, OptionMap } from '../../../../proto/dhcp/options';
import {
  ARCH_TABLE,
  archInfo,
  classifyClient,
  decodeIpxeOptions,
  decodePxeOptions,
  decodeSubOptions,
  decodeUserClass,
  encodeIpxeOptions,
  encodePxeOptions,
  formatGuid,
  IpxeSub,
} from '../../../../proto/dhcp/pxe';
import { dhcpDatagrams } from '../../../helpers/udp-frames';

const FIX = new URL('../../../fixtures/pcap/', import.meta.url).pathname;

function req(opts: Array<[number, Buffer | string]>): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, 1);
  for (const [c, v] of opts) options.set(c, typeof v === 'string' ? Buffer.from(v) : v);
  return {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: 1, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr: Buffer.alloc(16), mac: '52:54:00:00:00:01', sname: '', file: '', options,
  };
}
const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);

describe('arch table (RFC 4578 §2.1, IANA)', () => {
  it.each([
    [0, 'bios', false],
    [6, 'uefi-ia32', false],
    [7, 'uefi-x64', false],
    [9, 'uefi-x64', false],
    [10, 'uefi-arm32', false],
    [11, 'uefi-arm64', false],
    [15, 'uefi-ia32', true],
    [16, 'uefi-x64', true],
    [18, 'uefi-arm32', true],
    [19, 'uefi-arm64', true],
    [27, 'uefi-riscv64', false],
    [28, 'uefi-riscv64', true],
    [25, 'unknown', false],
    [2, 'unknown', false],
    [999, 'unknown', false],
  ])('maps arch %i to %s', (code, key, http) => {
    expect(archInfo(code).key).toBe(key);
    expect(archInfo(code).http).toBe(http);
  });
  it('lists every code 0..41 once', () => {
    expect(ARCH_TABLE.map((a) => a.code)).toEqual([...Array(42).keys()]);
  });
});

describe('option 43 / 175 sub-options', () => {
  it('round-trips PXE vendor options', () => {
    const p = {
      discoveryControl: 3,
      bootServers: [{ type: 0x8000, ips: ['10.99.0.1', '10.99.0.2'] }],
      bootMenu: [{ type: 0x8000, description: 'bootrelay' }],
      menuPrompt: { timeout: 5, prompt: 'Press F8' },
      bootItem: { type: 0x8000, layer: 0 },
      other: [] as Array<[number, Buffer]>,
    };
    const b = encodePxeOptions(p);
    expect(b[b.length - 1]).toBe(255);
    expect(decodePxeOptions(b)).toEqual(p);
  });
  it('decodes dnsmasq proxy offer option 43 from the capture', () => {
    const offer = dhcpDatagrams(`${FIX}proxydhcp-bios-boot.dhcp.pcap`).map((d) => decodeDhcp(d.payload))[1]!;
    const p = decodePxeOptions(offer.options.get(Opt.VendorSpecific)!);
    expect(p.discoveryControl).toBe(3);
    expect(p.bootServers?.[0]?.ips).toEqual(['10.99.1.1']);
    expect(p.bootMenu?.[0]?.description).toBe('lab ipxe');
  });
  it('throws DecodeError on truncated sub-options', () => {
    expect(() => decodeSubOptions(Buffer.from([6]))).toThrow(DecodeError);
    expect(() => decodeSubOptions(Buffer.from([6, 4, 1]))).toThrow(DecodeError);
    expect(() => decodePxeOptions(Buffer.from([8, 4, 0x80, 0, 2, 10]))).toThrow(DecodeError);
    expect(() => decodePxeOptions(Buffer.from([9, 3, 0x80, 0, 9]))).toThrow(DecodeError);
  });
  it('encodes iPXE no-pxedhcp (175.176 = 1)', () => {
    const b = encodeIpxeOptions([[IpxeSub.NoPxeDhcp, Buffer.from([1])]]);
    expect([...b]).toEqual([176, 1, 1]);
    expect(decodeIpxeOptions(b).get(176)).toEqual(Buffer.from([1]));
  });
});

describe('classifyClient', () => {
  it('classifies SeaBIOS iPXE (capture) as iPXE, arch bios', () => {
    const d = decodeDhcp(dhcpDatagrams(`${FIX}bios-boot.dhcp.pcap`)[0]!.payload);
    const c = classifyClient(d);
    expect(c).toMatchObject({ arch: 'bios', archCode: 0, firmware: 'ipxe', isPxe: true, isIpxe: true, userClass: 'iPXE', uuid: undefined });
  });
  it('classifies OVMF firmware PXE (capture) as uefi x64, not iPXE', () => {
    const packets = dhcpDatagrams(`${FIX}uefi-boot-full.dhcp.pcap`).map((d) => decodeDhcp(d.payload));
    expect(classifyClient(packets[0]!)).toMatchObject({ arch: 'uefi-x64', archCode: 7, firmware: 'uefi', isPxe: true, isIpxe: false });
    // then the iPXE it loaded: same arch, now iPXE
    expect(classifyClient(packets[4]!)).toMatchObject({ arch: 'uefi-x64', firmware: 'ipxe', isIpxe: true });
  });
  it.each<[string, Array<[number, Buffer | string]>, Record<string, unknown>]>([
    ['BIOS PXE (arch from option 60 only)', [[60, 'PXEClient:Arch:00000:UNDI:002001']], { arch: 'bios', archCode: 0, firmware: 'bios', isPxe: true }],
    ['UEFI HTTP boot', [[60, 'HTTPClient:Arch:00016:UNDI:003001'], [93, u16(16)]], { arch: 'uefi-x64', firmware: 'uefi-http', isHttpClient: true, isPxe: false }],
    ['ARM64 PXE', [[60, 'PXEClient:Arch:00011:UNDI:003000'], [93, u16(11)]], { arch: 'uefi-arm64', firmware: 'uefi' }],
    ['gPXE', [[60, 'PXEClient:Arch:00000:UNDI:002001'], [77, 'gPXE']], { firmware: 'ipxe', isIpxe: true }],
    ['option 175 without user class', [[60, 'PXEClient'], [175, Buffer.from([19, 1, 1])]], { firmware: 'ipxe', isIpxe: true, archCode: undefined, arch: 'unknown' }],
    ['RFC 3004 user class', [[77, Buffer.from([4, 0x69, 0x50, 0x58, 0x45])]], { userClass: 'iPXE', isIpxe: true }],
    ['plain dhclient', [[12, 'host']], { firmware: 'other', isPxe: false, isIpxe: false, arch: 'unknown' }],
    ['PXE with unknown arch', [[60, 'PXEClient:Arch:00002:UNDI:003000']], { firmware: 'other', arch: 'unknown', archCode: 2 }],
  ])('classifies %s', (_n, opts, want) => {
    const c = classifyClient(req(opts));
    expect(c).toMatchObject(want);
    expect(c.reasons.length).toBeGreaterThan(0);
  });
  it('reads the option 97 GUID, undefined when all zero', () => {
    const g = Buffer.concat([Buffer.from([0]), Buffer.from('33221100554477668899aabbccddeeff', 'hex')]);
    expect(formatGuid(g)).toBe('00112233-4455-6677-8899-aabbccddeeff');
    expect(classifyClient(req([[97, g]])).uuid).toBe('00112233-4455-6677-8899-aabbccddeeff');
    expect(classifyClient(req([[97, Buffer.alloc(17)]])).uuid).toBeUndefined();
    expect(formatGuid(Buffer.alloc(3))).toBeUndefined();
  });
  it('decodes user class in both shapes', () => {
    expect(decodeUserClass(Buffer.from('iPXE'))).toBe('iPXE');
    expect(decodeUserClass(Buffer.from([3, 0x61, 0x62, 0x63, 2, 0x64, 0x65]))).toBe('abc,de');
    expect(decodeUserClass(undefined)).toBeUndefined();
  });
});
