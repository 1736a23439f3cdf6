/**
 * Headless Chromium (Debian's `chromium`) driven over the DevTools protocol
 * through --remote-debugging-pipe: the protocol runs over the child's fds 3
 * (commands in) and 4 (replies and events out) as NUL-terminated JSON. A pipe
 * crosses network namespaces, so the browser can live inside a test's
 * namespace (spawned with `ip netns exec`) while the test drives it from
 * outside. No dependency beyond node:child_process.
 *
 *   const b = await PipeBrowser.launch({ spawn: (cmd, args, o) => lab.net.spawn(ns, cmd, args, o) });
 *   const page = await b.newPage();
 *   await page.goto('http://10.99.1.1/dashboard/');
 *   await page.eval<string>('document.title');
 *   await page.screenshot('artifacts/x.png');
 *   await b.close();
 */
import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test cannot run here, or undefined. */
export function chromiumSkipReason(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `missing ${CHROMIUM} (apt-get install chromium)`;
}

export type Spawner = (cmd: string, args: string[], opts: SpawnOptions) => ChildProcess;

export interface LaunchOptions {
  /** how to start the process (default: child_process.spawn here); e.g. NetLab.spawn in a namespace */
  spawn?: Spawner;
  width?: number;
  height?: number;
  /** ms to wait for the browser to answer its first command (default 30 s) */
  startTimeoutMs?: number;
}

export interface CdpEvent {
  method: string;
  params: any;
  sessionId?: string;
}

interface Waiter {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  method: string;
}

export class PipeBrowser {
  private id = 0;
  private waiting = new Map<number, Waiter>();
  private listeners = new Set<(e: CdpEvent) => void>();
  private buf = Buffer.alloc(0);
  private stderr = '';
  private exited = false;
  private readonly exitPromise: Promise<void>;

