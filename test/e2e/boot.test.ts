/**
 * End to end: real firmware (SeaBIOS + iPXE ROM, OVMF UEFI PXE) boots a real
 * Debian kernel through the relay, which reads every boot file from an
 * upstream over its uplink. Asserted from the relay's own log, the upstream's
 * access log and the MQTT broker on the uplink side.
 */
import { it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../helpers/netns';
import { BootLab, labWorkDir, UP_IP, labSkipReason } from './lab';
import { agentBundle, expectInOrder, is, isScript } from './steps';
import { describeSkipIf, itSkipIf, missingCmds } from '../helpers/skip';

const reason = labSkipReason();
const mqttReason = missingCmds('mosquitto', 'mosquitto_sub');
const nftReason = missingCmds('nft');

describeSkipIf(reason)('e2e: PXE boot through the relay (QEMU, TCG)', () => {
  let lab: BootLab;
  let work: string;
  let mqttSub: ChildProcess | undefined;
  let mqttOut = '';
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    work = labWorkDir('e2e');
    const agent = agentBundle(work);
    console.log(`[e2e] agent from ${agent.from}`);
    const withMqtt = !mqttReason;
    const startBroker = async (l: BootLab) => {
      // the remote broker lives on the uplink side, like the operator's dashboard
      const conf = join(work, 'mosquitto.conf');
      writeFileSync(conf, `listener 1883 ${UP_IP}\nallow_anonymous true\npersistence false\n`);
      l.net.spawn(l.nsUp, 'mosquitto', ['-c', conf]);
      await waitFor(async () => (await l.net.exec(l.nsUp, 'mosquitto_sub', ['-h', UP_IP, '-t', 'probe', '-W', '1', '-C', '1'])).stderr.indexOf('refused') < 0, 5000, 'mosquitto');
      mqttSub = l.net.spawn(l.nsUp, 'mosquitto_sub', ['-h', UP_IP, '-t', 'bootrelay/#', '-v', '-q', '1']);
      mqttSub.stdout?.on('data', (d) => (mqttOut += d));
    };
    lab = new BootLab({
      prefix: `bre${process.pid % 10000}`,
      work,
      agentJs: agent.js,
      mqttUrl: withMqtt ? `mqtt://${UP_IP}:1883` : undefined,
      beforeAgent: withMqtt ? startBroker : undefined,
    });
    timings.labUp = await lab.upOrCleanup();
  }, 180_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e', timings);
    await lab.cleanup();
  }, 60_000);

  it('boots SeaBIOS with its iPXE option ROM straight to /boot.ipxe, kernel and initrd over HTTP', async () => {
    const mac = '52:54:00:99:0b:01';
    const r = await lab.boot('bios', mac, 150_000);
    timings.bios = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const ev = lab.events(mac);
    const steps = expectInOrder(ev, [
      ['DISCOVER', is('dhcp.discover')],
      ['OFFER', is('dhcp.offer', /boot\.ipxe/)],
      ['REQUEST', is('dhcp.request')],
      ['ACK', is('dhcp.ack', /boot\.ipxe/)],
      ['script', isScript],
      ['kernel', is('http.start', /debian\/vmlinuz/)],
      ['initrd', is('http.start', /debian\/initrd\.gz/)],
      ['booted', is('client.booted')],
    ]);
    // iPXE is never offered the loader again (no chainload loop)
    expect(ev.filter((e) => e.type === 'dhcp.offer' && /undionly/.test(String(e.file)))).toHaveLength(0);
    const span = Date.parse(String(steps.at(-1)!.time)) - Date.parse(String(steps[0]!.time));
    expect(span).toBeLessThan(120_000);
  }, 200_000);

  it('boots OVMF UEFI PXE: loader over TFTP, then iPXE takes over', async () => {
    const mac = '52:54:00:99:0e:02';
    const r = await lab.boot('uefi', mac, 180_000);
    timings.uefi = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const ev = lab.events(mac);
    const steps = expectInOrder(ev, [
      ['DISCOVER', is('dhcp.discover')],
      ['OFFER (loader)', is('dhcp.offer', /ipxe\/snponly\.efi/)],
      ['REQUEST', is('dhcp.request')],
      ['ACK (loader)', is('dhcp.ack', /ipxe\/snponly\.efi/)],
      ['TFTP loader', is('tftp.start', /ipxe\/snponly\.efi/)],
      ['TFTP done', is('tftp.done', /ipxe\/snponly\.efi/)],
      ['ACK (iPXE)', is('dhcp.ack', /boot\.ipxe/)],
      ['script', isScript],
      ['kernel', is('http.start', /debian\/vmlinuz/)],
      ['initrd', is('http.start', /debian\/initrd\.gz/)],
      ['booted', is('client.booted')],
    ]);
    expect(steps[1]!.arch).toBe('uefi-x64');
    const span = Date.parse(String(steps.at(-1)!.time)) - Date.parse(String(steps[0]!.time));
    expect(span).toBeLessThan(150_000);
  }, 240_000);

  it('read every boot file from the upstream once, through the cache', () => {
    const log = lab.upstreamLog();
    const gets = (p: string) => log.filter((l) => l.includes(`"GET /${p} `)).length;
    expect(gets('ipxe/snponly.efi')).toBe(1);
    expect(gets('debian/vmlinuz')).toBe(1); // both VMs booted it: the second came from the cache
    expect(gets('debian/initrd.gz')).toBe(1);
  });

  it('answers nothing on the uplink side', async () => {
    // No firewall: the agent's 0.0.0.0:67 socket sees the broadcast (Node cannot tell the
    // interface), but replies leave only through the LAN-bound socket: no lease on the uplink.
    const bare = await lab.uplinkDhcpProbe();
    expect(bare.gotLease, bare.output).toBe(false);
  }, 40_000);

  itSkipIf(nftReason)('with the firewall rules the OpenWrt package installs, the uplink\'s DHCP requests never reach the agent', async () => {
    // DHCP, TFTP, 4011 accepted from the lan zone only
    const link = spawnSync('ip', ['-n', lab.nsWanc, '-j', 'link', 'show', 'eth0'], { encoding: 'utf8' });
    const wanMac = (JSON.parse(link.stdout)[0] as { address: string }).address;
    const dhcpEvents = () => lab.events(wanMac).filter((e) => /^dhcp\./.test(String(e.type))).length;
    const nft = ['table inet bootrelay {', '  chain input {', '    type filter hook input priority 0; policy accept;', '    iifname "wan" udp dport { 67, 69, 4011 } counter drop', '  }', '}', ''].join('\n');
    const r = await lab.net.exec(lab.nsRelay, 'nft', ['-f', '-'], { input: nft });
    expect(r.code, r.stderr).toBe(0);
    const before = dhcpEvents();
    console.log(`[e2e] dhcp events from the uplink client before the firewall: ${before}`);
    const fw = await lab.uplinkDhcpProbe();
    expect(fw.gotLease, fw.output).toBe(false);
    expect(dhcpEvents()).toBe(before);
    // and it was the rule that kept them out: it counted the probe's packets
    const rules = await lab.net.exec(lab.nsRelay, 'nft', ['list', 'table', 'inet', 'bootrelay']);
    expect(Number(/counter packets (\d+)/.exec(rules.stdout)?.[1] ?? 0), rules.stdout + rules.stderr).toBeGreaterThan(0);
  }, 40_000);

  itSkipIf(mqttReason)('published each client to the remote broker: retained state booted, events in order', async () => {
    expect(mqttSub, 'the broker and subscriber were started').toBeDefined();
    const mac = '52:54:00:99:0e:02';
    const lines = mqttOut.split('\n').filter(Boolean);
    const states = lines.filter((l) => l.startsWith(`bootrelay/lab-relay/clients/${mac} `)).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)));
    expect(states.length).toBeGreaterThan(0);
    expect(states.at(-1).phase).toBe('booted');
    const phases = [...new Set(states.map((s) => s.phase))];
    expect(phases.indexOf('dhcp')).toBeLessThan(phases.indexOf('booted'));
    const events = lines
      .filter((l) => l.startsWith('bootrelay/lab-relay/events '))
      .map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)))
      .filter((e) => e.mac === mac)
      .map((e) => e.type);
    expect(events.indexOf('dhcp.discover')).toBeGreaterThanOrEqual(0);
    expect(events.indexOf('dhcp.discover')).toBeLessThan(events.indexOf('tftp.start'));
    expect(events.indexOf('tftp.start')).toBeLessThan(events.lastIndexOf('client.booted'));
    const status = lines.filter((l) => l.startsWith('bootrelay/lab-relay/status ')).map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)));
    expect(status.at(-1).online).toBe(true);
  });
});
