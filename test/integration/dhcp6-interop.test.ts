/**
 * Dhcp6Service against real DHCPv6 clients in network namespaces (fd99:60::/64):
 * ISC dhclient -6 (stateful, posing as UEFI PXE and as iPXE, release, -S stateless),
 * perfdhcp -6 bursts with the server killed -9 mid-burst (no REPLYed lease lost, no
 * address twice), every reply dissected by tshark without expert warnings, garbage
 * datagrams counted and dropped.
 *
 *   r (runner)  lan fd99:60::1/64 ──veth── c (clients: c0)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { NetLab, skipReason, waitFor } from '../helpers/netns';
import { spawnRunner, type Runner } from '../helpers/runner';
import { describeSkipIf } from '../helpers/skip';
import { decodeDhcp6, type Dhcp6Message } from '../../proto/dhcp6/packet';
import { decodeDuid, decodeIa, decodeIaAddr, Msg6, Opt6 } from '../../proto/dhcp6/options';
import { Lease6Store } from '../../relay/dhcp6/leases';
import { udp6Datagrams } from '../helpers/udp-frames';

const reason = skipReason('dhclient', 'perfdhcp', 'tcpdump', 'tshark');
const lab = new NetLab(`br6${process.pid % 10000}`);
const tmp = mkdtempSync(join(tmpdir(), 'br6-dhcp-'));
const LAN6 = 'fd99:60::1';
const RANGE: [string, string] = ['fd99:60::1000', 'fd99:60::ffff'];
let R = '';
let C = '';
let runnerJs = '';

function startRunner(over: Record<string, unknown>, name: string, stateDir: string): Runner {
  const file = join(tmp, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      dhcp6: { mode: 'server', port: 547, range: RANGE, leaseSeconds: 600, preference: 255 },
      interface: 'lan',
      address6: LAN6,
      prefix6: 64,
      loaders: { 'uefi-x64': ['ipxe/snponly.efi'] },
      httpPort: 8080,
      tftpPort: 69,
      tftpEnabled: true,
      stateDir,
      ...over,
    }),
  );
  return spawnRunner(lab, R, runnerJs, file, name);
}

let macN = 0;
function newMac(): string {
  const mac = `52:54:00:60:00:${(++macN).toString(16).padStart(2, '0')}`;
  lab.ip(C, 'link', 'set', 'c0', 'down');
  lab.ip(C, 'link', 'set', 'c0', 'address', mac);
  // off and on again: the addresses go, and the link-local comes back with the new EUI-64
  spawnSync('ip', ['netns', 'exec', C, 'sysctl', '-qw', 'net.ipv6.conf.c0.disable_ipv6=1']);
  spawnSync('ip', ['netns', 'exec', C, 'sysctl', '-qw', 'net.ipv6.conf.c0.disable_ipv6=0']);
  lab.ip(C, 'link', 'set', 'c0', 'up');
  return mac;
}

async function linkLocalReady(): Promise<void> {
  await waitFor(() => /inet6 fe80::\S+ scope link\s/.test(spawnSync('ip', ['-n', C, '-6', 'addr', 'show', 'dev', 'c0'], { encoding: 'utf8' }).stdout), 10_000, 'a link-local address on c0');
}

/** dhclient -6 in the foreground with our own script; returns what the script saw. */
async function dhclient6(name: string, conf: string, opts: { stateless?: boolean; until?: RegExp; timeoutMs?: number } = {}) {
  await linkLocalReady();
  writeFileSync(join(tmp, `${name}.conf`), conf);
  const out = join(tmp, `${name}.out`);
  const script = join(tmp, `${name}.sh`);
  writeFileSync(
    script,
    `#!/bin/sh
echo "$reason ip6=$new_ip6_address/$new_ip6_prefixlen url=$new_dhcp6_bootfile_url" >> ${out}
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6) [ -n "$new_ip6_address" ] && ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad 2>/dev/null ;;
  RELEASE6|EXPIRE6|STOP6) [ -n "$old_ip6_address" ] && ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null ;;
esac
exit 0
`,
  );
  chmodSync(script, 0o755);
  const lf = join(tmp, `${name}.leases`);
  const pf = join(tmp, `${name}.pid`);
  const args = ['-6', ...(opts.stateless ? ['-S'] : []), '-d', '-v', '-sf', script, '-lf', lf, '-pf', pf, '-cf', join(tmp, `${name}.conf`), 'c0'];
  const p = lab.spawn(C, 'dhclient', args);
  let stderr = '';
  p.stderr?.on('data', (d) => (stderr += d));
  const read = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
  try {
    await waitFor(() => (opts.until ?? /^BOUND6 /m).test(read()), opts.timeoutMs ?? 20_000, `dhclient -6 ${name}`);
  } catch (e) {
    await lab.kill(p, 'SIGKILL');
    throw new Error(`${(e as Error).message}\n${read()}\n${stderr.slice(-2000)}`);
  }
  await lab.kill(p, 'SIGKILL');
  const m = [...read().matchAll(/^(BOUND6|RENEW6|REBIND6) ip6=(\S*)\/\S* url=(\S*)/gm)].pop();
  return { ip6: m?.[2] ?? '', url: m?.[3] ?? '', log: read(), stderr, lf, pf, script, conf: join(tmp, `${name}.conf`) };
}

