/**
 * End to end, the dashboard (issue 5): a real headless Chromium (Debian's
 * `chromium`, driven by playwright-core: test/helpers/browser.ts) runs inside the
 * relay's namespace, opens http://10.99.1.1/dashboard/ and watches an OVMF
 * UEFI VM boot through the relay. The page must show the client moving
 * through the contract's phases in order and a progress bar that moves while
 * the kernel comes over HTTP. Screenshots: artifacts/e2e-dashboard-*.png.
 *
 * Sampling: the test polls the DOM every ~250 ms (what a person would see),
 * and a MutationObserver in the page records every render of the client's
 * card, so fast phases (the 354-byte script, a cached initrd) are not lost
 * between polls. Unshaped, iPXE pulls the 8 MB kernel in ~60 ms -- faster
 * than the relay's 250 ms progress throttle, so no bar could move. The relay's
 * LAN port is therefore shaped to 16 Mbit/s (tc tbf, a slow Wi-Fi LAN): the
 * kernel takes ~4 s and the bar gets a dozen intermediate values.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import type { Page } from 'playwright-core';
import { CLIENT_PHASES } from '../../proto/events';
import { chromiumSkipReason, launchChromium, type Headless } from '../helpers/browser';
import { hasCmd } from '../helpers/netns';
import { BootLab, labSkipReason, labWorkDir, RELAY_LAN_IP, type BootResult } from './lab';
import { agentBundle } from './steps';
import { describeSkipIf } from '../helpers/skip';

const reason = labSkipReason() ?? chromiumSkipReason() ?? (hasCmd('tc') ? undefined : 'missing tc (iproute2)');

const MAC = '52:54:00:99:da:05';
const LAN_RATE = '16mbit';
const POLL_MS = 250;

/** One view of the client's card. */
interface Sample {
  t: number;
  phase: string;
  phaseText: string;
  width: string | null;
  file: string | null;
  progress: string | null;
}

/** Reads the card of one MAC; the DOM hooks are .client[data-mac][data-phase], .phase, .bar > div, .file, .progress. */
const SNAP_JS = (mac: string) => `(() => {
  const c = document.querySelector('.client[data-mac="${mac}"]');
  if (!c) return null;
  const q = (s) => c.querySelector(s);
  return { t: Date.now(), phase: c.dataset.phase, phaseText: q('.phase') ? q('.phase').textContent : '',
    width: q('.bar > div') ? q('.bar > div').style.width : null,
    file: q('.file') ? q('.file').textContent : null, progress: q('.progress') ? q('.progress').textContent : null };
})()`;

/** Records every render of the card that differs from the last one (the timeline's ticking durations excluded). */
const RECORDER_JS = (mac: string) => `(() => {
  window.__rec = [];
  let last = '';
  const snap = () => { const s = ${SNAP_JS(mac)}; if (!s) return; const { t, ...k } = s; const key = JSON.stringify(k); if (key !== last) { last = key; window.__rec.push(s); } };
  new MutationObserver(snap).observe(document.getElementById('relays'), { childList: true, subtree: true });
  snap();
  return true;
})()`;

const pct = (s: Sample) => (s.width ? Number.parseFloat(s.width) : NaN);
const isTransfer = (s: Sample) => s.phase === 'kernel' || s.phase === 'initrd';

/** Consecutive duplicates collapsed. */
function phaseRuns(samples: Sample[]): string[] {
  const out: string[] = [];
  for (const s of samples) if (out.at(-1) !== s.phase) out.push(s.phase);
  return out;
}

