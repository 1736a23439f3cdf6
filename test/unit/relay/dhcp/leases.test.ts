import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { LeaseStore, LEASE_FILE } from '../../../../relay/dhcp/leases';

const tmp = mkdtempSync(join(tmpdir(), 'brd-leases-'));
let childJs = '';

beforeAll(async () => {
  childJs = join(tmp, 'lease-child.cjs');
  await build({ entryPoints: [new URL('./fixtures/lease-child.ts', import.meta.url).pathname], bundle: true, platform: 'node', format: 'cjs', outfile: childJs, logLevel: 'warning' });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function store(dir: string, over: Partial<ConstructorParameters<typeof LeaseStore>[0]> = {}) {
  return new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.199'], leaseSeconds: 3600, ...over });
}

describe('LeaseStore', () => {
  it('commits a burst with one fsync, and loads it back', async () => {
    const dir = join(tmp, 'burst');
    const s = store(dir);
    await s.load();
    const ps = [];
    for (let i = 0; i < 50; i++) {
      const mac = `52:54:00:00:00:${i.toString(16).padStart(2, '0')}`;
      ps.push(s.commit(mac, s.offer(mac)!));
    }
    await Promise.all(ps);
    expect(s.fsyncs).toBe(1);
    expect(s.records).toBe(50);
    await s.close();
    const again = store(dir);
    await again.load();
    expect(again.list().length).toBe(50);
    expect(new Set(again.list().map((l) => l.ip)).size).toBe(50);
    await again.close();
  });

  it('a commit resolves only after the record is in the file', async () => {
    const dir = join(tmp, 'durable');
    const s = store(dir);
    await s.load();
    const p = s.commit('52:54:00:00:00:01', '10.99.0.100');
    expect(readFileSync(join(dir, LEASE_FILE), 'utf8')).toBe('');
    await p;
    expect(readFileSync(join(dir, LEASE_FILE), 'utf8')).toContain('"10.99.0.100"');
    await s.close();
  });

  it('skips journal lines that parse to no record (null, numbers, strings) instead of failing to start', async () => {
    const dir = join(tmp, 'nulls');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, LEASE_FILE), 'null\n7\n"x"\n{"op":"commit","mac":"52:54:00:00:00:09","ip":"10.99.0.109","exp":9999999999999}\n');
    const s = store(dir);
    await s.load();
    expect(s.skippedLines).toBe(3);
    expect(s.get('52:54:00:00:00:09')?.ip).toBe('10.99.0.109');
    await s.close();
  });

  it('tolerates a torn last line', async () => {
    const dir = join(tmp, 'torn');
    const s = store(dir);
    await s.load();
    await s.commit('52:54:00:00:00:01', '10.99.0.100');
    await s.commit('52:54:00:00:00:02', '10.99.0.101');
    await s.close();
    appendFileSync(join(dir, LEASE_FILE), '{"op":"commit","mac":"52:54:00:00:00:03","ip":"10.9');
    const r = store(dir);
    await r.load();
    expect(r.skippedLines).toBe(1);
    expect(r.list().map((l) => l.mac).sort()).toEqual(['52:54:00:00:00:01', '52:54:00:00:00:02']);
    // the load compacted the file: no torn line left behind
    expect(readFileSync(join(dir, LEASE_FILE), 'utf8').trim().split('\n').length).toBe(2);
    await r.close();
  });

  it('replays releases and declines', async () => {
    const dir = join(tmp, 'replay');
    let t = 1_000_000;
    const s = store(dir, { now: () => t });
    await s.load();
    await s.commit('52:54:00:00:00:01', '10.99.0.100');
    await s.commit('52:54:00:00:00:02', '10.99.0.101');
    await s.release('52:54:00:00:00:01', '10.99.0.100');
    await s.decline('52:54:00:00:00:02', '10.99.0.101');
    await s.close();
    const r = store(dir, { now: () => t });
    await r.load();
    expect(r.macForIp('10.99.0.100')).toBeUndefined();
    expect(r.canAssign('52:54:00:00:00:09', '10.99.0.101')).toBe(false);
    t += 3600_000;
    expect(r.canAssign('52:54:00:00:00:09', '10.99.0.101')).toBe(true);
    await r.close();
  });

  it('compacts the journal when it grows (tmp + rename)', async () => {
    const dir = join(tmp, 'compact');
    const s = store(dir);
    await s.load();
    for (let i = 0; i < 1100; i++) await s.commit('52:54:00:00:00:01', '10.99.0.100');
    await s.close();
    const lines = readFileSync(join(dir, LEASE_FILE), 'utf8').trim().split('\n').length;
    expect(lines).toBeLessThan(200);
    const r = store(dir);
    await r.load();
    expect(r.get('52:54:00:00:00:01')?.ip).toBe('10.99.0.100');
    await r.close();
  });

  it('keeps every lease it reported committed across kill -9', async () => {
    const dir = join(tmp, 'kill9');
    const child = spawn(process.execPath, [childJs, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    const closed = new Promise((r) => child.once('close', r)); // after its stdout is drained
    const committed: Array<[string, string]> = [];
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('child too slow')), 20_000);
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const [mac, ip] = line.split(' ');
          if (ip) committed.push([mac!, ip]);
          if (committed.length >= 150 && child.exitCode === null && !child.killed) {
            child.kill('SIGKILL');
            clearTimeout(t);
            resolve();
          }
        }
      });
      child.on('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
    await closed;
    expect(child.signalCode).toBe('SIGKILL');
    expect(committed.length).toBeGreaterThanOrEqual(150);
    const r = new LeaseStore({ stateDir: dir, range: ['10.99.0.10', '10.99.3.250'], leaseSeconds: 3600 });
    await r.load();
    for (const [mac, ip] of committed) expect(r.get(mac)?.ip, mac).toBe(ip);
    const ips = r.list().map((l) => l.ip);
    expect(new Set(ips).size).toBe(ips.length);
    await r.close();
  });

  it('works in memory only without a stateDir', async () => {
    const s = new LeaseStore({ range: ['10.99.0.100', '10.99.0.100'], leaseSeconds: 60 });
    await s.load();
    const ip = s.offer('52:54:00:00:00:01');
    expect(ip).toBe('10.99.0.100');
    expect(s.offer('52:54:00:00:00:02')).toBeUndefined(); // held for the first client's offer
    await s.commit('52:54:00:00:00:01', ip!);
    expect(s.fsyncs).toBe(0);
    writeFileSync(join(tmp, 'unused'), '');
  });

  it('keeps committing when a compaction fails (state dir full): no unhandled rejection, the journal stays open', async () => {
    const dir = join(tmp, 'compact-fail');
    const s = store(dir, { fsync: false });
    await s.load();
    // the compaction's tmp file cannot be created: as on a full tmpfs
    mkdirSync(join(dir, LEASE_FILE + '.tmp'));
    const rejections: unknown[] = [];
    const onRej = (e: unknown) => rejections.push(e);
    process.on('unhandledRejection', onRej);
    try {
      // one client renewing again and again: the journal outgrows 4 × leases + 1000 and is compacted
      for (let i = 0; i < 1100; i++) await s.commit('52:54:00:00:01:01', '10.99.0.100');
      await new Promise((r) => setTimeout(r, 50));
      rmSync(join(dir, LEASE_FILE + '.tmp'), { recursive: true });
      // after the failed compaction, commits still reach the disk
      await expect(s.commit('52:54:00:00:01:02', '10.99.0.101')).resolves.toMatchObject({ ip: '10.99.0.101' });
      expect(rejections).toEqual([]);
      expect(s.compactFailures).toBeGreaterThan(0);
      await s.close();
      const again = store(dir);
      await again.load();
      expect(again.get('52:54:00:00:01:02')?.ip).toBe('10.99.0.101');
      await again.close();
    } finally {
      process.off('unhandledRejection', onRej);
    }
  });
});
