/**
 * The .apk `make image` builds for OpenWrt 25.12, under 25.12's own apk-tools 3.0.2 (built by
 * scripts/openwrt-tools.sh), into an offline root: installed as 25.12's image build does it
 * (package/Makefile + include/rootfs.mk: `apk add --initdb --no-scripts`, then each
 * post-install from lib/apk/db/scripts.tar(.gz) run by bash with IPKG_INSTROOT); upgraded to
 * release 2 and, after the user edited /etc/config/bootrelay with the real uci, to release 3
 * (apk runs post-upgrade itself); then `apk del` (pre-deinstall). No error or warning lines.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildPackages, offlineRoot, problemLines, toolBin, toolsMissing } from '../helpers/openwrt-tools';
import { ipkDataFiles, runSync, sha256, uciOn, type Out } from '../helpers/pkg-root';
import { describeSkipIf } from '../helpers/skip';

const root = join(__dirname, '../..');
const skip = toolsMissing('apk', 'uci');
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-apk-'));
const R = join(tmp, 'root');
const stubs = join(tmp, 'stubs');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let r1: ReturnType<typeof buildPackages>;
let r2: ReturnType<typeof buildPackages>;
let r3: ReturnType<typeof buildPackages>;

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = tmp): Out => runSync(cmd, args, env, cwd);

/** apk on the offline root, as 25.12's package/Makefile calls it */
const apk = (...args: string[]): Out =>
  run(
    toolBin('apk'),
    ['--root', R, '--no-logfile', '--preserve-env', '--allow-untrusted', '--no-network', '--force-no-chroot', ...args],
    { IPKG_INSTROOT: R },
  );
