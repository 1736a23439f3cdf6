// Runs a TypeScript entry point on Node 20 without a TS loader: bundle it
// with esbuild into a temp file, then run that with the remaining arguments.
import { build } from 'esbuild';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const [entry, ...args] = process.argv.slice(2);
if (!entry) {
  console.error('usage: node scripts/run-ts.mjs FILE.ts [ARGS...]');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'bootrelay-run-'));
const out = join(dir, 'main.cjs');
await build({
  entryPoints: [entry],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: out,
  logLevel: 'warning',
  external: ['vitest'],
});
const child = spawn(process.execPath, [out, ...args], { stdio: 'inherit' });
const fwd = (s) => () => child.kill(s);
process.on('SIGINT', fwd('SIGINT'));
process.on('SIGTERM', fwd('SIGTERM'));
child.on('exit', (code, sig) => {
  rmSync(dir, { recursive: true, force: true });
  process.exit(code ?? (sig ? 1 : 0));
});
