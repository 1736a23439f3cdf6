import { describe, expect, it } from 'vitest';
import { Opt, OptionMap } from '../../../../proto/dhcp/options';
import { decodeDhcp, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { decodeBusId, nicFromDhcp, nicName, nicText } from '../../../../proto/dhcp/nic';
import { dhcpDatagrams } from '../../../helpers/udp-frames';

const FIX = new URL('../../../fixtures/pcap/', import.meta.url).pathname;

/** the NICs named by the iPXE requests (op 1 with option 175) of a capture */
function nicsIn(file: string) {
  return dhcpDatagrams(FIX + file)
    .map((d) => decodeDhcp(d.payload))
    .filter((m) => m.op === 1 && m.options.has(Opt.IpxeEncapsulated))
    .map((m) => ({ mac: m.mac, nic: nicFromDhcp(m) }));
}

function withOpt175(v: Buffer): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, 1).set(Opt.IpxeEncapsulated, v);
  return {
    op: 1, htype: 1, hlen: 6, hops: 0, xid: 1, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
    chaddr: Buffer.alloc(16), mac: '52:54:00:00:00:01', sname: '', file: '', options,
  };
}

describe('option 175.177 bus-id (iPXE struct dhcp_netdev_desc)', () => {
  it('a USB NIC from a captured iPXE 2.0 boot (ipxe.lkrn, QEMU usb-net on xHCI)', () => {
    const got = nicsIn('usbnic-bios-ipxe.dhcp.pcap');
    expect(got.length).toBeGreaterThanOrEqual(2); // DISCOVER and REQUEST
    for (const g of got) expect(g.nic).toEqual({ bus: 'usb', vendor: '0525', device: 'a4a2', name: 'Linux USB Ethernet/RNDIS gadget (QEMU usb-net)' });
  });

  it('PCI NICs from captured iPXE boots: e1000 (BIOS ROM), virtio-net (ipxe.efi)', () => {
    expect(nicsIn('bios-boot.dhcp.pcap')[0]!.nic).toEqual({ bus: 'pci', vendor: '8086', device: '100e', name: 'Intel 82540EM (e1000)' });
    expect(nicsIn('uefi-boot-full.dhcp.pcap')[0]!.nic).toEqual({ bus: 'pci', vendor: '1af4', device: '1000', name: 'virtio-net' });
  });

  it('firmware PXE requests (no option 175) name no NIC', () => {
    const fw = dhcpDatagrams(FIX + 'uefi-boot-full.dhcp.pcap')
      .map((d) => decodeDhcp(d.payload))
      .filter((m) => m.op === 1 && !m.options.has(Opt.IpxeEncapsulated));
    expect(fw.length).toBeGreaterThan(0);
    for (const m of fw) expect(nicFromDhcp(m)).toBeUndefined();
  });

  it.each([
    ['0a0b95772a', { bus: 'usb', vendor: '0b95', device: '772a', name: 'ASIX AX88772A' }],
    ['0a0b951790', { bus: 'usb', vendor: '0b95', device: '1790', name: 'ASIX AX88179' }],
    ['0a0bda8152', { bus: 'usb', vendor: '0bda', device: '8152', name: 'Realtek RTL8152' }],
    ['0a0bda8153', { bus: 'usb', vendor: '0bda', device: '8153', name: 'Realtek RTL8153' }],
    ['0a0525a4a1', { bus: 'usb', vendor: '0525', device: 'a4a1', name: 'Linux USB Ethernet gadget (CDC ECM)' }],
    ['0a12345678', { bus: 'usb', vendor: '1234', device: '5678' }],
    ['0710ec8168', { bus: 'efi', vendor: '10ec', device: '8168' }],
    ['2a00010002', { bus: 'bus-42', vendor: '0001', device: '0002' }],
  ])('decodes %s', (hex, want) => {
    expect(decodeBusId(Buffer.from(hex, 'hex'))).toEqual(want);
  });

  it('malformed values are not guessed at', () => {
    expect(decodeBusId(Buffer.from('0a0b95', 'hex'))).toBeUndefined();
    expect(decodeBusId(Buffer.from('0a0b95772a00', 'hex'))).toBeUndefined();
    expect(decodeBusId(undefined)).toBeUndefined();
    // option 175 with a sub-option running past its end, or without 177
    expect(nicFromDhcp(withOpt175(Buffer.from([177, 9, 10, 11])))).toBeUndefined();
    expect(nicFromDhcp(withOpt175(Buffer.from([176, 1, 1])))).toBeUndefined();
    expect(nicFromDhcp(withOpt175(Buffer.from([19, 1, 1, 177, 5, 10, 0x0b, 0x95, 0x77, 0x2a])))?.name).toBe('ASIX AX88772A');
  });

  it('names and text', () => {
    expect(nicName('usb', '0B95', '772A')).toBe('ASIX AX88772A');
    expect(nicText({ bus: 'usb', vendor: '0b95', device: '772a', name: 'ASIX AX88772A' })).toBe('USB 0b95:772a ASIX AX88772A');
    expect(nicText({ bus: 'pci', vendor: '1234', device: '0001' })).toBe('PCI 1234:0001');
  });
});