const uci = uciOn(R);
describeSkipIf(skip)("the .apk under OpenWrt 25.12's apk", () => {
  beforeAll(() => {
    r1 = buildPackages(join(tmp, 'r1'), 1);
    r2 = buildPackages(join(tmp, 'r2'), 2);
    r3 = buildPackages(join(tmp, 'r3'), 3);
    offlineRoot(R);
    // empty stand-ins for the dependencies
    mkdirSync(join(stubs, 'empty'), { recursive: true });
    for (const d of ['libc', 'node']) {
      const r = run(toolBin('apk'), ['mkpkg', '--info', `name:${d}`, '--info', 'version:0-r0', '--info', 'arch:x86_64',
        '--info', 'description:stub', '--files', join(stubs, 'empty'), '--output', join(stubs, `${d}.apk`)]);
      expect(r.status, r.out).toBe(0);
    }
  }, 120_000);

  it('is built the way package-pack.mk builds one: noarch, depends libc node, the three scripts', () => {
    expect(existsSync(r1.apk)).toBe(true);
    const dump = run(toolBin('apk'), ['adbdump', r1.apk]).out;
    expect(dump).toContain('  name: bootrelay\n');
    expect(dump).toContain(`  version: ${r1.version}\n`);
    expect(dump).toContain('  arch: noarch\n');
    expect(dump).toContain('  license: MIT\n');
    expect(dump).toMatch(/ {2}depends: # 2 items\n {4}- libc\n {4}- node\n/);
    const scripts = dump.slice(dump.indexOf('\nscripts:'));
    for (const s of ['post-install', 'post-upgrade', 'pre-deinstall']) expect(scripts).toContain(`  ${s}: |`);
    expect(scripts).toMatch(/post-install: \|\n {4}#!\/bin\/sh\n {4}\[ "\$\{IPKG_NO_SCRIPT\}" = "1" \] && exit 0\n[\s\S]*? {4}export pkgname="bootrelay"\n {4}add_group_and_user\n {4}default_postinst\n/);
    expect(scripts).toMatch(/post-upgrade: \|\n {4}#!\/bin\/sh\n {4}export PKG_UPGRADE=1\n/);
    expect(scripts).toMatch(/pre-deinstall: \|\n[\s\S]*? {4}default_prerm\n[\s\S]*\/usr\/libexec\/bootrelay-router revert/);
    // the same bytes from the same inputs
    const again = buildPackages(join(tmp, 'again'), 1);
    expect(readFileSync(again.apk)).toEqual(readFileSync(r1.apk));
  });

  it('installs release 1 as an image build does: add --initdb --no-scripts, then post-install by bash', () => {
    const add = apk('add', '--no-cache', '--initdb', '--no-scripts', '--arch', 'x86_64', '--repositories-file', '/dev/null',
      join(stubs, 'libc.apk'), join(stubs, 'node.apk'), r1.apk);
    expect(add.status, add.out).toBe(0);
    expect(problemLines(add.out)).toEqual([]);
    expect(add.out).toContain(`Installing bootrelay (${r1.version})`);
    const db = join(R, 'lib/apk/db');
    const st = readdirSync(db).find((f) => /^scripts\.tar(\.gz)?$/.test(f))!;
    expect(st).toBeDefined();
    const x = run('tar', ['-C', db, '-xf', st, '--wildcards', '*.post-install'], {}, db);
    expect(x.status, x.out).toBe(0);
    const posts = readdirSync(db).filter((f) => f.endsWith('.post-install'));
    // <name>-<version>.<identity hash>.post-install
    expect(posts).toHaveLength(1);
    expect(posts[0]).toMatch(new RegExp(`^bootrelay-${r1.version}\\.X[0-9a-f]+\\.post-install$`));
    const r = run('bash', [join(db, posts[0]!)], { IPKG_INSTROOT: R }, R);
    rmSync(join(db, posts[0]!));
    expect(r.status, r.out).toBe(0);
    expect(r.out).toBe('');
    expect(readlinkSync(join(R, 'etc/rc.d/S95bootrelay'))).toBe('../init.d/bootrelay');
    expect(readlinkSync(join(R, 'etc/rc.d/K10bootrelay'))).toBe('../init.d/bootrelay');
    expect(existsSync(join(R, 'etc/uci-defaults/90-bootrelay'))).toBe(true);
  });

  it('lists the files and registers the conffile with its sha256', () => {
    const meta = ['/lib/apk/packages/bootrelay.conffiles', '/lib/apk/packages/bootrelay.conffiles_static', '/lib/apk/packages/bootrelay.list'];
    const files = [...ipkDataFiles(r1.ipk, join(tmp, 'ipk')), ...meta].sort();
    const info = apk('info', '-L', 'bootrelay');
    expect(info.status, info.out).toBe(0);
    expect(info.out.split('\n').filter((l) => /^[a-z]/.test(l) && !l.includes(' ')).map((l) => `/${l}`).sort()).toEqual(files);
    expect(readFileSync(join(R, 'lib/apk/packages/bootrelay.conffiles'), 'utf8')).toBe('/etc/config/bootrelay\n');
    expect(readFileSync(join(R, 'lib/apk/packages/bootrelay.conffiles_static'), 'utf8')).toBe(
      `/etc/config/bootrelay ${sha256(join(R, 'etc/config/bootrelay'))}\n`,
    );
    expect(readFileSync(join(R, 'lib/apk/packages/bootrelay.list'), 'utf8').split('\n').filter(Boolean).sort()).toEqual(
      files.filter((f) => !f.includes('conffiles')),
    );
  });

  it('upgrades to release 2 (apk runs post-upgrade) with no error or warning', () => {
    const r = apk('add', '--no-cache', '--repositories-file', '/dev/null', r2.apk);
    expect(r.status, r.out).toBe(0);
    expect(problemLines(r.out)).toEqual([]);
    expect(r.out).toContain(`Upgrading bootrelay (${r1.version} -> ${r2.version})`);
    expect(r.out).toContain(`Executing bootrelay-${r2.version}.post-upgrade`);
    expect(readlinkSync(join(R, 'etc/rc.d/S95bootrelay'))).toBe('../init.d/bootrelay');
  });

  it("upgrades to release 3 keeping the user's uci edit; the new default goes beside it as .apk-new", () => {
    expect(uci('set', 'bootrelay.upstream.url=http://10.99.1.2/mine/').status).toBe(0);
    expect(uci('commit', 'bootrelay').status).toBe(0);
    const file = join(R, 'etc/config/bootrelay');
    const edited = readFileSync(file, 'utf8');
    const r = apk('add', '--no-cache', '--repositories-file', '/dev/null', r3.apk);
    expect(r.status, r.out).toBe(0);
    expect(problemLines(r.out)).toEqual([]);
    expect(r.out).toContain(`Upgrading bootrelay (${r2.version} -> ${r3.version})`);
    expect(r.out).toContain('Installing file to etc/config/bootrelay.apk-new');
    expect(readFileSync(file, 'utf8')).toBe(edited);
    expect(readFileSync(`${file}.apk-new`, 'utf8')).toBe(readFileSync(join(root, 'image/files/etc/config/bootrelay'), 'utf8'));
    expect(uci('get', 'bootrelay.upstream.url').out).toBe('http://10.99.1.2/mine/\n');
    expect(apk('info', '-e', 'bootrelay').status).toBe(0);
  });

  it('removes it with apk del: pre-deinstall drops the rc.d links; only the edited config stays', () => {
    const r = apk('del', 'bootrelay');
    expect(r.status, r.out).toBe(0);
    expect(problemLines(r.out)).toEqual([]);
    expect(r.out).toContain(`Executing bootrelay-${r3.version}.pre-deinstall`);
    expect(existsSync(join(R, 'etc/rc.d/S95bootrelay'))).toBe(false);
    expect(existsSync(join(R, 'etc/rc.d/K10bootrelay'))).toBe(false);
    for (const f of ipkDataFiles(r1.ipk, join(tmp, 'ipk')).filter((x) => x !== '/etc/config/bootrelay')) expect(existsSync(join(R, f)), f).toBe(false);
    expect(existsSync(join(R, 'lib/apk/packages/bootrelay.list'))).toBe(false);
    expect(uci('get', 'bootrelay.upstream.url').out).toBe('http://10.99.1.2/mine/\n');
    expect(apk('info', '-e', 'bootrelay').status).not.toBe(0);
  });
});
