/**
 * Issue 12's DHCP features against real clients in network namespaces:
 * ISC dhclient requesting extra options (NTP, domain, MTU, search list, classless routes)
 * from a reply too big for 576 bytes (option overload), ISC dhcrelay relaying a remote
 * subnet's client (giaddr, option 82), a scripted relay agent checking the option 82
 * echo and the subnet's own range, and busybox udhcpc posing as PXE firmware for the match
 * rules, known-clients-only and the BIOS PXE menu (its boot server discovery by our probe;
 * a real BIOS PXE ROM is not driven here: QEMU's NIC ROMs are iPXE, which is handed the
 * script, not a menu).
 *
 *   r (runner) lan 10.99.52.1/24 ── sw: br0 ── c (dhclient: c0)
 *                                           └─ g (relay agent: g0 10.99.52.2, g1 10.99.53.1) ── x (remote client: x0)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { NetLab, skipReason, waitFor } from '../helpers/netns';
import { spawnRunner, type Runner } from '../helpers/runner';
import { describeSkipIf } from '../helpers/skip';

const reason = skipReason('dhclient', 'dhcrelay', 'udhcpc');
const lab = new NetLab(`brq${process.pid % 10000}`);
const tmp = mkdtempSync(join(tmpdir(), 'brq-dhcp-'));
const LAN = '10.99.52.1';
const GW_LAN = '10.99.52.2';
const GW_REMOTE = '10.99.53.1';
let R = '';
let C = '';
let G = '';
let X = '';
let runnerJs = '';
let probeJs = '';

function startRunner(cfg: Record<string, unknown>, name: string): Runner {
  const file = join(tmp, `${name}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  return spawnRunner(lab, R, runnerJs, file, name);
}

// 236 bytes on the wire: with the rest, the reply cannot fit 548 bytes without option overload
const SEARCH = Array.from({ length: 9 }, (_, i) => `zone${i}.boot-lab.internal`);
const ROUTES = [
  { network: '0.0.0.0/0', gateway: LAN },
  { network: '10.99.200.0/24', gateway: '10.99.52.254' },
  { network: '172.16.0.0/12', gateway: '10.99.52.253' },
];

function cfg(stateDir: string) {
  return {
    lan: { interface: 'lan', address: LAN, prefix: 24 },
    dhcp: {
      mode: 'server',
      port: 67,
      proxyPort: 4011,
      range: ['10.99.52.100', '10.99.52.149'],
      leaseSeconds: 600,
      router: LAN,
      dns: [LAN],
      static: { '52:54:00:52:31:01': '10.99.52.31' },
      ipxeNoProxyDhcp: true,
      netbootOnce: false,
      options: { ntp: ['10.99.52.5', '10.99.52.6'], domain: 'boot.lab', mtu: 1400, searchList: SEARCH, classlessRoutes: ROUTES },
      relaySubnets: [{ network: '10.99.53.0/24', range: ['10.99.53.100', '10.99.53.149'], router: GW_REMOTE }],
      knownClientsOnly: true,
    },
    boot: {
      loaders: { bios: ['ipxe/undionly.kpxe'], 'uefi-x64': ['ipxe/snponly.efi'] },
      defaultProfile: 'd',
      profiles: {
        d: { kernel: 'd/vmlinuz' },
        uefi: { kernel: 'u/vmlinuz', dhcpOptions: { domain: 'uefi.boot.lab' } },
        menu: { kernel: 'm/vmlinuz', pxeMenu: { prompt: 'Press F8', timeout: 3, items: [{ label: 'iPXE', loader: 'ipxe/undionly.kpxe' }, { label: 'Memtest', loader: 'tools/memtest.0' }, { label: 'Disk', loader: 'local' }] } },
      },
      assign: {},
      match: [
        { profile: 'menu', mac: '52:54:00:52:2?:*' },
        { profile: 'uefi', vendorClass: 'PXEClient:Arch:00007*' },
      ],
    },
    httpPort: 8080,
    tftpEnabled: true,
    stateDir,
  };
}

/** busybox udhcpc once (-q -n), its script printing the variables it was given. */
async function udhcpc(mac: string, args: string[]): Promise<Record<string, string>> {
  lab.ip(C, 'link', 'set', 'c0', 'down');
  lab.ip(C, 'link', 'set', 'c0', 'address', mac);
  lab.ip(C, 'addr', 'flush', 'dev', 'c0');
  lab.ip(C, 'link', 'set', 'c0', 'up');
  const out = join(tmp, `udhcpc-${mac.replace(/:/g, '')}.out`);
  const script = join(tmp, 'udhcpc.sh');
  writeFileSync(script, `#!/bin/sh\n[ "$1" = bound ] && env > ${out}\nexit 0\n`);
  chmodSync(script, 0o755);
  const r = await lab.exec(C, 'udhcpc', ['-i', 'c0', '-f', '-q', '-n', '-t', '5', '-T', '2', '-s', script, ...args], { timeoutMs: 20_000 });
  if (!existsSync(out)) throw new Error(`udhcpc got no lease: ${r.stderr}`);
  return Object.fromEntries(
    readFileSync(out, 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

async function dhclient(ns: string, dev: string, name: string, conf: string, timeoutMs = 20_000) {
  const out = join(tmp, `${name}.out`);
  const script = join(tmp, `${name}.sh`);
  writeFileSync(
    script,
    `#!/bin/sh
{ echo "reason=$reason"; echo "ip=$new_ip_address"; echo "ntp=$new_ntp_servers"; echo "domain=$new_domain_name"; echo "search=$new_domain_search";
  echo "mtu=$new_interface_mtu"; echo "routes=$new_rfc3442_classless_static_routes"; echo "routers=$new_routers"; echo "mask=$new_subnet_mask"; } >> ${out}
exit 0
`,
  );
  chmodSync(script, 0o755);
  writeFileSync(join(tmp, `${name}.conf`), conf);
  const args = ['-4', '-d', '-v', '-1', '-sf', script, '-lf', join(tmp, `${name}.leases`), '-pf', join(tmp, `${name}.pid`), '-cf', join(tmp, `${name}.conf`), dev];
  const p = lab.spawn(ns, 'dhclient', args);
  let stderr = '';
  p.stderr?.on('data', (d) => (stderr += d));
  const read = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
  try {
    await waitFor(() => /reason=(BOUND|REBOOT)/.test(read()), timeoutMs, `dhclient ${name}`);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${read()}\n${stderr.slice(-2000)}`);
  } finally {
    await lab.kill(p, 'SIGKILL');
  }
  const text = read().split(/reason=(?:BOUND|REBOOT)\n/).pop()!;
  const v = Object.fromEntries(text.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return { v, stderr };
}

async function probe(ns: string, args: Record<string, unknown>): Promise<Array<Record<string, unknown>>> {
  const r = await lab.exec(ns, process.execPath, [probeJs, JSON.stringify(args)], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`probe failed (${r.code}): ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describeSkipIf(reason)('DHCP features with real clients', () => {
  let runner: Runner;

  beforeAll(async () => {
    runnerJs = join(tmp, 'dhcp-runner.cjs');
    probeJs = join(tmp, 'dhcp-probe.cjs');
    const fx = (f: string) => new URL(`./fixtures/${f}`, import.meta.url).pathname;
    await build({ entryPoints: [fx('dhcp-runner.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: runnerJs, logLevel: 'warning' });
    await build({ entryPoints: [fx('dhcp-probe.ts')], bundle: true, platform: 'node', format: 'cjs', outfile: probeJs, logLevel: 'warning' });
    R = lab.addNs('r');
    const SW = lab.addNs('sw');
    C = lab.addNs('c');
    G = lab.addNs('g');
    X = lab.addNs('x');
    lab.veth(R, 'lan', SW, 'pr');
    lab.veth(C, 'c0', SW, 'pc');
    lab.veth(G, 'g0', SW, 'pg');
    lab.bridge(SW, 'br0', 'pr', 'pc', 'pg');
    lab.veth(G, 'g1', X, 'x0');
    lab.addr(R, 'lan', `${LAN}/24`);
    lab.addr(G, 'g0', `${GW_LAN}/24`);
    lab.addr(G, 'g1', `${GW_REMOTE}/24`);
    // the server reaches the relay agent's remote address (giaddr) through it
    lab.ip(R, 'route', 'add', '10.99.53.0/24', 'via', GW_LAN);
    lab.ip(X, 'link', 'set', 'x0', 'address', '52:54:00:53:00:01');
    runner = startRunner(cfg(join(tmp, 'state')), 'features');
    await runner.ready;
  }, 60_000);

  afterAll(async () => {
    await lab.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('dhclient asking for NTP, domain, MTU, search list and classless routes at 576 bytes gets them all (option overload)', async () => {
    lab.ip(C, 'link', 'set', 'c0', 'address', '52:54:00:52:00:01');
    const conf = [
      'timeout 15;',
      'option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;',
      'send dhcp-max-message-size 576;',
      'request subnet-mask, routers, domain-name-servers, domain-name, ntp-servers, interface-mtu, domain-search, rfc3442-classless-static-routes;',
      '',
    ].join('\n');
    const { v } = await dhclient(C, 'c0', 'opts', conf);
    expect(v.ip).toMatch(/^10\.99\.52\.1[0-4]\d$/);
    expect(v.ntp).toBe('10.99.52.5 10.99.52.6');
    expect(v.domain).toBe('boot.lab');
    expect(v.mtu).toBe('1400');
    expect(v.search).toBe(SEARCH.map((d) => `${d}.`).join(' ')); // dhclient writes them fully qualified
    // RFC 3442 encoding as dhclient prints it: prefix, significant octets, router
    expect(v.routes).toBe('0 10 99 52 1 24 10 99 200 10 99 52 254 12 172 16 10 99 52 253');
    // the same request from our probe: the datagram stays within 576 - 28 bytes by spilling into file/sname
    lab.ip(C, 'route', 'replace', '255.255.255.255/32', 'dev', 'c0');
    const r = await probe(C, { mac: '52:54:00:52:00:02', type: 1, to: '255.255.255.255', port: 67, fromPort: 68, waitMs: 1500, opts: { '57': '0240' }, prl: [1, 3, 6, 15, 42, 26, 119, 121] });
    expect(r, JSON.stringify(r)).toHaveLength(1);
    expect(r[0]?.error).toBeUndefined();
    expect(r[0]!.size as number, JSON.stringify(r[0])).toBeLessThanOrEqual(548);
    expect(JSON.stringify(r[0])).toMatch(/"overload":[123]/);
    expect(r[0]!.codes).toEqual(expect.arrayContaining([1, 3, 6, 15, 42, 26, 119, 121, 53, 54, 51]));
  });

  it('ISC dhcrelay relays a remote subnet: the client gets an address of that subnet, with option 82 added and stripped', async () => {
    const dr = lab.spawn(G, 'dhcrelay', ['-d', '-4', '-a', '-D', '-iu', 'g0', '-id', 'g1', LAN]);
    let drOut = '';
    dr.stderr?.on('data', (d) => (drOut += d));
    dr.stdout?.on('data', (d) => (drOut += d));
    try {
      await new Promise((r) => setTimeout(r, 500));
      const { v } = await dhclient(X, 'x0', 'relayed', 'timeout 15;\n').catch((e) => {
        throw new Error(`${(e as Error).message}\n${drOut.slice(-2000)}`);
      });
      expect(v.ip).toMatch(/^10\.99\.53\.1[0-4]\d$/);
      expect(v.routers).toBe(GW_REMOTE);
      expect(v.mask).toBe('255.255.255.0');
    } finally {
      await lab.kill(dr, 'SIGKILL');
    }
    const ack = runner.events.find((e) => e.type === 'dhcp.ack' && e.mac === '52:54:00:53:00:01');
    expect(ack?.ip).toMatch(/^10\.99\.53\./);
    const leases = (await runner.ask('leases', 'leases')) as Array<{ mac: string; ip: string }>;
    expect(leases.find((l) => l.mac === '52:54:00:53:00:01')?.ip).toBe(ack?.ip);
  });

  it('a relay agent (raw giaddr datagram) gets the subnet range and its option 82 back, last', async () => {
    const agent82 = '0106' + Buffer.from('port-7').toString('hex') + '0204' + 'c0a80001';
    const r = await probe(G, { mac: '52:54:00:53:00:02', type: 1, to: LAN, port: 67, fromPort: 67, bindAddress: GW_REMOTE, giaddr: GW_REMOTE, waitMs: 1500, opts: { '82': agent82 } });
    expect(r).toHaveLength(1);
    expect(r[0]).toMatchObject({ type: 'OFFER', giaddr: GW_REMOTE, router: GW_REMOTE, mask: '255.255.255.0', opt82: agent82, lastInOptions: 82 });
    expect(r[0]!.yiaddr).toMatch(/^10\.99\.53\.1[0-4]\d$/);
    // a giaddr on no configured subnet is still not ours
    const n = runner.events.length;
    const none = await probe(G, { mac: '52:54:00:53:00:03', type: 1, to: LAN, port: 67, fromPort: 67, bindAddress: GW_REMOTE, giaddr: '10.99.54.1', waitMs: 800 });
    expect(none).toEqual([]);
    expect(runner.events.slice(n).filter((e) => e.type === 'dhcp.offer')).toEqual([]);
  });

  it('known clients only: an unknown BIOS PXE client gets an address but no boot file, and the reason as an event', async () => {
    const mac = '52:54:00:52:30:01';
    const v = await udhcpc(mac, ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000']);
    expect(v.ip).toMatch(/^10\.99\.52\.1[0-4]\d$/);
    expect(v.boot_file ?? '').toBe('');
    expect(runner.events.find((e) => e.type === 'dhcp.unknown-client' && e.mac === mac)).toBeTruthy();
  });

  it('match rules: a vendor class rule picks the profile (and its options) for a known client', async () => {
    const mac = '52:54:00:52:31:01';
    // known by a static lease (dhcp.static); the profile comes from the vendor-class rule
    const v = await udhcpc(mac, ['-V', 'PXEClient:Arch:00007:UNDI:003000', '-x', '0x5d:0007', '-O', 'domain']);
    expect(v.boot_file).toBe('ipxe/snponly.efi');
    expect(v.domain).toBe('uefi.boot.lab');
    expect(runner.events.find((e) => e.type === 'dhcp.ack' && e.mac === mac)).toMatchObject({ profile: 'uefi' });
  });

  it('PXE menu: a BIOS PXE client matched to a menu profile gets option 43 with the menu; its discovery REQUEST gets the item', async () => {
    const mac = '52:54:00:52:21:01'; // the mac rule makes it known and picks the menu profile
    const v = await udhcpc(mac, ['-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x5d:0000', '-O', '43']);
    const o43 = Buffer.from(v.opt43 ?? '', 'hex');
    expect(o43.length, JSON.stringify(v)).toBeGreaterThan(0);
    const { decodePxeOptions } = await import('../../proto/dhcp/pxe');
    const p = decodePxeOptions(o43);
    expect(p.menuPrompt).toEqual({ timeout: 3, prompt: 'Press F8' });
    expect(p.bootMenu!.map((i) => i.description)).toEqual(['iPXE', 'Memtest', 'Disk']);
    expect(p.discoveryControl).toBe(2);
    // the ROM's boot server discovery for "Memtest": a REQUEST with PXE_BOOT_ITEM, broadcast to 67
    lab.addr(C, 'c0', `${v.ip}/24`);
    lab.ip(C, 'route', 'replace', '255.255.255.255/32', 'dev', 'c0');
    const type = p.bootMenu![1]!.type;
    const item = Buffer.from([71, 4, type >> 8, type & 255, 0, 0, 255]).toString('hex');
    const acks = await probe(C, { mac, type: 3, to: '255.255.255.255', port: 67, fromPort: 68, waitMs: 1500, vendorClass: 'PXEClient:Arch:00000:UNDI:002001', arch: 0, ciaddr: v.ip, opts: { '43': item } });
    expect(acks).toMatchObject([{ type: 'ACK', file: 'tools/memtest.0', siaddr: LAN }]);
    expect(String(acks[0]!.opt43)).toContain(item.slice(0, 12));
  });
});
