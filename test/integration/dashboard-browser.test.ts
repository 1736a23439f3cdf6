/**
 * The dashboard rendered by a real headless Chromium (Debian's `chromium`),
 * driven over the DevTools protocol with the `ws` package (no extra dependency).
 *  - local feed: a tiny node:http server offers /dashboard/, /api/status,
 *    /api/clients and the /api/events WebSocket; the DOM must show the client
 *    and follow a live phase change.
 *  - remote feed: the page talks MQTT over WebSocket to a real Mosquitto where
 *    two MqttPublishers (two relays) publish; the DOM must show both, grouped.
 * Screenshots go to artifacts/ (gitignored).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { DASHBOARD_HTML } from '../../agent/dashboard/index';
import { MqttPublisher } from '../../agent/publish/mqtt';
import { Metrics } from '../../relay/metrics';
import { silentLogger } from '../../agent/log';
import { Mosquitto, mosquittoSkipReason } from '../helpers/mosquitto';
import { waitFor } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? mosquittoSkipReason() : `missing ${CHROMIUM} (apt-get install chromium)`;
const ARTIFACTS = resolve(__dirname, '../../artifacts');

/** One page of a headless Chromium, spoken to over the DevTools protocol. */
class Browser {
  private proc!: ChildProcess;
  private ws!: WebSocket;
  private id = 0;
  private waiting = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private profile = mkdtempSync(join(tmpdir(), 'br-chromium-'));

