import { describe, expect, it } from 'vitest';
import { ClientTracker, type ClientState } from '../../../../agent/clients/tracker';
import { parseSecureBootFlag } from '../../../../agent/clients/secureboot';
import type { BootConfig } from '../../../../agent/config/types';
import { BootPlan } from '../../../../relay/boot/plan';
import type { RelayEventType } from '../../../../proto/events';
import { scripted, type EventFields } from '../../../helpers/events';
import { cleanReport } from '../../../../relay/http/report';

const BOOT: BootConfig = {
  loaders: { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/ipxe.efi'] },
  defaultProfile: 'debian',
  profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz', 'extra/fw.cpio'] }, menu: { script: 'menus/main.ipxe' } },
  assign: { '52:54:00:00:00:09': 'menu' },
};
const CHAIN: BootConfig = {
  ...BOOT,
  loaders: { 'uefi-x64': ['sb/shimx64.efi'] },
  chains: { 'sb/shimx64.efi': { shim: 'sb/shimx64.efi', grub: 'sb/grubnetx64.efi.signed', fetch: 'tftp' } },
};
const MAC = '52:54:00:99:5b:01';

function setup(boot = BOOT, mac = MAC) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const failures: Array<Record<string, unknown>> = [];
  const t = new ClientTracker({ plan: new BootPlan({ boot }), now: () => now });
  t.on('client', (u) => {
    if (u.failed) failures.push(u.failed as unknown as Record<string, unknown>);
  });
  const ev = <T extends RelayEventType>(type: T, f: EventFields<T> = {}) => t.apply(scripted(type, { mac, ...f }));
  const fw = { firmware: 'uefi' as const, arch: 'uefi-x64' as const };
  /** firmware PXE: DHCP, then the loader over TFTP, completely */
  const pxeLoader = (file: string) => {
    ev('dhcp.discover', fw);
    ev('dhcp.offer', { ...fw, file });
    ev('dhcp.request', fw);
    ev('dhcp.ack', { ...fw, ip: '10.99.0.100', file });
    ev('tftp.start', { file, ip: '10.99.0.100', totalBytes: 1000 });
    ev('tftp.done', { file, ip: '10.99.0.100', bytes: 1000 });
  };
  return { t, ev, fw, pxeLoader, failures, state: (): ClientState => t.get(mac)!, advance: (ms: number) => ((now += ms), t.tick(now)) };
}

