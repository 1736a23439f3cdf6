/**
 * The bundled agent as the DHCP server of a LAN made of network namespaces:
 * busybox udhcpc plays a BIOS PXE ROM (option 60 PXEClient:Arch:00000) and then
 * iPXE (user class 77 "iPXE"), tftp-hpa and curl fetch what they are told.
 * Checks the wiring end to end: DHCP/TFTP/HTTP events in the log with the
 * client's MAC, the tracker's phases through relayctl, leases, and the packet
 * trace as a pcap tshark reads.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleAgent } from '../helpers/bundle';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NetLab, skipReason, waitFor } from '../helpers/netns';
import { relayctl, startAgent } from '../helpers/agent-proc';
import { describeSkipIf, itSkipIf, missingCmds } from '../helpers/skip';

const reason = skipReason('udhcpc', 'tftp', 'curl', 'python3');
const MAC = '52:54:00:99:50:01';
const RELAY = '10.99.50.1';

describeSkipIf(reason)('bootrelay on a namespace LAN (udhcpc as PXE ROM and iPXE)', () => {
  const work = mkdtempSync(join(tmpdir(), 'brans-'));
  const AGENT = join(work, 'bootrelay.js');
  const CTL = join(work, 'relayctl.js');
  const sock = join(work, 'ctl.sock');
  const lab = new NetLab(`bra${process.pid % 10000}`);
  let nsR: string;
  let nsC: string;
  const lines: Array<Record<string, unknown>> = [];
  let agentExit: Promise<number | null>;
  let agent: ReturnType<NetLab['spawn']>;

  const ctl = relayctl(CTL, sock);
  const client = () => (JSON.parse(ctl('clients', '--json').stdout) as Array<Record<string, any>>).find((c) => c.mac === MAC);
  const events = () => lines.filter((l) => l.mac === MAC && typeof l.type === 'string').map((l) => `${l.type}${l.file ? ' ' + l.file : ''}`);

  beforeAll(async () => {
    await bundleAgent(work);
    const www = join(work, 'www');
    mkdirSync(join(www, 'ipxe'), { recursive: true });
    mkdirSync(join(www, 'debian'), { recursive: true });
    writeFileSync(join(www, 'ipxe/undionly.kpxe'), Buffer.alloc(68_000, 0x55));
    writeFileSync(join(www, 'debian/vmlinuz'), Buffer.alloc(500_000, 1));
    writeFileSync(join(www, 'debian/initrd.gz'), Buffer.alloc(200_000, 2));
    const script = join(work, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\necho "$1 ip=$ip boot_file=$boot_file siaddr=$siaddr"\n');
    chmodSync(script, 0o755);

    nsR = lab.addNs('relay');
    nsC = lab.addNs('pc');
    lab.veth(nsR, 'lan', nsC, 'eth0');
    lab.ip(nsC, 'link', 'set', 'eth0', 'address', MAC);
    lab.addr(nsR, 'lan', `${RELAY}/24`);
    // the upstream boot server lives on the relay namespace's own loopback
    lab.spawn(nsR, 'python3', ['-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', www]);
    await waitFor(async () => (await lab.exec(nsR, 'curl', ['-sf', '-o', '/dev/null', 'http://127.0.0.1:8080/debian/vmlinuz'])).code === 0, 10_000, 'upstream');

    const cfg = join(work, 'relay.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        agentId: 'ns-relay',
        stateDir: join(work, 'state'),
        lan: { interface: 'lan', address: RELAY, prefix: 24 },
        dhcp: { mode: 'server', range: ['10.99.50.100', '10.99.50.110'], leaseSeconds: 600, netbootOnce: true },
        upstream: { url: 'http://127.0.0.1:8080/' },
        cache: { dir: join(work, 'cache') },
        boot: {
          loaders: { bios: 'ipxe/undionly.kpxe', 'uefi-x64': 'ipxe/snponly.efi' },
          profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'], cmdline: 'console=ttyS0' } },
        },
        control: { socket: sock },
      }),
    );
    agent = await startAgent(lab, nsR, AGENT, cfg, lines);
    agentExit = new Promise((r) => agent.on('close', (code) => r(code)));
  }, 90_000);

  afterAll(async () => {
    await lab.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  const udhcpc = (...extra: string[]) =>
    lab.exec(nsC, 'udhcpc', ['-i', 'eth0', '-f', '-q', '-n', '-t', '4', '-T', '1', '-s', join(work, 'udhcpc.sh'), ...extra], { timeoutMs: 20_000 });

  it('offers a BIOS PXE ROM the loader, serves it over TFTP, and tracks the client to loader', async () => {
    const r = await udhcpc('-V', 'PXEClient:Arch:00000:UNDI:002001');
    expect(r.stdout, r.stderr).toMatch(/bound ip=10\.99\.50\.1\d\d boot_file=ipxe\/undionly\.kpxe siaddr=10\.99\.50\.1\b/);
    const ip = /bound ip=(\S+)/.exec(r.stdout)![1]!;
    expect(client()).toMatchObject({ phase: 'bound', firmware: 'bios', arch: 'bios', ip });
    lab.addr(nsC, 'eth0', `${ip}/24`);
    const t = await lab.exec(nsC, 'tftp', ['-m', 'binary', RELAY, '-c', 'get', 'ipxe/undionly.kpxe', join(work, 'loader')], { timeoutMs: 20_000 });
    expect(t.code, t.stderr + t.stdout).toBe(0);
    await waitFor(() => events().includes('tftp.done ipxe/undionly.kpxe'), 5000, 'tftp.done');
    expect(client()).toMatchObject({ phase: 'loader', file: 'ipxe/undionly.kpxe', bytes: 68_000, totalBytes: 68_000 });
    expect(events()).toEqual(
      expect.arrayContaining(['dhcp.discover', 'dhcp.offer ipxe/undionly.kpxe', 'dhcp.request', 'dhcp.ack ipxe/undionly.kpxe', 'tftp.start ipxe/undionly.kpxe', 'tftp.done ipxe/undionly.kpxe']),
    );
    const leases = JSON.parse(ctl('leases', '--json').stdout);
    expect(leases).toEqual([expect.objectContaining({ mac: MAC, ip })]);
  }, 60_000);

  it('hands iPXE the boot script URL and follows kernel, initrd, handoff, booted; watch --until booted exits 0', async () => {
    const watch = lab.spawn(nsC, process.execPath, [CTL, '--socket', sock, 'watch', '--until', 'booted', '--mac', MAC, '--timeout', '30']);
    let watchOut = '';
    watch.stdout!.on('data', (d) => (watchOut += d));
    const watchExit = new Promise<number | null>((r) => watch.on('close', (c) => r(c)));
    const r = await udhcpc('-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x4d:69505845');
    expect(r.stdout, r.stderr).toMatch(new RegExp(`boot_file=http://10\\.99\\.50\\.1/boot\\.ipxe\\?mac=${MAC}`));
    expect(client()!.phase).toBe('ipxe');
    const base = `http://${RELAY}`;
    const s = await lab.exec(nsC, 'curl', ['-sf', `${base}/boot.ipxe?mac=${MAC}`]);
    expect(s.stdout).toMatch(/debian\/vmlinuz/);
    for (const f of ['debian/vmlinuz', 'debian/initrd.gz']) {
      const g = await lab.exec(nsC, 'curl', ['-sf', '-o', '/dev/null', '-w', '%{size_download}', `${base}/files/${f}`]);
      expect(g.code, g.stderr).toBe(0);
    }
    await waitFor(() => client()?.phase === 'handoff', 5000, 'handoff');
    await lab.exec(nsC, 'curl', ['-sf', '-X', 'POST', `${base}/booted?mac=${MAC}`]);
    expect(await watchExit).toBe(0);
    const c = client()!;
    expect(c).toMatchObject({ phase: 'booted', profile: 'debian', error: null });
    expect(Object.keys(c.phases)).toEqual(['dhcp', 'bound', 'loader', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted']);
    expect(watchOut).toMatch(/booted/);
  }, 60_000);

  const pcap = join(work, 'trace.pcap');
  it('writes the client\'s DHCP/TFTP exchange as a pcap', async () => {
    const r = ctl('trace', MAC, '-o', pcap);
    expect(r.code, r.stderr).toBe(0);
    const n = Number(/wrote (\d+) packets/.exec(r.stdout)![1]);
    expect(n).toBeGreaterThanOrEqual(8);
  });

  itSkipIf(missingCmds('tshark'))('tshark reads that pcap: DHCP and TFTP in it', async () => {
    const t = spawnSync('tshark', ['-r', pcap, '-T', 'fields', '-e', 'frame.protocols'], { encoding: 'utf8', env: { ...process.env, HOME: work } });
    expect(t.stdout).toMatch(/dhcp/);
    expect(t.stdout).toMatch(/tftp/);
  });

  it('netboots a booted client only once (dhcp.netbootOnce), until relayctl rearm', async () => {
    const pxe = ['-V', 'PXEClient:Arch:00000:UNDI:002001'];
    const once = await udhcpc(...pxe);
    expect(once.stdout, once.stderr).toMatch(/bound ip=10\.99\.50\.1\d\d boot_file= /);
    const r = ctl('rearm', MAC);
    expect(r.code, r.stderr).toBe(0);
    const again = await udhcpc(...pxe);
    expect(again.stdout).toMatch(/boot_file=ipxe\/undionly\.kpxe/);
  }, 60_000);

  it('exits 0 on SIGTERM', async () => {
    agent.kill('SIGTERM');
    expect(await agentExit).toBe(0);
  });
});
