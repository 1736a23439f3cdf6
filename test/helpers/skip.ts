/**
 * Tests that cannot run here say so. A skipped suite or test carries its reason
 * in its title (`… [skipped: reason]`): the reporter prints it, and `make test`
 * (scripts/test.mjs) collects these reasons into its summary line.
 */
import { describe, it, type TestFunction } from 'vitest';
import { hasCmd } from './netns';

/** Why something needing these commands cannot run here, or undefined. */
export function missingCmds(...cmds: string[]): string | undefined {
  const missing = cmds.filter((c) => !hasCmd(c));
  return missing.length ? `missing tools: ${missing.join(', ')} (scripts/install-deps.sh installs them)` : undefined;
}

/** The title of a suite or test, with the reason it is skipped when there is one. */
export function skipTitle(title: string, reason: string | undefined): string {
  return reason ? `${title} [skipped: ${reason}]` : title;
}

/** describe.skipIf(reason), the reason in the title. */
export const describeSkipIf =
  (reason: string | undefined) =>
  (title: string, fn: () => void): void => {
    describe.skipIf(!!reason)(skipTitle(title, reason), fn);
  };

/** it.skipIf(reason), the reason in the title. */
export const itSkipIf =
  (reason: string | undefined) =>
  (title: string, fn: TestFunction, timeout?: number): void => {
    it.skipIf(!!reason)(skipTitle(title, reason), fn, timeout);
  };
