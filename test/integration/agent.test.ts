/**
 * The agent as users run it: the bundled dist/bootrelay.js (built here into a
 * tmp dir with esbuild), unprivileged, on loopback with free high ports, a real
 * upstream (test/helpers/upstream.ts), DHCP off. Driven with the bundled
 * relayctl, curl-free (node fetch) and tftp-hpa when installed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleAgent } from '../helpers/bundle';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/netns';
import { Mosquitto, mosquittoSkipReason } from '../helpers/mosquitto';
import { TestUpstream } from '../helpers/upstream';
import mqtt from 'mqtt';
import { onJsonLines } from '../helpers/jsonl';
import { describeSkipIf, itSkipIf, missingCmds } from '../helpers/skip';

const work = mkdtempSync(join(tmpdir(), 'bragent-'));
const AGENT = join(work, 'bootrelay.js');
const CTL = join(work, 'relayctl.js');
const MAC = '52:54:00:aa:00:01';

async function freeTcpPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Running {
  proc: ChildProcess;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  exited: Promise<number | null>;
}

const procs = new Set<ChildProcess>();

function startAgent(config: string, env?: NodeJS.ProcessEnv): Running {
  const proc = spawn(process.execPath, [AGENT, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  procs.add(proc);
  const lines: Array<Record<string, unknown>> = [];
  let err = '';
  onJsonLines(proc.stdout!, (obj, raw) => lines.push(obj ?? { raw }));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => proc.on('close', (code) => (procs.delete(proc), r(code))));
  return { proc, lines, stderr: () => err, exited };
}

/** relayctl, asynchronously: the upstream lives in this process, so never block it (no spawnSync). */
const ctl = (args: string[], sock: string) => ctlAsync(args, sock);

function ctlAsync(args: string[], sock: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [CTL, '--socket', sock, ...args]);
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => p.kill('SIGKILL'), 25_000);
    procs.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout!.on('data', (d) => (stdout += d));
    p.stderr!.on('data', (d) => (stderr += d));
    p.on('close', (code) => (clearTimeout(timer), procs.delete(p), resolve({ code, stdout, stderr })));
  });
}

const upstream = new TestUpstream();
let cfgFile: string;
let sock: string;
let httpPort: number;
let tftpPort: number;
let baseCfg: Record<string, any>;

function writeCfg(c: Record<string, unknown>, file = cfgFile): void {
  writeFileSync(file, JSON.stringify(c, null, 2));
}

beforeAll(async () => {
  await bundleAgent(work);
  await upstream.start();
  await upstream.addFile('ipxe/undionly.kpxe', Buffer.alloc(70_000, 7));
  await upstream.addFile('debian/vmlinuz', Buffer.alloc(300_000, 1));
  await upstream.addFile('debian/initrd.gz', Buffer.alloc(100_000, 2));
  httpPort = await freeTcpPort();
  tftpPort = await freeUdpPort();
  sock = join(work, 'ctl.sock');
  cfgFile = join(work, 'relay.json');
  baseCfg = {
    agentId: 'itest',
    stateDir: join(work, 'state'),
    lan: { interface: 'lo', address: '127.0.0.1', prefix: 8 },
    dhcp: { mode: 'off' },
    tftp: { port: tftpPort },
    http: { port: httpPort },
    upstream: { url: upstream.url },
    cache: { dir: join(work, 'cache'), maxBytes: 50_000_000 },
    boot: {
      loaders: { bios: 'ipxe/undionly.kpxe' },
      defaultProfile: 'debian',
      profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'] }, other: { kernel: 'x/vmlinuz' } },
    },
    control: { socket: sock },
    log: { level: 'info' },
  };
  writeCfg(baseCfg);
}, 60_000);

