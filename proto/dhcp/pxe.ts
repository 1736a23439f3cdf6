/**
 * PXE: the RFC 4578 / IANA processor-architecture table, the option 43 (PXE)
 * and option 175 (iPXE) sub-option codecs, and classifyClient(msg).
 */
import { DecodeError } from '../errors';
import type { ArchKey, Firmware } from '../events';
import type { DhcpMessage } from './packet';
import { Opt } from './options';

export interface ArchInfo {
  code: number;
  name: string;
  key: ArchKey;
  /** the firmware boots over HTTP (UEFI HTTP Boot) rather than PXE/TFTP */
  http: boolean;
}

function a(code: number, name: string, key: ArchKey, http = false): ArchInfo {
  return { code, name, key, http };
}

/** IANA "Processor Architecture Types" (RFC 4578 §2.1, RFC 5970 and later registrations). */
export const ARCH_TABLE: readonly ArchInfo[] = [
  a(0, 'x86 BIOS', 'bios'),
  a(1, 'NEC/PC98 (deprecated)', 'unknown'),
  a(2, 'Itanium', 'unknown'),
  a(3, 'DEC Alpha (deprecated)', 'unknown'),
  a(4, 'Arc x86 (deprecated)', 'unknown'),
  a(5, 'Intel Lean Client (deprecated)', 'unknown'),
  a(6, 'x86 UEFI', 'uefi-ia32'),
  a(7, 'x64 UEFI', 'uefi-x64'),
  a(8, 'EFI Xscale (deprecated)', 'unknown'),
  // 9 is "EBC", but a lot of x64 firmware (and old EDK2) sends 9 for x64
  a(9, 'EBC (x64 UEFI in practice)', 'uefi-x64'),
  a(10, 'ARM 32-bit UEFI', 'uefi-arm32'),
  a(11, 'ARM 64-bit UEFI', 'uefi-arm64'),
  a(12, 'PowerPC Open Firmware', 'unknown'),
  a(13, 'PowerPC ePAPR', 'unknown'),
  a(14, 'POWER OPAL v3', 'unknown'),
  a(15, 'x86 UEFI HTTP', 'uefi-ia32', true),
  a(16, 'x64 UEFI HTTP', 'uefi-x64', true),
  a(17, 'EBC UEFI HTTP', 'uefi-x64', true),
  a(18, 'ARM 32-bit UEFI HTTP', 'uefi-arm32', true),
  a(19, 'ARM 64-bit UEFI HTTP', 'uefi-arm64', true),
  a(20, 'x86 BIOS HTTP', 'bios', true),
  a(21, 'ARM 32-bit U-Boot', 'unknown'),
  a(22, 'ARM 64-bit U-Boot', 'unknown'),
  a(23, 'ARM 32-bit U-Boot HTTP', 'unknown', true),
  a(24, 'ARM 64-bit U-Boot HTTP', 'unknown', true),
  a(25, 'RISC-V 32-bit UEFI', 'unknown'),
  a(26, 'RISC-V 32-bit UEFI HTTP', 'unknown', true),
  a(27, 'RISC-V 64-bit UEFI', 'uefi-riscv64'),
  a(28, 'RISC-V 64-bit UEFI HTTP', 'uefi-riscv64', true),
  a(29, 'RISC-V 128-bit UEFI', 'unknown'),
  a(30, 'RISC-V 128-bit UEFI HTTP', 'unknown', true),
  a(31, 's390 Basic', 'unknown'),
  a(32, 's390 Extended', 'unknown'),
  a(33, 'MIPS 32-bit UEFI', 'unknown'),
  a(34, 'MIPS 64-bit UEFI', 'unknown'),
  a(35, 'Sunway 32-bit UEFI', 'unknown'),
  a(36, 'Sunway 64-bit UEFI', 'unknown'),
  a(37, 'LoongArch 32-bit UEFI', 'unknown'),
  a(38, 'LoongArch 32-bit UEFI HTTP', 'unknown', true),
  a(39, 'LoongArch 64-bit UEFI', 'unknown'),
  a(40, 'LoongArch 64-bit UEFI HTTP', 'unknown', true),
  a(41, 'ARM rpiboot', 'unknown'),
];

const ARCH_BY_CODE = new Map(ARCH_TABLE.map((x) => [x.code, x]));

export function archInfo(code: number): ArchInfo {
  return ARCH_BY_CODE.get(code) ?? { code, name: `arch ${code}`, key: 'unknown', http: false };
}

