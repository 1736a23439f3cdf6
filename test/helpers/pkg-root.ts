/** Test helper for the package tests (image-opkg, image-apk): synchronous commands and the files of a built .ipk. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolBin } from './openwrt-tools';

export interface Out {
  status: number | null;
  /** stdout then stderr */
  out: string;
}

/** Runs `cmd` in `cwd` (60 s at most) with `env` added to ours. */
export function runSync(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Out {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

/** OpenWrt's uci (scripts/openwrt-tools.sh) on the offline root `root`. */
export const uciOn =
  (root: string) =>
  (...args: string[]): Out =>
    runSync(toolBin('uci'), ['-c', join(root, 'etc/config'), '-t', join(root, 'tmp/.uci'), ...args], {}, root);

export const sha256 = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');

/** The files (not directories) in an .ipk's data.tar.gz as absolute paths, sorted; unpacked under `dir`. */
export function ipkDataFiles(ipk: string, dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const x = runSync('tar', ['-xzf', ipk, './data.tar.gz'], {}, dir);
  if (x.status !== 0) throw new Error(`tar -xzf ${ipk}: ${x.out}`);
  return runSync('tar', ['-tzf', join(dir, 'data.tar.gz')], {}, dir)
    .out.split('\n')
    .filter((f) => f && !f.endsWith('/'))
    .map((f) => f.slice(1))
    .sort();
}
