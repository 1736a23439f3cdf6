/**
 * Headless Chromium for the dashboard tests: Debian's `chromium` driven by
 * playwright-core (no browser is ever downloaded), a fresh profile each launch,
 * removed at close. Locators wait on their own; screenshots go to artifacts/.
 *
 * `netns`: the browser runs inside that network namespace, so it reaches
 * addresses that exist only there (the e2e lab's 10.99.1.1). Playwright then
 * starts a two-line wrapper that execs `ip netns exec NS /usr/bin/chromium`:
 * the PID stays the browser's, and the DevTools pipe (fds 3 and 4) crosses the
 * namespace with it.
 *
 *   const b = await launchChromium({ netns: lab.nsRelay });
 *   await b.page.goto('http://10.99.1.1/dashboard/');
 *   await b.page.locator('.client[data-phase="booted"]').waitFor();
 *   await b.screenshot('e2e-dashboard-booted');
 *   await b.close();
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { repoRoot } from './repo';

export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test cannot run here, or undefined. */
export function chromiumSkipReason(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `missing ${CHROMIUM} (scripts/install-deps.sh installs chromium)`;
}

export interface LaunchOptions {
  /** run the browser inside this network namespace (root) */
  netns?: string;
  width?: number;
  height?: number;
}

export interface Headless {
  context: BrowserContext;
  page: Page;
  /** A PNG of the page to artifacts/<name>.png; returns the path. */
  screenshot(name: string): Promise<string>;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

export async function launchChromium(o: LaunchOptions = {}): Promise<Headless> {
  const tmp = mkdtempSync(join(tmpdir(), 'br-chromium-'));
  const profile = join(tmp, 'profile');
  let executablePath = CHROMIUM;
  if (o.netns) {
    executablePath = join(tmp, 'chromium-in-netns');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${o.netns} ${CHROMIUM} "$@"\n`);
    chmodSync(executablePath, 0o755);
  }
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: o.width ?? 1280, height: o.height ?? 900 },
      timeout: 60_000,
    });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  const artifacts = join(repoRoot(), 'artifacts');
  return {
    context,
    page,
    async screenshot(name: string): Promise<string> {
      mkdirSync(artifacts, { recursive: true });
      const path = join(artifacts, `${name}.png`);
      await page.screenshot({ path });
      return path;
    },
    async close(): Promise<void> {
      await context.close().catch(() => undefined);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}
