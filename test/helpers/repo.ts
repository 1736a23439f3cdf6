/**
 * Paths in the repository for tests and benchmarks alike. Benchmarks run as
 * esbuild bundles from a temp dir (scripts/run-ts.mjs), where __dirname says
 * nothing: the root is found from the working directory up.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The repository root: the working directory or the nearest parent with scripts/build.mjs. */
export function repoRoot(): string {
  for (let d = process.cwd(); ; d = dirname(d)) {
    if (existsSync(join(d, 'scripts/build.mjs')) && existsSync(join(d, 'agent/main.ts'))) return d;
    if (dirname(d) === d) throw new Error(`not inside the bootrelay repository: ${process.cwd()}`);
  }
}

/** dist/bootrelay.js, as `make build` makes it; built (scripts/build.mjs) if missing. */
export function distAgent(): string {
  const root = repoRoot();
  const js = join(root, 'dist/bootrelay.js');
  if (!existsSync(js)) {
    const r = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0 || !existsSync(js)) throw new Error('node scripts/build.mjs failed');
  }
  return js;
}
