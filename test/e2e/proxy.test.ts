/**
 * End to end, proxyDHCP: the LAN already has a DHCP server (dnsmasq handing out
 * addresses only, knowing nothing of PXE). The relay never assigns an address;
 * it adds the boot information (on 67, and on 4011 where the firmware asks).
 */
import { it, expect, beforeAll, afterAll } from 'vitest';
import { BootLab, labWorkDir, labSkipReason } from './lab';
import { agentBundle, expectInOrder, is, isScript } from './steps';
import { describeSkipIf } from '../helpers/skip';

const reason = labSkipReason();

describeSkipIf(reason)('e2e: proxyDHCP beside a PXE-unaware DHCP server (QEMU, TCG)', () => {
  let lab: BootLab;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    const work = labWorkDir('e2e-proxy');
    lab = new BootLab({ prefix: `brp${process.pid % 10000}`, work, agentJs: agentBundle(work).js, dhcpMode: 'proxy' });
    timings.labUp = await lab.upOrCleanup();
  }, 180_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e-proxy', timings);
    await lab.cleanup();
  }, 60_000);

  it('boots OVMF UEFI: address from the LAN server, loader and script from the relay', async () => {
    const mac = '52:54:00:99:1e:03';
    const r = await lab.boot('uefi', mac, 180_000);
    timings.uefi = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const ev = lab.events(mac);
    expectInOrder(ev, [
      ['proxy offer (loader)', (e) => /^proxy\.(offer|ack)$/.test(String(e.type)) && /ipxe\/snponly\.efi/.test(String(e.file))],
      ['TFTP loader', is('tftp.start', /ipxe\/snponly\.efi/)],
      ['proxy offer (iPXE)', (e) => /^proxy\.(offer|ack)$/.test(String(e.type)) && /boot\.ipxe/.test(String(e.file))],
      ['script', isScript],
      ['kernel', is('http.start', /debian\/vmlinuz/)],
      ['initrd', is('http.start', /debian\/initrd\.gz/)],
      ['booted', is('client.booted')],
    ]);
    // never an address from us
    expect(ev.filter((e) => e.type === 'dhcp.offer' || e.type === 'dhcp.ack')).toHaveLength(0);
  }, 240_000);

  it('boots SeaBIOS + iPXE ROM to the script', async () => {
    const mac = '52:54:00:99:1b:04';
    const r = await lab.boot('bios', mac, 150_000);
    timings.bios = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const ev = lab.events(mac);
    expectInOrder(ev, [
      ['proxy offer (iPXE)', (e) => /^proxy\.(offer|ack)$/.test(String(e.type)) && /boot\.ipxe/.test(String(e.file))],
      ['script', isScript],
      ['booted', is('client.booted')],
    ]);
    expect(ev.filter((e) => e.type === 'dhcp.offer' || e.type === 'dhcp.ack')).toHaveLength(0);
  }, 200_000);
});