// ---------------------------------------------------------------------------
// Sub-option TLVs (option 43 for PXE, option 175 for iPXE)

export type SubOptions = Array<[number, Buffer]>;

/** Decodes code/len/value sub-options; 0 is pad, 255 ends. Throws DecodeError. */
export function decodeSubOptions(b: Uint8Array): SubOptions {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const out: SubOptions = [];
  let i = 0;
  while (i < buf.length) {
    const code = buf[i]!;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) break;
    if (i + 1 >= buf.length) throw new DecodeError('suboption-truncated', `sub-option ${code} has no length byte`, i);
    const len = buf[i + 1]!;
    if (i + 2 + len > buf.length) throw new DecodeError('suboption-overrun', `sub-option ${code} length ${len} runs past the end`, i);
    out.push([code, Buffer.from(buf.subarray(i + 2, i + 2 + len))]);
    i += 2 + len;
  }
  return out;
}

export function encodeSubOptions(subs: SubOptions, withEnd = true): Buffer {
  const parts: Buffer[] = [];
  for (const [code, v] of subs) {
    if (v.length > 255) throw new RangeError(`sub-option ${code} longer than 255 bytes`);
    parts.push(Buffer.from([code, v.length]), v);
  }
  if (withEnd) parts.push(Buffer.from([255]));
  return Buffer.concat(parts);
}

/** PXE 2.1 spec, option 43 sub-options. */
export const PxeSub = {
  MtftpIp: 1,
  MtftpCport: 2,
  MtftpSport: 3,
  MtftpTmout: 4,
  MtftpDelay: 5,
  DiscoveryControl: 6,
  DiscoveryMcastAddr: 7,
  BootServers: 8,
  BootMenu: 9,
  MenuPrompt: 10,
  McastAddrsAlloc: 11,
  CredentialTypes: 12,
  BootItem: 71,
  End: 255,
} as const;

/** PXE_DISCOVERY_CONTROL bits. */
export const DiscoveryControl = {
  DisableBroadcast: 1,
  DisableMulticast: 2,
  OnlyBootServers: 4,
  /** boot file name present in the (proxy) offer: download it, no discovery */
  UseBootFile: 8,
} as const;

export interface PxeBootServer {
  type: number;
  ips: string[];
}
export interface PxeMenuItem {
  type: number;
  description: string;
}
export interface PxeVendorOptions {
  discoveryControl?: number;
  bootServers?: PxeBootServer[];
  bootMenu?: PxeMenuItem[];
  menuPrompt?: { timeout: number; prompt: string };
  /** PXE boot item (71): type and layer */
  bootItem?: { type: number; layer: number };
  /** everything else, raw */
  other: SubOptions;
}

export function decodePxeOptions(b: Uint8Array): PxeVendorOptions {
  const out: PxeVendorOptions = { other: [] };
  for (const [code, v] of decodeSubOptions(b)) {
    switch (code) {
      case PxeSub.DiscoveryControl:
        if (v.length !== 1) throw new DecodeError('pxe-discovery', 'PXE discovery control must be 1 byte', 0);
        out.discoveryControl = v[0]!;
        break;
      case PxeSub.BootServers: {
        const list: PxeBootServer[] = [];
        let i = 0;
        while (i < v.length) {
          if (i + 3 > v.length) throw new DecodeError('pxe-servers', 'PXE boot server entry truncated', i);
          const type = v.readUInt16BE(i);
          const n = v[i + 2]!;
          if (i + 3 + 4 * n > v.length) throw new DecodeError('pxe-servers', 'PXE boot server addresses truncated', i);
          const ips: string[] = [];
          for (let k = 0; k < n; k++) ips.push(Array.from(v.subarray(i + 3 + 4 * k, i + 7 + 4 * k)).join('.'));
          list.push({ type, ips });
          i += 3 + 4 * n;
        }
        out.bootServers = list;
        break;
      }
      case PxeSub.BootMenu: {
        const list: PxeMenuItem[] = [];
        let i = 0;
        while (i < v.length) {
          if (i + 3 > v.length) throw new DecodeError('pxe-menu', 'PXE boot menu entry truncated', i);
          const type = v.readUInt16BE(i);
          const n = v[i + 2]!;
          if (i + 3 + n > v.length) throw new DecodeError('pxe-menu', 'PXE boot menu description truncated', i);
          list.push({ type, description: v.toString('latin1', i + 3, i + 3 + n) });
          i += 3 + n;
        }
        out.bootMenu = list;
        break;
      }
      case PxeSub.MenuPrompt:
        if (v.length < 1) throw new DecodeError('pxe-prompt', 'PXE menu prompt empty', 0);
        out.menuPrompt = { timeout: v[0]!, prompt: v.toString('latin1', 1) };
        break;
      case PxeSub.BootItem:
        if (v.length !== 4) throw new DecodeError('pxe-item', 'PXE boot item must be 4 bytes', 0);
        out.bootItem = { type: v.readUInt16BE(0), layer: v.readUInt16BE(2) };
        break;
      default:
        out.other.push([code, v]);
    }
  }
  return out;
}

