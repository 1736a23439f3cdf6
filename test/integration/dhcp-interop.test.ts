/**
 * DhcpService against real DHCP clients in network namespaces:
 * ISC dhclient, busybox udhcpc, perfdhcp (kill -9 during a burst), and in proxy
 * mode beside a dnsmasq that only hands out addresses.
 *
 *   r (relay: runner)  lan 10.99.50.1/24 ── sw: br0 ── c  (clients: c0)
 *                      wan 10.99.51.1/24 ── u (uplink client: u0)   └─ d (dnsmasq 10.99.50.2, proxy test)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { NetLab, skipReason, waitFor } from '../helpers/netns';
import { spawnRunner, type Runner } from '../helpers/runner';
import { describeSkipIf } from '../helpers/skip';

const reason = skipReason('dhclient', 'udhcpc', 'dnsmasq', 'perfdhcp');
const lab = new NetLab(`brd${process.pid}`);
const tmp = mkdtempSync(join(tmpdir(), 'brd-dhcp-'));
const LAN = '10.99.50.1';
let R = '';
let C = '';
let U = '';
let D = '';
let runnerJs = '';
let probeJs = '';
let npmClientJs = '';

function startRunner(cfg: Record<string, unknown>, name: string): Runner {
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  return spawnRunner(lab, R, runnerJs, file, name);
}

const BOOT = { loaders: { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] }, defaultProfile: 'd', profiles: {}, assign: {} };
function serverCfg(stateDir: string, over: Record<string, unknown> = {}) {
  return {
    lan: { interface: 'lan', address: LAN, prefix: 24 },
    dhcp: { mode: 'server', port: 67, proxyPort: 4011, range: ['10.99.50.100', '10.99.50.199'], leaseSeconds: 600, router: LAN, dns: [LAN], static: {}, ipxeNoProxyDhcp: true, netbootOnce: false, ...over },
    boot: BOOT,
    httpPort: 8080,
    tftpEnabled: true,
    stateDir,
  };
}

let macN = 0;
async function newMac(ns = C, dev = 'c0'): Promise<string> {
  const mac = `52:54:00:50:00:${(++macN).toString(16).padStart(2, '0')}`;
  lab.ip(ns, 'link', 'set', dev, 'down');
  lab.ip(ns, 'link', 'set', dev, 'address', mac);
  lab.ip(ns, 'addr', 'flush', 'dev', dev);
  lab.ip(ns, 'link', 'set', dev, 'up');
  return mac;
}

/** dhclient in the foreground with our own script (never the stock dhclient-script). */
async function dhclient(name: string, conf: string, opts: { ns?: string; dev?: string; lease?: string; until?: RegExp; timeoutMs?: number; release?: boolean } = {}) {
  const ns = opts.ns ?? C;
  const dev = opts.dev ?? 'c0';
  const dir = join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  writeFileSync(join(tmp, `${name}.conf`), conf);
  const out = join(tmp, `${name}.out`);
  const script = join(tmp, `${name}.sh`);
  writeFileSync(
    script,
    `#!/bin/sh
echo "$reason ip=$new_ip_address file=$new_filename server=$new_dhcp_server_identifier bootfile=$new_bootfile_name" >> ${out}
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip addr flush dev "$interface"; ip addr add "$new_ip_address/24" dev "$interface" ;;
  RELEASE|EXPIRE|FAIL|STOP) ip addr flush dev "$interface" ;;
esac
exit 0
`,
  );
  chmodSync(script, 0o755);
  const lf = join(tmp, `${name}.leases`);
  if (opts.lease !== undefined) writeFileSync(lf, opts.lease);
  const args = ['-4', '-d', '-v', '-sf', script, '-lf', lf, '-pf', join(tmp, `${name}.pid`), '-cf', join(tmp, `${name}.conf`), dev];
  const p = lab.spawn(ns, 'dhclient', args);
  let stderr = '';
  p.stderr?.on('data', (d) => (stderr += d));
  const read = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
  try {
    await waitFor(() => (opts.until ?? /^(BOUND|REBOOT) /m).test(read()), opts.timeoutMs ?? 15_000, `dhclient ${name}`);
  } catch (e) {
    await lab.kill(p, 'SIGKILL');
    throw new Error(`${(e as Error).message}\n${read()}\n${stderr.slice(-2000)}`);
  }
  await lab.kill(p, 'SIGKILL');
  const bound = [...read().matchAll(/^(BOUND|REBOOT) ip=(\S*) file=(\S*) server=\S* bootfile=(\S*)/gm)].pop();
  return { ip: bound?.[2] ?? '', file: bound?.[3] ?? '', bootfile: bound?.[4] ?? '', log: read(), stderr, lf, script, conf: join(tmp, `${name}.conf`), pf: join(tmp, `${name}.pid`) };
}

