/**
 * The init script under OpenWrt's real service manager: procd 25.12 (2881a59f) with ubusd and
 * ubus, built from ../shared/openwrt by scripts/openwrt-tools.sh (procd needs a strlcpy and a
 * non-fatal -Wformat-overflow on glibc). bootrelay is installed by opkg into an offline root,
 * which test/fixtures/procd/scenario.sh overlays on /etc and /usr inside new PID, mount and
 * network namespaces, with busybox ash as /bin/sh (as on OpenWrt) and the agent itself (real
 * node, loopback only). Checked: `/etc/init.d/bootrelay start` registers the instance with procd,
 * `service bootrelay status`, a respawn after kill -9, the reload trigger (uci commit + the
 * config.change event → reload → SIGHUP, reloaded in place; an invalid config refused with the
 * running agent kept), stop. Logs go to busybox syslogd on the namespace's own /dev/log. One
 * stand-in: jsonfilter (a Python subset; openwrt/jsonpath is not in ../shared/openwrt).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSkipIf, missingCmds } from '../helpers/skip';
import { buildPackages, openwrtFiles, offlineRoot, procdBin, toolBin, toolsDir, toolsMissing } from '../helpers/openwrt-tools';

const root = join(__dirname, '../..');
const fixtures = join(root, 'test/fixtures/procd');
const skip =
  toolsMissing('opkg', 'uci', 'apk') ||
  (!existsSync(procdBin.procd) ? `procd not built in ${procdBin.procd} (scripts/openwrt-tools.sh)` : '') ||
  (process.getuid?.() !== 0 ? 'needs root (namespaces, overlay mounts)' : '') ||
  (missingCmds('unshare', 'busybox', 'ip', 'node') ?? '') ||
  (!existsSync('/usr/bin/python3') ? 'no /usr/bin/python3 for the jsonfilter stand-in' : '');
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-procd-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a config the agent runs with on loopback alone (no DHCP, high ports, state on /run) */
const LOOPBACK_CONFIG = `
config agent 'main'
	option state_dir '/run/bootrelay/state'
config lan 'lan'
	option interface 'lo'
	option address '127.0.0.1'
	option prefix '8'
config dhcp 'dhcp'
	option mode 'off'
config tftp 'tftp'
	option port '6969'
config http 'http'
	option port '8080'
config upstream 'upstream'
	option url 'http://127.0.0.1:9/boot/'
config cache 'cache'
	option dir '/run/bootrelay/cache'
config boot 'boot'
	option default_profile 'netboot'
config loader
	option arch 'bios'
	list path 'ipxe/undionly.kpxe'
config profile 'netboot'
	option kernel 'debian/linux'
config mqtt 'mqtt'
	option enabled '0'
config control 'control'
	option socket '/run/bootrelay.sock'
`;

let out = '';
const at = (key: string): string | undefined => new RegExp(`^@@ .*\\b${key}=(\\S*)`, 'm').exec(out)?.[1];