describeSkipIf(reason)('e2e: the dashboard in headless Chromium during a real boot (QEMU, TCG)', () => {
  let lab: BootLab;
  let browser: Headless | undefined;
  let page: Page;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    const work = labWorkDir('e2e-dashboard');
    lab = new BootLab({ prefix: `brv${process.pid % 10000}`, work, agentJs: agentBundle(work).js });
    try {
      let t0 = Date.now();
      await lab.up();
      timings.labUp = (Date.now() - t0) / 1000;
      // a slow LAN (see the header): only the relay -> client direction is shaped
      const tc = spawnSync('tc', ['-n', lab.nsRelay, 'qdisc', 'add', 'dev', 'lan', 'root', 'tbf', 'rate', LAN_RATE, 'burst', '32kb', 'latency', '400ms'], { encoding: 'utf8' });
      if (tc.status !== 0) throw new Error(`tc: ${tc.stderr}`);
      t0 = Date.now();
      // the browser lives in the relay's namespace (10.99.1.1 exists only there); DevTools over the pipe
      browser = await launchChromium({ netns: lab.nsRelay });
      page = browser.page;
      timings.browserUp = (Date.now() - t0) / 1000;
    } catch (e) {
      await browser?.close();
      await lab.cleanup();
      throw e;
    }
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (!lab) return;
    await lab.stopAndReport('e2e-dashboard', timings);
    await lab.cleanup();
  }, 60_000);

  it('shows the UEFI client moving through its phases, with a moving progress bar, until booted', async () => {
    await page.goto(`http://${RELAY_LAN_IP}/dashboard/`);
    await page.locator('#conn', { hasText: /^live$/ }).waitFor({ timeout: 20_000 });
    await page.locator('.relay[data-agent="lab-relay"]').waitFor({ timeout: 20_000 });
    expect(await page.locator('.relay .empty').textContent()).toBe('no clients yet');
    await page.evaluate(RECORDER_JS(MAC));

    const polled: Sample[] = [];
    const shots: string[] = [];
    const shot = async (name: string) => {
      await browser!.screenshot(`e2e-dashboard-${name}`);
      shots.push(name);
    };
    const t0 = Date.now();
    let result: BootResult | undefined;
    const booting = lab.boot('uefi', MAC, 180_000).then((r) => (result = r));
    // poll what the page shows until it says booted (or the boot is over and the page had time to catch up)
    while (Date.now() - t0 < 200_000) {
      const s = await page.evaluate<Sample | null>(SNAP_JS(MAC));
      if (s) {
        polled.push(s);
        if (!shots.includes('loader') && s.phase === 'loader') await shot('loader');
        if (!shots.includes('transfer') && isTransfer(s) && pct(s) > 0 && pct(s) < 100) await shot('transfer');
        if (s.phase === 'booted' || s.phase === 'failed') break;
      }
      if (result && Date.now() - t0 > result.seconds * 1000 + 10_000) break;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    await booting;
    timings.boot = result!.seconds;
    timings.dashboardBooted = (polled.at(-1)!.t - t0) / 1000;
    await shot('booted');
    expect(result!.ok, `${result!.reason}\n${result!.serialTail}`).toBe(true);

    const rec = await page.evaluate<Sample[]>('window.__rec');
    const runs = phaseRuns(rec);
    const polledRuns = phaseRuns(polled);
    const transfer = rec.filter(isTransfer);
    const kernelWidths = [...new Set(rec.filter((s) => s.phase === 'kernel').map((s) => s.width))];
    console.log(
      `[e2e-dashboard] ${polled.length} polls saw ${polledRuns.join(' > ')}; ${rec.length} renders saw ${runs.join(' > ')}; ` +
        `kernel bar ${kernelWidths.join(' ')}; screenshots ${shots.join(', ')}`,
    );

    // the client's MAC appeared, and the page ends on booted
    expect(rec.length).toBeGreaterThan(0);
    expect(polled.at(-1)!.phase).toBe('booted');
    expect(polled.at(-1)!.phaseText).toBe('booted');
    // phases in the contract's order (sampling may skip a fast one, never reorder), at least 3 distinct
    const order = (p: string) => (CLIENT_PHASES as readonly string[]).indexOf(p);
    for (const p of runs) expect(order(p), `unknown phase ${p}`).toBeGreaterThanOrEqual(0);
    for (let i = 1; i < runs.length; i++) expect(order(runs[i]!), `phases out of order: ${runs.join(' > ')}`).toBeGreaterThan(order(runs[i - 1]!));
    expect(new Set(runs).size).toBeGreaterThanOrEqual(3);
    expect(new Set(polledRuns).size).toBeGreaterThanOrEqual(3); // also what a person polling at 4 Hz sees
    for (let i = 1; i < polledRuns.length; i++) expect(order(polledRuns[i]!)).toBeGreaterThan(order(polledRuns[i - 1]!));
    expect(runs).toContain('loader'); // UEFI: the TFTP loader phase
    expect(runs).toContain('kernel');
    // the bar moved while the kernel came: several values, some strictly between empty and full, never backwards
    const barMsg = `kernel bar showed only ${kernelWidths.join(' ')} (is the LAN shaping in place?)`;
    expect(transfer.some((s) => s.file === 'debian/vmlinuz' && pct(s) > 0 && pct(s) < 100), barMsg).toBe(true);
    expect(kernelWidths.length, barMsg).toBeGreaterThanOrEqual(3);
    const kernelPcts = rec.filter((s) => s.phase === 'kernel' && s.file === 'debian/vmlinuz').map(pct);
    for (let i = 1; i < kernelPcts.length; i++) expect(kernelPcts[i]!).toBeGreaterThanOrEqual(kernelPcts[i - 1]!);
    expect(polled.some((s) => isTransfer(s) && pct(s) > 0 && pct(s) < 100), 'no poll caught a transfer in flight').toBe(true);
    expect(shots).toContain('transfer');

    // the finished card: timeline of every phase the relay tracked, in order, and the events list
    const end = await page.evaluate<{ segs: string[]; text: string; events: string }>(
      `(() => { const c = document.querySelector('.client[data-mac="${MAC}"]'); return { segs: [...c.querySelectorAll('.seg')].map(s => s.dataset.seg), text: c.textContent, events: document.getElementById('events').textContent }; })()`,
    );
    expect(end.segs.at(-1)).toBe('booted');
    for (let i = 1; i < end.segs.length; i++) expect(order(end.segs[i]!)).toBeGreaterThan(order(end.segs[i - 1]!));
    for (const p of runs) expect(end.segs).toContain(p);
    expect(end.text).toContain('uefi-x64');
    expect(end.text).toMatch(/10\.99\.1\.\d+/);
    expect(end.events).toContain('client.booted');
  }, 260_000);
});
