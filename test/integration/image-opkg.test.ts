/**
 * The .ipk under OpenWrt 24.10's own opkg (opkg-lede 38eccbb1, built by scripts/openwrt-tools.sh),
 * into an offline root the way OpenWrt's image build does it (include/rootfs.mk): install with
 * IPKG_NO_SCRIPT=1, then the postinst run by bash with IPKG_INSTROOT; then upgrades to newer
 * builds (releases 2 and 3, opkg running the old prerm and the new postinst itself), the second
 * after the user edited /etc/config/bootrelay with the real uci; then `opkg remove`. opkg prints
 * no error or warning line, but its one notice that the edited conffile was kept.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildPackages, offlineRoot, problemLines, toolBin, toolsMissing } from '../helpers/openwrt-tools';
import { ipkDataFiles, runSync, sha256, uciOn, type Out } from '../helpers/pkg-root';
import { describeSkipIf } from '../helpers/skip';

const skip = toolsMissing('opkg', 'uci', 'apk');
const root = join(__dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-opkg-'));
const R = join(tmp, 'root');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let r1: ReturnType<typeof buildPackages>;
let r2: ReturnType<typeof buildPackages>;
let r3: ReturnType<typeof buildPackages>;
let dataFiles: string[];

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, cwd = tmp): Out => runSync(cmd, args, env, cwd);

/** opkg as include/rootfs.mk runs it on an image's root */
const opkg = (args: string[], env: NodeJS.ProcessEnv = {}): Out =>
  run(
    toolBin('opkg'),
    ['--offline-root', R, '--force-postinstall', '--add-dest', 'root:/', '--add-arch', 'all:100', '--add-arch', 'x86_64:200', ...args],
    { IPKG_INSTROOT: R, TMPDIR: join(R, 'tmp'), ...env },
  );
const uci = uciOn(R);
const statusEntry = (): string => {
  const m = /(^|\n\n)(Package: bootrelay\n[\s\S]*?)(\n\n|$)/.exec(readFileSync(join(R, 'usr/lib/opkg/status'), 'utf8'));
  return m ? m[2]! : '';
};

