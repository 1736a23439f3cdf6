import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ClientStore, CLIENTS_FILE, LEGACY_CLIENTS_FILE, readSavedClients } from '../../../../agent/clients/store';
import { ClientTracker, type ClientState } from '../../../../agent/clients/tracker';
import { silentLogger } from '../../../../agent/log';
import type { BootConfig } from '../../../../agent/config/types';
import { BootPlan } from '../../../../relay/boot/plan';
import { scripted } from '../../../helpers/events';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpDir(): string {
  const d = fs.mkdtempSync(join(os.tmpdir(), 'br-clients-'));
  dirs.push(d);
  return join(d, 'state');
}

const PLAN: BootConfig = { assign: {}, loaders: { bios: ['ipxe/undionly.kpxe'] }, defaultProfile: 'debian', profiles: { debian: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'] } } };
const mac = (i: number) => `52:54:00:66:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

/** A tracker whose updates go to a ClientStore in `dir`, as the agent wires them (one "run" of the agent). */
function run(dir: string, o: { compactMinBytes?: number; progressMs?: number } = {}) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const tracker = new ClientTracker({ plan: new BootPlan({ boot: PLAN }), now: () => now });
  const store = new ClientStore({ dir: () => dir, log: silentLogger, clients: () => tracker.list(), ...o });
  const restored = tracker.restore(store.read());
  tracker.on('client', (u) => store.changed(u));
  const ip = (i: number) => `10.99.66.${100 + i}`;
  /** one complete boot of client i, as the lab's firmware does it */
  const boot = (i: number) => {
    const m = mac(i);
    const e = (type: Parameters<typeof scripted>[0], f: object = {}) => {
      now += 50;
      tracker.apply(scripted(type, { mac: m, ...f } as never));
    };
    e('dhcp.discover', { firmware: 'bios', arch: 'bios' });
    e('dhcp.offer', { firmware: 'bios', arch: 'bios', ip: ip(i), file: 'ipxe/undionly.kpxe' });
    e('dhcp.request', { firmware: 'bios', arch: 'bios' });
    e('dhcp.ack', { firmware: 'bios', arch: 'bios', ip: ip(i), file: 'ipxe/undionly.kpxe' });
    e('tftp.start', { ip: ip(i), file: 'ipxe/undionly.kpxe', totalBytes: 70_000 });
    e('tftp.progress', { ip: ip(i), file: 'ipxe/undionly.kpxe', bytes: 35_000, totalBytes: 70_000 });
    e('tftp.done', { ip: ip(i), file: 'ipxe/undionly.kpxe', bytes: 70_000 });
    e('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    e('dhcp.ack', { firmware: 'ipxe', arch: 'bios', ip: ip(i), file: `http://10.99.66.1/boot.ipxe` });
    e('http.start', { ip: ip(i), file: 'debian/vmlinuz', totalBytes: 8e6 });
    e('http.progress', { ip: ip(i), file: 'debian/vmlinuz', bytes: 4e6, totalBytes: 8e6 });
    e('http.done', { ip: ip(i), file: 'debian/vmlinuz', bytes: 8e6 });
    e('http.start', { ip: ip(i), file: 'debian/initrd.gz', totalBytes: 16e6 });
    e('http.done', { ip: ip(i), file: 'debian/initrd.gz', bytes: 16e6 });
    e('client.booted', { ip: ip(i) });
  };
  return { tracker, store, restored, boot };
}

const size = (dir: string) => fs.statSync(join(dir, CLIENTS_FILE)).size;
const byMac = (list: ClientState[]) => Object.fromEntries(list.map((s) => [s.mac, { ...s, etaSeconds: undefined, rate: undefined }]));

