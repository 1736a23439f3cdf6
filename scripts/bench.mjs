// `make bench`: runs every benchmark under bench/ (each a TypeScript entry that
// prints its own table), one after another, and keeps their output in
// artifacts/bench-<name>.txt. Benchmarks measure; they do not assert.
import { readdirSync, existsSync, mkdirSync, createWriteStream } from 'node:fs';
import { spawn } from 'node:child_process';

const only = process.argv.slice(2);
const files = existsSync('bench') ? readdirSync('bench').filter((f) => f.endsWith('.ts') && !f.startsWith('_')).sort() : [];
mkdirSync('artifacts', { recursive: true });
let failed = 0;
for (const f of files) {
  const name = f.replace(/\.ts$/, '');
  if (only.length && !only.includes(name)) continue;
  console.log(`\n=== bench ${name} ===`);
  const out = createWriteStream(`artifacts/bench-${name}.txt`);
  const code = await new Promise((resolve) => {
    const p = spawn(process.execPath, ['scripts/run-ts.mjs', `bench/${f}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout.on('data', (d) => (process.stdout.write(d), out.write(d)));
    p.stderr.on('data', (d) => (process.stderr.write(d), out.write(d)));
    p.on('close', (c) => resolve(c ?? 1)); // after the pipes: `out` has every line before it is ended
  });
  out.end();
  if (code !== 0) {
    failed++;
    console.log(`bench ${name} exited ${code}`);
  }
}
if (!files.length) console.log('no benchmarks under bench/');
process.exit(failed ? 1 : 0);
