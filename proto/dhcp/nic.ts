/**
 * The network card a client boots from, as iPXE tells it: DHCP option 175
 * (iPXE encapsulated), sub-option 177 "bus-id" (iPXE include/ipxe/dhcp.h
 * `struct dhcp_netdev_desc`: bus type, 1 byte; vendor id and device id, 2 bytes
 * each, network byte order; net/netdev_settings.c fills it from the device's
 * description, and for USB devices drivers/bus/usb.c puts in the USB idVendor
 * and idProduct). Pure: no I/O.
 */
import { Opt } from './options';
import type { DhcpMessage } from './packet';
import { decodeSubOptions, IpxeSub } from './pxe';

/** iPXE include/ipxe/device.h BUS_TYPE_* */
export const BUS_TYPES: Readonly<Record<number, string>> = {
  1: 'pci',
  2: 'isapnp',
  3: 'eisa',
  4: 'mca',
  5: 'isa',
  6: 'tap',
  7: 'efi',
  8: 'xen',
  9: 'hyperv',
  10: 'usb',
  11: 'devicetree',
};

export interface NicInfo {
  /** pci, usb, … (`bus-N` for a type iPXE did not have when this was written) */
  bus: string;
  /** vendor id, 4 lower-case hex digits */
  vendor: string;
  /** device (USB: product) id, 4 lower-case hex digits */
  device: string;
  /** the chip or device, where known */
  name?: string;
}

/**
 * Common network chips by "bus:vendor:device". USB first: the dongles people carry.
 * Ids as the Linux and iPXE driver tables list them.
 */
const NIC_NAMES: Readonly<Record<string, string>> = {
  // ASIX (asix / ax88179_178a in Linux; axge in iPXE)
  'usb:0b95:7720': 'ASIX AX88772',
  'usb:0b95:772a': 'ASIX AX88772A',
  'usb:0b95:772b': 'ASIX AX88772B',
  'usb:0b95:7e2b': 'ASIX AX88772B',
  'usb:0b95:1780': 'ASIX AX88178',
  'usb:0b95:178a': 'ASIX AX88178A',
  'usb:0b95:1790': 'ASIX AX88179',
  'usb:2001:4a00': 'D-Link DUB-1312 (ASIX AX88179)',
  'usb:04e8:a100': 'Samsung (ASIX AX88179)',
  'usb:0df6:0072': 'Sitecom (ASIX AX88179)',
  // Realtek (r8152)
  'usb:0bda:8150': 'Realtek RTL8150',
  'usb:0bda:8152': 'Realtek RTL8152',
  'usb:0bda:8153': 'Realtek RTL8153',
  'usb:0bda:8155': 'Realtek RTL8155',
  'usb:0bda:8156': 'Realtek RTL8156',
  'usb:17ef:7205': 'Lenovo USB-C Ethernet (Realtek RTL8153)',
  'usb:17ef:720c': 'Lenovo USB-C Ethernet (Realtek RTL8153)',
  'usb:045e:07c6': 'Microsoft Surface Ethernet (Realtek RTL8153)',
  'usb:0b05:1976': 'ASUS (Realtek RTL8153)',
  // SMSC / Microchip
  'usb:0424:ec00': 'SMSC LAN9512/LAN9514',
  'usb:0424:7500': 'SMSC LAN7500',
  'usb:0424:7800': 'Microchip LAN7800',
  // Davicom
  'usb:0fe6:9700': 'Davicom DM9601',
  'usb:0a46:9601': 'Davicom DM9601',
  // Linux USB gadgets (NetChip ids), which QEMU's usb-net also uses
  'usb:0525:a4a1': 'Linux USB Ethernet gadget (CDC ECM)',
  'usb:0525:a4a2': 'Linux USB Ethernet/RNDIS gadget (QEMU usb-net)',
  // PCI NICs seen in VMs and laptops
  'pci:8086:100e': 'Intel 82540EM (e1000)',
  'pci:8086:10d3': 'Intel 82574L (e1000e)',
  'pci:8086:15b8': 'Intel I219-V',
  'pci:1af4:1000': 'virtio-net',
  'pci:1af4:1041': 'virtio-net (modern)',
  'pci:10ec:8139': 'Realtek RTL8139',
  'pci:10ec:8168': 'Realtek RTL8111/8168',
};

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

/** A name for a chip, when known. */
export function nicName(bus: string, vendor: string, device: string): string | undefined {
  return NIC_NAMES[`${bus}:${vendor.toLowerCase()}:${device.toLowerCase()}`];
}

/** The 5 bytes of sub-option 177; undefined for anything else (a short or odd value is not guessed at). */
export function decodeBusId(v: Uint8Array | undefined): NicInfo | undefined {
  if (!v || v.length !== 5) return undefined;
  const type = v[0]!;
  const bus = BUS_TYPES[type] ?? `bus-${type}`;
  const vendor = hex4((v[1]! << 8) | v[2]!);
  const device = hex4((v[3]! << 8) | v[4]!);
  const name = nicName(bus, vendor, device);
  return { bus, vendor, device, ...(name ? { name } : {}) };
}

/** The NIC an iPXE client names in its DHCP request (option 175.177); undefined when absent or malformed. */
export function nicFromDhcp(msg: DhcpMessage): NicInfo | undefined {
  const v = msg.options.get(Opt.IpxeEncapsulated);
  if (!v) return undefined;
  try {
    const sub = decodeSubOptions(v).find(([c]) => c === IpxeSub.BusId);
    return decodeBusId(sub?.[1]);
  } catch {
    return undefined; // a broken option 175 is not a NIC
  }
}

/** "USB 0b95:772a ASIX AX88772A" */
export function nicText(n: NicInfo): string {
  return `${n.bus.toUpperCase()} ${n.vendor}:${n.device}${n.name ? ` ${n.name}` : ''}`;
}
