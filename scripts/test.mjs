// `make test`: the vitest suite in two runs — unit + integration (files in
// parallel), then the QEMU end-to-end boots one file at a time (each boots real
// firmware under TCG and wants the CPU) — and ends with the plain summary line
// CI reads ("N passed, N failed, N skipped"), followed by "SKIPPED SUITES: …" with each
// skipped file and why (the `[skipped: reason]` a test's title carries, test/helpers/skip.ts)
// when any test did not run. Exits non-zero if either run failed.
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
/** file → reason → how many of its tests were skipped for it */
const skippedSuites = new Map();
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
      if (a.status === 'pending' || a.status === 'skipped' || a.status === 'todo') {
        const file = f.name.replace(process.cwd() + '/', '');
        skippedNames.push(`${file}: ${a.fullName}`);
        const reason = /\[skipped: ([^\]]*)\]/.exec(a.fullName)?.[1] ?? 'no reason given';
        const byReason = skippedSuites.get(file) ?? new Map();
        byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
        skippedSuites.set(file, byReason);
      }
}
if (skippedNames.length) console.log(`skipped tests:\n  ${skippedNames.slice(0, 60).join('\n  ')}`);
const suites = [...skippedSuites].flatMap(([file, byReason]) => [...byReason].map(([reason, n]) => `${file} ×${n} (${reason})`));
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped${suites.length ? ` — SKIPPED SUITES: ${suites.join('; ')}` : ''}`);
process.exit(status);