afterAll(async () => {
  for (const p of procs) if (p.pid && p.exitCode === null) process.kill(p.pid, 'SIGKILL');
  await upstream.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('bootrelay (bundled agent)', () => {
  it('refuses a bad config: exit 2, each field named on stderr', async () => {
    const bad = join(work, 'bad.json');
    writeCfg({ ...baseCfg, dhcp: { mode: 'server', range: ['127.0.0.100', '10.98.0.5'] }, http: { port: 'eighty' }, tftp: { prot: 69 } }, bad);
    const a = startAgent(bad);
    expect(await a.exited).toBe(2);
    const lines = a.stderr().trim().split('\n');
    expect(lines[0]).toBe('bootrelay: config: dhcp.range[1]: expected an IPv4 address inside 127.0.0.0/8, got "10.98.0.5"');
    expect(lines).toContain('bootrelay: config: tftp.prot: expected one of the keys port, maxBlksize, maxWindowsize, timeout, retries, maxTransfers, maxTransfersPerClient, got unknown key "prot"');
    expect(lines).toContain('bootrelay: config: http.port: expected a port number from 0 to 65535, got "eighty"');
    expect(a.lines).toEqual([]);
  });

  it('--check validates without starting; --version prints the version', () => {
    const r = spawnSync(process.execPath, [AGENT, '--config', cfgFile, '--check'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/config .* ok/);
    const v = spawnSync(process.execPath, [AGENT, '--version'], { encoding: 'utf8' });
    expect(v.stdout).toBe('bootrelay 0.0.0-test\n');
    const u = spawnSync(process.execPath, [AGENT], { encoding: 'utf8' });
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/^bootrelay: --config FILE is required/);
  });

  describe('running', () => {
    let a: Running;
    beforeAll(async () => {
      a = startAgent(cfgFile);
      await waitFor(() => a.lines.some((l) => l.msg === 'bootrelay started') || a.proc.exitCode !== null, 15_000, 'agent started');
      expect(a.proc.exitCode, a.stderr()).toBeNull();
    }, 30_000);

    it('opens the control socket 0600 and answers relayctl --json', async () => {
      expect(statSync(sock).mode & 0o777).toBe(0o600);
      const st = await ctl(['status', '--json'], sock);
      expect(st.code).toBe(0);
      const s = JSON.parse(st.stdout);
      expect(s).toMatchObject({ online: true, agentId: 'itest', version: '0.0.0-test', services: { http: { port: httpPort }, tftp: { port: tftpPort }, dhcp: { mode: 'off' } } });
      expect(JSON.parse((await ctl(['profiles', '--json'], sock)).stdout).map((p: { name: string }) => p.name)).toEqual(['debian', 'other']);
      expect((await ctl(['leases', '--json'], sock)).stdout.trim()).toBe('[]');
    });

    it('rejects bad relayctl arguments with exit 2 and usage', async () => {
      const r = await ctl(['assign', 'not-a-mac', 'debian'], sock);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/not a MAC address/);
      expect(r.stderr).toMatch(/usage: relayctl/);
      const p = await ctl(['assign', MAC, 'nope'], sock);
      expect(p.code).toBe(2);
      expect(p.stderr).toBe('relayctl: no profile "nope" (profiles: debian, other)\n');
    });

    it('tracks an iPXE-style boot over HTTP, logs every step, and watch --until booted exits 0', async () => {
      const watch = ctlAsync(['watch', '--until', 'booted', '--mac', MAC, '--timeout', '20'], sock);
      const base = `http://127.0.0.1:${httpPort}`;
      // whether the watcher subscribes before or after the boot, it sees it (a booted state under 10 s old counts)
      const script = await (await fetch(`${base}/boot.ipxe?mac=${MAC}`)).text();
      expect(script).toMatch(/debian\/vmlinuz/);
      expect((await (await fetch(`${base}/files/debian/vmlinuz?mac=${MAC}`)).arrayBuffer()).byteLength).toBe(300_000);
      expect((await (await fetch(`${base}/files/debian/initrd.gz?mac=${MAC}`)).arrayBuffer()).byteLength).toBe(100_000);
      await waitFor(async () => JSON.parse((await ctl(['clients', '--json'], sock)).stdout).some((c: { phase: string }) => c.phase === 'handoff'), 10_000, 'handoff');
      expect((await fetch(`${base}/booted?mac=${MAC}`)).status).toBeLessThan(300);
      const w = await watch;
      expect(w.code, w.stderr).toBe(0);
      const clients = JSON.parse((await ctl(['clients', '--json'], sock)).stdout);
      const c = clients.find((x: { mac: string }) => x.mac === MAC);
      expect(c).toMatchObject({ mac: MAC, phase: 'booted', profile: 'debian', error: null });
      expect(Object.keys(c.phases)).toEqual(expect.arrayContaining(['ipxe', 'kernel', 'initrd', 'handoff', 'booted']));
      // the log has one JSON line per event with type, mac and file
      const ev = a.lines.filter((l) => l.mac === MAC && typeof l.type === 'string');
      const seq = ev.map((l) => `${l.type}${l.file ? ' ' + l.file : ''}`);
      expect(seq).toEqual(expect.arrayContaining(['http.start debian/vmlinuz', 'http.done debian/vmlinuz', 'http.start debian/initrd.gz', 'client.booted']));
      expect(ev.every((l) => typeof l.time === 'string' && l.level === 'info')).toBe(true);
      expect((await ctl(['explain', MAC], sock)).stdout).toMatch(/reported booted/);
    }, 30_000);

    it('with dhcp.netbootOnce off, /booted from made-up MACs writes nothing to the state dir', async () => {
      const base = `http://127.0.0.1:${httpPort}`;
      for (let i = 0; i < 5; i++) expect((await fetch(`${base}/booted?mac=52:54:00:ee:00:0${i}`)).status).toBe(200);
      await waitFor(() => a.lines.filter((l) => l.type === 'client.booted' && String(l.mac).startsWith('52:54:00:ee')).length === 5, 5000, 'booted logged');
      expect(existsSync(join(baseCfg.stateDir, 'booted.json'))).toBe(false);
    });

    itSkipIf(missingCmds('tftp'))('serves the loader over TFTP to tftp-hpa through the cache', async () => {
      const dest = join(work, 'undionly.kpxe');
      const r = await run('tftp', ['-m', 'binary', '127.0.0.1', String(tftpPort), '-c', 'get', 'ipxe/undionly.kpxe', dest]);
      expect(r.code, r.stderr).toBe(0);
      expect(statSync(dest).size).toBe(70_000);
      await waitFor(() => a.lines.some((l) => l.type === 'tftp.done' && l.file === 'ipxe/undionly.kpxe'), 5000, 'tftp.done logged');
      const ls = JSON.parse((await ctl(['cache', 'ls', '--json'], sock)).stdout).map((e: { path: string }) => e.path);
      expect(ls).toEqual(expect.arrayContaining(['ipxe/undionly.kpxe', 'debian/vmlinuz']));
    });

    it('prefetches a profile and verifies the cache', async () => {
      const r = await ctl(['cache', 'prefetch', 'debian', '--json'], sock);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).entries.map((e: { path: string; pinned: boolean }) => [e.path, e.pinned])).toEqual([
        ['debian/vmlinuz', true],
        ['debian/initrd.gz', true],
      ]);
      expect((await ctl(['cache', 'verify'], sock)).code).toBe(0);
      const bad = await ctl(['cache', 'prefetch', 'nothing/here'], sock);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/^relayctl: .*404|not found/i);
    });

    it('keeps running on a bad config at SIGHUP, applies a good one', async () => {
      writeCfg({ ...baseCfg, boot: { ...baseCfg.boot, defaultProfile: 'missing' } });
      a.proc.kill('SIGHUP');
      await waitFor(() => a.lines.some((l) => l.msg === 'reload refused: keeping the running config'), 5000, 'reload refused');
      expect(a.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('config: boot.defaultProfile: expected a profile name'))).toBe(true);
      expect((await ctl(['status'], sock)).code).toBe(0);
      writeCfg({ ...baseCfg, boot: { ...baseCfg.boot, defaultProfile: 'other' } });
      a.proc.kill('SIGHUP');
      await waitFor(() => a.lines.some((l) => l.msg === 'config reloaded'), 5000, 'reloaded');
      const reload = a.lines.find((l) => l.msg === 'reloading config')!;
      expect(reload.changed).toEqual(['boot']);
      expect(reload.restart).toEqual(['dhcp']);
      const profiles = JSON.parse((await ctl(['profiles', '--json'], sock)).stdout);
      expect(profiles.find((p: { default: boolean }) => p.default).name).toBe('other');
      // a new HTTP port: only HTTP (and DHCP, which names it) restart
      const port2 = await freeTcpPort();
      writeCfg({ ...baseCfg, http: { port: port2 } });
      const before = a.lines.length;
      a.proc.kill('SIGHUP');
      await waitFor(() => a.lines.slice(before).some((l) => l.msg === 'config reloaded'), 5000, 'reloaded again');
      expect(a.lines.slice(before).find((l) => l.msg === 'reloading config')).toMatchObject({ changed: ['http', 'boot'], restart: ['http', 'dhcp'] });
      expect((await fetch(`http://127.0.0.1:${port2}/api/status`)).status).toBe(200);
      await expect(fetch(`http://127.0.0.1:${httpPort}/api/status`)).rejects.toThrow();
      writeCfg(baseCfg);
      const mark = a.lines.length;
      a.proc.kill('SIGHUP');
      await waitFor(() => a.lines.slice(mark).some((l) => l.msg === 'config reloaded'), 5000, 'back to the base config');
      expect((await fetch(`http://127.0.0.1:${httpPort}/api/status`)).status).toBe(200);
    });

    it('after a reload to a busy HTTP port, status reports no HTTP port (not the closed old one), and a good reload brings it back', async () => {
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
      const busy = (blocker.address() as { port: number }).port;
      try {
        writeCfg({ ...baseCfg, http: { port: busy } });
        const mark = a.lines.length;
        a.proc.kill('SIGHUP');
        await waitFor(() => a.lines.slice(mark).some((l) => l.msg === 'config reloaded'), 5000, 'reloaded');
        expect(a.lines.slice(mark).some((l) => typeof l.msg === 'string' && l.msg.startsWith('http did not restart'))).toBe(true);
        const st = JSON.parse((await ctl(['status', '--json'], sock)).stdout);
        expect(st.services.http.port).toBeNull();
      } finally {
        await new Promise<void>((r) => blocker.close(() => r()));
      }
      writeCfg(baseCfg);
      const mark2 = a.lines.length;
      a.proc.kill('SIGHUP');
      await waitFor(() => a.lines.slice(mark2).some((l) => l.msg === 'config reloaded'), 5000, 'back to the base config');
      expect((await fetch(`http://127.0.0.1:${httpPort}/api/status`)).status).toBe(200);
    });

    it('exits 1 with one clear line when a port is taken', async () => {
      const other = join(work, 'other.json');
      writeCfg({ ...baseCfg, control: { socket: join(work, 'other.sock') }, tftp: false }, other);
      const b = startAgent(other);
      expect(await b.exited).toBe(1);
      expect(b.stderr()).toBe(`bootrelay: cannot listen on 127.0.0.1:${httpPort} (http): EADDRINUSE\n`);
      expect(existsSync(join(work, 'other.sock'))).toBe(false);
    });

    it('exits 1 with one clear line when upstream.caFile cannot be read', async () => {
      const other = join(work, 'noca.json');
      const ca = join(work, 'missing-ca.pem');
      writeCfg({ ...baseCfg, upstream: { url: upstream.url, caFile: ca }, http: { port: await freeTcpPort() }, tftp: false, control: { socket: join(work, 'noca.sock') } }, other);
      const b = startAgent(other);
      expect(await b.exited).toBe(1);
      expect(b.stderr()).toBe(`bootrelay: upstream.caFile: cannot read ${ca}: ENOENT\n`);
    });

    it('refuses to start a second agent on the same control socket', async () => {
      const other = join(work, 'other2.json');
      writeCfg({ ...baseCfg, http: { port: await freeTcpPort() }, tftp: false }, other);
      const b = startAgent(other);
      expect(await b.exited).toBe(1);
      expect(b.stderr()).toMatch(/^bootrelay: cannot open the control socket .*another agent is listening/);
      expect(existsSync(sock)).toBe(true);
    });

    it('keeps relayctl assign in stateDir', async () => {
      const r = await ctl(['assign', '52:54:00:aa:00:09', 'other'], sock);
      expect(r.code, r.stderr).toBe(0);
      const profiles = JSON.parse((await ctl(['profiles', '--json'], sock)).stdout);
      expect(profiles.find((p: { name: string }) => p.name === 'other').assigned).toEqual(['52:54:00:aa:00:09']);
      expect(JSON.parse(readFileSync(join(work, 'state', 'assign.json'), 'utf8'))).toEqual({ '52:54:00:aa:00:09': 'other' });
    });

    it('exits 0 on SIGTERM and removes its socket', async () => {
      a.proc.kill('SIGTERM');
      expect(await a.exited).toBe(0);
      expect(existsSync(sock)).toBe(false);
      expect(a.lines.at(-1)?.msg, JSON.stringify(a.lines.slice(-8))).toBe('stopped');
      const dead = await ctl(['status'], sock);
      expect(dead.code).toBe(1);
      expect(dead.stderr).toBe(`relayctl: cannot reach the agent at ${sock}: ENOENT (is bootrelay running?)\n`);
    });
  });

  it('still fetches through the cache when the uplink cannot be read (no ip or ubus on PATH)', async () => {
    const file = join(work, 'no-ip.json');
    const port = await freeTcpPort();
    writeCfg({ ...baseCfg, agentId: 'itest-noip', stateDir: join(work, 'state-noip'), cache: { dir: join(work, 'cache-noip') }, http: { port }, tftp: false, control: { socket: join(work, 'noip.sock') } }, file);
    const a = startAgent(file, { ...process.env, PATH: join(work, 'empty-path') }); // no ip, no ubus
    try {
      await waitFor(() => a.lines.some((l) => l.msg === 'bootrelay started') || a.proc.exitCode !== null, 15_000, 'agent started');
      expect(a.proc.exitCode, a.stderr()).toBeNull();
      // the uplink is read from /proc and /sys (no program needed); ubus is missing: not tried again
      await waitFor(() => a.lines.some((l) => l.component === 'uplink'), 5000, 'an uplink reading');
      const r = await fetch(`http://127.0.0.1:${port}/files/debian/vmlinuz`);
      expect(r.status).toBe(200);
      expect((await r.arrayBuffer()).byteLength).toBe(300_000);
    } finally {
      a.proc.kill('SIGTERM');
      await a.exited;
    }
  });

  describeSkipIf(mosquittoSkipReason())('with MQTT', () => {
    let broker: Mosquitto;
    let a: Running;
    let sub: mqtt.MqttClient;
    const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
    const sock2 = join(work, 'mqtt.sock');

    beforeAll(async () => {
      broker = await Mosquitto.start({ websockets: false });
      const file = join(work, 'mqtt.json');
      writeCfg({ ...baseCfg, agentId: 'itest-mqtt', stateDir: join(work, 'state-mqtt'), http: { port: await freeTcpPort() }, tftp: false, control: { socket: sock2 }, mqtt: { url: broker.url, prefix: 'bootrelay' } }, file);
      a = startAgent(file);
      await waitFor(() => a.lines.some((l) => l.msg === 'bootrelay started') || a.proc.exitCode !== null, 15_000, 'agent started');
      expect(a.proc.exitCode, a.stderr()).toBeNull();
      sub = mqtt.connect(broker.url);
      sub.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), retain: packet.retain }));
      await new Promise<void>((r) => sub.on('connect', () => sub.subscribe('bootrelay/itest-mqtt/#', { qos: 1 }, () => r())));
    }, 30_000);

    afterAll(async () => {
      sub?.end(true);
      if (a && a.proc.exitCode === null) a.proc.kill('SIGKILL');
      await broker?.cleanup();
    });

    it('publishes status, client state and events; offline on SIGTERM', async () => {
      await waitFor(() => got.some((m) => m.topic === 'bootrelay/itest-mqtt/status' && JSON.parse(m.payload).online === true), 10_000, 'status online');
      const status = JSON.parse(got.find((m) => m.topic === 'bootrelay/itest-mqtt/status')!.payload);
      expect(status).toMatchObject({ online: true, agentId: 'itest-mqtt', version: '0.0.0-test', clients: { total: 0 } });
      const port = JSON.parse((await ctl(['status', '--json'], sock2)).stdout).services.http.port;
      expect((await fetch(`http://127.0.0.1:${port}/booted?mac=52:54:00:aa:00:02`)).status).toBeLessThan(300);
      await waitFor(() => got.some((m) => m.topic === 'bootrelay/itest-mqtt/clients/52:54:00:aa:00:02'), 10_000, 'client state');
      const state = JSON.parse(got.filter((m) => m.topic === 'bootrelay/itest-mqtt/clients/52:54:00:aa:00:02').at(-1)!.payload);
      expect(state).toMatchObject({ mac: '52:54:00:aa:00:02', phase: 'booted', error: null });
      await waitFor(() => got.some((m) => m.topic === 'bootrelay/itest-mqtt/events' && JSON.parse(m.payload).type === 'client.booted'), 10_000, 'event');
      a.proc.kill('SIGTERM');
      expect(await a.exited).toBe(0);
      await waitFor(() => got.some((m) => m.topic === 'bootrelay/itest-mqtt/status' && JSON.parse(m.payload).online === false), 10_000, 'status offline');
    }, 40_000);
  });
});