describeSkipIf(skip)("the .ipk under OpenWrt 24.10's opkg", () => {
  beforeAll(() => {
    r1 = buildPackages(join(tmp, 'r1'), 1);
    r2 = buildPackages(join(tmp, 'r2'), 2);
    r3 = buildPackages(join(tmp, 'r3'), 3);
    dataFiles = ipkDataFiles(r1.ipk, join(tmp, 'data'));
    offlineRoot(R);
    // the dependencies as installed packages (opkg refuses unknown ones even with --force-depends)
    mkdirSync(join(R, 'usr/lib/opkg/info'), { recursive: true });
    for (const d of ['libc', 'node']) {
      appendFileSync(
        join(R, 'usr/lib/opkg/status'),
        `Package: ${d}\nVersion: 0-stub\nStatus: install user installed\nArchitecture: x86_64\nInstalled-Time: 1700000000\n\n`,
      );
      writeFileSync(join(R, `usr/lib/opkg/info/${d}.list`), '');
    }
  }, 120_000);

  it('installs release 1 (IPKG_NO_SCRIPT=1, as an image build) with no error or warning', () => {
    const r = opkg(['install', r1.ipk], { IPKG_NO_SCRIPT: '1' });
    expect(r.status, r.out).toBe(0);
    expect(problemLines(r.out)).toEqual([]);
    expect(r.out).toContain(`Installing bootrelay (${r1.version}) to root...`);
    const files = opkg(['files', 'bootrelay']);
    expect(files.out.split('\n').filter((l) => l.startsWith('/')).map((l) => l.slice(R.length)).sort()).toEqual(dataFiles);
    for (const f of dataFiles) expect(existsSync(join(R, f)), f).toBe(true);
  });

  it('registers /etc/config/bootrelay as a conffile with its sha256', () => {
    const e = statusEntry();
    expect(e).toContain(`Version: ${r1.version}`);
    expect(e).toContain(`Conffiles:\n /etc/config/bootrelay ${sha256(join(R, 'etc/config/bootrelay'))}\n`);
  });

  it('runs the postinst with IPKG_INSTROOT: rc.d links, uci-defaults left for the first boot, no output', () => {
    const r = run('bash', ['./usr/lib/opkg/info/bootrelay.postinst'], { IPKG_INSTROOT: R }, R);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toBe('');
    expect(readlinkSync(join(R, 'etc/rc.d/S95bootrelay'))).toBe('../init.d/bootrelay');
    expect(readlinkSync(join(R, 'etc/rc.d/K10bootrelay'))).toBe('../init.d/bootrelay');
    expect(existsSync(join(R, 'etc/uci-defaults/90-bootrelay'))).toBe(true);
  });

  it('upgrades to release 2 (opkg runs the old prerm and the new postinst) with no error or warning', () => {
    const r = opkg(['install', r2.ipk]);
    expect(r.status, r.out).toBe(0);
    expect(problemLines(r.out)).toEqual([]);
    expect(r.out).toContain(`Upgrading bootrelay on root from ${r1.version} to ${r2.version}...`);
    expect(statusEntry()).toContain(`Version: ${r2.version}`);
    expect(readlinkSync(join(R, 'etc/rc.d/S95bootrelay'))).toBe('../init.d/bootrelay');
  });

  it("upgrades to release 3 keeping the user's uci edit of /etc/config/bootrelay (opkg's one notice about it)", () => {
    const set = uci('set', 'bootrelay.upstream.url=http://10.99.1.2/mine/');
    expect(set.status, set.out).toBe(0);
    expect(uci('commit', 'bootrelay').status).toBe(0);
    const edited = readFileSync(join(R, 'etc/config/bootrelay'), 'utf8');
    expect(edited).toContain("option url 'http://10.99.1.2/mine/'");
    const shipped = readFileSync(join(root, 'image/files/etc/config/bootrelay'), 'utf8');

    const r = opkg(['install', r3.ipk]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`Upgrading bootrelay on root from ${r2.version} to ${r3.version}...`);
    // opkg-lede says this (at ERROR level, under "Collected errors") on every upgrade of a
    // package whose conffile the user changed, whether or not the package's default changed
    // (libopkg/opkg_install.c resolve_conffiles); it is the only thing it reports
    const file = join(R, 'etc/config/bootrelay');
    expect(problemLines(r.out)).toEqual(['Collected errors:']);
    expect(r.out).toContain(
      ` * resolve_conffiles: Existing conffile ${file} is different from the conffile in the new package. The new conffile will be placed at ${file}-opkg.\n`,
    );
    expect(statusEntry()).toContain(`Version: ${r3.version}`);
    expect(readFileSync(file, 'utf8')).toBe(edited);
    expect(readFileSync(`${file}-opkg`, 'utf8')).toBe(shipped);
    expect(uci('get', 'bootrelay.upstream.url').out).toBe('http://10.99.1.2/mine/\n');
    expect(readlinkSync(join(R, 'etc/rc.d/S95bootrelay'))).toBe('../init.d/bootrelay');
    rmSync(`${file}-opkg`);
  });

  it('removes it: prerm drops the rc.d links, every file goes but the edited conffile', () => {
    const r = opkg(['remove', 'bootrelay']);
    expect(r.status, r.out).toBe(0);
    expect(problemLines(r.out)).toEqual([]);
    expect(r.out).toContain('Removing package bootrelay from root...');
    expect(r.out).toContain(`Not deleting modified conffile ${R}/etc/config/bootrelay.`);
    expect(existsSync(join(R, 'etc/rc.d/S95bootrelay'))).toBe(false);
    expect(existsSync(join(R, 'etc/rc.d/K10bootrelay'))).toBe(false);
    for (const f of dataFiles.filter((x) => x !== '/etc/config/bootrelay')) expect(existsSync(join(R, f)), f).toBe(false);
    expect(uci('get', 'bootrelay.upstream.url').out).toBe('http://10.99.1.2/mine/\n');
    expect(statusEntry()).toBe('');
  });
});