describe('Secure Boot refusal: a complete UEFI loader, then nothing (or the firmware starts over)', () => {
  it('silence after the unsigned loader: the state, the event and explain say Secure Boot, and what to configure', () => {
    const { pxeLoader, advance, state, failures, t } = setup();
    pxeLoader('ipxe/ipxe.efi');
    advance(20_000);
    expect(state().phase).toBe('loader');
    advance(10_000);
    const s = state();
    expect(s.phase).toBe('failed');
    expect(s.error).toMatch(/ipxe\/ipxe\.efi.*Secure Boot is most likely on and refused this unsigned loader/);
    expect(failures.at(-1)).toMatchObject({ type: 'client.failed', reason: 'secure-boot' });
    const text = t.explain(MAC).join('\n');
    expect(text).toMatch(/Secure Boot/);
    expect(text).toMatch(/boot\.loaders\["uefi-x64"\] = \{"shim"/);
  });

  it('the firmware starts over with UEFI HTTP Boot: diagnosed at that DISCOVER, and it stays failed through the offer', () => {
    const { pxeLoader, ev, advance, state } = setup();
    pxeLoader('ipxe/ipxe.efi');
    advance(5_000);
    ev('dhcp.discover', { firmware: 'uefi-http', arch: 'uefi-x64' });
    expect(state().phase).toBe('failed');
    expect(state().error).toMatch(/started over 5 s later.*Secure Boot/);
    ev('dhcp.offer', { firmware: 'uefi-http', arch: 'uefi-x64', file: 'http://10.99.0.1/files/ipxe/ipxe.efi' });
    ev('dhcp.ack', { firmware: 'uefi-http', arch: 'uefi-x64', ip: '10.99.0.100', file: 'http://10.99.0.1/files/ipxe/ipxe.efi' });
    expect(state().phase).toBe('failed');
    expect(state().error).toMatch(/Secure Boot/);
  });

  it('a loader that runs asks for more: iPXE DHCP, or shim fetching GRUB; no diagnosis', () => {
    const a = setup();
    a.pxeLoader('ipxe/ipxe.efi');
    a.advance(3_000);
    a.ev('dhcp.discover', { firmware: 'ipxe', arch: 'uefi-x64' });
    a.advance(60_000);
    expect(a.state().error ?? '').not.toMatch(/Secure Boot/);

    const b = setup(CHAIN);
    b.pxeLoader('sb/shimx64.efi');
    b.ev('tftp.error', { file: 'sb/revocations_sku.efi', error: 'file not found', reason: 'not-found' });
    b.ev('tftp.start', { file: 'sb/grubx64.efi', totalBytes: 3000 });
    b.ev('tftp.done', { file: 'sb/grubx64.efi', bytes: 3000 });
    expect(b.state().phase).toBe('loader');
    b.advance(60_000);
    expect(b.state().error ?? '').not.toMatch(/Secure Boot/);
  });

  it('with a fallback in the list, the diagnosis says what the client gets from its next boot on', () => {
    const boot = { ...CHAIN, loaders: { 'uefi-x64': ['ipxe/ipxe.efi', 'sb/shimx64.efi'] } };
    const { pxeLoader, advance, state } = setup(boot);
    pxeLoader('ipxe/ipxe.efi');
    advance(30_000);
    expect(state().error).toMatch(/refused this unsigned loader; from its next network boot on it is offered sb\/shimx64\.efi/);
  });

  it('a refused shim is named as such (signature not trusted or revoked)', () => {
    const { pxeLoader, advance, state, t } = setup(CHAIN);
    pxeLoader('sb/shimx64.efi');
    advance(30_000);
    expect(state().error).toMatch(/refused the shim/);
    expect(t.explain(MAC).join('\n')).toMatch(/Microsoft-signed shim/);
  });

  it('BIOS clients are never diagnosed with Secure Boot', () => {
    const { ev, advance, state } = setup();
    const fw = { firmware: 'bios' as const, arch: 'bios' as const };
    ev('dhcp.discover', fw);
    ev('dhcp.ack', { ...fw, ip: '10.99.0.100', file: 'ipxe/undionly.kpxe' });
    ev('tftp.start', { file: 'ipxe/undionly.kpxe' });
    ev('tftp.done', { file: 'ipxe/undionly.kpxe', bytes: 100 });
    advance(40_000);
    expect(state().error ?? '').not.toMatch(/Secure Boot/);
  });
});

describe('the chain in phases, and what the booted system reports', () => {
  it('shim, GRUB and grub.cfg are the loader phase; kernel, initrds, handoff, booted with secureboot=1', () => {
    const { pxeLoader, ev, state } = setup(CHAIN);
    pxeLoader('sb/shimx64.efi');
    for (const f of ['sb/grubx64.efi', 'grub/grub.cfg']) {
      ev('tftp.start', { file: f });
      ev('tftp.done', { file: f, bytes: 10 });
      expect(state()).toMatchObject({ phase: 'loader', file: f });
    }
    ev('tftp.start', { file: 'debian/vmlinuz' });
    expect(state().phase).toBe('kernel');
    ev('tftp.done', { file: 'debian/vmlinuz', bytes: 10 });
    for (const f of ['debian/initrd.gz', 'extra/fw.cpio']) {
      ev('tftp.start', { file: f });
      ev('tftp.done', { file: f, bytes: 10 });
    }
    expect(state().phase).toBe('handoff');
    ev('client.booted', { ip: '10.99.0.100', secureboot: '1', report: { secureboot: '1', kernel: '6.1.0' } });
    expect(state()).toMatchObject({ phase: 'booted', secureBoot: true, report: { secureboot: '1', kernel: '6.1.0' } });
    expect(Object.keys(state().phases)).toEqual(['dhcp', 'bound', 'loader', 'kernel', 'initrd', 'handoff', 'booted']);
  });

  it('an iPXE-script profile through the chain fails when GRUB has read its config: "needs iPXE"', () => {
    const { pxeLoader, ev, state, t } = setup(CHAIN, '52:54:00:00:00:09');
    pxeLoader('sb/shimx64.efi');
    ev('tftp.start', { file: 'sb/grubx64.efi' });
    ev('tftp.done', { file: 'sb/grubx64.efi', bytes: 10 });
    ev('tftp.start', { file: 'grub/grub.cfg' });
    ev('tftp.done', { file: 'grub/grub.cfg', bytes: 10 });
    expect(state().phase).toBe('failed');
    expect(state().error).toMatch(/profile "menu" is an iPXE script .*needs iPXE/);
    expect(t.explain('52:54:00:00:00:09').join('\n')).toMatch(/relayctl assign/);
  });

  it('GRUB refusing the kernel (it asks for grub/bootrelay-failed/kernel): the state says so, explain says what to do', () => {
    const { pxeLoader, ev, state, t } = setup(CHAIN);
    pxeLoader('sb/shimx64.efi');
    for (const f of ['sb/grubx64.efi', 'grub/grub.cfg', 'debian/vmlinuz']) {
      ev('tftp.start', { file: f });
      ev('tftp.done', { file: f, bytes: 10 });
    }
    ev('tftp.error', { file: 'grub/bootrelay-failed/kernel', error: 'file not found', reason: 'not-found' });
    expect(state().phase).toBe('failed');
    expect(state().error).toMatch(/GRUB refused the kernel debian\/vmlinuz: under Secure Boot it must be signed by a key the shim trusts/);
    expect(t.explain(MAC).join('\n')).toMatch(/same vendor|Debian's shim and GRUB boot Debian's signed kernels/);
  });

  it('keeps the NIC (option 175.177) and the UUID (option 97) from DHCP, across a new boot', () => {
    const { ev, state } = setup();
    const nic = { bus: 'usb', vendor: '0b95', device: '772a', name: 'ASIX AX88772A' };
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios', nic, uuid: '8a7e4c52-1d5e-4b2f-9f5e-0123456789ab' });
    expect(state()).toMatchObject({ nic, uuid: '8a7e4c52-1d5e-4b2f-9f5e-0123456789ab' });
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    expect(state().nic).toEqual(nic);
  });

  it('secureboot flags and report fields', () => {
    expect(parseSecureBootFlag('1')).toBe(true);
    expect(parseSecureBootFlag('0')).toBe(false);
    expect(parseSecureBootFlag('off')).toBe(false);
    expect(parseSecureBootFlag('maybe')).toBeUndefined();
    expect(cleanReport(new URLSearchParams('mac=52:54:00:00:00:01&secureboot=1&ip=10.0.0.5&x%0A=1&constructor=y&note=a%0Ab'))).toEqual({ secureboot: '1', ip: '10.0.0.5', constructor: 'y', note: 'a b' });
    const many = new URLSearchParams(Array.from({ length: 40 }, (_, i): [string, string] => [`k${i}`, "v".repeat(500)]));
    const r = cleanReport(many);
    expect(Object.keys(r)).toHaveLength(16);
    expect(r.k0).toHaveLength(256);
  });
});

describe('BootPlan: the chain and UUID assignments', () => {
  it('a chain: its GRUB under shim\'s name and the generated config are loaders; probes are not', () => {
    const plan = new BootPlan({ boot: CHAIN });
    expect(plan.fileRole('sb/shimx64.efi')).toBe('loader');
    expect(plan.fileRole('sb/grubx64.efi')).toBe('loader');
    expect(plan.fileRole('/grub/grub.cfg')).toBe('loader');
    expect(plan.fileRole('grub/x86_64-efi/fs.lst')).toBe('other');
    expect(plan.chainFor('sb/shimx64.efi')?.grub).toBe('sb/grubnetx64.efi.signed');
    expect(plan.chainRequest('sb/revocations_sbat.efi')?.kind).toBe('missing');
    expect(new BootPlan({ boot: BOOT }).chainRequest('grub/grub.cfg')).toBeUndefined();
  });

  it('assign by UUID follows the machine (whatever MAC it boots from) and beats a MAC assignment', () => {
    const plan = new BootPlan({ boot: { ...BOOT, profiles: { ...BOOT.profiles, other: { kernel: 'o/vmlinuz' } } } });
    const uuid = '8a7e4c52-1d5e-4b2f-9f5e-0123456789ab';
    const saved: string[] = [];
    plan.on('runtime', (part) => saved.push(part));
    plan.assign('52:54:00:00:00:0a', 'other');
    plan.assignUuid(uuid.toUpperCase(), 'menu');
    expect(plan.profileName('52:54:00:00:00:0a')).toBe('other');
    plan.noteUuid('52:54:00:00:00:0a', uuid);
    expect(plan.profileName('52:54:00:00:00:0a')).toBe('menu');
    // the dongle moves to another laptop: its MAC now comes with another UUID
    plan.noteUuid('52:54:00:00:00:0a', '11111111-2222-3333-4444-555555555555');
    expect(plan.profileName('52:54:00:00:00:0a')).toBe('other');
    expect(saved).toContain('assignUuid');
    const again = new BootPlan({ boot: plan.boot });
    again.restore(plan.runtime());
    again.noteUuid('52:54:00:00:00:0b', uuid);
    expect(again.profileName('52:54:00:00:00:0b')).toBe('menu');
    expect(() => plan.assignUuid(uuid, 'nope')).toThrow(/no profile/);
  });
});
