/**
 * Entry points bundled the way scripts/build.mjs bundles the agent (CommonJS,
 * Node 20, everything inside), into a test's own dir: dist/ may be rebuilt
 * under a running test. Not for the benchmarks (they run as bundles themselves
 * and use dist/, test/helpers/repo.ts).
 */
import { build } from 'esbuild';
import { join } from 'node:path';
import { repoRoot } from './repo';

/** Bundles one entry point (a path from the repository root) to outfile; returns outfile. */
export async function bundle(entry: string, outfile: string, version = '0.0.0-test'): Promise<string> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'error',
    absWorkingDir: repoRoot(),
    define: { __BOOTRELAY_VERSION__: JSON.stringify(version) },
  });
  return outfile;
}

/** dir/bootrelay.js and dir/relayctl.js. */
export async function bundleAgent(dir: string, version?: string): Promise<{ agent: string; ctl: string }> {
  const [agent, ctl] = await Promise.all([bundle('agent/main.ts', join(dir, 'bootrelay.js'), version), bundle('agent/cli/relayctl.ts', join(dir, 'relayctl.js'), version)]);
  return { agent, ctl };
}
