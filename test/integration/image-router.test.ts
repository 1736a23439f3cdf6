/**
 * image/files/usr/libexec/bootrelay-router and the uci-defaults script, run for real (dash and
 * busybox ash) against a stand-in `uci` that keeps the router's config in a flat file. The
 * router's dhcp/firewall/network config is the OpenWrt 24.10 default; bootrelay's is the shipped
 * /etc/config/bootrelay read by our own UCI parser. Nothing on this machine is touched: the init
 * scripts (dnsmasq, firewall) and logger are stand-ins that record their calls.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, expect, it } from 'vitest';
import { parseUci } from '../../agent/config/uci';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const root = join(__dirname, '../..');
const routerScript = join(root, 'image/files/usr/libexec/bootrelay-router');
const defaultsScript = join(root, 'image/files/etc/uci-defaults/90-bootrelay');
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-router-'));

/** A stand-in `uci` (get/set/delete/add_list/commit/show) on a flat file ($UCI_STORE); logs argv to $UCI_LOG. */
const FAKE_UCI = readFileSync(join(root, 'test/fixtures/uci/fake-uci.sh'), 'utf8');

type Section = { name: string; type: string; opts: Record<string, string | string[]> };
type Db = Record<string, Section[]>;

function bootrelayPackage(text: string): Section[] {
  const { pkg, issues } = parseUci(text);
  expect(issues).toEqual([]);
  let n = 0;
  return pkg.sections.map((s) => ({ name: s.name ?? `cfg${(n++).toString(16).padStart(6, '0')}`, type: s.type, opts: Object.fromEntries(s.options) }));
}

/** OpenWrt 24.10's default /etc/config/{dhcp,firewall,network} on a travel router (wwan in wan). */
function routerDb(overrides: (db: Db) => void = () => {}): Db {
  const db: Db = {
    dhcp: [
      { name: 'cfg01411c', type: 'dnsmasq', opts: { domainneeded: '1', localise_queries: '1', local: '/lan/', domain: 'lan', authoritative: '1' } },
      { name: 'lan', type: 'dhcp', opts: { interface: 'lan', start: '100', limit: '150', leasetime: '12h', dhcpv4: 'server' } },
      { name: 'wan', type: 'dhcp', opts: { interface: 'wan', ignore: '1' } },
    ],
    firewall: [
      { name: 'cfg01e63d', type: 'defaults', opts: { input: 'REJECT', output: 'ACCEPT', forward: 'REJECT' } },
      { name: 'cfg02dc81', type: 'zone', opts: { name: 'lan', network: ['lan'], input: 'ACCEPT', output: 'ACCEPT', forward: 'ACCEPT' } },
      { name: 'cfg03dc81', type: 'zone', opts: { name: 'wan', network: ['wan', 'wan6', 'wwan'], input: 'REJECT', output: 'ACCEPT', forward: 'REJECT', masq: '1' } },
      { name: 'cfg04ad58', type: 'rule', opts: { name: 'Allow-DHCP-Renew', src: 'wan', proto: 'udp', dest_port: '68', target: 'ACCEPT', family: 'ipv4' } },
    ],
    network: [
      { name: 'lan', type: 'interface', opts: { device: 'br-lan', proto: 'static', ipaddr: '192.168.8.1', netmask: '255.255.255.0' } },
      { name: 'wwan', type: 'interface', opts: { proto: 'dhcp' } },
    ],
    bootrelay: bootrelayPackage(readFileSync(join(root, 'image/files/etc/config/bootrelay'), 'utf8')),
  };
  overrides(db);
  return db;
}