  async launch(): Promise<void> {
    this.proc = spawn(
      CHROMIUM,
      ['--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--no-default-browser-check', '--disable-extensions', '--remote-debugging-port=0', `--user-data-dir=${this.profile}`, '--window-size=1280,900', 'about:blank'],
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    let err = '';
    const browserUrl = await new Promise<string>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`chromium did not start: ${err}`)), 20_000);
      this.proc.stderr!.on('data', (d) => {
        err += d;
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m) {
          clearTimeout(t);
          res(m[1]!);
        }
      });
      this.proc.once('exit', () => rej(new Error(`chromium exited: ${err}`)));
    });
    const port = new URL(browserUrl).port;
    const pages = await waitFor(async () => {
      const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ type: string; webSocketDebuggerUrl: string }>;
      return list.find((p) => p.type === 'page');
    }, 10_000, 'a page target');
    this.ws = new WebSocket(pages.webSocketDebuggerUrl);
    await new Promise((res, rej) => {
      this.ws.once('open', res);
      this.ws.once('error', rej);
    });
    this.ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
      const w = msg.id !== undefined ? this.waiting.get(msg.id) : undefined;
      if (!w) return;
      this.waiting.delete(msg.id!);
      if (msg.error) w.reject(new Error(msg.error.message));
      else w.resolve(msg.result);
    });
  }

  send<T = any>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.id;
    return new Promise<T>((res, rej) => {
      this.waiting.set(id, { resolve: res, reject: rej });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async goto(url: string): Promise<void> {
    await this.send('Page.enable');
    await this.send('Page.navigate', { url });
  }

  async eval<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value: T }; exceptionDetails?: unknown }>('Runtime.evaluate', { expression, returnByValue: true });
    if (r.exceptionDetails) throw new Error(`evaluate failed: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  }

  async screenshot(file: string): Promise<void> {
    const r = await this.send<{ data: string }>('Page.captureScreenshot', { format: 'png' });
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, file), Buffer.from(r.data, 'base64'));
  }

  async close(): Promise<void> {
    this.ws?.close();
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      try {
        process.kill(-p.pid!, 'SIGKILL'); // the process group chromium leads (we started it detached)
      } catch {
        p.kill('SIGKILL');
      }
      await exited;
    }
    rmSync(this.profile, { recursive: true, force: true });
  }
}

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
  let browser: Browser;
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
    browser = new Browser();
    await browser.launch();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const f of feeds) f.terminate();
    wss?.close();
    await new Promise((r) => server?.close(r));
  });

  it('shows the relay and every client from /api, and follows the /api/events feed', async () => {
    await browser.goto(`http://127.0.0.1:${port}/dashboard/`);
    const q = (mac: string) => `document.querySelector('.client[data-mac="${mac}"]')`;
    await waitFor(() => browser.eval<boolean>(`!!${q(CLIENT.mac)} && !!${q(FAILED.mac)}`), 10_000, 'clients rendered');
    const card = await browser.eval<{ phase: string; text: string; width: string; segs: string[] }>(
      `(() => { const c = ${q(CLIENT.mac)}; return { phase: c.dataset.phase, text: c.textContent, width: c.querySelector('.bar > div').style.width, segs: [...c.querySelectorAll('.seg')].map(s => s.textContent) }; })()`,
    );
    expect(card.phase).toBe('kernel');
    expect(card.text).toContain('10.99.0.107');
    expect(card.text).toContain('uefi-x64 / ipxe');
    expect(card.text).toContain('profile: debian');
    expect(card.text).toContain('debian/vmlinuz');
    expect(card.text).toMatch(/38%/);
    expect(card.text).toContain('ETA 5.0 s');
    expect(card.width).toBe('38%');
    expect(card.segs).toEqual(['dhcp1.0 s', 'bound500 ms', 'loader1.5 s', 'ipxe3.0 s', expect.stringMatching(/^kernel\d/)]);
    const failed = await browser.eval<{ err: string; color: string }>(
      `(() => { const e = ${q(FAILED.mac)}.querySelector('.error'); return { err: e.textContent, color: getComputedStyle(e).color }; })()`,
    );
    expect(failed.err).toBe('loader: TFTP timeout on ipxe/snponly.efi');
    expect(failed.color).toBe('rgb(248, 81, 73)'); // red
    expect(await browser.eval<string>(`document.querySelector('.relay').dataset.agent`)).toBe('lab-relay');

    // live: the feed moves the client to booted and adds an event
    await waitFor(() => feeds.size > 0, 10_000, 'page subscribed to /api/events');
    const booted = { ...CLIENT, phase: 'booted', bytes: 8_000_000, updatedAt: new Date().toISOString(), phases: { ...CLIENT.phases, kernel: { startedAt: iso(3000), endedAt: iso(1000) }, booted: { startedAt: iso(0) } } };
    for (const f of feeds) {
      f.send(JSON.stringify({ kind: 'client', state: booted }));
      f.send(JSON.stringify({ kind: 'event', event: { ts: new Date().toISOString(), type: 'client.booted', mac: CLIENT.mac } }));
    }
    await waitFor(() => browser.eval<boolean>(`${q(CLIENT.mac)}.dataset.phase === 'booted'`), 5000, 'booted rendered');
    await waitFor(() => browser.eval<boolean>(`document.getElementById('events').textContent.includes('client.booted')`), 5000, 'event rendered');
    expect(await browser.eval<string>(`document.getElementById('conn').textContent`)).toBe('live');
    await browser.screenshot('dashboard-local.png');

    // the feed drops: the page says so, comes back, refetches and subscribes again
    for (const f of feeds) f.terminate();
    await waitFor(() => feeds.size > 0, 10_000, 'page resubscribed');
    await waitFor(() => browser.eval<boolean>(`document.getElementById('conn').textContent === 'live'`), 5000, 'live again');
    // refetched from /api/clients: the server's copy still says kernel
    await waitFor(() => browser.eval<boolean>(`${q(CLIENT.mac)}.dataset.phase === 'kernel'`), 5000, 'refetched state');
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
      await browser.goto(`http://127.0.0.1:${port}/dashboard/?broker=${encodeURIComponent(broker.wsUrl)}&prefix=fleet`);
      const relays = () => browser.eval<string[]>(`[...document.querySelectorAll('.relay')].map(r => r.dataset.agent + ':' + [...r.querySelectorAll('.client')].map(c => c.dataset.mac + '=' + c.dataset.phase).join(','))`);
      await waitFor(async () => (await relays()).length === 2, 10_000, 'two relays');
      expect(await relays()).toEqual([`dongle-01:${CLIENT.mac}=kernel`, `dongle-02:${FAILED.mac}=failed`]);
      expect(await browser.eval<string>(`document.getElementById('events').textContent`)).toBe('no events yet');
      // live update over MQTT, and a relay going offline (its will / graceful stop)
      pubs[0]!.publishClient({ ...CLIENT, phase: 'initrd', file: 'debian/initrd.img' });
      await waitFor(async () => (await relays())[0] === `dongle-01:${CLIENT.mac}=initrd`, 5000, 'live update');
      await pubs[1]!.stop();
      await waitFor(() => browser.eval<boolean>(`document.querySelector('.relay[data-agent="dongle-02"]').classList.contains('offline')`), 5000, 'offline relay');
      expect(await browser.eval<string>(`document.getElementById('conn').textContent`)).toBe('broker connected');
      await browser.screenshot('dashboard-fleet.png');
    } finally {
      for (const p of pubs) await p.stop(500);
      await broker.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
