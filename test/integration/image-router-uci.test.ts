/**
 * The uci-defaults script and /usr/libexec/bootrelay-router with the real `uci` (libuci of
 * OpenWrt 25.12, built by scripts/openwrt-tools.sh) on a fresh travel router's
 * /etc/config/{dhcp,firewall,network} (test/fixtures/openwrt-defaults) and the shipped
 * /etc/config/bootrelay. `uci show` before and after: the intended changes and nothing else,
 * nothing rewritten a second time, and everything given back on removal. A `uci` wrapper adds
 * -c/-t so the scripts run unchanged; dnsmasq/firewall init scripts and logger are stand-ins.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, expect, it } from 'vitest';
import { toolBin, toolsMissing } from '../helpers/openwrt-tools';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const root = join(__dirname, '../..');
const routerScript = join(root, 'image/files/usr/libexec/bootrelay-router');
const defaultsScript = join(root, 'image/files/etc/uci-defaults/90-bootrelay');
const skip = toolsMissing('uci');
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-router-uci-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const PKGS = ['bootrelay', 'dhcp', 'firewall', 'network'];
// name, command, why it cannot run here (OpenWrt's shell is busybox ash)
const shells: Array<[string, string[], string | undefined]> = [
  ['dash', ['sh'], undefined],
  ['busybox ash', ['busybox', 'ash'], missingCmds('busybox')],
];
let caseNo = 0;

for (const [name, shell, why] of shells) describeSkipIf(skip ?? why)(`90-bootrelay and bootrelay-router with the real uci under ${name}`, () => {
  let dir: string;
  let conf: string;
  const env = (): NodeJS.ProcessEnv => ({
    PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
    BOOTRELAY_SAVE_DIR: join(dir, 'etc/bootrelay'),
    BOOTRELAY_INITD: join(dir, 'init.d'),
    BOOTRELAY_ROUTER: routerScript,
    BOOTRELAY_LOGGER: join(dir, 'bin/logger'),
  });
  const run = (script: string, ...args: string[]): string => {
    const r = spawnSync(shell[0]!, [...shell.slice(1), script, ...args], { env: env(), encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    return r.stdout;
  };
  /** `uci show` of every package, one line per option */
  const show = (): Set<string> => {
    const out = new Set<string>();
    for (const p of PKGS) {
      const r = spawnSync(join(dir, 'bin/uci'), ['show', p], { encoding: 'utf8', env: env() });
      expect(r.status, r.stderr).toBe(0);
      for (const l of r.stdout.split('\n')) if (l) out.add(l);
    }
    return out;
  };
  const diff = (a: Set<string>, b: Set<string>): { removed: string[]; added: string[] } => ({
    removed: [...a].filter((l) => !b.has(l)).sort(),
    added: [...b].filter((l) => !a.has(l)).sort(),
  });
  /** the config files' bytes and mtimes: what a `uci commit` would change */
  const files = (): Record<string, string> =>
    Object.fromEntries(PKGS.map((p) => [p, `${statSync(join(conf, p)).mtimeMs} ${readFileSync(join(conf, p), 'utf8')}`]));
  const calls = (): string[] => readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter(Boolean);

  beforeEach(() => {
    dir = join(tmp, `case${caseNo++}`);
    conf = join(dir, 'etc/config');
    for (const d of ['bin', 'init.d', 'etc/config', 'tmp/.uci']) mkdirSync(join(dir, d), { recursive: true });
    for (const p of ['dhcp', 'firewall', 'network']) copyFileSync(join(root, 'test/fixtures/openwrt-defaults', p), join(conf, p));
    copyFileSync(join(root, 'image/files/etc/config/bootrelay'), join(conf, 'bootrelay'));
    const stub = (path: string, body: string): void => {
      writeFileSync(path, body);
      chmodSync(path, 0o755);
    };
    stub(join(dir, 'bin/uci'), `#!/bin/sh\nexec '${toolBin('uci')}' -c '${conf}' -t '${join(dir, 'tmp/.uci')}' "$@"\n`);
    stub(join(dir, 'bin/logger'), `#!/bin/sh\necho "logger $*" >> '${join(dir, 'calls.log')}'\n`);
    for (const s of ['dnsmasq', 'firewall']) stub(join(dir, 'init.d', s), `#!/bin/sh\necho "${s} $1" >> '${join(dir, 'calls.log')}'\nexit 0\n`);
    writeFileSync(join(dir, 'calls.log'), '');
  });

  it('first install: adopts the LAN, switches dnsmasq DHCP/TFTP off, adds three lan rules; nothing else', () => {
    const before = show();
    run(defaultsScript);
    const { removed, added } = diff(before, show());
    expect(removed).toEqual([
      "bootrelay.dhcp.dns='192.168.1.1'",
      "bootrelay.dhcp.range_end='192.168.1.199'",
      "bootrelay.dhcp.range_start='192.168.1.100'",
      "bootrelay.dhcp.router='192.168.1.1'",
      "bootrelay.lan.address='192.168.1.1'",
    ]);
    expect(added).toEqual([
      "bootrelay.dhcp.dns='192.168.8.1'",
      "bootrelay.dhcp.range_end='192.168.8.199'",
      "bootrelay.dhcp.range_start='192.168.8.100'",
      "bootrelay.dhcp.router='192.168.8.1'",
      "bootrelay.lan.address='192.168.8.1'",
      "dhcp.@dnsmasq[0].enable_tftp='0'",
      "dhcp.lan.ignore='1'",
      ...['dhcp', 'http', 'tftp'].flatMap((r) => [
        `firewall.bootrelay_${r}.dest_port='${{ dhcp: 67, http: 8080, tftp: 69 }[r]}'`,
        `firewall.bootrelay_${r}.family='ipv4'`,
        `firewall.bootrelay_${r}.name='bootrelay-${r}'`,
        `firewall.bootrelay_${r}.proto='${r === 'http' ? 'tcp' : 'udp'}'`,
        `firewall.bootrelay_${r}.src='lan'`,
        `firewall.bootrelay_${r}.target='ACCEPT'`,
        `firewall.bootrelay_${r}=rule`,
      ]),
    ].sort());
    expect(calls()).toContain('dnsmasq restart');
    expect(calls()).toContain('firewall reload');
    // the uplink stays in wan and nothing is opened from wan
    expect(show()).toContain("firewall.@zone[1].network='wan' 'wan6' 'wwan'");
    // no pending changes left behind
    expect(spawnSync(join(dir, 'bin/uci'), ['changes'], { encoding: 'utf8' }).stdout).toBe('');
  });

  it('is idempotent: a second run (and apply) changes and rewrites nothing', () => {
    run(defaultsScript);
    const state = show();
    const bytes = files();
    writeFileSync(join(dir, 'calls.log'), '');
    run(defaultsScript);
    run(routerScript, 'apply');
    expect(show()).toEqual(state);
    expect(files()).toEqual(bytes);
    expect(calls()).toEqual([]);
  });

  it('on a router already at 192.168.1.1 leaves /etc/config/bootrelay untouched (no commit)', () => {
    const net = join(conf, 'network');
    writeFileSync(net, readFileSync(net, 'utf8').replace("'192.168.8.1'", "'192.168.1.1'"));
    const before = readFileSync(join(conf, 'bootrelay'));
    const mtime = statSync(join(conf, 'bootrelay')).mtimeMs;
    run(defaultsScript);
    expect(readFileSync(join(conf, 'bootrelay'))).toEqual(before);
    expect(statSync(join(conf, 'bootrelay')).mtimeMs).toBe(mtime);
  });

  it('removal (revert) gives dhcp and firewall back exactly as they were', () => {
    const before = show();
    const dhcpFw = (s: Set<string>): string[] => [...s].filter((l) => /^(dhcp|firewall)\./.test(l)).sort();
    run(defaultsScript);
    expect(dhcpFw(show())).not.toEqual(dhcpFw(before));
    run(routerScript, 'revert');
    expect(dhcpFw(show())).toEqual(dhcpFw(before));
    expect(readFileSync(join(conf, 'dhcp'), 'utf8')).toBe(readFileSync(join(root, 'test/fixtures/openwrt-defaults/dhcp'), 'utf8'));
    expect(readFileSync(join(conf, 'firewall'), 'utf8')).toBe(readFileSync(join(root, 'test/fixtures/openwrt-defaults/firewall'), 'utf8'));
  });
});