async function probe(ns: string, args: Record<string, unknown>): Promise<Array<Record<string, unknown>>> {
  const r = await lab.exec(ns, process.execPath, [probeJs, JSON.stringify(args)], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`probe failed (${r.code}): ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describeSkipIf(reason)('DHCP interop in network namespaces', () => {
  let runner: Runner;
  const stateDir = join(tmp, 'state');

  beforeAll(async () => {
    runnerJs = join(tmp, 'dhcp-runner.cjs');
    probeJs = join(tmp, 'dhcp-probe.cjs');
    const fx = (f: string) => new URL(`./fixtures/${f}`, import.meta.url).pathname;
    await build({ entryPoints: [fx('dhcp-runner.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: runnerJs, logLevel: 'warning' });
    await build({ entryPoints: [fx('dhcp-probe.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: probeJs, logLevel: 'warning' });
    npmClientJs = join(tmp, 'dhcp-npm-client.cjs');
    await build({ entryPoints: [fx('dhcp-npm-client.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: npmClientJs, logLevel: 'warning' });
    R = lab.addNs('r');
    const SW = lab.addNs('sw');
    C = lab.addNs('c');
    U = lab.addNs('u');
    D = lab.addNs('d');
    lab.veth(R, 'lan', SW, 'pr');
    lab.veth(C, 'c0', SW, 'pc');
    lab.veth(D, 'd0', SW, 'pd');
    lab.bridge(SW, 'br0', 'pr', 'pc', 'pd');
    lab.veth(R, 'wan', U, 'u0');
    lab.addr(R, 'lan', `${LAN}/24`);
    lab.addr(R, 'wan', '10.99.51.1/24');
    lab.addr(D, 'd0', '10.99.50.2/24');
    runner = startRunner(serverCfg(stateDir), 'server');
    await runner.ready;
  });

  afterAll(async () => {
    await lab.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('leases an address to plain dhclient (no boot file)', async () => {
    const mac = await newMac();
    const r = await dhclient('plain', 'timeout 10;\n');
    expect(r.ip).toMatch(/^10\.99\.50\.1\d\d$/);
    expect(r.file).toBe('');
    expect(runner.events.find((e) => e.type === 'dhcp.ack' && e.mac === mac)).toMatchObject({ ip: r.ip, firmware: 'other' });
    const leases = (await runner.ask('leases', 'leases')) as Array<{ mac: string; ip: string }>;
    expect(leases.find((l) => l.mac === mac)?.ip).toBe(r.ip);
  });

  it('gives dhclient posing as UEFI x64 PXE the UEFI loader', async () => {
    const mac = await newMac();
    const r = await dhclient(
      'uefi',
      'timeout 10;\noption pxe-arch code 93 = unsigned integer 16;\nsend vendor-class-identifier "PXEClient:Arch:00007:UNDI:003000";\nsend pxe-arch 7;\n',
    );
    expect(r.file).toBe('ipxe/snponly.efi');
    expect(r.bootfile).toBe('ipxe/snponly.efi');
    expect(runner.events.find((e) => e.type === 'dhcp.ack' && e.mac === mac)).toMatchObject({ arch: 'uefi-x64', firmware: 'uefi', file: 'ipxe/snponly.efi' });
  });

  it('gives dhclient with user class iPXE the boot script URL', async () => {
    const mac = await newMac();
    const r = await dhclient(
      'ipxe',
      'timeout 10;\noption pxe-arch code 93 = unsigned integer 16;\nsend vendor-class-identifier "PXEClient:Arch:00007:UNDI:003010";\nsend pxe-arch 7;\nsend user-class "iPXE";\n',
    );
    // ISC dhclient hands option 67 to its script; the BOOTP file field with '?' it
    // discards as a "suspect value" (so the URL is checked in option 67)
    expect(r.bootfile, r.log).toBe(`http://${LAN}:8080/boot.ipxe?mac=${mac}`);
    expect(runner.events.find((e) => e.type === 'dhcp.ack' && e.mac === mac)).toMatchObject({ firmware: 'ipxe', file: '/boot.ipxe', role: 'script' });
  });

  it('gives busybox udhcpc posing as BIOS PXE the BIOS loader', async () => {
    const mac = await newMac();
    const out = join(tmp, 'udhcpc.out');
    const script = join(tmp, 'udhcpc.sh');
    writeFileSync(script, `#!/bin/sh\necho "$1 ip=$ip file=$boot_file siaddr=$siaddr server=$serverid" >> ${out}\nexit 0\n`);
    chmodSync(script, 0o755);
    const r = await lab.exec(C, 'udhcpc', ['-i', 'c0', '-f', '-q', '-n', '-t', '5', '-T', '2', '-s', script, '-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000'], { timeoutMs: 20_000 });
    const log = existsSync(out) ? readFileSync(out, 'utf8') : '';
    expect(log, r.stderr).toMatch(/^bound ip=10\.99\.50\.\d+ file=ipxe\/undionly\.kpxe siaddr=10\.99\.50\.1 server=10\.99\.50\.1$/m);
    expect(runner.events.find((e) => e.type === 'dhcp.ack' && e.mac === mac)).toMatchObject({ arch: 'bios', firmware: 'bios' });
  });

  it('leases an address to the dhcp npm package client', async () => {
    const mac = await newMac();
    lab.ip(C, 'route', 'add', '255.255.255.255/32', 'dev', 'c0');
    const r = await lab.exec(C, process.execPath, [npmClientJs, mac], { timeoutMs: 15_000 });
    expect(r.code, r.stdout + r.stderr + JSON.stringify(runner.events.filter((e) => e.mac === mac))).toBe(0);
    const state = JSON.parse(r.stdout.trim()) as { address: string; server: string; options: Record<string, unknown> };
    expect(state.address).toMatch(/^10\.99\.50\.1\d\d$/);
    expect(state.server).toBe(LAN);
    expect(runner.events.find((e) => e.type === 'dhcp.ack' && e.mac === mac)).toMatchObject({ ip: state.address });
  });

  it('NAKs an init-reboot for an address of another network, then leases normally', async () => {
    const mac = await newMac();
    const lease = `lease {\n  interface "c0";\n  fixed-address 10.99.77.5;\n  option subnet-mask 255.255.255.0;\n  renew 4 2037/01/01 00:00:00;\n  rebind 4 2037/01/01 00:00:00;\n  expire 4 2037/01/01 00:00:00;\n}\n`;
    const r = await dhclient('reboot', 'timeout 20;\ninitial-interval 1;\n', { lease, timeoutMs: 30_000 });
    expect(r.ip).toMatch(/^10\.99\.50\./);
    const evs = runner.events.filter((e) => e.mac === mac).map((e) => e.type);
    expect(evs).toContain('dhcp.nak');
    expect(evs.indexOf('dhcp.nak')).toBeLessThan(evs.lastIndexOf('dhcp.ack'));
  });

  it('frees the address on dhclient -r (RELEASE)', async () => {
    const mac = await newMac();
    const r = await dhclient('rel', 'timeout 10;\n');
    const rel = await lab.exec(C, 'dhclient', ['-4', '-r', '-v', '-sf', r.script, '-lf', r.lf, '-pf', r.pf, '-cf', r.conf, 'c0'], { timeoutMs: 15_000 });
    await waitFor(() => runner.events.find((e) => e.type === 'dhcp.release' && e.mac === mac), 10_000, `release event\n${rel.stderr}`);
    const leases = (await runner.ask('leases', 'leases')) as Array<{ mac: string; ip: string; active: boolean }>;
    expect(leases.find((l) => l.mac === mac)).toMatchObject({ ip: r.ip, active: false });
  });

  it('answers nothing to a DHCP client on the uplink side', async () => {
    await newMac(U, 'u0');
    const n = runner.events.length;
    await expect(dhclient('uplink', 'timeout 4;\nretry 60;\n', { ns: U, dev: 'u0', timeoutMs: 8_000, until: /^(BOUND|REBOOT|FAIL|TIMEOUT)/m }).then((r) => r.ip)).resolves.toBe('');
    // we may have seen it on 0.0.0.0:67, but our broadcast left through the LAN only
    expect(runner.events.slice(n).filter((e) => e.type === 'dhcp.ack')).toEqual([]);
  });

  it('keeps every ACKed lease across kill -9 in a perfdhcp burst, never one address for two clients', async () => {
    // perfdhcp acts as a relay: giaddr = its address, replies to port 67
    lab.addr(C, 'c0', '10.99.50.3/24');
    const perf = lab.spawn(C, 'perfdhcp', ['-4', '-l', 'c0', '-r', '200', '-R', '80', '-n', '2000', '-p', '8']);
    let perfOut = '';
    perf.stdout?.on('data', (d) => (perfOut += d));
    perf.stderr?.on('data', (d) => (perfOut += d));
    const acks = () => runner.events.filter((e) => e.type === 'dhcp.ack' && String(e.mac).startsWith('00:0c:01'));
    try {
      await waitFor(() => acks().length >= 60, 15_000, 'perfdhcp ACKs').catch((e) => {
        throw new Error(`${e.message}\n${perfOut.slice(0, 300)}\n${JSON.stringify(runner.events.slice(-3))}`);
      });
    } finally {
      await lab.kill(runner.p, 'SIGKILL');
      await lab.kill(perf, 'SIGKILL');
      lab.ip(C, 'addr', 'flush', 'dev', 'c0');
    }
    const acked = new Map<string, string>();
    for (const e of acks()) acked.set(String(e.mac), String(e.ip));
    const byIp = new Map<string, string>();
    for (const e of runner.events.filter((x) => x.type === 'dhcp.ack')) {
      const other = byIp.get(String(e.ip));
      if (other && other !== e.mac) throw new Error(`${e.ip} ACKed to ${other} and ${e.mac}`);
      byIp.set(String(e.ip), String(e.mac));
    }
    runner = startRunner(serverCfg(stateDir), 'server2');
    const ready = await runner.ready;
    const leases = ready.leases as Array<{ mac: string; ip: string }>;
    for (const [mac, ip] of acked) expect(leases.find((l) => l.mac === mac)?.ip, mac).toBe(ip);
    expect(new Set(leases.map((l) => l.ip)).size).toBe(leases.length);
  });

  describe('proxy mode beside dnsmasq', () => {
    beforeAll(async () => {
      await lab.kill(runner.p);
      const conf = join(tmp, 'dnsmasq.conf');
      writeFileSync(conf, `port=0\ninterface=d0\nbind-interfaces\ndhcp-range=10.99.50.150,10.99.50.199,255.255.255.0,5m\ndhcp-leasefile=${join(tmp, 'dnsmasq.leases')}\ndhcp-authoritative\nno-ping\nuser=root\n`);
      const dm = lab.spawn(D, 'dnsmasq', ['-k', '-C', conf, '--log-dhcp', `--pid-file=${join(tmp, 'dnsmasq.pid')}`]);
      let dmErr = '';
      dm.stderr?.on('data', (d) => (dmErr += d));
      await waitFor(() => existsSync(join(tmp, 'dnsmasq.pid')) || dm.exitCode !== null, 10_000, 'dnsmasq');
      if (dm.exitCode !== null) throw new Error(`dnsmasq exited: ${dmErr}`);
      runner = startRunner(serverCfg(join(tmp, 'state-proxy'), { mode: 'proxy' }), 'proxy');
      await runner.ready;
    });

    it('the PXE client gets its address from dnsmasq and its boot file from us', async () => {
      const mac = await newMac();
      // broadcasts from an unconfigured client need a route for 255.255.255.255
      lab.ip(C, 'route', 'add', '255.255.255.255/32', 'dev', 'c0');
      const offers = await probe(C, { mac, type: 1, to: '255.255.255.255', port: 67, fromPort: 68, waitMs: 2500, vendorClass: 'PXEClient:Arch:00000:UNDI:002001', arch: 0 });
      const fromDnsmasq = offers.find((o) => o.serverId === '10.99.50.2');
      const fromUs = offers.find((o) => o.serverId === LAN);
      expect(offers.length, JSON.stringify(offers)).toBeGreaterThan(1);
      expect(fromDnsmasq?.yiaddr).toMatch(/^10\.99\.50\.1[5-9]\d$/);
      expect(fromUs).toMatchObject({ type: 'OFFER', yiaddr: '0.0.0.0', file: 'ipxe/undionly.kpxe', vendorClass: 'PXEClient', siaddr: LAN });
      expect(fromUs?.opt43).toBe('060108ff');
      // then, configured by dnsmasq, it asks us on 4011 (UEFI style) and gets the loader unicast
      lab.addr(C, 'c0', `${fromDnsmasq!.yiaddr}/24`);
      const acks = await probe(C, { mac, type: 3, to: LAN, port: 4011, fromPort: 4011, waitMs: 1500, vendorClass: 'PXEClient:Arch:00007:UNDI:003000', arch: 7, ciaddr: fromDnsmasq!.yiaddr });
      expect(acks).toMatchObject([{ type: 'ACK', from: LAN, fromPort: 4011, file: 'ipxe/snponly.efi', yiaddr: '0.0.0.0' }]);
      expect(runner.events.filter((e) => e.mac === mac).map((e) => e.type)).toEqual(['dhcp.discover', 'proxy.offer', 'dhcp.request', 'proxy.ack']);
    });

    it('a non-PXE client gets its lease from dnsmasq and nothing from us', async () => {
      const mac = await newMac();
      const r = await dhclient('proxy-plain', 'timeout 10;\n');
      expect(r.ip).toMatch(/^10\.99\.50\.1[5-9]\d$/);
      expect(r.log).toContain('server=10.99.50.2');
      expect(runner.events.filter((e) => e.mac === mac)).toEqual([]);
      expect(String(await runner.ask('metrics', 'metrics'))).toMatch(/bootrelay_dhcp_ignored_total\{reason="not-pxe"\} [1-9]/);
    });
  });
});
