/**
 * The bundled agent as a dual-stack boot server on a namespace LAN (10.99.60.0/24 and
 * fd99:61::/64): busybox udhcpc and ISC dhclient -6 both play the same UEFI PXE client
 * (one MAC), tftp-hpa -6 and curl -6 fetch what they are told over IPv6. Checks the
 * wiring: one client state with both addresses, TFTP over IPv6 tracked by MAC, a script
 * asked for over IPv6 naming IPv6 URLs, DHCPv6 garbage counted and the agent alive.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { bundleAgent } from '../helpers/bundle';
import { relayctl, startAgent } from '../helpers/agent-proc';
import { NetLab, skipReason, waitFor } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

const reason = skipReason('udhcpc', 'dhclient', 'tftp', 'curl', 'python3');
const MAC = '52:54:00:99:60:01';
const RELAY = '10.99.60.1';
const RELAY6 = 'fd99:61::1';

describeSkipIf(reason)('bootrelay dual stack on a namespace LAN (udhcpc + dhclient -6 as one UEFI PXE client)', () => {
  const work = mkdtempSync(join(tmpdir(), 'br6ag-'));
  const AGENT = join(work, 'bootrelay.js');
  const CTL = join(work, 'relayctl.js');
  const sock = join(work, 'ctl.sock');
  const lab = new NetLab(`br6a${process.pid % 10000}`);
  let nsR = '';
  let nsC = '';
  const lines: Array<Record<string, unknown>> = [];
  let agent: ReturnType<NetLab['spawn']>;

  const ctl = relayctl(CTL, sock);
  const client = () => (JSON.parse(ctl('clients', '--json').stdout) as Array<Record<string, any>>).find((c) => c.mac === MAC);
  const events = () => lines.filter((l) => l.mac === MAC && typeof l.type === 'string').map((l) => `${l.type}${l.file ? ' ' + l.file : ''}`);

  beforeAll(async () => {
    await bundleAgent(work);
    const www = join(work, 'www');
    mkdirSync(join(www, 'ipxe'), { recursive: true });
    mkdirSync(join(www, 'debian'), { recursive: true });
    writeFileSync(join(www, 'ipxe/snponly.efi'), Buffer.alloc(90_000, 0x66));
    writeFileSync(join(www, 'debian/vmlinuz'), Buffer.alloc(100_000, 1));
    nsR = lab.addNs('relay');
    nsC = lab.addNs('pc');
    for (const ns of [nsR, nsC]) spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0', 'net.ipv6.conf.default.accept_dad=0']);
    lab.veth(nsR, 'lan', nsC, 'eth0');
    lab.ip(nsC, 'link', 'set', 'eth0', 'down');
    lab.ip(nsC, 'link', 'set', 'eth0', 'address', MAC);
    spawnSync('ip', ['netns', 'exec', nsC, 'sysctl', '-qw', 'net.ipv6.conf.eth0.disable_ipv6=1']);
    spawnSync('ip', ['netns', 'exec', nsC, 'sysctl', '-qw', 'net.ipv6.conf.eth0.disable_ipv6=0']);
    lab.ip(nsC, 'link', 'set', 'eth0', 'up');
    lab.addr(nsR, 'lan', `${RELAY}/24`);
    lab.ip(nsR, 'addr', 'add', `${RELAY6}/64`, 'dev', 'lan', 'nodad');
    lab.spawn(nsR, 'python3', ['-m', 'http.server', '8080', '--bind', '127.0.0.1', '--directory', www]);
    await waitFor(async () => (await lab.exec(nsR, 'curl', ['-sf', '-o', '/dev/null', 'http://127.0.0.1:8080/debian/vmlinuz'])).code === 0, 10_000, 'upstream');
    await waitFor(() => /inet6 fe80::\S+ scope link\s/.test(spawnSync('ip', ['-n', nsC, '-6', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout), 10_000, 'client link-local');

    const cfg = join(work, 'relay.json');
    writeFileSync(
      cfg,
      JSON.stringify({
        agentId: 'ns-relay6',
        stateDir: join(work, 'state'),
        lan: { interface: 'lan', address: RELAY, prefix: 24, address6: RELAY6, prefix6: 64 },
        dhcp: { mode: 'server', range: ['10.99.60.100', '10.99.60.110'], leaseSeconds: 600 },
        dhcp6: { mode: 'server', range: ['fd99:61::1000', 'fd99:61::1fff'], leaseSeconds: 600 },
        upstream: { url: 'http://127.0.0.1:8080/' },
        cache: { dir: join(work, 'cache') },
        boot: { loaders: { 'uefi-x64': 'ipxe/snponly.efi' }, profiles: { debian: { kernel: 'debian/vmlinuz', cmdline: 'console=ttyS0' } } },
        control: { socket: sock },
      }),
    );
    agent = await startAgent(lab, nsR, AGENT, cfg, lines);
  }, 90_000);

  afterAll(async () => {
    await lab.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('one client, both addresses: DHCPv4 then DHCPv6 from the same UEFI PXE client', async () => {
    const script = join(work, 'udhcpc.sh');
    writeFileSync(script, '#!/bin/sh\necho "$1 ip=$ip boot_file=$boot_file"\n');
    chmodSync(script, 0o755);
    const r4 = await lab.exec(nsC, 'udhcpc', ['-i', 'eth0', '-f', '-q', '-n', '-t', '4', '-T', '1', '-s', script, '-V', 'PXEClient:Arch:00007:UNDI:003016', '-x', '0x5d:0007'], { timeoutMs: 20_000 });
    const ip = /bound ip=(\S+)/.exec(r4.stdout)?.[1];
    expect(ip, r4.stdout + r4.stderr).toMatch(/^10\.99\.60\.1\d\d$/);

    // dhclient -6 as the same firmware: vendor class 16 (enterprise 343) and arch 61 = 7
    const vc = 'PXEClient:Arch:00007:UNDI:003016';
    const hex = (s: string) => [...Buffer.from(s, 'latin1')].map((b) => b.toString(16).padStart(2, '0')).join(':');
    const conf = join(work, 'dh6.conf');
    writeFileSync(conf, `timeout 10;\noption dhcp6.bootfile-url code 59 = string;\noption dhcp6.vc code 16 = string;\noption dhcp6.arch code 61 = unsigned integer 16;\nalso request dhcp6.bootfile-url;\nsend dhcp6.vc 00:00:01:57:00:${vc.length.toString(16)}:${hex(vc)};\nsend dhcp6.arch 7;\n`);
    const out = join(work, 'dh6.out');
    const sh = join(work, 'dh6.sh');
    writeFileSync(sh, `#!/bin/sh\necho "$reason ip6=$new_ip6_address url=$new_dhcp6_bootfile_url" >> ${out}\n[ "$reason" = BOUND6 ] && ip -6 addr add "$new_ip6_address/128" dev "$interface" nodad\nexit 0\n`);
    chmodSync(sh, 0o755);
    const p = lab.spawn(nsC, 'dhclient', ['-6', '-d', '-v', '-sf', sh, '-lf', join(work, 'dh6.leases'), '-pf', join(work, 'dh6.pid'), '-cf', conf, 'eth0']);
    const read = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
    try {
      await waitFor(() => /^BOUND6 /m.test(read()), 20_000, 'dhclient -6 bound');
    } finally {
      await lab.kill(p, 'SIGKILL');
    }
    const m = /^BOUND6 ip6=(\S+) url=(\S+)/m.exec(read())!;
    expect(m[2]).toBe(`tftp://[${RELAY6}]/ipxe/snponly.efi`);
    const ip6 = m[1]!;
    await waitFor(() => client()?.ip6 === ip6, 5000, 'ip6 in the client state');
    expect(client()).toMatchObject({ mac: MAC, ip, ip6, firmware: 'uefi', arch: 'uefi-x64', phase: 'bound' });
    expect(ctl('clients').stdout).toContain(`${ip} ${ip6}`);
    const leases = JSON.parse(ctl('leases', '--json').stdout) as Array<{ mac: string; ip: string; active: boolean }>;
    expect(leases.filter((l) => l.mac === MAC).map((l) => l.ip).sort()).toEqual([ip, ip6].sort());
  });

  it('TFTP over IPv6 from the leased address is tracked by MAC; the script over IPv6 names IPv6 URLs', async () => {
    // the on-link prefix: what the router's RA would tell the client
    lab.ip(nsC, '-6', 'route', 'add', 'fd99:61::/64', 'dev', 'eth0');
    const t = await lab.exec(nsC, 'tftp', ['-6', RELAY6, '-m', 'binary', '-c', 'get', 'ipxe/snponly.efi', join(work, 'loader')], { timeoutMs: 20_000 });
    expect(t.code, t.stderr + t.stdout).toBe(0);
    expect(readFileSync(join(work, 'loader')).length, t.stdout + t.stderr).toBe(90_000);
    await waitFor(() => events().includes('tftp.done ipxe/snponly.efi'), 5000, `tftp.done with the MAC: ${JSON.stringify(lines.filter((l) => String(l.type).startsWith('tftp')))}`);
    expect(client()).toMatchObject({ phase: 'loader', file: 'ipxe/snponly.efi' });
    const s = await lab.exec(nsC, 'curl', ['-6', '-gsf', `http://[${RELAY6}]/boot.ipxe?mac=${MAC}`], { timeoutMs: 20_000 });
    expect(s.stdout).toContain(`http://[${RELAY6}]/files/debian/vmlinuz`);
    expect(s.stdout).not.toContain(RELAY);
  });

  it('counts DHCPv6 garbage, drops it, and stays up', async () => {
    const js = `const s=require('dgram').createSocket('udp6');s.bind(0,()=>{const g=[Buffer.alloc(0),Buffer.from([1]),Buffer.from('0c0000','hex'),Buffer.alloc(300,0xee)];let n=0;for(const b of g)s.send(b,547,'ff02::1:2%eth0',()=>{if(++n===g.length)s.close()})});`;
    expect((await lab.exec(nsC, process.execPath, ['-e', js], { timeoutMs: 10_000 })).code).toBe(0);
    await waitFor(async () => {
      const r = await lab.exec(nsR, 'curl', ['-sf', `http://${RELAY}/metrics`]);
      const total = [...r.stdout.matchAll(/^bootrelay_dhcp6_dropped_total\{[^}]*\} (\d+)/gm)].reduce((a, x) => a + Number(x[1]), 0);
      return total >= 4;
    }, 5000, 'dhcp6 drops counted');
    expect(agent.exitCode).toBeNull();
    expect(ctl('status').code).toBe(0);
  });
});