export function encodePxeOptions(p: Omit<PxeVendorOptions, 'other'> & { other?: SubOptions }): Buffer {
  const subs: SubOptions = [];
  if (p.discoveryControl !== undefined) subs.push([PxeSub.DiscoveryControl, Buffer.from([p.discoveryControl])]);
  if (p.bootServers) {
    const parts = p.bootServers.map((s) => {
      const h = Buffer.alloc(3);
      h.writeUInt16BE(s.type);
      h[2] = s.ips.length;
      return Buffer.concat([h, ...s.ips.map((ip) => Buffer.from(ip.split('.').map(Number)))]);
    });
    subs.push([PxeSub.BootServers, Buffer.concat(parts)]);
  }
  if (p.bootMenu) {
    const parts = p.bootMenu.map((m) => {
      const d = Buffer.from(m.description, 'latin1');
      const h = Buffer.alloc(3);
      h.writeUInt16BE(m.type);
      h[2] = d.length;
      return Buffer.concat([h, d]);
    });
    subs.push([PxeSub.BootMenu, Buffer.concat(parts)]);
  }
  if (p.menuPrompt) subs.push([PxeSub.MenuPrompt, Buffer.concat([Buffer.from([p.menuPrompt.timeout]), Buffer.from(p.menuPrompt.prompt, 'latin1')])]);
  if (p.bootItem) {
    const v = Buffer.alloc(4);
    v.writeUInt16BE(p.bootItem.type, 0);
    v.writeUInt16BE(p.bootItem.layer, 2);
    subs.push([PxeSub.BootItem, v]);
  }
  for (const o of p.other ?? []) subs.push(o);
  return encodeSubOptions(subs);
}

/** iPXE option 175 sub-options (iPXE's include/ipxe/dhcp.h). */
export const IpxeSub = {
  Priority: 1,
  KeepSan: 8,
  SkipSanBoot: 9,
  Syslogs: 85,
  Cert: 91,
  PrivKey: 92,
  CrossCert: 93,
  NoPxeDhcp: 176,
  BusId: 177,
  BiosDrive: 189,
  Username: 190,
  Password: 191,
  ReverseUsername: 192,
  ReversePassword: 193,
  Version: 235,
  // feature flags (iPXE announces what it was built with)
  Pxeext: 16,
  Iscsi: 17,
  Aoe: 18,
  Http: 19,
  Https: 20,
  Tftp: 21,
  Ftp: 22,
  Dns: 23,
  Bzimage: 24,
  Multiboot: 25,
  Slam: 26,
  Srp: 27,
  Nbi: 32,
  Pxe: 33,
  Elf: 34,
  Comboot: 35,
  Efi: 36,
  Fcoe: 37,
  Vlan: 38,
  Menu: 39,
  Sdi: 40,
  Nfs: 41,
} as const;

export function decodeIpxeOptions(b: Uint8Array): Map<number, Buffer> {
  return new Map(decodeSubOptions(b));
}

export function encodeIpxeOptions(subs: Map<number, Uint8Array> | Array<[number, Uint8Array]>): Buffer {
  return encodeSubOptions([...subs].map(([k, v]) => [k, Buffer.from(v)]), false);
}

// ---------------------------------------------------------------------------
// classifyClient: pure, from options 60, 77, 93, 97, 175

