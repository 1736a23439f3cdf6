import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { Opt, OptionMap, MessageType } from '../../../../proto/dhcp/options';
import { decodeDhcp, encodeDhcp, messageType, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { classifyClient, decodeIpxeOptions } from '../../../../proto/dhcp/pxe';
import { buildAck, buildNak, buildOffer, buildProxyAck, buildProxyOffer, chooseBoot, httpBase, ipxeScriptUrl, prefixToMask, type ServerParams } from '../../../../proto/dhcp/reply';

const server: ServerParams = { serverIp: '10.99.0.1', subnetMask: '255.255.255.0', router: '10.99.0.1', dns: ['10.99.0.1'], leaseSeconds: 3600 };
const params = { lanAddress: '10.99.0.1', httpPort: 80, tftpEnabled: true, loaders: { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['a.efi', 'b.efi'] }, ipxeNoProxyDhcp: true };

function req(opts: Array<[number, Buffer | string]>, f: Partial<DhcpMessage> = {}): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, MessageType.DISCOVER);
  for (const [c, v] of opts) options.set(c, typeof v === 'string' ? Buffer.from(v) : v);
  const chaddr = Buffer.from('525400abcdef' + '00'.repeat(10), 'hex');
  return { op: 1, htype: 1, hlen: 6, hops: 0, xid: 0xdeadbeef, secs: 4, flags: 0x8000, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac: '52:54:00:ab:cd:ef', sname: '', file: '', options, ...f };
}

describe('reply builders', () => {
  it('copies xid, flags, giaddr and chaddr (RFC 2131 table 3) and pads to 300 bytes', () => {
    const r = buildOffer(req([], { giaddr: '10.99.0.254' }), { yiaddr: '10.99.0.100', server });
    expect(r).toMatchObject({ op: 2, xid: 0xdeadbeef, flags: 0x8000, giaddr: '10.99.0.254', mac: '52:54:00:ab:cd:ef', secs: 0, hops: 0 });
    const b = encodeDhcp(r);
    expect(b.length).toBeGreaterThanOrEqual(300);
    expect(decodeDhcp(b)).toEqual(r);
  });

  it('chooses the loader, fallbacks, the script URL and the HTTP boot URL', () => {
    const bios = classifyClient(req([[60, 'PXEClient:Arch:00000:UNDI:002001']]));
    expect(chooseBoot(bios, params).boot).toMatchObject({ file: 'ipxe/undionly.kpxe', via: 'tftp', role: 'loader', discoveryControl: 8 });
    const uefi = classifyClient(req([[60, 'PXEClient:Arch:00007:UNDI:003000'], [93, Buffer.from([0, 7])]]));
    expect(chooseBoot(uefi, params, 1).boot?.file).toBe('b.efi');
    expect(chooseBoot(uefi, params, 9).boot?.file).toBe('b.efi');
    expect(chooseBoot(uefi, { ...params, tftpEnabled: false }).missing).toMatch(/TFTP/);
    const ipxe = classifyClient(req([[77, 'iPXE']]));
    expect(chooseBoot(ipxe, params).boot?.file).toBe('http://10.99.0.1/boot.ipxe?mac=52:54:00:ab:cd:ef');
    const http = classifyClient(req([[60, 'HTTPClient:Arch:00016:UNDI:003001'], [93, Buffer.from([0, 16])]]));
    expect(chooseBoot(http, { ...params, httpPort: 8080 }).boot?.file).toBe('http://10.99.0.1:8080/files/a.efi');
    expect(chooseBoot(classifyClient(req([])), params)).toEqual({});
    expect(httpBase('10.99.0.1', 80)).toBe('http://10.99.0.1');
    expect(ipxeScriptUrl('10.99.0.1', 8080, 'aa:bb:cc:dd:ee:ff')).toBe('http://10.99.0.1:8080/boot.ipxe?mac=aa:bb:cc:dd:ee:ff');
  });

  it('puts a long URL in option 67 only', () => {
    const ipxe = classifyClient(req([[77, 'iPXE']]));
    const boot = { ...chooseBoot(ipxe, params).boot!, file: 'http://10.99.0.1/' + 'x'.repeat(200) };
    const r = buildAck(req([[77, 'iPXE']]), { yiaddr: '10.99.0.100', server, boot });
    expect(r.file).toBe('');
    expect(r.options.str(Opt.BootFileName)).toBe(boot.file);
    expect(decodeIpxeOptions(r.options.get(Opt.IpxeEncapsulated)!).get(176)).toEqual(Buffer.from([1]));
  });

  it('NAKs carry only the server id and a message; through a relay the broadcast bit is set', () => {
    const r = buildNak(req([], { giaddr: '10.99.0.254', flags: 0 }), '10.99.0.1', 'wrong network');
    expect(messageType(r)).toBe(MessageType.NAK);
    expect(r.yiaddr).toBe('0.0.0.0');
    expect(r.options.codes()).toEqual([Opt.MessageType, Opt.ServerIdentifier, Opt.Message]);
    expect(r.flags & 0x8000).toBe(0x8000);
  });

  it('proxy replies echo the client GUID (option 97)', () => {
    const guid = Buffer.concat([Buffer.from([0]), Buffer.alloc(16, 3)]);
    const q = req([[60, 'PXEClient:Arch:00007:UNDI:003000'], [97, guid]]);
    const boot = chooseBoot(classifyClient(q), params).boot;
    expect(buildProxyOffer(q, '10.99.0.1', boot).options.get(Opt.ClientMachineId)).toEqual(guid);
    expect(buildProxyAck(q, '10.99.0.1', boot).options.get(Opt.ClientMachineId)).toEqual(guid);
  });

  it('prefixToMask', () => {
    expect(prefixToMask(24)).toBe('255.255.255.0');
    expect(prefixToMask(16)).toBe('255.255.0.0');
    expect(prefixToMask(0)).toBe('0.0.0.0');
    expect(prefixToMask(32)).toBe('255.255.255.255');
  });

  it('builds replies the dhcp npm package decodes the same way', () => {
    const require = createRequire(import.meta.url);
    const proto = require('dhcp/lib/protocol.js') as { parse(b: Buffer): any };
    const q = req([[60, 'PXEClient:Arch:00000:UNDI:002001']]);
    const boot = chooseBoot(classifyClient(q), params).boot;
    for (const r of [buildOffer(q, { yiaddr: '10.99.0.100', server, boot }), buildAck(q, { yiaddr: '10.99.0.100', server, boot }), buildProxyOffer(q, '10.99.0.1', boot)]) {
      const p = proto.parse(encodeDhcp(r));
      expect(p.op).toBe(2);
      expect(p.xid).toBe(0xdeadbeef);
      expect(p.yiaddr).toBe(r.yiaddr);
      expect(p.siaddr).toBe('10.99.0.1');
      expect(String(p.chaddr).toLowerCase()).toBe('52-54-00-ab-cd-ef');
      expect(p.file).toBe('ipxe/undionly.kpxe');
      expect(p.options[53]).toBe(messageType(r));
      expect(p.options[54]).toBe('10.99.0.1');
      expect(p.options[60]).toBe('PXEClient');
      expect(p.options[66]).toBe('10.99.0.1');
      expect(p.options[67]).toBe('ipxe/undionly.kpxe');
      if (r.yiaddr !== '0.0.0.0') {
        expect(p.options[51]).toBe(3600);
        expect(p.options[1]).toBe('255.255.255.0');
        expect(p.options[3]).toEqual(['10.99.0.1']);
      }
    }
  });
});
