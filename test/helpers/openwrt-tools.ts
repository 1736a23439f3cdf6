/**
 * OpenWrt's own package tools (opkg 24.10, apk-tools 3.0.2 and uci/libuci of 25.12), built from
 * ../shared/openwrt's pinned sources by scripts/openwrt-tools.sh into .cache/openwrt-tools/
 * (`make test` builds them first: make openwrt-tools). OPENWRT_TOOLS=DIR points elsewhere.
 * Tests use `describeSkipIf(toolsMissing(...))(...)` (test/helpers/skip.ts): the reason this returns
 * goes into the title, and `make test`'s summary.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const root = join(__dirname, '../..');
export const toolsDir = process.env.OPENWRT_TOOLS ?? join(root, '.cache/openwrt-tools');
export const toolBin = (name: 'uci' | 'opkg' | 'apk'): string => join(toolsDir, 'bin', name);
/** ../shared/openwrt (the brief's tool sources, scripts and OpenWrt base-files) */
export const sharedOpenwrt =
  process.env.OPENWRT_SHARED ??
  [join(root, '../shared/openwrt'), join(root, '../../shared/openwrt')].find((d) => existsSync(d)) ??
  join(root, '../shared/openwrt');

/** procd, ubusd and ubus (built by scripts/openwrt-tools.sh when their sources are there) */
export const procdBin = { procd: join(toolsDir, 'sbin/procd'), ubusd: join(toolsDir, 'sbin/ubusd'), ubus: join(toolsDir, 'bin/ubus'), setlbf: join(toolsDir, 'lib/libsetlbf.so') };

/** Why the named tools cannot be used here, or '' when they are all built. */
export function toolsMissing(...names: ('uci' | 'opkg' | 'apk')[]): string {
  const missing = names.filter((n) => !existsSync(toolBin(n)));
  if (!missing.length) return '';
  return (
    `OpenWrt's ${missing.join(', ')} not built in ${toolsDir}: run scripts/openwrt-tools.sh` +
    (existsSync(join(sharedOpenwrt, 'build-tools.sh')) ? '' : ` (needs ${sharedOpenwrt} with build-tools.sh and src/)`)
  );
}

/**
 * OpenWrt's base-files scripts an offline root needs for package scripts (lib/functions.sh with
 * default_postinst/default_prerm, service.sh, procd.sh, rc.common): the openwrt-files tarball of
 * ../shared/openwrt/src unpacked once into the tools dir. Returns the openwrt-<commit> dir, or ''.
 */
export function openwrtFiles(): string {
  const dest = join(toolsDir, 'openwrt-files');
  const find = (): string => {
    if (!existsSync(dest)) return '';
    const d = readdirSync(dest).find((n) => n.startsWith('openwrt-'));
    return d ? join(dest, d) : '';
  };
  if (find()) return find();
  const src = join(sharedOpenwrt, 'src');
  const tgz = existsSync(src) ? readdirSync(src).find((n) => /^openwrt-files-.*\.tar\.gz$/.test(n)) : undefined;
  if (!tgz) return '';
  mkdirSync(dest, { recursive: true });
  execFileSync('tar', ['-C', dest, '-xzf', join(src, tgz)]);
  return find();
}

/**
 * An offline root as OpenWrt's image build has it when packages are installed: base-files'
 * lib/functions.sh (default_postinst/default_prerm), lib/functions/service.sh, procd's procd.sh,
 * etc/rc.common, libubox's jshn.sh and an empty etc/rc.d/.
 */
export function offlineRoot(root: string): void {
  const ow = openwrtFiles();
  if (!ow) throw new Error(`no OpenWrt base-files: ${toolsMissing('uci')} `);
  for (const d of ['lib/functions', 'etc/rc.d', 'usr/share/libubox', 'tmp', 'var/lock']) mkdirSync(join(root, d), { recursive: true });
  const files = join(ow, 'package/base-files/files');
  copyFileSync(join(files, 'lib/functions.sh'), join(root, 'lib/functions.sh'));
  copyFileSync(join(files, 'lib/functions/service.sh'), join(root, 'lib/functions/service.sh'));
  copyFileSync(join(ow, 'package/system/procd/files/procd.sh'), join(root, 'lib/functions/procd.sh'));
  copyFileSync(join(files, 'etc/rc.common'), join(root, 'etc/rc.common'));
  copyFileSync(join(toolsDir, 'share/libubox/jshn.sh'), join(root, 'usr/share/libubox/jshn.sh'));
}

/** Builds dist/bootrelay.js and relayctl.js when they are missing (the packages need them). */
export function ensureBundles(): void {
  if (['bootrelay.js', 'relayctl.js'].every((f) => existsSync(join(root, 'dist', f)))) return;
  execFileSync('node', ['scripts/build.mjs'], { cwd: root, stdio: 'pipe' });
}

/**
 * `make image`'s packages of release N (image/build-ipk.sh with PKG_RELEASE=N and the built
 * apk): { ipk, apk, version }.
 */
export function buildPackages(outDir: string, release: number): { ipk: string; apk: string; version: string } {
  ensureBundles();
  execFileSync('bash', ['image/build-ipk.sh', outDir], {
    cwd: root,
    env: { ...process.env, PKG_RELEASE: String(release), APK: toolBin('apk'), SOURCE_DATE_EPOCH: '1767225600' },
    stdio: 'pipe',
  });
  const upstream = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const version = `${upstream}-r${release}`;
  return { ipk: join(outDir, `bootrelay_${version}_all.ipk`), apk: join(outDir, `bootrelay-${version}.apk`), version };
}

/** The lines of a package tool's output that report a problem (error, warning, failure). */
export function problemLines(out: string): string[] {
  return out.split('\n').filter((l) => /error|warn|cannot|can't|failed|fatal|no such file|not found|incompatible|unable/i.test(l));
}
