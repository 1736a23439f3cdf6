import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Bus } from '../../../../agent/bus';
import { parseArgs, runRelayctl, USAGE, type CliIo } from '../../../../agent/cli/app';
import { ClientTracker } from '../../../../agent/clients/tracker';
import { BootPlan } from '../../../../relay/boot/plan';
import { parseConfig } from '../../../../agent/config/load';
import { createHandlers, createWatch, type CommandDeps } from '../../../../agent/control/commands';
import { ControlServer } from '../../../../agent/control/server';
import { silentLogger } from '../../../../agent/log';
import type { RelayEventType } from '../../../../proto/events';
import { scripted, type EventFields } from '../../../helpers/events';
import { PacketTrace } from '../../../../relay/trace';
import { waitFor } from '../../../helpers/netns';

const dir = mkdtempSync(join(tmpdir(), 'brcli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function io(opts: { tty?: boolean } = {}) {
  let stdout = '';
  let stderr = '';
  let interrupt!: () => void;
  const x: CliIo & { out(): string; err(): string; interrupt(): void } = {
    stdout: { write: (s: string) => (stdout += s), isTTY: opts.tty, columns: 160 },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    cwd: dir,
    interrupted: new Promise<void>((r) => (interrupt = r)),
    out: () => stdout,
    err: () => stderr,
    interrupt: () => interrupt(),
  };
  return x;
}

const cfgResult = parseConfig({
  lan: { address: '10.99.0.1', prefix: 24 },
  upstream: { url: 'http://10.99.1.2/boot/' },
  boot: {
    loaders: { bios: 'ipxe/undionly.kpxe', 'uefi-x64': 'ipxe/snponly.efi' },
    profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'] } },
  },
});
if (!cfgResult.ok) throw new Error('fixture config');
const cfg = cfgResult.config;

let server: ControlServer;
let bus: Bus;
let tracker: ClientTracker;
let sock: string;
let trace: PacketTrace;
let n = 0;

beforeEach(async () => {
  bus = new Bus();
  const plan = new BootPlan({ boot: cfg.boot });
  tracker = new ClientTracker({ plan });
  bus.on('relay', (e) => tracker.apply(e));
  tracker.on('client', (s) => bus.emit('client', s));
  trace = new PacketTrace();
  const deps: CommandDeps = {
    config: () => cfg,
    tracker,
    status: () => ({ online: true, agentId: 'test', version: 'dev', startedAt: new Date().toISOString(), clients: { total: tracker.list().length, byPhase: {} } }),
    cache: {
      list: () => [{ path: 'debian/vmlinuz', size: 8_000_000, complete: true, pinned: false, hits: 3, lastUsedAt: new Date().toISOString() }],
      prefetch: async (p, pin) => ({ path: p, size: 1, pinned: pin }),
      purge: async () => 2,
      verify: async () => [{ path: 'debian/vmlinuz', ok: false, reason: 'sha256 mismatch' }],
    },
    dhcp: {
      leases: () => [
        { mac: '52:54:00:00:00:01', ip: '10.99.0.100', expiresAt: '2030-01-01T00:00:00Z', static: false, active: true },
        { mac: '52:54:00:00:00:02', ip: '10.99.0.101', expiresAt: '2030-01-01T00:00:00Z', static: false, active: true, hostname: 'pxe2', fqdn: 'pxe2.lab', clientId: '00616263' },
      ],
      rearm: () => {},
    },
    trace,
    assign: (m, p) => plan.assign(m, p),
    assignUuid: (u, p) => plan.assignUuid(u, p),
    subscribe: (fn) => {
      const a = bus.subscribe('relay', (e) => fn('relay', e));
      const b = bus.subscribe('client', (s) => fn('client', s));
      return () => (a(), b());
    },
  };
  sock = join(dir, `a${n++}.sock`);
  server = new ControlServer({ socket: sock, handlers: createHandlers(deps), watch: createWatch(deps), log: silentLogger });
  await server.start();
});
afterEach(() => server.stop());

const run = (args: string[], x = io()) => runRelayctl(['--socket', sock, ...args], x).then((code) => ({ code, out: x.out(), err: x.err() }));
const ev = <T extends RelayEventType>(type: T, f: EventFields<T> = {}) => bus.emit('relay', scripted(type, { mac: '52:54:00:00:00:01', ...f }));

function bootToBooted(): void {
  ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
  ev('dhcp.ack', { firmware: 'ipxe', arch: 'bios', ip: '10.99.0.100' });
  ev('http.start', { file: '/boot.ipxe' });
  ev('http.start', { file: 'debian/vmlinuz', totalBytes: 1000 });
  ev('http.progress', { file: 'debian/vmlinuz', bytes: 500, totalBytes: 1000 });
  ev('http.done', { file: 'debian/vmlinuz', bytes: 1000 });
  ev('http.start', { file: 'debian/initrd.gz', totalBytes: 100 });
  ev('http.done', { file: 'debian/initrd.gz', bytes: 100 });
  ev('client.booted');
}

describe('relayctl', () => {
  it('parses flags anywhere, with = or a separate value', () => {
    const p = parseArgs(['watch', '--until=booted', '--mac', '52-54-00-00-00-01', '--timeout', '5', '--json'], { BOOTRELAY_SOCKET: '/x.sock' });
    expect(p).toMatchObject({ words: ['watch'], until: 'booted', mac: '52:54:00:00:00:01', timeout: 5, json: true, socket: '/x.sock' });
  });

  it.each([
    [[], 'no command given'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['assign', '52:54:00:00:00:01'], 'usage: relayctl assign MAC|UUID PROFILE'],
    [['assign', 'zz', 'debian'], 'not a MAC address: "zz"'],
    [['trace', '52:54:00:00:00:01'], 'trace needs -o FILE.pcap'],
    [['watch', '--until', 'dhcp'], '--until takes "booted"'],
    [['watch', '--timeout', 'soon'], '--timeout takes a number of seconds'],
    [['status', '--bogus'], 'unknown option --bogus'],
    [['cache'], 'usage: relayctl cache ls|prefetch|purge|verify'],
    [['config', 'check'], 'usage: relayctl config check FILE'],
  ])('exits 2 with usage for %j', async (args, msg) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(msg);
    expect(r.err).toContain('usage: relayctl [--socket PATH]');
  });

  it('prints help on --help with exit 0', async () => {
    const r = await run(['--help']);
    expect(r).toMatchObject({ code: 0, out: USAGE });
  });

  it('says clearly when the agent is not there', async () => {
    const x = io();
    const code = await runRelayctl(['--socket', join(dir, 'nobody.sock'), 'status'], x);
    expect(code).toBe(1);
    expect(x.err()).toBe(`relayctl: cannot reach the agent at ${join(dir, 'nobody.sock')}: ENOENT (is bootrelay running?)\n`);
  });

  it('prints status, clients, leases, profiles, cache as tables and as --json', async () => {
    bootToBooted();
    const st = await run(['status']);
    expect(st.code).toBe(0);
    expect(st.out).toMatch(/^agent: +test online, version dev/m);
    const cl = await run(['clients']);
    expect(cl.out.split('\n')[0]).toMatch(/^MAC +IP +ARCH +FIRMWARE +PROFILE +PHASE/);
    expect(cl.out).toMatch(/52:54:00:00:00:01 +10\.99\.0\.100 +bios +ipxe +debian +booted/);
    const js = await run(['clients', '--json']);
    expect(JSON.parse(js.out)[0]).toMatchObject({ mac: '52:54:00:00:00:01', phase: 'booted' });
    expect((await run(['leases'])).out).toMatch(/52:54:00:00:00:01 +10\.99\.0\.100/);
    expect((await run(['profiles'])).out).toMatch(/debian +yes +debian\/vmlinuz +debian\/initrd\.gz/);
    expect((await run(['cache', 'ls'])).out).toMatch(/debian\/vmlinuz +8\.0 MB +yes +no +3/);
    expect(JSON.parse((await run(['--json', 'leases'])).out)).toHaveLength(2);
    // hostname (12), FQDN (81) and the client identifier (61) the lease is keyed by
    expect((await run(['leases'])).out).toMatch(/HOSTNAME +FQDN +CLIENT-ID\n[^]*52:54:00:00:00:02 +10\.99\.0\.101 .* pxe2 +pxe2\.lab +00616263/);
  });

  it('exits 1 when cache verify finds a bad file', async () => {
    const r = await run(['cache', 'verify']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/debian\/vmlinuz +no +sha256 mismatch/);
  });

  it('assigns, explains, rejects an unknown profile with exit 2', async () => {
    expect((await run(['assign', '52:54:00:00:00:05', 'debian'])).out).toBe('52:54:00:00:00:05 → profile debian\n');
    const bad = await run(['assign', '52:54:00:00:00:05', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe('relayctl: no profile "nope" (profiles: debian)\n');
    expect((await run(['explain', '52:54:00:00:00:06'])).out).toMatch(/Nothing has been seen/);
  });

  it('writes a trace as a pcap file', async () => {
    trace.record({ mac: '52:54:00:00:00:01', dir: 'in', clientIp: '0.0.0.0', clientPort: 68, serverIp: '10.99.0.1', serverPort: 67, payload: Buffer.alloc(300) });
    const r = await run(['trace', '52:54:00:00:00:01', '-o', 'x.pcap']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/wrote 1 packets/);
    expect(readFileSync(join(dir, 'x.pcap')).readUInt32LE(0)).toBe(0xa1b2c3d4);
  });

  it('checks a config file locally, without the agent', async () => {
    const good = join(dir, 'good.json');
    const bad = join(dir, 'bad.json');
    writeFileSync(good, JSON.stringify({ lan: { address: '10.99.0.1', prefix: 24 }, upstream: { url: 'http://x/' }, boot: { loaders: { bios: 'a' }, profiles: { p: { kernel: 'k' } } } }));
    writeFileSync(bad, JSON.stringify({ lan: { address: '10.99.0.1', prefix: 24 }, dhcp: { range: ['10.99.0.100', '10.98.0.5'] }, upstream: { url: 'http://x/' }, boot: { loaders: { bios: 'a' }, profiles: { p: { kernel: 'k' } } } }));
    const x = io();
    expect(await runRelayctl(['--socket', '/nonexistent', 'config', 'check', 'good.json'], x)).toBe(0);
    expect(x.out()).toBe(`${good}: ok\n`);
    const y = io();
    expect(await runRelayctl(['config', 'check', bad], y)).toBe(1);
    expect(y.err()).toBe(`${bad}: dhcp.range[1]: expected an IPv4 address inside 10.99.0.0/24, got "10.98.0.5"\n`);
  });

  it('watch --until booted exits 0 once the client booted, printing lines when not a terminal', async () => {
    const x = io();
    const p = run(['watch', '--until', 'booted', '--mac', '52:54:00:00:00:01', '--timeout', '10'], x);
    await waitFor(() => bus.listenerCount('client') >= 1, 2000, 'watch subscribed');
    bootToBooted();
    const r = await p;
    expect(r.code).toBe(0);
    const phases = r.out.trim().split('\n').map((l) => l.split(' ')[3]);
    expect(phases).toEqual(['dhcp', 'bound', 'ipxe', 'kernel', 'initrd', 'handoff', 'booted']);
    expect(r.err).toMatch(/52:54:00:00:00:01 booted in/);
  });

  it('watch --until booted exits 1 on failure and on timeout', async () => {
    const p = run(['watch', '--until', 'booted', '--mac', '52:54:00:00:00:01', '--timeout', '10']);
    await waitFor(() => bus.listenerCount('client') >= 1, 2000, 'watch subscribed');
    ev('dhcp.discover', { firmware: 'uefi', arch: 'uefi-arm64' });
    ev('dhcp.no-loader', { arch: 'uefi-arm64' });
    const r = await p;
    expect(r.code).toBe(1);
    expect(r.err).toBe('relayctl: 52:54:00:00:00:01 failed: no loader configured for arch uefi-arm64\n');
    const t = await run(['watch', '--until', 'booted', '--mac', '52:54:00:00:00:02', '--timeout', '0.3']);
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/timed out after 0.3 s waiting for 52:54:00:00:00:02/);
  });

  it('watch draws progress bars in place on a terminal', async () => {
    const x = io({ tty: true });
    const p = run(['watch', '--until', 'booted', '--timeout', '10'], x);
    await waitFor(() => bus.listenerCount('client') >= 1, 2000, 'watch subscribed');
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('http.start', { file: 'debian/vmlinuz', totalBytes: 1000 });
    ev('http.progress', { file: 'debian/vmlinuz', bytes: 500, totalBytes: 1000 });
    // byte progress is throttled by the tracker; the agent's 1 s tick flushes it
    await waitFor(() => (tracker.tick(), x.out().includes('50%')), 2000, 'a bar drawn');
    expect(x.out()).toMatch(/\[#{12}\.{12}\] +50% 500 B\/1\.0 kB/);
    ev('http.done', { file: 'debian/vmlinuz' });
    ev('http.start', { file: 'debian/initrd.gz' });
    ev('http.done', { file: 'debian/initrd.gz' });
    ev('client.booted');
    const r = await p;
    expect(r.code).toBe(0);
    expect(r.out).toContain('\x1b[1A\x1b[2K'); // redrawn in place
    expect(r.out).toMatch(/booted \(debian\)/);
  });

  it('watch --json streams one JSON document per line until interrupted', async () => {
    const x = io();
    const p = run(['watch', '--json'], x);
    await waitFor(() => bus.listenerCount('client') >= 1, 2000, 'watch subscribed');
    ev('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    await waitFor(() => x.out().split('\n').length > 2, 2000, 'lines');
    x.interrupt();
    const r = await p;
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.event).sort()).toEqual(['client', 'relay']);
  });
});

describe('relayctl: USB NIC, Secure Boot, UUID (issue 14)', () => {
  it('clients shows the NIC iPXE named and what the booted system said about Secure Boot', async () => {
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios', nic: { bus: 'usb', vendor: '0b95', device: '772a', name: 'ASIX AX88772A' } });
    ev('client.booted', { secureboot: '1', report: { secureboot: '1' } });
    const r = await run(['clients']);
    expect(r.code).toBe(0);
    const [head, row] = r.out.split('\n');
    expect(head).toMatch(/ NIC +SB /);
    expect(row).toContain('USB 0b95:772a ASIX AX88772A');
    expect(row).toMatch(/ on /);
    const j = JSON.parse((await run(['--json', 'clients'])).out);
    expect(j[0]).toMatchObject({ nic: { bus: 'usb', vendor: '0b95', device: '772a' }, secureBoot: true });
  });

  it('assign takes a UUID as well as a MAC; a malformed or all-zero UUID is a usage error', async () => {
    const r = await run(['assign', '8A7E4C52-1D5E-4B2F-9F5E-0123456789AB', 'debian']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe('UUID 8a7e4c52-1d5e-4b2f-9f5e-0123456789ab → profile debian\n');
    expect((await run(['assign', '00000000-0000-0000-0000-000000000000', 'debian'])).code).toBe(2);
    expect((await run(['assign', 'not-a-uuid-or-mac', 'debian'])).code).toBe(2);
  });
});
