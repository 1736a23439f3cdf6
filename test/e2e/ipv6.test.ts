/**
 * End to end over IPv6, on a LAN where nobody answers IPv4 DHCP: OVMF's own PXEv6
 * (DHCPv6, then TFTP over IPv6) loads the loader from the relay; iPXE does DHCPv6
 * (the RA carries the M flag, as odhcpd sends it when bootrelay serves DHCPv6), gets
 * its script, kernel and initrd over HTTP/IPv6 through the cache, and the initrd, with
 * an address from SLAAC, reports /booted over IPv6.
 *
 * The lab initrd asks IPv4 DHCP; this test appends a second cpio to it whose /init
 * takes its address from SLAAC instead (the kernel reads both archives; the later /init wins).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BootLab, labWorkDir, labSkipReason } from './lab';
import { agentBundle, expectInOrder, is, isScript } from './steps';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const reason = labSkipReason() ?? missingCmds('radvd', 'cpio', 'gzip');
const LAN6 = 'fd99:1::1';

/** /init for an IPv6-only LAN: SLAAC, then GET <lab.report>?mac=…&ip6=… over IPv6. */
const INIT6 = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "LAB: initrd /init (IPv6) up at $(cut -d' ' -f1 /proc/uptime)s"
arg() { tr ' ' '\\n' </proc/cmdline | sed -n "s/^$1=//p" | head -1; }
REPORT=$(arg lab.report)
for m in $(cat /modules.order); do insmod /lib/modules/$m.ko 2>/dev/null; done
IF=
i=0; while [ $i -lt 150 ]; do IF=$(ls /sys/class/net | grep -v '^lo$' | head -1); [ -n "$IF" ] && break; i=$((i+1)); usleep 100000; done
ip link set lo up
[ -z "$IF" ] && { echo "LAB: FAILED no network interface"; poweroff -f; }
MAC=$(cat /sys/class/net/$IF/address)
ip link set "$IF" up
A6=
i=0; while [ $i -lt 300 ]; do
  A6=$(ip addr show dev "$IF" | grep 'inet6 fd99' | grep -v tentative | sed -n 's/.*inet6 \\([0-9a-f:]*\\)\\/.*/\\1/p' | head -1)
  [ -n "$A6" ] && break; i=$((i+1)); usleep 100000