describe('ClientStore (stateDir/clients.jsonl)', () => {
  it('after a crash (no stop, no flush) the next run restores every client as it last was', () => {
    const dir = tmpDir();
    const a = run(dir);
    for (let i = 0; i < 5; i++) a.boot(i);
    // client 5 is mid-kernel when the process dies
    a.tracker.apply(scripted('dhcp.discover', { mac: mac(5), firmware: 'ipxe', arch: 'bios' }));
    a.tracker.apply(scripted('http.start', { mac: mac(5), ip: '10.99.66.105', file: 'debian/vmlinuz', totalBytes: 10 }));
    const b = run(dir);
    expect(b.restored).toBe(6);
    expect(byMac(b.tracker.list())).toEqual(byMac(a.tracker.list()));
    expect(b.tracker.get(mac(0))?.phase).toBe('booted');
    expect(b.tracker.get(mac(5))).toMatchObject({ phase: 'kernel', file: 'debian/vmlinuz' });
  });

  it('a boot costs the same bytes whatever the number of clients known (one line per change of that client)', () => {
    const dir = tmpDir();
    const a = run(dir, { compactMinBytes: 1 << 30 });
    const cost: number[] = [];
    a.boot(0);
    for (let i = 1; i <= 40; i++) {
      const before = size(dir);
      a.boot(i);
      cost.push(size(dir) - before);
    }
    expect(Math.max(...cost)).toBeLessThan(1.1 * Math.min(...cost));
    expect(Math.max(...cost)).toBeLessThan(16 * 1024);
    expect(a.store.stats.compactions).toBe(1); // the first write only (no file yet)
  });

  it('byte progress waits for the timer, and is dropped when a phase write of the same client comes first', async () => {
    const dir = tmpDir();
    const a = run(dir, { progressMs: 50 });
    const ev = (type: Parameters<typeof scripted>[0], f: object) => a.tracker.apply(scripted(type, { mac: mac(0), ip: '10.99.66.100', file: 'debian/vmlinuz', ...f } as never));
    ev('dhcp.discover', { firmware: 'ipxe', arch: 'bios' });
    ev('http.start', { totalBytes: 100 });
    let lines = a.store.stats.lines;
    ev('http.progress', { bytes: 40, totalBytes: 100 });
    ev('http.done', { bytes: 100 }); // the progress before it is never written
    expect(a.store.stats.lines).toBe(lines + 1);
    a.store.flush();
    expect(a.store.stats.lines).toBe(lines + 1);
    ev('http.start', { file: 'debian/initrd.gz', totalBytes: 100 });
    lines = a.store.stats.lines;
    ev('http.progress', { file: 'debian/initrd.gz', bytes: 10, totalBytes: 100 });
    ev('http.progress', { file: 'debian/initrd.gz', bytes: 60, totalBytes: 100 });
    expect(a.store.stats.lines).toBe(lines);
    await new Promise((r) => setTimeout(r, 150));
    expect(a.store.stats.lines).toBe(lines + 1); // the latest of the two, once
    expect(run(dir).tracker.get(mac(0))).toMatchObject({ phase: 'initrd', bytes: 60 });
  });

  it('compacts when the journal holds more than twice what is live: bounded, and the states survive it', () => {
    const dir = tmpDir();
    const a = run(dir, { compactMinBytes: 16 * 1024 });
    for (let r = 0; r < 30; r++) for (let i = 0; i < 3; i++) a.boot(i);
    expect(a.store.stats.compactions).toBeGreaterThan(2);
    const live = readSavedClients(dir);
    expect(live.states).toHaveLength(3);
    expect(size(dir)).toBeLessThanOrEqual(2 * live.lines * (live.bytes / live.lines) + 16 * 1024 + 4096);
    expect(byMac(run(dir).tracker.list())).toEqual(byMac(a.tracker.list()));
  });

  it('a torn last line (power cut mid-write) is skipped and the next write compacts', () => {
    const dir = tmpDir();
    const a = run(dir);
    a.boot(0);
    a.boot(1);
    fs.appendFileSync(join(dir, CLIENTS_FILE), '{"mac":"52:54:00:66:00:01","pha');
    const b = run(dir);
    expect(b.restored).toBe(2);
    expect(b.tracker.get(mac(1))?.phase).toBe('booted');
    b.boot(2);
    const after = readSavedClients(dir);
    expect(after.bad).toBe(0);
    expect(after.states).toHaveLength(3);
  });

  it('reads the clients.json of an earlier version, and the first write replaces it', () => {
    const dir = tmpDir();
    const a = run(join(dir, '..', 'old'));
    a.boot(0);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(join(dir, LEGACY_CLIENTS_FILE), JSON.stringify(a.tracker.list(), null, 2));
    const b = run(dir);
    expect(b.restored).toBe(1);
    b.boot(1);
    expect(fs.existsSync(join(dir, LEGACY_CLIENTS_FILE))).toBe(false);
    expect(readSavedClients(dir).states).toHaveLength(2);
    expect(run(dir).tracker.get(mac(0))?.phase).toBe('booted');
  });

  it('a new state directory (reload) gets every client at its first write', () => {
    let dir = tmpDir();
    let now = Date.parse('2026-01-01T00:00:00Z');
    const tracker = new ClientTracker({ plan: new BootPlan({ boot: PLAN }), now: () => (now += 10) });
    const store = new ClientStore({ dir: () => dir, log: silentLogger, clients: () => tracker.list() });
    tracker.on('client', (u) => store.changed(u));
    tracker.apply(scripted('dhcp.discover', { mac: mac(0), firmware: 'ipxe', arch: 'bios' }));
    tracker.apply(scripted('client.booted', { mac: mac(0) }));
    dir = tmpDir();
    tracker.apply(scripted('dhcp.discover', { mac: mac(1), firmware: 'ipxe', arch: 'bios' }));
    tracker.apply(scripted('client.booted', { mac: mac(1) }));
    expect(readSavedClients(dir).states.map((s) => (s as ClientState).mac).sort()).toEqual([mac(0), mac(1)]);
  });
});