/** Db → the stand-in's flat store (aliases give every section its `@type[i]` name). */
function toStore(db: Db): string {
  const lines: string[] = [];
  for (const [pkg, sections] of Object.entries(db)) {
    const count: Record<string, number> = {};
    for (const s of sections) {
      lines.push(`${pkg}.${s.name}=${s.type}`);
      const i = (count[s.type] = (count[s.type] ?? -1) + 1);
      lines.push(`alias ${pkg}.@${s.type}[${i}] ${pkg}.${s.name}`);
      for (const [k, v] of Object.entries(s.opts)) lines.push(`${pkg}.${s.name}.${k}=${Array.isArray(v) ? `@list ${v.join(' ')}` : v}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function fromStore(text: string): Db {
  const db: Db = {};
  const lines = text.split('\n').filter((l) => l && !l.startsWith('alias '));
  for (const l of lines) {
    const m = /^([^.=]+)\.([^.=]+)=(.*)$/.exec(l);
    if (m) (db[m[1]!] ??= []).push({ name: m[2]!, type: m[3]!, opts: {} });
  }
  for (const l of lines) {
    const m = /^([^.=]+)\.([^.=]+)\.([^.=]+)=(.*)$/.exec(l);
    if (!m) continue;
    const s = db[m[1]!]?.find((x) => x.name === m[2]);
    if (s) s.opts[m[3]!] = m[4]!.startsWith('@list ') ? m[4]!.slice(6).split(' ') : m[4]!;
  }
  return db;
}

// name, command, why it cannot run here (OpenWrt's shell is busybox ash)
const shells: Array<[string, string[], string | undefined]> = [
  ['dash', ['sh'], undefined],
  ['busybox ash', ['busybox', 'ash'], missingCmds('busybox')],
];

let caseNo = 0;

for (const [name, shell, why] of shells) describeSkipIf(why)(`bootrelay-router under ${name}`, () => {
  let dir: string;
  let store: string;
  let log: string;

  const env = (): NodeJS.ProcessEnv => ({
    PATH: `${join(dir, 'bin')}:${process.env.PATH}`,
    UCI_STORE: store,
    UCI_LOG: log,
    BOOTRELAY_SAVE_DIR: join(dir, 'etc/bootrelay'),
    BOOTRELAY_INITD: join(dir, 'init.d'),
    BOOTRELAY_ROUTER: join(dir, 'bin/bootrelay-router'),
    BOOTRELAY_LOGGER: join(dir, 'bin/logger'), // busybox ash would run its own applet otherwise
  });
  const run = (script: string, ...args: string[]) => {
    const r = spawnSync(shell[0]!, [...shell.slice(1), script, ...args], { env: env(), encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    return r;
  };
  const db = (): Db => fromStore(readFileSync(store, 'utf8'));
  const sec = (pkg: string, name: string) => db()[pkg]!.find((s) => s.name === name);
  const calls = (): string[] => readFileSync(log, 'utf8').split('\n').filter((l) => !l.startsWith('uci ') && l);
  const rules = () =>
    db()
      .firewall!.filter((s) => s.name.startsWith('bootrelay_'))
      .map((s) => `${s.opts.name} ${s.opts.src} ${s.opts.proto}/${s.opts.dest_port} ${s.opts.target}`)
      .sort();
  const setBootrelay = (section: string, opt: string, value: string) => {
    const d = db();
    d.bootrelay!.find((s) => s.name === section)!.opts[opt] = value;
    writeFileSync(store, toStore(d));
  };

  beforeEach(() => {
    dir = join(tmp, `case${caseNo++}`);
    mkdirSync(join(dir, 'bin'), { recursive: true });
    mkdirSync(join(dir, 'init.d'), { recursive: true });
    store = join(dir, 'uci.json');
    log = join(dir, 'calls.log');
    writeFileSync(log, '');
    writeFileSync(store, toStore(routerDb()));
    const stub = (path: string, body: string) => {
      writeFileSync(path, body);
      chmodSync(path, 0o755);
    };
    stub(join(dir, 'bin/uci'), FAKE_UCI);
    stub(join(dir, 'bin/logger'), `#!/bin/sh\necho "logger $*" >> "$UCI_LOG"\n`);
    stub(join(dir, 'init.d/dnsmasq'), `#!/bin/sh\necho "dnsmasq $1" >> "$UCI_LOG"\nexit 0\n`);
    stub(join(dir, 'init.d/firewall'), `#!/bin/sh\necho "firewall $1" >> "$UCI_LOG"\nexit 0\n`);
    stub(join(dir, 'bin/bootrelay-router'), readFileSync(routerScript, 'utf8'));
  });

  it('in server mode switches dnsmasq DHCP and TFTP off on lan and opens DHCP, TFTP, HTTP from lan only', () => {
    const r = run(routerScript, 'apply');
    expect(sec('dhcp', 'lan')!.opts.ignore).toBe('1');
    expect(sec('dhcp', 'cfg01411c')!.opts.enable_tftp).toBe('0');
    expect(rules()).toEqual(['bootrelay-dhcp lan udp/67 ACCEPT', 'bootrelay-http lan tcp/8080 ACCEPT', 'bootrelay-tftp lan udp/69 ACCEPT']);
    expect(calls()).toContain('dnsmasq restart');
    expect(calls()).toContain('firewall reload');
    expect(calls().some((c) => c.startsWith('logger -t bootrelay') && c.includes('switched off'))).toBe(true);
    expect(r.stderr).toBe('');
    // the uplink stays in wan, nothing opened from wan
    expect(db().firewall!.find((s) => s.opts.name === 'wan')!.opts.network).toEqual(['wan', 'wan6', 'wwan']);
    expect(db().firewall!.filter((s) => s.type === 'rule' && s.opts.src === 'wan')).toHaveLength(1);
  });

  it('does nothing the second time (no restarts when nothing changed)', () => {
    run(routerScript, 'apply');
    writeFileSync(log, '');
    run(routerScript, 'apply');
    expect(calls()).toEqual([]);
  });

  it('hands DHCP back to dnsmasq in proxy mode and opens 4011', () => {
    run(routerScript, 'apply');
    setBootrelay('dhcp', 'mode', 'proxy');
    run(routerScript, 'apply');
    expect(sec('dhcp', 'lan')!.opts.ignore).toBeUndefined();
    expect(sec('dhcp', 'cfg01411c')!.opts.enable_tftp).toBeUndefined();
    expect(rules()).toContain('bootrelay-proxy lan udp/4011 ACCEPT');
  });

  it('reverts to exactly what was there before, keeping a value the user had set', () => {
    const d = db();
    d.dhcp!.find((s) => s.name === 'lan')!.opts.ignore = '0';
    writeFileSync(store, toStore(d));
    const before = db();
    run(routerScript, 'apply');
    expect(sec('dhcp', 'lan')!.opts.ignore).toBe('1');
    expect(existsSync(join(dir, 'etc/bootrelay/saved-dnsmasq'))).toBe(true);
    run(routerScript, 'revert');
    expect(db()).toEqual(before);
    expect(existsSync(join(dir, 'etc/bootrelay/saved-dnsmasq'))).toBe(false);
  });

  it('treats enabled 0 as a revert', () => {
    run(routerScript, 'apply');
    setBootrelay('main', 'enabled', '0');
    run(routerScript, 'apply');
    expect(sec('dhcp', 'lan')!.opts.ignore).toBeUndefined();
    expect(rules()).toEqual([]);
  });

  it('uci-defaults adopts the router LAN address and then applies', () => {
    run(defaultsScript);
    const o = (name: string) => sec('bootrelay', name)!.opts;
    expect(o('lan')).toMatchObject({ interface: 'br-lan', address: '192.168.8.1', prefix: '24' });
    expect(o('dhcp')).toMatchObject({ range_start: '192.168.8.100', range_end: '192.168.8.199', router: '192.168.8.1', dns: ['192.168.8.1'] });
    expect(sec('dhcp', 'lan')!.opts.ignore).toBe('1');
  });

  it('prints its state', () => {
    run(routerScript, 'apply');
    const out = run(routerScript, 'status').stdout;
    expect(out).toContain('dnsmasq dhcp.lan.ignore=1');
    expect(out).toContain('firewall bootrelay_http: lan tcp/8080 ACCEPT');
    expect(out).toContain('uplink wwan is in firewall zone wan');
  });
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});