export interface ClientClass {
  mac: string;
  arch: ArchKey;
  /** option 93's first entry, or the Arch field of "PXEClient:Arch:NNNNN"; undefined when neither */
  archCode: number | undefined;
  firmware: Firmware;
  /** option 60 starts with PXEClient */
  isPxe: boolean;
  /** user class iPXE/gPXE or option 175 present: already iPXE, never chainload again */
  isIpxe: boolean;
  /** option 60 starts with HTTPClient (UEFI HTTP Boot) */
  isHttpClient: boolean;
  userClass: string | undefined;
  vendorClass: string | undefined;
  /** option 97 as a GUID string; undefined when absent or all zero */
  uuid: string | undefined;
  /** how each conclusion was reached (for debug logs) */
  reasons: string[];
}

/** RFC 3004 user class is a list of length-prefixed strings; iPXE sends the bare text. */
export function decodeUserClass(v: Buffer | undefined): string | undefined {
  if (!v || v.length === 0) return undefined;
  let i = 0;
  const parts: string[] = [];
  while (i < v.length) {
    const n = v[i]!;
    if (n === 0 || i + 1 + n > v.length) break;
    parts.push(v.toString('latin1', i + 1, i + 1 + n));
    i += 1 + n;
  }
  if (i === v.length && parts.length > 0 && parts.every((p) => /^[\x20-\x7e]+$/.test(p))) return parts.join(',');
  const z = v.indexOf(0);
  return v.toString('latin1', 0, z < 0 ? v.length : z);
}

/** RFC 4578 §2.3: type 0 followed by a 16-byte GUID (first three fields little-endian, SMBIOS style). */
export function formatGuid(v: Buffer | undefined): string | undefined {
  if (!v || v.length !== 17 || v[0] !== 0) return undefined;
  const g = v.subarray(1);
  if (g.every((x) => x === 0)) return undefined;
  const h = (s: Buffer) => s.toString('hex');
  const le = (s: Buffer) => h(Buffer.from(s).reverse());
  return `${le(g.subarray(0, 4))}-${le(g.subarray(4, 6))}-${le(g.subarray(6, 8))}-${h(g.subarray(8, 10))}-${h(g.subarray(10, 16))}`;
}

const ARCH_IN_VENDOR = /^PXEClient:Arch:(\d{5})/;
const ARCH_IN_HTTP_VENDOR = /^HTTPClient:Arch:(\d{5})/;

export function classifyClient(msg: DhcpMessage): ClientClass {
  const o = msg.options;
  const reasons: string[] = [];
  const vendorClass = o.str(Opt.VendorClassIdentifier);
  const userClass = decodeUserClass(o.get(Opt.UserClass));
  const isPxe = vendorClass?.startsWith('PXEClient') ?? false;
  const isHttpClient = vendorClass?.startsWith('HTTPClient') ?? false;
  let archCode: number | undefined;
  const a93 = o.get(Opt.ClientSystemArch);
  if (a93 && a93.length >= 2) {
    archCode = a93.readUInt16BE(0);
    reasons.push(`option 93 = ${archCode}`);
  } else {
    const m = vendorClass ? (ARCH_IN_VENDOR.exec(vendorClass) ?? ARCH_IN_HTTP_VENDOR.exec(vendorClass)) : null;
    if (m) {
      archCode = Number(m[1]);
      reasons.push(`arch ${archCode} from option 60`);
    } else reasons.push('no arch (no option 93, no Arch in option 60)');
  }
  const info = archCode === undefined ? undefined : archInfo(archCode);
  const arch: ArchKey = info ? info.key : 'unknown';
  const isIpxe = userClass === 'iPXE' || userClass === 'gPXE' || o.has(Opt.IpxeEncapsulated);
  if (isIpxe) reasons.push(o.has(Opt.IpxeEncapsulated) ? 'option 175 present: iPXE' : `user class ${userClass}: iPXE`);
  let firmware: Firmware;
  if (isIpxe) firmware = 'ipxe';
  else if (isHttpClient) {
    firmware = 'uefi-http';
    reasons.push('option 60 HTTPClient: UEFI HTTP boot');
  } else if (isPxe) {
    firmware = arch === 'bios' ? 'bios' : arch === 'unknown' ? 'other' : 'uefi';
    reasons.push(`option 60 PXEClient: firmware ${firmware}`);
  } else {
    firmware = 'other';
    reasons.push('not a PXE client (option 60 absent or not PXEClient/HTTPClient)');
  }
  return {
    mac: msg.mac,
    arch,
    archCode,
    firmware,
    isPxe,
    isIpxe,
    isHttpClient,
    userClass,
    vendorClass,
    uuid: formatGuid(o.get(Opt.ClientMachineId)),
    reasons,
  };
}