describeSkipIf(skip)('the shipped /etc/config/bootrelay and its documented copy', () => {
  const uciExport = (file: string): string => {
    const d = mkdtempSync(join(tmp, 'exp-'));
    copyFileSync(file, join(d, 'bootrelay'));
    const r = spawnSync(toolBin('uci'), ['-c', d, 'export', 'bootrelay'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };

  it('is exactly what `uci commit` writes, so a commit loses nothing (no comments to lose)', () => {
    const d = mkdtempSync(join(tmp, 'commit-'));
    const shipped = readFileSync(join(root, 'image/files/etc/config/bootrelay'), 'utf8');
    writeFileSync(join(d, 'bootrelay'), shipped);
    const uci = (...a: string[]): void => {
      const r = spawnSync(toolBin('uci'), ['-c', d, '-t', join(d, '.t'), ...a], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    };
    expect(shipped, 'no comments in /etc/config/bootrelay (uci commit drops them): document options in /usr/share/bootrelay/config.txt').not.toMatch(/^\s*#/m);
    uci('set', 'bootrelay.main.log_level=debug');
    uci('set', 'bootrelay.main.log_level=info');
    uci('commit', 'bootrelay');
    expect(readFileSync(join(d, 'bootrelay'), 'utf8')).toBe(shipped);
  });

  it('/usr/share/bootrelay/config.txt holds the same settings, with the documentation', () => {
    const doc = join(root, 'image/files/usr/share/bootrelay/config.txt');
    expect(uciExport(doc)).toBe(uciExport(join(root, 'image/files/etc/config/bootrelay')));
    expect(readFileSync(doc, 'utf8').split('\n').filter((l) => /^\s*#/.test(l)).length).toBeGreaterThan(30);
  });
});
