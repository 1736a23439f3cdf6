/**
 * A real Mosquitto broker for integration tests: loopback only, free ports,
 * generated config in a tmp dir; stop()/start() by PID simulate an outage;
 * cleanup() kills it (by PID) and removes the dir.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './netns';

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/** Why tests needing Mosquitto cannot run, or undefined. */
export function mosquittoSkipReason(): string | undefined {
  return existsSync(MOSQUITTO_BIN) ? undefined : `missing ${MOSQUITTO_BIN} (apt-get install mosquitto)`;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = tcpConnect({ host: '127.0.0.1', port });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface MosquittoOptions {
  /** keep retained messages and persistent sessions across stop()/start() (written on SIGTERM) */
  persistence?: boolean;
  /** also listen for MQTT over WebSocket; default true */
  websockets?: boolean;
  /** also listen for MQTT over TLS (mqtts://) with a fresh self-signed CA (see `caFile`, `tlsUrl`) */
  tls?: boolean;
  /** refuse anonymous clients; these users (name → password) may connect */
  users?: Record<string, string>;
}

export class Mosquitto {
  readonly dir: string;
  port = 0;
  wsPort = 0;
  tlsPort = 0;
  private proc: ChildProcess | undefined;
  log = '';

  private constructor(private readonly opts: MosquittoOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'br-mosq-'));
    chmodSync(this.dir, 0o777); // mosquitto drops root privileges to its own user
  }

  static async start(opts: MosquittoOptions = {}): Promise<Mosquitto> {
    const m = new Mosquitto(opts);
    m.port = await freePort();
    if (opts.websockets !== false) m.wsPort = await freePort();
    if (opts.tls) {
      m.tlsPort = await freePort();
      m.makeCerts();
    }
    if (opts.users) m.makePasswords(opts.users);
    try {
      await m.start();
    } catch (err) {
      await m.cleanup();
      throw err;
    }
    return m;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get tlsUrl(): string {
    return `mqtts://localhost:${this.tlsPort}`;
  }

  /** the CA that signed the broker's certificate (for localhost and 127.0.0.1) */
  get caFile(): string {
    return join(this.dir, 'ca.crt');
  }

  private makeCerts(): void {
    const d = this.dir;
    const sh = (args: string[]) => {
      const r = spawnSync('openssl', args, { cwd: d, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
    };
    sh(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=bootrelay test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
    sh(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr']);
    writeFileSync(join(d, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
    sh(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf', '-out', 'server.crt']);
    for (const f of ['ca.crt', 'server.crt', 'server.key']) chmodSync(join(d, f), 0o644);
  }

  private makePasswords(users: Record<string, string>): void {
    const file = join(this.dir, 'passwd');
    writeFileSync(file, '');
    for (const [u, pw] of Object.entries(users)) {
      const r = spawnSync('mosquitto_passwd', ['-b', file, u, pw], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr}`);
    }
    chmodSync(file, 0o644);
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.wsPort}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private writeConfig(): string {
    const lines = [
      'per_listener_settings false',
      `listener ${this.port} 127.0.0.1`,
      this.opts.users ? 'allow_anonymous false' : 'allow_anonymous true',
      `persistence ${this.opts.persistence ? 'true' : 'false'}`,
      `persistence_location ${this.dir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'max_queued_messages 100000',
    ];
    if (this.opts.users) lines.push(`password_file ${this.dir}/passwd`);
    if (this.wsPort) lines.push(`listener ${this.wsPort} 127.0.0.1`, 'protocol websockets');
    if (this.tlsPort) lines.push(`listener ${this.tlsPort} 127.0.0.1`, `cafile ${this.caFile}`, `certfile ${this.dir}/server.crt`, `keyfile ${this.dir}/server.key`);
    const file = join(this.dir, 'mosquitto.conf');
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  }

  /** (Re)starts the broker on the same ports; resolves once it accepts connections. */
  async start(): Promise<void> {
    if (this.running) return;
    const conf = this.writeConfig();
    const p = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    p.stderr?.on('data', (d) => {
      this.log += d;
      if (this.log.length > 100_000) this.log = this.log.slice(-50_000);
    });
    await waitFor(
      async () => {
        if (!this.running) throw new Error(`mosquitto exited: ${this.log}`);
        return (await canConnect(this.port)) && (!this.wsPort || (await canConnect(this.wsPort))) && (!this.tlsPort || (await canConnect(this.tlsPort)));
      },
      10_000,
      'mosquitto to listen',
    );
  }

  /** Stops the broker (by PID) and waits for it to exit. SIGKILL simulates a crash (nothing persisted). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.proc;
    if (!p || !this.running) return;
    const exited = new Promise<void>((r) => p.once('close', () => r())); // after stderr is drained: `log` is whole
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }

  async cleanup(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}
