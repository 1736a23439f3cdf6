/**
 * End to end, the laptop with only a USB NIC (issue 14): no PCI NIC in the VM, QEMU's usb-net
 * (a CDC Ethernet/RNDIS gadget) on a USB host controller. No firmware here has a USB NIC driver,
 * so iPXE 2.0 (built from source, ../shared/ipxe/bin: Debian 12's iPXE has no USB NIC drivers)
 * comes from boot media, finds the USB NIC, takes its target from the relay's DHCP and boots the
 * lab kernel through the relay:
 *   - SeaBIOS, ipxe.usb written to a USB stick (usb-storage), qemu-xhci
 *   - OVMF, ipxe.efi as EFI/BOOT/BOOTX64.EFI on a FAT disk, qemu-xhci
 *   - SeaBIOS again on ICH9 EHCI with its UHCI companions
 * Each time the client state names the USB NIC with its ids (DHCP option 175.177).
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSkipIf, itSkipIf } from '../helpers/skip';
import { BootLab, labSkipReason, labWorkDir } from './lab';
import { agentBundle, expectInOrder, is, isScript } from './steps';
import { clientState, discoverToBooted, espDir, runVm } from './vm';

// ../shared/ipxe/bin beside the checkout (a worktree sits one level deeper)
const IPXE_BIN =
  process.env.BOOTRELAY_IPXE_BIN ??
  [resolve(__dirname, '../../../shared/ipxe/bin'), resolve(__dirname, '../../../../shared/ipxe/bin')].find((d) => existsSync(d)) ??
  resolve(__dirname, '../../../shared/ipxe/bin');

function usbSkipReason(): string | undefined {
  const r = labSkipReason();
  if (r) return r;
  for (const f of ['ipxe.usb', 'ipxe.efi']) {
    if (!existsSync(join(IPXE_BIN, f))) return `no ${join(IPXE_BIN, f)}: iPXE 2.0 with USB NIC drivers (../shared/ipxe/bin, or set BOOTRELAY_IPXE_BIN); Debian 12's iPXE has none`;
  }
  return undefined;
}
const reason = usbSkipReason();

const XHCI = ['-device', 'qemu-xhci,id=hc'];
// usb-net is a full-speed device: plain usb-ehci refuses it; ICH9 EHCI hands it to a UHCI companion
const EHCI = [
  '-device', 'ich9-usb-ehci1,id=hc,addr=1d.7,multifunction=on',
  '-device', 'ich9-usb-uhci1,masterbus=hc.0,firstport=0,addr=1d.0,multifunction=on',
  '-device', 'ich9-usb-uhci2,masterbus=hc.0,firstport=2,addr=1d.1',
  '-device', 'ich9-usb-uhci3,masterbus=hc.0,firstport=4,addr=1d.2',
];
const QEMU_USB_NET = { bus: 'usb', vendor: '0525', device: 'a4a2' };

describeSkipIf(reason)('e2e: a USB NIC only, iPXE 2.0 from boot media (QEMU usb-net, TCG)', () => {
  let lab: BootLab;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    const work = labWorkDir('e2e-usbnic');
    lab = new BootLab({ prefix: `bru${process.pid % 10000}`, work, agentJs: agentBundle(work).js });
    timings.labUp = await lab.upOrCleanup();
  }, 240_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e-usbnic', timings);
    await lab.cleanup();
  }, 60_000);

  async function expectUsbBoot(mac: string, tag: string) {
    const ev = lab.events(mac);
    expectInOrder(ev, [
      ['iPXE DISCOVER', (e) => e.type === 'dhcp.discover' && e.firmware === 'ipxe'],
      ['ACK (script)', is('dhcp.ack', /boot\.ipxe/)],
      ['script', isScript],
      ['kernel', is('http.start', /debian\/vmlinuz/)],
      ['initrd', is('http.start', /debian\/initrd\.gz/)],
      ['booted', is('client.booted')],
    ]);
    expect(ev.find((e) => e.type === 'dhcp.discover')!.nic).toMatchObject(QEMU_USB_NET);
    timings[tag] = discoverToBooted(ev) ?? -1;
    const st = await clientState(lab, mac);
    expect(st).toMatchObject({ phase: 'booted', nic: { ...QEMU_USB_NET, name: expect.stringMatching(/usb-net/) } });
  }

  it('SeaBIOS, ipxe.usb on a USB stick, usb-net on xHCI: boots, the state names the USB NIC', async () => {
    const mac = '52:54:00:99:ab:01';
    const stick = join(lab.opts.work, 'stick-xhci.img');
    copyFileSync(join(IPXE_BIN, 'ipxe.usb'), stick);
    const r = await runVm(lab, {
      name: 'usb-bios-xhci',
      mac,
      args: ['-machine', 'pc,graphics=off', ...XHCI, '-drive', `if=none,id=stick,format=raw,file=${stick}`, '-device', 'usb-storage,bus=hc.0,drive=stick,bootindex=1'],
      nic: ['-device', `usb-net,bus=hc.0,netdev=n0,mac=${mac}`],
      timeoutMs: 180_000,
    });
    timings.biosXhciVm = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    expect(r.serial).toMatch(/net0: .* using (cdc-ecm|rndis|acm)/);
    await expectUsbBoot(mac, 'biosXhciDiscoverToBooted');
  }, 240_000);

  it('OVMF, ipxe.efi as EFI/BOOT/BOOTX64.EFI on a FAT disk, usb-net on xHCI', async () => {
    const mac = '52:54:00:99:ab:02';
    const esp = espDir(lab.opts.work, 'usb-uefi', { 'EFI/BOOT/BOOTX64.EFI': join(IPXE_BIN, 'ipxe.efi') });
    const r = await runVm(lab, {
      name: 'usb-uefi-xhci',
      mac,
      args: ['-machine', 'q35,graphics=off', '-bios', '/usr/share/ovmf/OVMF.fd', ...XHCI, '-drive', `file=fat:rw:${esp},format=raw,if=none,id=esp`, '-device', 'virtio-blk-pci,drive=esp,bootindex=1'],
      nic: ['-device', `usb-net,bus=hc.0,netdev=n0,mac=${mac}`],
      timeoutMs: 180_000,
    });
    timings.uefiXhciVm = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    await expectUsbBoot(mac, 'uefiXhciDiscoverToBooted');
    expect(lab.events(mac).find((e) => e.type === 'dhcp.discover')!.arch).toBe('uefi-x64');
  }, 240_000);

  // Flaky on this machine: passed 4 runs, then failed 4 (iPXE's HTTP transfer or TCP connect over
  // usb-net on the UHCI companion stalls: "Connection timed out"), and at the same time the lab's own
  // recipe without the relay (shared/lab boot-usbnic.sh HCD=ehci, dnsmasq) failed the same way:
  // iPXE's UHCI path under TCG, not the relay. Opt in with BOOTRELAY_E2E_UHCI=1.
  itSkipIf(process.env.BOOTRELAY_E2E_UHCI === '1' ? undefined : "flaky here: iPXE's transfers over UHCI stall under TCG, with or without the relay (lab boot-usbnic.sh HCD=ehci fails alike); BOOTRELAY_E2E_UHCI=1 runs it")('SeaBIOS, ipxe.usb, usb-net on ICH9 EHCI with UHCI companions (the stick on its own xHCI)', async () => {
    const mac = '52:54:00:99:ab:03';
    const stick = join(lab.opts.work, 'stick-ehci.img');
    copyFileSync(join(IPXE_BIN, 'ipxe.usb'), stick);
    const r = await runVm(lab, {
      name: 'usb-bios-ehci',
      mac,
      // with the stick on the same EHCI, iPXE 2.0 saw the NIC's link stay down ("Link status: Unknown", no DHCP)
      args: ['-machine', 'pc,graphics=off', ...EHCI, '-device', 'qemu-xhci,id=sx', '-drive', `if=none,id=stick,format=raw,file=${stick}`, '-device', 'usb-storage,bus=sx.0,drive=stick,bootindex=1'],
      nic: ['-device', `usb-net,bus=hc.0,netdev=n0,mac=${mac}`],
      timeoutMs: 180_000,
    });
    timings.biosEhciVm = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    await expectUsbBoot(mac, 'biosEhciDiscoverToBooted');
  }, 240_000);
});