  private constructor(
    readonly proc: ChildProcess,
    private readonly profile: string,
    private readonly toBrowser: Writable,
    fromBrowser: Readable,
  ) {
    this.exitPromise = new Promise((r) =>
      proc.once('exit', () => {
        this.exited = true;
        for (const w of this.waiting.values()) w.reject(new Error(`chromium exited while waiting for ${w.method}: ${this.stderr.slice(-1500)}`));
        this.waiting.clear();
        r();
      }),
    );
    proc.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      if (this.stderr.length > 20_000) this.stderr = this.stderr.slice(-10_000);
    });
    fromBrowser.on('data', (d: Buffer) => this.onData(d));
    // a closed pipe after exit is not an error worth crashing the test runner for
    fromBrowser.on('error', () => {});
    toBrowser.on('error', () => {});
  }

  static async launch(o: LaunchOptions = {}): Promise<PipeBrowser> {
    const profile = mkdtempSync(join(tmpdir(), 'br-chromium-'));
    const args = [
      '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--no-default-browser-check',
      '--disable-extensions', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage', '--remote-debugging-pipe', `--user-data-dir=${profile}`,
      `--window-size=${o.width ?? 1280},${o.height ?? 900}`, 'about:blank',
    ];
    const spawner: Spawner = o.spawn ?? ((cmd, a, so) => nodeSpawn(cmd, a, so));
    const proc = spawner(CHROMIUM, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
    const toBrowser = proc.stdio[3] as Writable | null;
    const fromBrowser = proc.stdio[4] as Readable | null;
    if (!toBrowser || !fromBrowser) {
      proc.kill('SIGKILL');
      rmSync(profile, { recursive: true, force: true });
      throw new Error('spawner did not give fds 3 and 4 as pipes');
    }
    const b = new PipeBrowser(proc, profile, toBrowser, fromBrowser);
    try {
      await b.send('Browser.getVersion', {}, undefined, o.startTimeoutMs ?? 30_000);
    } catch (e) {
      await b.close();
      throw e;
    }
    return b;
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    let i;
    while ((i = this.buf.indexOf(0)) >= 0) {
      const text = this.buf.subarray(0, i).toString('utf8');
      this.buf = this.buf.subarray(i + 1);
      let msg: { id?: number; result?: unknown; error?: { message: string } };
      try {
        msg = JSON.parse(text);
      } catch {
        continue;
      }
      if (msg.id === undefined) {
        const ev = msg as CdpEvent;
        for (const l of [...this.listeners]) l(ev);
        continue;
      }
      const w = this.waiting.get(msg.id);
      if (!w) continue;
      this.waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(`${w.method}: ${msg.error.message}`));
      else w.resolve(msg.result);
    }
  }

  /** One DevTools command; sessionId addresses a page (see newPage). */
  send<T = any>(method: string, params: Record<string, unknown> = {}, sessionId?: string, timeoutMs = 30_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(`chromium has exited: ${this.stderr.slice(-1500)}`));
    const id = ++this.id;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${method}: no answer in ${timeoutMs} ms; chromium stderr: ${this.stderr.slice(-1500)}`));
      }, timeoutMs);
      this.waiting.set(id, {
        method,
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.toBrowser.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + '\0');
    });
  }

  /** Resolves with the first event for which pred is true (rejects after timeoutMs). */
  waitEvent(pred: (e: CdpEvent) => boolean, timeoutMs = 30_000, what = 'a DevTools event'): Promise<CdpEvent> {
    return new Promise((resolve, reject) => {
      const l = (e: CdpEvent) => {
        if (!pred(e)) return;
        this.listeners.delete(l);
        clearTimeout(t);
        resolve(e);
      };
      const t = setTimeout(() => {
        this.listeners.delete(l);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.listeners.add(l);
    });
  }

  /** A new tab, attached in flat mode (its commands carry the session id). */
  async newPage(url = 'about:blank'): Promise<CdpPage> {
    const { targetId } = await this.send<{ targetId: string }>('Target.createTarget', { url });
    const { sessionId } = await this.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    const page = new CdpPage(this, sessionId);
    await page.send('Page.enable');
    await page.send('Runtime.enable');
    return page;
  }

  /** Closes the browser (politely, then by PID), removes its profile. */
  async close(): Promise<void> {
    const p = this.proc;
    if (!this.exited && p.exitCode === null && p.signalCode === null) {
      this.send('Browser.close', {}, undefined, 3000).catch(() => {});
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await this.exitPromise;
      clearTimeout(t);
    }
    rmSync(this.profile, { recursive: true, force: true });
  }
}

export class CdpPage {
  constructor(
    private readonly browser: PipeBrowser,
    readonly sessionId: string,
  ) {}

  send<T = any>(method: string, params: Record<string, unknown> = {}, timeoutMs?: number): Promise<T> {
    return this.browser.send<T>(method, params, this.sessionId, timeoutMs);
  }

  /** Navigates and waits for the page's load event. */
  async goto(url: string, timeoutMs = 30_000): Promise<void> {
    const loaded = this.browser.waitEvent((e) => e.sessionId === this.sessionId && e.method === 'Page.loadEventFired', timeoutMs, `load of ${url}`);
    loaded.catch(() => {}); // handled below; navigate may fail first
    const r = await this.send<{ errorText?: string }>('Page.navigate', { url });
    if (r.errorText) throw new Error(`navigate ${url}: ${r.errorText}`);
    await loaded;
  }

  /** Evaluates an expression in the page and returns its (JSON) value; awaits promises. */
  async eval<T>(expression: string): Promise<T> {
    const r = await this.send<{ result: { value: T }; exceptionDetails?: { text?: string; exception?: { description?: string } } }>('Runtime.evaluate', {
      expression,
      returnByValue: true,
      awaitPromise: true,
    });
    if (r.exceptionDetails) throw new Error(`evaluate failed: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text ?? JSON.stringify(r.exceptionDetails)}`);
    return r.result.value;
  }

  /** A PNG of the viewport, written to file (its directory is created). */
  async screenshot(file: string): Promise<void> {
    const r = await this.send<{ data: string }>('Page.captureScreenshot', { format: 'png' });
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, Buffer.from(r.data, 'base64'));
  }
}
