// `make test`: the vitest suite in two runs — unit + integration (files in
// parallel), then the QEMU end-to-end boots one file at a time (each boots real
// firmware under TCG and wants the CPU) — and ends with the plain summary line
// CI reads ("N passed, N failed, N skipped"). Exits non-zero if either run failed.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync, rmSync } from 'node:fs';

mkdirSync('artifacts', { recursive: true });
const extra = process.argv.slice(2);
const runs = [
  { name: 'unit+integration', args: ['--exclude', 'test/e2e/**'] },
  { name: 'e2e', args: ['test/e2e', '--no-file-parallelism'] },
];
let passed = 0, failed = 0, skipped = 0, status = 0;
const skippedNames = [];
for (const run of runs) {
  const out = `artifacts/vitest-${run.name}.json`;
  rmSync(out, { force: true });
  console.log(`\n=== make test: ${run.name} ===`);
  const r = spawnSync('npx', ['vitest', 'run', ...run.args, '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...extra], { stdio: 'inherit' });
  if (r.status !== 0) status = r.status ?? 1;
  if (!existsSync(out)) {
    console.log(`${run.name}: vitest wrote no report`);
    status ||= 1;
    continue;
  }
  const j = JSON.parse(readFileSync(out, 'utf8'));
  passed += j.numPassedTests ?? 0;
  failed += j.numFailedTests ?? 0;
  skipped += (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  for (const f of j.testResults ?? [])
    for (const a of f.assertionResults ?? [])
      if (a.status === 'pending' || a.status === 'skipped') skippedNames.push(`${f.name.replace(process.cwd() + '/', '')}: ${a.fullName}`);
}
if (skippedNames.length) console.log(`skipped tests:\n  ${skippedNames.slice(0, 60).join('\n  ')}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(status);
