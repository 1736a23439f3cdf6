/**
 * bootrelay-router and IPv6: with dhcp6 in server/stateless mode, odhcpd keeps sending RAs
 * (M flag / O flag) and its own DHCPv6 on lan goes off; all of it handed back on revert.
 * Run for real under dash (and busybox ash) against the stand-in `uci` (flat store).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { hasCmd } from '../helpers/netns';

const root = join(__dirname, '../..');
const routerScript = join(root, 'image/files/usr/libexec/bootrelay-router');
const FAKE_UCI = readFileSync(join(root, 'test/fixtures/uci/fake-uci.sh'), 'utf8');
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-router6-'));

/** OpenWrt 24.10's lan dhcp section (odhcpd: ra server, dhcpv6 server) and a bootrelay config. */
function store(mode6: string): string {
  return (
    [
      'dhcp.cfg01411c=dnsmasq',
      'alias dhcp.@dnsmasq[0] dhcp.cfg01411c',
      'dhcp.lan=dhcp',
      'alias dhcp.@dhcp[0] dhcp.lan',
      'dhcp.lan.interface=lan',
      'dhcp.lan.dhcpv4=server',
      'dhcp.lan.dhcpv6=server',
      'dhcp.lan.ra=server',
      'dhcp.lan.ra_flags=@list managed-config other-config',
      'firewall.cfg02dc81=zone',
      'firewall.cfg02dc81.name=lan',
      'bootrelay.main=agent',
      'alias bootrelay.@agent[0] bootrelay.main',
      'bootrelay.dhcp=dhcp',
      'alias bootrelay.@dhcp[0] bootrelay.dhcp',
      'bootrelay.dhcp.mode=server',
      'bootrelay.dhcp6=dhcp6',
      'alias bootrelay.@dhcp6[0] bootrelay.dhcp6',
      `bootrelay.dhcp6.mode=${mode6}`,
    ].join('\n') + '\n'
  );
}

const shells: Array<[string, string[]]> = [['dash', ['sh']]];
if (hasCmd('busybox')) shells.push(['busybox ash', ['busybox', 'ash']]);
let n = 0;

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.each(shells)('bootrelay-router with DHCPv6 under %s', (_name, shell) => {
  let dir: string;
  const file = () => join(dir, 'uci.store');
  const log = () => join(dir, 'calls.log');
  const run = (...args: string[]) => {
    const env = { PATH: `${join(dir, 'bin')}:${process.env.PATH}`, UCI_STORE: file(), UCI_LOG: log(), BOOTRELAY_SAVE_DIR: join(dir, 'save'), BOOTRELAY_INITD: join(dir, 'init.d'), BOOTRELAY_LOGGER: join(dir, 'bin/logger') };
    const r = spawnSync(shell[0]!, [...shell.slice(1), routerScript, ...args], { env, encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };
  const get = (key: string) => readFileSync(file(), 'utf8').split('\n').find((l) => l.startsWith(`${key}=`))?.slice(key.length + 1);
  const calls = () => readFileSync(log(), 'utf8').split('\n').filter((l) => l && !l.startsWith('uci '));
  const setMode6 = (m: string) => writeFileSync(file(), readFileSync(file(), 'utf8').replace(/^bootrelay\.dhcp6\.mode=.*$/m, `bootrelay.dhcp6.mode=${m}`));

  beforeEach(() => {
    dir = join(tmp, `c${n++}`);
    mkdirSync(join(dir, 'bin'), { recursive: true });
    mkdirSync(join(dir, 'init.d'), { recursive: true });
    writeFileSync(log(), '');
    const stub = (p: string, body: string) => {
      writeFileSync(p, body);
      chmodSync(p, 0o755);
    };
    stub(join(dir, 'bin/uci'), FAKE_UCI);
    stub(join(dir, 'bin/logger'), `#!/bin/sh\necho "logger $*" >> "$UCI_LOG"\n`);
    for (const s of ['dnsmasq', 'firewall', 'odhcpd']) stub(join(dir, `init.d/${s}`), `#!/bin/sh\necho "${s} $1" >> "$UCI_LOG"\nexit 0\n`);
  });

  it('server: odhcpd DHCPv6 off on lan, RAs with M and O, 547 open over IPv6; revert restores', () => {
    writeFileSync(file(), store('server'));
    run('apply');
    expect(get('dhcp.lan.dhcpv6')).toBe('disabled');
    expect(get('dhcp.lan.ra')).toBe('server');
    expect(get('dhcp.lan.ra_flags')).toBe('@list managed-config other-config');
    expect(get('firewall.bootrelay_dhcp6.dest_port')).toBe('547');
    expect(get('firewall.bootrelay_dhcp6.family')).toBe('ipv6');
    expect(get('firewall.bootrelay_tftp.family')).toBe('any');
    expect(calls()).toContain('odhcpd restart');
    expect(calls().some((c) => c.includes('odhcpd DHCPv6 on lan switched off'))).toBe(true);
    expect(run('status')).toMatch(/odhcpd dhcp\.lan\.dhcpv6=disabled ra=server ra_flags=managed-config other-config/);
    // nothing changes the second time
    writeFileSync(log(), '');
    run('apply');
    expect(calls()).toEqual([]);
    run('revert');
    expect(get('dhcp.lan.dhcpv6')).toBe('server');
    expect(get('dhcp.lan.ra_flags')).toBe('@list managed-config other-config');
    expect(get('firewall.bootrelay_dhcp6')).toBeUndefined();
  });

  it('stateless: O flag only, 4011 over IPv6; mode off hands DHCPv6 back to odhcpd', () => {
    writeFileSync(file(), store('stateless'));
    run('apply');
    expect(get('dhcp.lan.dhcpv6')).toBe('disabled');
    expect(get('dhcp.lan.ra_flags')).toBe('@list other-config');
    expect(get('firewall.bootrelay_proxy6.dest_port')).toBe('4011');
    setMode6('off');
    writeFileSync(log(), '');
    run('apply');
    expect(get('dhcp.lan.dhcpv6')).toBe('server');
    expect(get('dhcp.lan.ra_flags')).toBe('@list managed-config other-config');
    expect(get('firewall.bootrelay_proxy6')).toBeUndefined();
    expect(get('firewall.bootrelay_tftp.family')).toBe('ipv4');
    expect(calls()).toContain('odhcpd restart');
  });

  it('without a dhcp6 section odhcpd is not touched', () => {
    writeFileSync(file(), store('off').replace(/^bootrelay\.dhcp6.*\n|^alias bootrelay\.@dhcp6.*\n/gm, ''));
    run('apply');
    expect(get('dhcp.lan.dhcpv6')).toBe('server');
    expect(calls()).not.toContain('odhcpd restart');
  });
});
