/**
 * The tests' own rules, checked over every test file: a suite or test that
 * cannot run is skipped through describeSkipIf/itSkipIf (test/helpers/skip.ts),
 * which put the reason in its title, where the reporter and `make test`'s
 * summary line show it. vitest's bare skipIf takes a boolean and shows nothing.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { repoRoot } from '../../helpers/repo';

function testFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? testFiles(join(dir, e.name)) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
}

describe('test conventions', () => {
  const root = repoRoot();
  const files = testFiles(join(root, 'test'));

  it('finds the test files', () => {
    expect(files.length).toBeGreaterThan(50);
  });

  it('skips only with a reason in the title (describeSkipIf/itSkipIf, not a bare skipIf)', () => {
    const bare = /\b(describe|it|test)\s*\.\s*skipIf\s*\(/;
    const offenders = files.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .flatMap((line, i) => (bare.test(line) ? [`${relative(root, f)}:${i + 1}: ${line.trim()}`] : [])),
    );
    expect(offenders).toEqual([]);
  });
});
