/**
 * `relayctl watch` on a real terminal: the bundled relayctl runs inside tmux
 * (its own server socket, killed by PID afterwards) against an in-process
 * control server fed by a real tracker; the screen is read back with
 * capture-pane. Progress bars must be drawn, and redrawn in place (one line
 * per client on screen, not one per update).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Bus } from '../../agent/bus';
import { ClientTracker } from '../../agent/clients/tracker';
import { BootPlan } from '../../relay/boot/plan';
import { parseConfig } from '../../agent/config/load';
import { createHandlers, createWatch, type CommandDeps } from '../../agent/control/commands';
import { ControlServer } from '../../agent/control/server';
import { silentLogger } from '../../agent/log';
import type { RelayEventType } from '../../proto/events';
import { scripted, type EventFields } from '../helpers/events';
import { waitFor } from '../helpers/netns';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const root = join(__dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'brtty-'));
const CTL = join(work, 'relayctl.js');
const TMUX = ['-L', `brtty${process.pid}`, '-f', '/dev/null'];
const MAC_A = '52:54:00:77:00:01';
const MAC_B = '52:54:00:77:00:02';

function tmux(...args: string[]): string {
  const r = spawnSync('tmux', [...TMUX, ...args], { encoding: 'utf8', timeout: 10_000 });
  return r.stdout ?? '';
}

const screen = () => tmux('capture-pane', '-p', '-t', 'w');

describeSkipIf(missingCmds('tmux'))('relayctl watch on a terminal (tmux)', () => {
  let server: ControlServer;
  let bus: Bus;
  let tracker: ClientTracker;
  let tmuxPid: number | undefined;
  const sock = join(work, 'ctl.sock');
  const exitFile = join(work, 'exit');

  beforeAll(async () => {
    await build({ entryPoints: ['agent/cli/relayctl.ts'], outfile: CTL, bundle: true, platform: 'node', target: 'node20', format: 'cjs', logLevel: 'error', absWorkingDir: root });
    const r = parseConfig({
      lan: { address: '10.99.0.1', prefix: 24 },
      dhcp: { mode: 'off' },
      upstream: { url: 'http://10.99.1.2/' },
      boot: { profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'] } } },
    });
    if (!r.ok) throw new Error('config');
    bus = new Bus();
    tracker = new ClientTracker({ plan: new BootPlan({ boot: r.config.boot }) });
    bus.on('relay', (e) => tracker.apply(e));
    tracker.on('client', (s) => bus.emit('client', s));
    const deps: CommandDeps = {
      config: () => r.config,
      tracker,
      status: () => ({}),
      assign: () => {},
      subscribe: (fn) => {
        const a = bus.subscribe('relay', (e) => fn('relay', e));
        const b = bus.subscribe('client', (s) => fn('client', s));
        return () => (a(), b());
      },
    };
    server = new ControlServer({ socket: sock, handlers: createHandlers(deps), watch: createWatch(deps), log: silentLogger });
    await server.start();
  }, 60_000);

  afterAll(async () => {
    if (tmuxPid) {
      try {
        process.kill(tmuxPid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await server?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('draws a bar per client, redrawn in place, and exits 0 when they booted', async () => {
    const cmd = `node ${CTL} --socket ${sock} watch --until booted --timeout 30; echo $? > ${exitFile}; sleep 60`;
    tmux('new-session', '-d', '-s', 'w', '-x', '160', '-y', '20', cmd);
    tmuxPid = Number(tmux('display-message', '-p', '-t', 'w', '#{pid}').trim()) || undefined;
    await waitFor(() => bus.listenerCount('client') > 0, 10_000, 'relayctl subscribed');
    await waitFor(() => screen().includes('waiting for clients'), 5000, 'waiting line');

    const ev = <T extends RelayEventType>(mac: string, type: T, f: EventFields<T> = {}) => bus.emit('relay', scripted(type, { mac, ...f }));
    for (const mac of [MAC_A, MAC_B]) {
      ev(mac, 'dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
      ev(mac, 'dhcp.ack', { firmware: 'ipxe', arch: 'bios', ip: mac === MAC_A ? '10.99.0.101' : '10.99.0.102' });
      ev(mac, 'http.start', { file: '/boot.ipxe' });
      ev(mac, 'http.start', { file: 'debian/vmlinuz', totalBytes: 4_000_000 });
    }
    for (let i = 1; i <= 10; i++) {
      ev(MAC_A, 'http.progress', { file: 'debian/vmlinuz', bytes: i * 200_000, totalBytes: 4_000_000 });
      ev(MAC_B, 'http.progress', { file: 'debian/vmlinuz', bytes: i * 100_000, totalBytes: 4_000_000 });
    }
    await waitFor(() => /52:54:00:77:00:01 .*kernel .*\[#+\.+\] +50% 2\.0 MB\/4\.0 MB/.test(screen()), 5000, 'bar for A at 50%');
    const s = screen();
    expect(s).toMatch(/52:54:00:77:00:02 .*kernel .*\[#+\.+\] +25% 1\.0 MB\/4\.0 MB/);
    // redrawn in place: each client once on screen, the waiting line gone
    expect(s.split('\n').filter((l) => l.includes(MAC_A))).toHaveLength(1);
    expect(s.split('\n').filter((l) => l.includes(MAC_B))).toHaveLength(1);
    expect(s).not.toContain('waiting for clients');

    for (const mac of [MAC_A, MAC_B]) {
      ev(mac, 'http.done', { file: 'debian/vmlinuz', bytes: 4_000_000 });
      ev(mac, 'http.start', { file: 'debian/initrd.gz', totalBytes: 1000 });
      ev(mac, 'http.done', { file: 'debian/initrd.gz', bytes: 1000 });
    }
    ev(MAC_A, 'client.booted');
    await waitFor(() => /52:54:00:77:00:01 .*booted \(debian\)/.test(screen()), 5000, 'A booted');
    expect(screen()).toMatch(/52:54:00:77:00:02 .*handoff/);
    ev(MAC_B, 'client.booted');
    await waitFor(() => {
      try {
        return readFileSync(exitFile, 'utf8').trim() === '0';
      } catch {
        return false;
      }
    }, 5000, 'relayctl exited 0');
    expect(screen()).toMatch(/booted in/);
  }, 60_000);
});
