/**
 * Who sent a DHCPv6 message: firmware kind and architecture from the RFC 5970
 * options (61 arch, 62 NII), the vendor class (16: "PXEClient" / "HTTPClient",
 * as EDK2's PxeBcDhcp6.c and HttpBootDhcp6.c send it) and the user class (15:
 * "iPXE"); the client's DUID; and its MAC, from a DUID-LL/LLT, the RFC 6939
 * option a relay adds, or the EUI-64 of the sender's link-local address.
 * Pure: never throws on a message decodeDhcp6 accepted.
 */
import type { ArchKey, Firmware } from '../events';
import { archInfo } from '../dhcp/pxe';
import { macFromEui64 } from './addr';
import { decodeClientArch, decodeClientLinkLayer, decodeDuid, decodeNii, decodeOro, decodeUserClass, decodeVendorClass, macFromDuid, Opt6, type Duid, type Nii } from './options';
import type { Dhcp6Message } from './packet';

export interface Client6 {
  duid?: Duid;
  /** lower case, colons; undefined when nothing carries it */
  mac?: string;
  macFrom?: 'duid' | 'link-layer-option' | 'neighbour' | 'eui64';
  archCode?: number;
  arch: ArchKey;
  firmware: Firmware;
  /** the vendor class as text (first data item), e.g. "PXEClient:Arch:00007:UNDI:003016" */
  vendorClass?: string;
  vendorEnterprise?: number;
  userClass: string[];
  nii?: Nii;
  oro: number[];
  rapidCommit: boolean;
  /** why the firmware was classified as it was */
  reasons: string[];
}

export function classifyClient6(msg: Dhcp6Message, peer?: { address: string; /** the sender's MAC from the neighbour table, when known */ linkLayer?: string }): Client6 {
  const o = msg.options;
  const reasons: string[] = [];
  const cid = o.get(Opt6.ClientId);
  const duid = cid ? decodeDuid(cid) : undefined;
  let mac: string | undefined;
  let macFrom: Client6['macFrom'];
  const llOpt = o.get(Opt6.ClientLinkLayerAddr);
  const lla = llOpt ? decodeClientLinkLayer(llOpt) : undefined;
  if (duid && (mac = macFromDuid(duid))) macFrom = 'duid';
  else if (lla && lla.hwtype === 1 && lla.address.length === 17) {
    mac = lla.address;
    macFrom = 'link-layer-option';
  } else if (peer?.linkLayer) {
    mac = peer.linkLayer;
    macFrom = 'neighbour';
  } else if (peer && (mac = macFromEui64(peer.address))) macFrom = 'eui64';
  const archBuf = o.get(Opt6.ClientArchType);
  const archCode = archBuf && archBuf.length >= 2 ? decodeClientArch(archBuf)[0] : undefined;
  const vcBuf = o.get(Opt6.VendorClass);
  const vc = vcBuf ? decodeVendorClass(vcBuf) : undefined;
  const vendorClass = vc?.data[0]?.toString('latin1');
  const uc = o.get(Opt6.UserClass);
  const userClass = uc ? decodeUserClass(uc).map((x) => x.toString('latin1')) : [];
  const niiBuf = o.get(Opt6.Nii);
  const oroBuf = o.get(Opt6.Oro);
  const info = archCode !== undefined ? archInfo(archCode) : undefined;
  let firmware: Firmware = 'other';
  if (userClass.includes('iPXE')) {
    firmware = 'ipxe';
    reasons.push('user class "iPXE"');
  } else if (vendorClass?.startsWith('HTTPClient')) {
    firmware = 'uefi-http';
    reasons.push('vendor class "HTTPClient"');
  } else if (vendorClass?.startsWith('PXEClient')) {
    firmware = info?.http ? 'uefi-http' : info?.key === 'bios' ? 'bios' : 'uefi';
    reasons.push('vendor class "PXEClient"');
  } else if (info) {
    firmware = info.http ? 'uefi-http' : info.key === 'bios' ? 'bios' : info.key === 'unknown' ? 'other' : 'uefi';
    reasons.push(`client architecture ${archCode}`);
  } else reasons.push('no vendor class, user class or architecture: not a network-boot client');
  return {
    duid,
    mac,
    macFrom,
    archCode,
    arch: info?.key ?? 'unknown',
    firmware,
    vendorClass,
    vendorEnterprise: vc?.enterprise,
    userClass,
    nii: niiBuf ? decodeNii(niiBuf) : undefined,
    oro: oroBuf ? decodeOro(oroBuf) : [],
    rapidCommit: o.has(Opt6.RapidCommit),
    reasons,
  };
}
