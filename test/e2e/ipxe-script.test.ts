/**
 * Issue 12 item 4 on real firmware: SeaBIOS + its iPXE ROM runs the relay's generated
 * script for a profile whose command line holds what iPXE's lexer would otherwise act
 * on (a token starting with '#', bare '||', '&&', ';'), and whose two initrds share a
 * basename, one with a space in its path. The kernel must get the command line as
 * written (Linux prints it on the serial console) and report back through lab.report,
 * which stands after those tokens.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BootLab, labSkipReason, labWorkDir, RELAY_LAN_IP } from './lab';
import { agentBundle, expectInOrder, is } from './steps';
import { describeSkipIf, itSkipIf } from '../helpers/skip';
import { hasCmd } from '../helpers/netns';

/** TFTP read requests in the lab's LAN capture: [client ip, file, options]. */
function rrqs(work: string): Array<[string, string, string]> {
  const r = spawnSync('tshark', ['-r', join(work, 'lan.pcap'), '-Y', 'tftp.opcode==1', '-T', 'fields', '-e', 'ip.src', '-e', 'tftp.source_file', '-e', 'tftp.option.name'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t') as [string, string, string]);
}

const TRICKY = '#hash || && ; a=b;c';

describeSkipIf(labSkipReason())('e2e: iPXE runs an escaped script (QEMU, TCG)', () => {
  let lab: BootLab;
  let work: string;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    work = labWorkDir('e2e-ipxe-script');
    const agent = agentBundle(work);
    lab = new BootLab({
      prefix: `brk${process.pid % 10000}`,
      work,
      agentJs: agent.js,
      configure: (cfg) => {
        // the same initrd again under the same basename, in a directory with a space
        const dir = join(lab.www, 'extra dir');
        mkdirSync(dir, { recursive: true });
        copyFileSync(join(lab.www, 'debian', 'initrd.gz'), join(dir, 'initrd.gz'));
        cfg.boot.profiles.lab = {
          kernel: 'debian/vmlinuz',
          initrd: ['debian/initrd.gz', 'extra dir/initrd.gz'],
          // no "quiet": Linux prints its command line on the console
          cmdline: `console=ttyS0 panic=1 ${TRICKY} lab.report=http://${RELAY_LAN_IP}/booted`,
        };
      },
    });
    timings.labUp = await lab.upOrCleanup();
  }, 180_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e-ipxe-script', timings);
    await lab.cleanup();
  }, 60_000);

  it('boots with the command line as written and both initrds fetched', async () => {
    const mac = '52:54:00:99:4b:01';
    const r = await lab.boot('bios', mac, 200_000);
    timings.bios = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const serial = readFileSync(join(work, `serial-bios-${mac.replace(/:/g, '')}.log`), 'latin1');
    const line = /Command line: (.*)/.exec(serial)?.[1]?.trim();
    expect(line, serial.slice(-3000)).toBeDefined();
    expect(line).toContain(`${TRICKY} lab.report=http://${RELAY_LAN_IP}/booted`);
    expect(line).toContain('initrd=initrd.gz initrd=initrd-2.gz');
    expectInOrder(lab.events(mac), [
      ['script', is('http.done', /^\/boot\.ipxe$/)],
      ['kernel', is('http.done', /^debian\/vmlinuz$/)],
      ['initrd 1', is('http.done', /^debian\/initrd\.gz$/)],
      ['initrd 2', is('http.done', /^extra dir\/initrd\.gz$/)],
      ['booted', is('client.booted')],
    ]);
  }, 240_000);

  it('boots OVMF (UEFI PXE, then iPXE): the EFI stub finds both initrds by their distinct names', async () => {
    const mac = '52:54:00:99:4e:02';
    const r = await lab.boot('uefi', mac, 240_000);
    timings.uefi = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const serial = readFileSync(join(work, `serial-uefi-${mac.replace(/:/g, '')}.log`), 'latin1');
    const line = /Command line: (.*)/.exec(serial)?.[1];
    expect(line, serial.slice(-3000)).toContain('initrd=initrd.gz initrd=initrd-2.gz ');
    expect(line).toContain(`${TRICKY} lab.report=`);
    expect(serial).toContain('EFI stub: Loaded initrd from command line option');
    expectInOrder(lab.events(mac), [
      ['loader', is('tftp.done', /^ipxe\/snponly\.efi$/)],
      ['initrd 1', is('http.done', /^debian\/initrd\.gz$/)],
      ['initrd 2', is('http.done', /^extra dir\/initrd\.gz$/)],
      ['booted', is('client.booted')],
    ]);
  }, 300_000);

  itSkipIf(hasCmd('tshark') && hasCmd('tcpdump') ? undefined : 'needs tshark and tcpdump (the LAN capture)')(
    'option 13: with the loader cached, EDK2 takes its size from the ACK and skips the tsize probe (RFC 2132 §3.7)',
    async () => {
      const cold = '52:54:00:99:4e:02'; // booted above, with the loader not yet cached
      const warm = '52:54:00:99:4e:03';
      const r = await lab.boot('uefi', warm, 240_000);
      timings.uefiWarm = r.seconds;
      expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
      const ipOf = (mac: string) => String(lab.events(mac).find((e) => e.type === 'dhcp.ack')?.ip);
      const loaderRrqs = (mac: string) => rrqs(work).filter(([ip, f]) => ip === ipOf(mac) && f === 'ipxe/snponly.efi');
      // the cold boot probed the size with tsize (no option 13: the cache did not know it yet)
      expect(loaderRrqs(cold).some(([, , o]) => /tsize/.test(o ?? '')), JSON.stringify(rrqs(work))).toBe(true);
      // the warm one read the loader once, without a tsize probe
      expect(loaderRrqs(warm).length, JSON.stringify(rrqs(work))).toBeGreaterThan(0);
      expect(loaderRrqs(warm).filter(([, , o]) => /tsize/.test(o ?? ''))).toEqual([]);
    },
    300_000,
  );
});