describeSkipIf(skip)('the init script under procd', () => {
  beforeAll(() => {
    const R = join(tmp, 'root');
    const { ipk } = buildPackages(join(tmp, 'pkg'), 1);
    offlineRoot(R);
    mkdirSync(join(R, 'usr/lib/opkg/info'), { recursive: true });
    for (const d of ['libc', 'node']) {
      writeFileSync(join(R, `usr/lib/opkg/info/${d}.list`), '');
      writeFileSync(join(R, 'usr/lib/opkg/status'), `Package: ${d}\nVersion: 0-stub\nStatus: install user installed\nArchitecture: x86_64\n\n`, { flag: 'a' });
    }
    const opkg = spawnSync(
      toolBin('opkg'),
      ['--offline-root', R, '--force-postinstall', '--add-dest', 'root:/', '--add-arch', 'all:100', '--add-arch', 'x86_64:200', 'install', ipk],
      { env: { ...process.env, IPKG_NO_SCRIPT: '1', IPKG_INSTROOT: R, TMPDIR: join(R, 'tmp') }, encoding: 'utf8' },
    );
    expect(opkg.status, opkg.stderr).toBe(0);
    const post = spawnSync('bash', ['./usr/lib/opkg/info/bootrelay.postinst'], { cwd: R, env: { ...process.env, IPKG_INSTROOT: R }, encoding: 'utf8' });
    expect(post.status, post.stderr).toBe(0);
    rmSync(join(R, 'etc/uci-defaults'), { recursive: true, force: true });
    writeFileSync(join(R, 'etc/config/bootrelay'), LOOPBACK_CONFIG);
    for (const f of ['dhcp', 'firewall', 'network']) copyFileSync(join(root, 'test/fixtures/openwrt-defaults', f), join(R, 'etc/config', f));
    // procd, ubus and friends where OpenWrt has them; busybox ash as /bin/sh (rc.common needs it)
    for (const d of ['usr/bin', 'usr/sbin', 'usr/lib']) mkdirSync(join(R, d), { recursive: true });
    copyFileSync(procdBin.procd, join(R, 'usr/sbin/procd'));
    copyFileSync(procdBin.ubusd, join(R, 'usr/sbin/ubusd'));
    copyFileSync(procdBin.ubus, join(R, 'usr/bin/ubus'));
    copyFileSync(procdBin.setlbf, join(R, 'usr/lib/libsetlbf.so'));
    // their libraries in /usr/lib too: the tools dir may be under /tmp, which is a fresh tmpfs inside
    const lib = join(toolsDir, 'lib');
    for (const f of readdirSync(lib).filter((n) => n.endsWith('.so'))) copyFileSync(join(lib, f), join(R, 'usr/lib', f));
    copyFileSync(toolBin('uci'), join(R, 'usr/bin/uci'));
    copyFileSync(join(toolBin('uci'), '../jshn'), join(R, 'usr/bin/jshn'));
    copyFileSync(join(openwrtFiles(), 'package/system/procd/files/service'), join(R, 'usr/sbin/service'));
    copyFileSync(join(fixtures, 'jsonfilter'), join(R, 'usr/bin/jsonfilter'));
    for (const f of ['usr/sbin/procd', 'usr/sbin/ubusd', 'usr/bin/ubus', 'usr/bin/uci', 'usr/bin/jshn', 'usr/sbin/service', 'usr/bin/jsonfilter']) {
      chmodSync(join(R, f), 0o755);
    }
    symlinkSync('/usr/bin/busybox', join(R, 'usr/bin/sh'));
    // a merged-/usr host (/lib -> usr/lib): the root's lib/ goes under usr/lib/
    if (lstatSync('/lib').isSymbolicLink()) {
      cpSync(join(R, 'lib'), join(R, 'usr/lib'), { recursive: true });
      rmSync(join(R, 'lib'), { recursive: true });
    }
    expect(readdirSync(join(R, 'etc/rc.d')).sort()).toEqual(['K10bootrelay', 'S95bootrelay']);
    const r = spawnSync('unshare', ['--mount', '--pid', '--net', '--fork', '--mount-proc', join(fixtures, 'scenario.sh'), R, join(tmp, 'work')], {
      encoding: 'utf8',
      timeout: 150_000,
    });
    out = `${r.stdout}${r.stderr}`;
    expect(r.status, out).toBe(0);
  }, 200_000);

  it('starts the agent as a procd instance; service status says running', () => {
    expect(at('enabled'), out).toBe('yes');
    expect(at('start_rc'), out).toBe('0');
    expect(at('pid1'), out).toMatch(/^\d+$/);
    expect(at('listening1'), out).toBe('yes');
    expect(at('status'), out).toBe('running');
    expect(at('status_rc'), out).toBe('0');
  });

  it('respawns the agent after kill -9', () => {
    expect(at('pid2'), out).toMatch(/^\d+$/);
    expect(at('pid2')).not.toBe(at('pid1'));
    expect(at('listening2'), out).toBe('yes');
  });

  it('reloads in place on uci commit + config.change (SIGHUP, same pid)', () => {
    expect(at('event_rc'), out).toBe('0');
    expect(at('hup'), out).toBe('yes');
    expect(at('reloaded'), out).toBe('yes');
    expect(at('pid3')).toBe(at('pid2'));
  });

  it('refuses an invalid config on reload, in one logged line, and keeps the agent running', () => {
    expect(at('refused'), out).toBe('1');
    expect(out).toContain(
      'daemon.err bootrelay: not reloaded, still running the previous config: /etc/config/bootrelay is invalid: bootrelay.http.port: expected an integer, got "eighty"\n',
    );
    expect(at('pid4')).toBe(at('pid2'));
  });

  it('stops it: the agent exits cleanly and procd forgets the instance', () => {
    expect(at('stop_rc'), out).toBe('0');
    expect(at('stopped_status'), out).toBe('inactive');
    expect(at('stopped'), out).toBe('yes');
  });
});
