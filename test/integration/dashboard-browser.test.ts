/**
 * The dashboard rendered by a real headless Chromium (Debian's `chromium`,
 * driven by playwright-core: test/helpers/browser.ts).
 *  - local feed: a tiny node:http server offers /dashboard/, /api/status,
 *    /api/clients and the /api/events WebSocket; the DOM must show the client
 *    and follow a live phase change.
 *  - remote feed: the page talks MQTT over WebSocket to a real Mosquitto where
 *    two MqttPublishers (two relays) publish; the DOM must show both, grouped.
 * Screenshots go to artifacts/ (gitignored).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import WebSocket, { WebSocketServer } from 'ws';
import { DASHBOARD_HTML } from '../../agent/dashboard/index';
import { MqttPublisher } from '../../agent/publish/mqtt';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';
import { Mosquitto, mosquittoSkipReason } from '../helpers/mosquitto';
import { waitFor } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';
import { chromiumSkipReason, launchChromium, type Headless } from '../helpers/browser';

const skip = chromiumSkipReason() ?? mosquittoSkipReason();

const now = Date.now();
const iso = (msAgo: number) => new Date(now - msAgo).toISOString();
const CLIENT = {
  mac: '52:54:00:00:00:07',
  ip: '10.99.0.107',
  arch: 'uefi-x64',
  firmware: 'ipxe',
  profile: 'debian',
  phase: 'kernel',
  file: 'debian/vmlinuz',
  bytes: 3_000_000,
  totalBytes: 8_000_000,
  rate: 1_000_000,
  etaSeconds: 5,
  startedAt: iso(9000),
  updatedAt: iso(0),
  error: null,
  phases: { dhcp: { startedAt: iso(9000), endedAt: iso(8000) }, bound: { startedAt: iso(8000), endedAt: iso(7500) }, loader: { startedAt: iso(7500), endedAt: iso(6000) }, ipxe: { startedAt: iso(6000), endedAt: iso(3000) }, kernel: { startedAt: iso(3000) } },
};
const FAILED = { ...CLIENT, mac: '52:54:00:00:00:08', ip: '10.99.0.108', phase: 'failed', failedPhase: 'loader', error: 'TFTP timeout on ipxe/snponly.efi', file: 'ipxe/snponly.efi', bytes: 0, totalBytes: 1000, phases: { dhcp: { startedAt: iso(5000), endedAt: iso(4000) }, bound: { startedAt: iso(4000), endedAt: iso(3900) }, loader: { startedAt: iso(3900), endedAt: iso(100) } } };

describeSkipIf(skip)('dashboard in headless Chromium', () => {
  let browser: Headless;
  let page: Page;
  let server: Server;
  let wss: WebSocketServer;
  let port = 0;
  const feeds = new Set<WebSocket>();

  beforeAll(async () => {
    wss = new WebSocketServer({ noServer: true });
    wss.on('connection', (ws) => {
      feeds.add(ws);
      ws.on('close', () => feeds.delete(ws));
    });
    server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const json = (v: unknown) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      if (path === '/dashboard/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(DASHBOARD_HTML);
      } else if (path === '/api/status') json({ agentId: 'lab-relay', online: true, version: '0.1.0', startedAt: iso(60_000), uplink: 'up', clients: 2, cache: { entries: 3, bytes: 12_345_678, hits: 5, misses: 3 } });
      else if (path === '/api/clients') json([CLIENT, FAILED]);
      else {
        res.writeHead(404);
        res.end();
      }
    });
    server.on('upgrade', (req, socket, head) => {
      if (req.url === '/api/events') wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
      else socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
    browser = await launchChromium();
    page = browser.page;
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const f of feeds) f.terminate();
    wss?.close();
    await new Promise((r) => server?.close(r));
  });

  it('shows the relay and every client from /api, and follows the /api/events feed', async () => {
    await page.goto(`http://127.0.0.1:${port}/dashboard/`);
    const card = (mac: string) => page.locator(`.client[data-mac="${mac}"]`);
    const c = card(CLIENT.mac);
    await c.waitFor({ timeout: 10_000 });
    await card(FAILED.mac).waitFor({ timeout: 10_000 });
    expect(await c.getAttribute('data-phase')).toBe('kernel');
    const text = (await c.textContent()) ?? '';
    expect(text).toContain('10.99.0.107');
    expect(text).toContain('uefi-x64 / ipxe');
    expect(text).toContain('profile: debian');
    expect(text).toContain('debian/vmlinuz');
    expect(text).toMatch(/38%/);
    expect(text).toContain('ETA 5.0 s');
    expect(await c.locator('.bar > div').evaluate((e) => e.style.width)).toBe('38%');
    expect(await c.locator('.seg').allTextContents()).toEqual(['dhcp1.0 s', 'bound500 ms', 'loader1.5 s', 'ipxe3.0 s', expect.stringMatching(/^kernel\d/)]);
    const err = card(FAILED.mac).locator('.error');
    expect(await err.textContent()).toBe('loader: TFTP timeout on ipxe/snponly.efi');
    expect(await err.evaluate((e) => e.ownerDocument.defaultView!.getComputedStyle(e).color)).toBe('rgb(248, 81, 73)'); // red
    expect(await page.locator('.relay').getAttribute('data-agent')).toBe('lab-relay');

    // live: the feed moves the client to booted and adds an event
    await waitFor(() => feeds.size > 0, 10_000, 'page subscribed to /api/events');
    const booted = { ...CLIENT, phase: 'booted', bytes: 8_000_000, updatedAt: new Date().toISOString(), phases: { ...CLIENT.phases, kernel: { startedAt: iso(3000), endedAt: iso(1000) }, booted: { startedAt: iso(0) } } };
    for (const f of feeds) {
      f.send(JSON.stringify({ kind: 'client', state: booted }));
      f.send(JSON.stringify({ kind: 'event', event: { ts: new Date().toISOString(), type: 'client.booted', mac: CLIENT.mac } }));
    }
    await page.locator(`.client[data-mac="${CLIENT.mac}"][data-phase="booted"]`).waitFor({ timeout: 5000 });
    await page.locator('#events', { hasText: 'client.booted' }).waitFor({ timeout: 5000 });
    expect(await page.locator('#conn').textContent()).toBe('live');
    await browser.screenshot('dashboard-local');

    // the feed drops: the page says so, comes back, refetches and subscribes again
    const dropped = [...feeds];
    feeds.clear();
    for (const f of dropped) f.terminate();
    await waitFor(() => feeds.size > 0, 10_000, 'page resubscribed');
    await page.locator('#conn', { hasText: /^live$/ }).waitFor({ timeout: 5000 });
    // refetched from /api/clients: the server's copy still says kernel
    await page.locator(`.client[data-mac="${CLIENT.mac}"][data-phase="kernel"]`).waitFor({ timeout: 5000 });
  });

  it('shows a fleet from MQTT over WebSocket, grouped by agentId', async () => {
    const broker = await Mosquitto.start();
    const dir = mkdtempSync(join(tmpdir(), 'br-dash-browser-'));
    const pubs: MqttPublisher[] = [];
    try {
      for (const agentId of ['dongle-01', 'dongle-02']) {
        const p = new MqttPublisher({
          config: { url: broker.url, username: '', password: '', prefix: 'fleet', journalMaxEvents: 100, homeAssistant: false, commands: false },
          agentId,
          stateDir: join(dir, agentId),
          log: silentLogger,
          metrics: new Metrics(),
          status: () => ({ version: '0.1.0', uplink: 'up', clients: 1, cache: { entries: 1, bytes: 1000 } }),
          reconnectMinMs: 100,
        });
        pubs.push(p);
        await p.start();
      }
      await waitFor(() => pubs.every((p) => p.connected), 5000, 'publishers');
      pubs[0]!.publishClient({ ...CLIENT });
      pubs[1]!.publishClient({ ...FAILED });
      await page.goto(`http://127.0.0.1:${port}/dashboard/?broker=${encodeURIComponent(broker.wsUrl)}&prefix=fleet`);
      const relays = () =>
        page.locator('.relay').evaluateAll((rs) => rs.map((r) => `${r.dataset.agent}:${[...r.querySelectorAll('.client')].map((c) => `${c.dataset.mac}=${c.dataset.phase}`).join(',')}`));
      await page.locator(`.relay[data-agent="dongle-01"] .client[data-mac="${CLIENT.mac}"]`).waitFor({ timeout: 10_000 });
      await page.locator(`.relay[data-agent="dongle-02"] .client[data-mac="${FAILED.mac}"]`).waitFor({ timeout: 10_000 });
      expect(await relays()).toEqual([`dongle-01:${CLIENT.mac}=kernel`, `dongle-02:${FAILED.mac}=failed`]);
      expect(await page.locator('#events').textContent()).toBe('no events yet');
      // live update over MQTT, and a relay going offline (its will / graceful stop)
      pubs[0]!.publishClient({ ...CLIENT, phase: 'initrd', file: 'debian/initrd.img' });
      await page.locator(`.relay[data-agent="dongle-01"] .client[data-mac="${CLIENT.mac}"][data-phase="initrd"]`).waitFor({ timeout: 5000 });
      expect((await relays())[0]).toBe(`dongle-01:${CLIENT.mac}=initrd`);
      await pubs[1]!.stop();
      await page.locator('.relay[data-agent="dongle-02"].offline').waitFor({ timeout: 5000 });
      expect(await page.locator('#conn').textContent()).toBe('broker connected');
      await browser.screenshot('dashboard-fleet');
    } finally {
      for (const p of pubs) await p.stop(500);
      await broker.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