// option 59 by name; 15/16/61 as raw bytes (ISC's own definitions differ in framing)
const BOOT_OPTS = `option dhcp6.bootfile-url code 59 = string;
option dhcp6.uc code 15 = string;
option dhcp6.vc code 16 = string;
option dhcp6.arch code 61 = unsigned integer 16;
also request dhcp6.bootfile-url;
`;
const hex = (s: string) => [...Buffer.from(s, 'latin1')].map((b) => b.toString(16).padStart(2, '0')).join(':');
const lenHex = (n: number) => `${(n >> 8).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;

/** The REPLYs (and ADVERTISEs) of a capture with their IA_NA addresses. */
function repliesIn(pcap: string): Array<{ type: number; duid: string; iaid: number; ip: string; valid: number }> {
  const out: Array<{ type: number; duid: string; iaid: number; ip: string; valid: number }> = [];
  for (const d of udp6Datagrams(pcap)) {
    if (d.srcPort !== 547) continue;
    const m = decodeDhcp6(d.payload) as Dhcp6Message;
    if (m.type !== Msg6.REPLY && m.type !== Msg6.ADVERTISE) continue;
    const duid = decodeDuid(m.options.get(Opt6.ClientId)!).hex;
    for (const raw of m.options.all(Opt6.IaNa)) {
      const ia = decodeIa(Opt6.IaNa, raw);
      for (const a of ia.options.all(Opt6.IaAddr)) {
        const x = decodeIaAddr(a);
        out.push({ type: m.type, duid, iaid: ia.iaid, ip: x.address, valid: x.valid });
      }
    }
  }
  return out;
}

async function capture(file: string): Promise<() => Promise<void>> {
  const p = lab.spawn(C, 'tcpdump', ['-i', 'c0', '-n', '-U', '--immediate-mode', '-Z', 'root', '-w', file, 'udp port 546 or udp port 547']);
  let err = '';
  p.stderr?.on('data', (d) => (err += d));
  await waitFor(() => err.includes('listening on'), 10_000, 'tcpdump');
  return async () => {
    await lab.kill(p, 'SIGINT');
  };
}

function tsharkWarnings(pcap: string): { replies: number; expert: string } {
  const n = spawnSync('tshark', ['-r', pcap, '-Y', 'dhcpv6.msgtype == 7 || dhcpv6.msgtype == 2', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8' });
  const x = spawnSync('tshark', ['-r', pcap, '-q', '-z', 'expert,warn'], { encoding: 'utf8' });
  return { replies: n.stdout.split('\n').filter(Boolean).length, expert: x.stdout.replace(/^Running as user.*$/m, '').trim() };
}

describeSkipIf(reason)('DHCPv6 interop in network namespaces', () => {
  let runner: Runner;
  const stateDir = join(tmp, 'state');

  beforeAll(async () => {
    runnerJs = join(tmp, 'dhcp6-runner.cjs');
    await build({ entryPoints: [new URL('./fixtures/dhcp6-runner.ts', import.meta.url).pathname], bundle: true, platform: 'node', format: 'cjs', outfile: runnerJs, logLevel: 'warning' });
    R = lab.addNs('r');
    C = lab.addNs('c');
    for (const ns of [R, C]) {
      // NetLab turns IPv6 off in its namespaces; this suite needs it (and no DAD delay)
      spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.lo.disable_ipv6=0']);
    }
    lab.veth(R, 'lan', C, 'c0');
    lab.ip(R, 'addr', 'add', `${LAN6}/64`, 'dev', 'lan', 'nodad');
    runner = startRunner({}, 'server', stateDir);
    await runner.ready;
  }, 60_000);

  afterAll(async () => {
    await lab.cleanup();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('leases an address to plain dhclient -6 (stateful), durable and listed', async () => {
    const mac = newMac();
    const r = await dhclient6('plain', 'timeout 10;\n');
    expect(r.ip6, r.log + r.stderr).toMatch(/^fd99:60::[0-9a-f]{4}$/);
    expect(r.url).toBe('');
    expect(runner.events.find((e) => e.type === 'dhcp6.reply' && e.mac === mac)).toMatchObject({ ip6: r.ip6, firmware: 'other' });
    const leases = (await runner.ask('leases', 'leases')) as Array<{ mac: string; ip: string; active: boolean }>;
    expect(leases.find((l) => l.mac === mac)).toMatchObject({ ip: r.ip6, active: true });
    expect(readFileSync(join(stateDir, 'leases6.jsonl'), 'utf8')).toContain(r.ip6);
  });

  it('gives dhclient -6 posing as UEFI x64 PXE (vendor class PXEClient, arch 7) a tftp://[v6] loader URL', async () => {
    const mac = newMac();
    const vc = 'PXEClient:Arch:00007:UNDI:003016';
    const conf = `timeout 10;\n${BOOT_OPTS}send dhcp6.vc 00:00:01:57:${lenHex(vc.length)}:${hex(vc)};\nsend dhcp6.arch 7;\n`;
    const r = await dhclient6('pxe', conf);
    expect(r.url, r.log + r.stderr).toBe(`tftp://[${LAN6}]/ipxe/snponly.efi`);
    expect(runner.events.find((e) => e.type === 'dhcp6.reply' && e.mac === mac)).toMatchObject({ firmware: 'uefi', arch: 'uefi-x64', role: 'loader', file: 'ipxe/snponly.efi' });
  });

  it('gives dhclient -6 with user class iPXE the script URL (IPv6 literal in brackets)', async () => {
    const mac = newMac();
    const conf = `timeout 10;\n${BOOT_OPTS}send dhcp6.uc ${lenHex(4)}:${hex('iPXE')};\n`;
    const r = await dhclient6('ipxe', conf);
    expect(r.url, r.log).toBe(`http://[${LAN6}]:8080/boot.ipxe?mac=${mac}`);
  });

  it('frees the address on dhclient -6 -r (RELEASE)', async () => {
    const mac = newMac();
    const r = await dhclient6('rel', 'timeout 10;\n');
    const rel = await lab.exec(C, 'dhclient', ['-6', '-r', '-v', '-sf', r.script, '-lf', r.lf, '-pf', r.pf, '-cf', r.conf, 'c0'], { timeoutMs: 15_000 });
    await waitFor(() => runner.events.find((e) => e.type === 'dhcp6.release' && e.mac === mac), 10_000, `release event\n${rel.stderr}`);
    const leases = (await runner.ask('leases', 'leases')) as Array<{ mac: string; ip: string; active: boolean }>;
    expect(leases.find((l) => l.mac === mac)).toMatchObject({ ip: r.ip6, active: false });
  });

  it('counts and drops garbage datagrams, and keeps serving', async () => {
    const before = (await runner.ask('dropped', 'dropped')) as number;
    const js = `const s=require('dgram').createSocket('udp6');s.bind(0,()=>{const g=[Buffer.alloc(0),Buffer.from([1]),Buffer.from('01000001ffff','hex'),Buffer.from('0c0000','hex'),Buffer.alloc(200,0xee),Buffer.from('030000010001000a0003','hex')];let n=0;for(const b of g)s.send(b,547,'ff02::1:2%c0',()=>{if(++n===g.length)s.close()})});`;
    const r = await lab.exec(C, process.execPath, ['-e', js], { timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(0);
    await waitFor(async () => ((await runner.ask('dropped', 'dropped')) as number) >= before + 6, 5000, 'garbage counted');
    newMac();
    expect((await dhclient6('after-garbage', 'timeout 10;\n')).ip6).toMatch(/^fd99:60::/);
  });

  it('perfdhcp -6 bursts with kill -9 mid-burst: no REPLYed lease lost, no address twice, tshark finds nothing wrong', async () => {
    newMac();
    await linkLocalReady();
    const pcap1 = join(tmp, 'burst1.pcap');
    const stop1 = await capture(pcap1);
    const perf = lab.spawn(C, 'perfdhcp', ['-6', '-l', 'c0', '-r', '400', '-R', '3000', '-p', '6']);
    await waitFor(async () => (readFileSync(join(stateDir, 'leases6.jsonl'), 'utf8').match(/\n/g)?.length ?? 0) > 150, 20_000, 'the burst under way');
    runner.p.kill('SIGKILL');
    await new Promise<void>((r) => (runner.p.exitCode !== null || runner.p.signalCode !== null ? r() : runner.p.once('exit', () => r())));
    await lab.kill(perf, 'SIGKILL');
    await stop1();
    const before = repliesIn(pcap1).filter((x) => x.type === Msg6.REPLY && x.valid > 0);
    expect(before.length).toBeGreaterThan(100);
    // every binding a REPLY handed out is in the journal the dead server left
    const store = new Lease6Store({ stateDir, range: RANGE, leaseSeconds: 600 });
    await store.load();
    const lost = before.filter((x) => store.get(x.duid, x.iaid)?.ip !== x.ip);
    await store.close();
    expect(lost, `${lost.length} of ${before.length} REPLYed leases lost`).toEqual([]);

    // a new server on the same state: a second burst never hands out an address twice
    runner = startRunner({ quiet: true }, 'server2', stateDir);
    await runner.ready;
    const pcap2 = join(tmp, 'burst2.pcap');
    const stop2 = await capture(pcap2);
    const perf2 = await lab.exec(C, 'perfdhcp', ['-6', '-l', 'c0', '-r', '200', '-R', '5000', '-p', '3'], { timeoutMs: 30_000 });
    await stop2();
    const after = repliesIn(pcap2).filter((x) => x.type === Msg6.REPLY && x.valid > 0);
    expect(after.length, perf2.stdout).toBeGreaterThan(100);
    const owner = new Map<string, string>();
    const twice: string[] = [];
    for (const x of [...before, ...after]) {
      const key = `${x.duid}/${x.iaid}`;
      const o = owner.get(x.ip);
      if (o && o !== key) twice.push(`${x.ip}: ${o} and ${key}`);
      owner.set(x.ip, key);
    }
    expect(twice).toEqual([]);
    for (const pcap of [pcap1, pcap2]) {
      const t = tsharkWarnings(pcap);
      expect(t.replies).toBeGreaterThan(100);
      expect(t.expert).toBe('');
    }
    expect(perf2.stdout).toMatch(/drops:/);
  }, 90_000);

  it('stateless mode: dhclient -6 -S (INFORMATION-REQUEST) gets the boot URL and no address', async () => {
    await lab.kill(runner.p, 'SIGTERM');
    runner = startRunner({ dhcp6: { mode: 'stateless', port: 547, range: RANGE, leaseSeconds: 600, preference: 255 }, proxyPort: 4011 }, 'stateless', join(tmp, 'state-sl'));
    await runner.ready;
    const mac = newMac();
    const conf = `timeout 10;\n${BOOT_OPTS}send dhcp6.uc ${lenHex(4)}:${hex('iPXE')};\n`;
    const r = await dhclient6('stateless', conf, { stateless: true, until: /^(BOUND6|INFORM6|RENEW6) /m });
    expect(r.log).toMatch(new RegExp(`url=http://\\[${LAN6}\\]:8080/boot\\.ipxe\\?mac=${mac}`));
    expect(r.log).not.toMatch(/ip6=fd99/);
    expect(runner.events.find((e) => e.type === 'dhcp6.inform' && e.mac === mac)).toBeDefined();
  });
});