done
[ -z "$A6" ] && { echo "LAB: FAILED no SLAAC address"; ip addr; poweroff -f; }
echo "LAB: slaac ok ip6=$A6"
U=$(cut -d' ' -f1 /proc/uptime)
if wget -q -O /tmp/reply "$REPORT?mac=$MAC&ip6=$A6&uptime=$U"; then echo "LAB: BOOTED mac=$MAC ip6=$A6 uptime=\${U}s reported to $REPORT"; else echo "LAB: FAILED report to $REPORT"; fi
sync; poweroff -f
`;

describeSkipIf(reason)('e2e: PXE boot over IPv6 only (OVMF PXEv6, iPXE DHCPv6, QEMU TCG)', () => {
  let lab: BootLab;
  let work: string;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    work = labWorkDir('e2e-ipv6');
    const agent = agentBundle(work);
    lab = new BootLab({
      prefix: `br6e${process.pid % 10000}`,
      work,
      agentJs: agent.js,
      ra: 'managed',
      // OVMF: no PXEv4 boot option (IPv4 DHCP is not answered here; it would only cost a minute)
      qemuArgs: ['-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n'],
      beforeAgent: async () => {
        // the lab initrd plus a second archive with the IPv6 /init
        const ov = join(work, 'overlay');
        rmSync(ov, { recursive: true, force: true });
        mkdirSync(ov);
        writeFileSync(join(ov, 'init'), INIT6);
        chmodSync(join(ov, 'init'), 0o755);
        const r = spawnSync('sh', ['-c', `cd ${ov} && echo init | cpio -o -H newc --quiet | gzip -9 > ../init6.cpio.gz`]);
        if (r.status !== 0) throw new Error(`cpio: ${r.stderr}`);
        const deb = join(lab.www, 'debian');
        writeFileSync(join(deb, 'initrd6.gz'), Buffer.concat([readFileSync(join(deb, 'initrd.gz')), readFileSync(join(work, 'init6.cpio.gz'))]));
      },
      configure: (cfg) => {
        cfg.lan.address6 = LAN6;
        cfg.lan.prefix6 = 64;
        cfg.dhcp = { mode: 'off' };
        cfg.dhcp6 = { mode: 'server', range: ['fd99:1::1000', 'fd99:1::1fff'], leaseSeconds: 600 };
        cfg.boot.profiles.lab = { kernel: 'debian/vmlinuz', initrd: ['debian/initrd6.gz'], cmdline: `console=ttyS0 quiet panic=1 lab.report=http://[${LAN6}]/booted` };
      },
    });
    timings.labUp = await lab.upOrCleanup();
  }, 180_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e-ipv6', timings);
    await lab.cleanup();
  }, 60_000);

  it('OVMF PXEv6 loads the loader over TFTP/IPv6; iPXE boots the kernel over HTTP/IPv6; the client reports booted with its ip6', async () => {
    const mac = '52:54:00:99:06:01';
    const r = await lab.boot('uefi', mac, 300_000);
    timings.uefi6 = r.seconds;
    const ev = lab.events(mac);
    expect(r.ok, `${r.reason}\n${r.serialTail}\n${JSON.stringify(ev.map((e) => [e.type, e.file ?? e.url ?? '', e.ip ?? e.ip6 ?? '']))}`).toBe(true);
    expectInOrder(ev, [
      ['PXEv6 SOLICIT', is('dhcp6.solicit')],
      ['REPLY with the loader URL', is('dhcp6.reply', /snponly\.efi/)],
      ['loader over TFTP/IPv6', is('tftp.done', /snponly\.efi/)],
      ['iPXE SOLICIT', (e) => e.type === 'dhcp6.solicit' && e.firmware === 'ipxe'],
      ['script', isScript],
      ['kernel', is('http.start', /debian\/vmlinuz/)],
      ['initrd', is('http.start', /debian\/initrd6\.gz/)],
      ['booted', is('client.booted')],
    ]);
    // IPv6 all the way: the transfers came from the client's IPv6 address, never IPv4
    const transfers = ev.filter((e) => e.type === 'tftp.done' || e.type === 'http.done');
    expect(transfers.every((e) => String(e.ip).includes(':')), JSON.stringify(transfers.map((e) => e.ip))).toBe(true);
    expect(ev.some((e) => e.type?.startsWith('dhcp.'))).toBe(false);
    // the client state has its IPv6 address
    const st = await lab.net.exec(lab.nsRelay, 'curl', ['-sf', 'http://10.99.1.1/api/clients']);
    const clients = JSON.parse(st.stdout) as Array<{ mac: string; ip6?: string; phase: string }>;
    expect(clients.find((c) => c.mac === mac)).toMatchObject({ phase: 'booted', ip6: expect.stringMatching(/^fd99:1::/) });
    console.log(`[e2e-ipv6] OVMF PXEv6 → booted in ${r.seconds.toFixed(1)} s`);
  }, 320_000);

  it('OVMF HTTP Boot over IPv6 (HTTPClient) gets the loader by URL from the relay and boots', async () => {
    const mac = '52:54:00:99:06:02';
    // no PXE boot options at all: the firmware goes to HTTP Boot (IPv4 first, unanswered here, then IPv6)
    const r = await lab.boot('uefi', mac, 400_000, ['-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n', '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n']);
    timings.uefiHttp6 = r.seconds;
    const ev = lab.events(mac);
    expect(r.ok, `${r.reason}\n${r.serialTail}\n${JSON.stringify(ev.map((e) => [e.type, e.file ?? e.url ?? '', e.ip ?? e.ip6 ?? '']))}`).toBe(true);
    expectInOrder(ev, [
      ['HTTP Boot SOLICIT', (e) => e.type === 'dhcp6.solicit' && e.firmware === 'uefi-http'],
      ['REPLY with the loader URL', (e) => e.type === 'dhcp6.reply' && e.url === `http://[${LAN6}]/files/ipxe/snponly.efi`],
      ['loader over HTTP/IPv6', (e) => e.type === 'http.done' && /snponly\.efi/.test(String(e.file)) && String(e.ip).includes(':')],
      ['booted', is('client.booted')],
    ]);
    console.log(`[e2e-ipv6] OVMF HTTP Boot over IPv6 → booted in ${r.seconds.toFixed(1)} s`);
  }, 420_000);
});
