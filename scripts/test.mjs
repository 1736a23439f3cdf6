// `make test`: runs the whole vitest suite and ends with the plain summary
// line CI reads ("N passed, N failed, N skipped"). Exit status is vitest's.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';

mkdirSync('artifacts', { recursive: true });
const out = 'artifacts/vitest.json';
const r = spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)], {
  stdio: 'inherit',
});
let summary = 'vitest wrote no report';
if (existsSync(out)) {
  const j = JSON.parse(readFileSync(out, 'utf8'));
  const skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  summary = `${j.numPassedTests} passed, ${j.numFailedTests} failed, ${skipped} skipped`;
  if (skipped) {
    const names = [];
    for (const f of j.testResults ?? []) for (const a of f.assertionResults ?? []) if (a.status === 'pending' || a.status === 'skipped') names.push(`${f.name.replace(process.cwd() + '/', '')}: ${a.fullName}`);
    console.log(`skipped tests:\n  ${names.slice(0, 50).join('\n  ')}`);
  }
}
console.log(summary);
process.exit(r.status ?? 1);
