/**
 * OpenWrt's own package tools (opkg 24.10, apk-tools 3.0.2 and uci/libuci of 25.12), built from
 * ../shared/openwrt's pinned sources by scripts/openwrt-tools.sh into .cache/openwrt-tools/
 * (`.ci/run` builds them before `make test`). OPENWRT_TOOLS=DIR points elsewhere.
 * Tests use `describe.skipIf(!!toolsMissing(...))(...)` with the reason this returns.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

const root = join(__dirname, '../..');
export const toolsDir = process.env.OPENWRT_TOOLS ?? join(root, '.cache/openwrt-tools');
export const toolBin = (name: 'uci' | 'opkg' | 'apk'): string => join(toolsDir, 'bin', name);
/** ../shared/openwrt (the brief's tool sources, scripts and OpenWrt base-files) */
export const sharedOpenwrt = process.env.OPENWRT_SHARED ?? join(root, '../shared/openwrt');

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
