import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { intToIp, ipToInt } from '../../../../proto/dhcp/options';
import { LeaseStore, LEASE_FILE, RENEW_SYNC_MS } from '../../../../relay/dhcp/leases';
import { mulberry32 } from '../../../helpers/prng';

const tmp = mkdtempSync(join(tmpdir(), 'brd-alloc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const mac = (i: number) => `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

describe('LeaseStore allocation', () => {
  it('never gives one address to two clients, never a static or declined one, under random DISCOVER/REQUEST/RELEASE/DECLINE and time', async () => {
    let t = 1_000_000;
    const statics = { '52:54:00:ff:00:01': '10.99.0.103', '52:54:00:ff:00:02': '10.99.0.110' };
    const s = new LeaseStore({ range: ['10.99.0.100', '10.99.0.119'], static: statics, leaseSeconds: 60, offerHoldSeconds: 5, declineSeconds: 30, now: () => t });
    await s.load();
    const rnd = mulberry32(42);
    const staticIps = new Set(Object.values(statics));
    const declinedUntil = new Map<string, number>();
    let offers = 0;
    let exhausted = 0;
    for (let step = 0; step < 20_000; step++) {
      t += Math.floor(rnd() * 2000);
      const m = mac(Math.floor(rnd() * 40));
      const r = rnd();
      if (r < 0.5) {
        const ip = s.offer(m);
        if (!ip) {
          exhausted++;
          continue;
        }
        offers++;
        expect(staticIps.has(ip), `${ip} is static`).toBe(false);
        expect((declinedUntil.get(ip) ?? 0) > t, `${ip} is declined`).toBe(false);
        const holder = s.macForIp(ip);
        expect(holder === undefined || holder === m, `${ip} offered to ${m} while leased to ${holder}`).toBe(true);
        if (rnd() < 0.8) await s.commit(m, ip);
      } else if (r < 0.65) {
        const l = s.get(m);
        if (l) await s.release(m, l.ip);
      } else if (r < 0.7) {
        const l = s.get(m);
        if (l && l.expiresAt > t) {
          await s.decline(m, l.ip);
          declinedUntil.set(l.ip, t + 30_000);
        }
      }
      // the invariant: active leases and live holds never share an address
      const active = s.list().filter((l) => l.active && !l.static);
      const ips = active.map((l) => l.ip);
      expect(new Set(ips).size, `step ${step}`).toBe(ips.length);
      for (const ip of ips) expect(staticIps.has(ip)).toBe(false);
    }
    expect(offers).toBeGreaterThan(5000);
    expect(exhausted).toBeGreaterThan(0); // 40 clients, 18 addresses: the pool did run out
    await s.close();
  });

  it('hands out never-used addresses first, then the one expired the longest', async () => {
    let t = 1_000_000;
    const s = new LeaseStore({ range: ['10.99.0.100', '10.99.0.103'], leaseSeconds: 60, now: () => t });
    await s.load();
    for (let i = 0; i < 4; i++) {
      const ip = s.offer(mac(i))!;
      expect(ip).toBe(intToIp(ipToInt('10.99.0.100') + i));
      await s.commit(mac(i), ip);
      t += 1000; // .100 expires first, .103 last
    }
    expect(s.offer(mac(9))).toBeUndefined(); // all four active
    t += 60_000;
    // .100 and .101 expired; the longest-expired one goes first
    expect(s.offer(mac(9))).toBe('10.99.0.100');
    expect(s.offer(mac(10))).toBe('10.99.0.101');
    // a returning client gets its own (expired, not yet reused) address back
    t += 10_000;
    expect(s.offer(mac(3))).toBe('10.99.0.103');
    expect(s.offer(mac(11))).toBe('10.99.0.102');
    // every address offered, none free: the oldest offer nobody REQUESTed (mac 9's, 10 s old)
    // goes to the newcomer, then mac 10's; offers made under a second ago are never taken
    expect(s.offer(mac(12))).toBe('10.99.0.100');
    expect(s.offer(mac(13))).toBe('10.99.0.101');
    expect(s.offer(mac(14))).toBeUndefined();
    expect(s.canAssign(mac(9), '10.99.0.100')).toBe(false); // the robbed client's REQUEST gets a NAK
    await s.close();
  });

  it('keeps a declined address out until its decline time is over, and an offered one for its holder', async () => {
    let t = 1_000_000;
    const s = new LeaseStore({ range: ['10.99.0.100', '10.99.0.101'], leaseSeconds: 60, declineSeconds: 100, offerHoldSeconds: 5, now: () => t });
    await s.load();
    const a = s.offer(mac(1))!;
    await s.commit(mac(1), a);
    await s.decline(mac(1), a);
    const b = s.offer(mac(2))!;
    expect(b).not.toBe(a);
    expect(s.offer(mac(3))).toBeUndefined(); // b held for mac 2, a declined
    expect(s.offer(mac(2))).toBe(b); // the same offer again
    t += 6_000; // b's hold lapsed
    expect(s.offer(mac(3))).toBe(b);
    t += 100_000;
    // both free again: b since mac 3's hold lapsed, a since its decline ended (later)
    expect(s.offer(mac(4))).toBe(b);
    expect(s.offer(mac(5))).toBe(a);
    await s.close();
  });

  it('skips static addresses inside the range and never offers them to others', async () => {
    const s = new LeaseStore({ range: ['10.99.0.100', '10.99.0.102'], static: { '52:54:00:ff:00:01': '10.99.0.101' }, leaseSeconds: 60 });
    await s.load();
    expect(s.offer('52:54:00:ff:00:01')).toBe('10.99.0.101');
    expect(s.offer(mac(1))).toBe('10.99.0.100');
    expect(s.offer(mac(2))).toBe('10.99.0.102');
    expect(s.offer(mac(3))).toBeUndefined();
    await s.close();
  });

  it('allocates from a /16 journal full of expired leases without running out or repeating (the longest-expired first)', async () => {
    const dir = join(tmp, 'full16');
    mkdirSync(dir, { recursive: true });
    const a = ipToInt('10.99.1.0');
    const b = ipToInt('10.99.255.254');
    const t = 2_000_000_000_000;
    const lines: string[] = [];
    for (let n = a; n <= b; n++) lines.push(JSON.stringify({ op: 'commit', mac: mac(0x100000 + n - a), ip: intToIp(n), exp: t - 1_000_000 + ((n * 7919) % 100_000) }));
    lines.push('{"op":"clean"}');
    writeFileSync(join(dir, LEASE_FILE), lines.join('\n') + '\n');
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.1.0', '10.99.255.254'], leaseSeconds: 3600, now: () => t, fsync: false });
    await s.load();
    const seen = new Set<string>();
    let last = -Infinity;
    for (let i = 0; i < 5000; i++) {
      const ip = s.offer(mac(i))!;
      expect(ip).toBeDefined();
      expect(seen.has(ip)).toBe(false);
      seen.add(ip);
      const n = ipToInt(ip);
      const exp = t - 1_000_000 + ((n * 7919) % 100_000);
      expect(exp).toBeGreaterThanOrEqual(last); // longest-expired first
      last = exp;
      await s.commit(mac(i), ip);
    }
    await s.close();
  });
});

describe('LeaseStore journal', () => {
  it('skips a run of NULs (a batch that missed the disk while a later one landed) and loads what follows', async () => {
    const dir = join(tmp, 'nulhole');
    mkdirSync(dir, { recursive: true });
    const rec = (i: number, ip: string) => JSON.stringify({ op: 'commit', mac: mac(i), ip, exp: 9_999_999_999_999 });
    // a torn line ending in the hole, then the next batch
    writeFileSync(join(dir, LEASE_FILE), Buffer.concat([Buffer.from(rec(1, '10.99.0.100') + '\n' + '{"op":"commit","mac":"52:5'), Buffer.alloc(300), Buffer.from(rec(2, '10.99.0.101') + '\n')]));
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 600 });
    await s.load();
    expect(s.get(mac(1))?.ip).toBe('10.99.0.100');
    expect(s.get(mac(2))?.ip).toBe('10.99.0.101');
    expect(s.skippedLines).toBe(1);
    await s.close();
  });

  it('keeps the order of batches written while another is in flight', async () => {
    const dir = join(tmp, 'pipeline');
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.199'], leaseSeconds: 600 });
    await s.load();
    const all: Array<Promise<unknown>> = [];
    // bursts in successive event-loop turns: several batches, up to two in flight
    for (let b = 0; b < 20; b++) {
      for (let i = 0; i < 3; i++) all.push(s.commit(mac(b * 3 + i), `10.99.0.${100 + ((b * 3 + i) % 100)}`));
      await new Promise((r) => setImmediate(r));
    }
    // the same client moved through addresses: the last one must win after a reload
    for (let k = 0; k < 10; k++) {
      all.push(s.commit(mac(500), `10.99.0.${190 + k}`));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(all);
    expect(s.fsyncs).toBeGreaterThan(1);
    await s.close();
    // the zeros written ahead of the data (journal-space) end the file; none between batches
    const text = readFileSync(join(dir, LEASE_FILE), 'utf8').replace(/\0+$/, '');
    expect(text.includes('\0')).toBe(false);
    const ips = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { mac?: string; ip?: string })
      .filter((r) => r.mac === mac(500))
      .map((r) => r.ip);
    expect(ips).toEqual(Array.from({ length: 10 }, (_, k) => `10.99.0.${190 + k}`));
    const r = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.199'], leaseSeconds: 600 });
    await r.load();
    expect(r.get(mac(500))?.ip).toBe('10.99.0.199');
    expect(r.list().length).toBe(61);
    await r.close();
  });
});

describe('LeaseStore renewals', () => {
  it('a renewal resolves without an fsync of its own; its record reaches the file and survives a clean restart', async () => {
    const dir = join(tmp, 'renew');
    let t = 1_000_000;
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 600, now: () => t });
    await s.load();
    await s.commit(mac(1), s.offer(mac(1))!);
    expect(s.fsyncs).toBe(1);
    t += 300_000;
    const l = await s.commit(mac(1), '10.99.0.100');
    expect(l.expiresAt).toBe(t + 600_000);
    expect(s.fsyncs).toBe(1);
    expect(s.renewals).toBe(1);
    // a changed lease (another hostname) is a new binding: fsynced before it resolves
    await s.commit(mac(1), '10.99.0.100', { hostname: 'pc1' });
    expect(s.fsyncs).toBe(2);
    await s.close();
    const r = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 600, now: () => t });
    await r.load();
    expect(r.get(mac(1))).toMatchObject({ ip: '10.99.0.100', expiresAt: t + 600_000, hostname: 'pc1' });
    await r.close();
  });

  it('a renewal right behind its binding waits for that binding to be durable', async () => {
    const dir = join(tmp, 'renew-early');
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 600 });
    await s.load();
    const order: string[] = [];
    const first = s.commit(mac(1), '10.99.0.100').then(() => order.push('binding'));
    const again = s.commit(mac(1), '10.99.0.100').then(() => order.push('renewal'));
    await Promise.all([first, again]);
    expect(order).toEqual(['binding', 'renewal']);
    expect(readFileSync(join(dir, LEASE_FILE), 'utf8')).toContain('10.99.0.100');
    await s.close();
  });

  it('after an unclean end (no clean record) every lease is held one lease time + RENEW_SYNC_MS longer, capped from now', async () => {
    const dir = join(tmp, 'unclean');
    mkdirSync(dir, { recursive: true });
    const t = 5_000_000_000;
    writeFileSync(
      join(dir, LEASE_FILE),
      [
        { op: 'commit', mac: mac(1), ip: '10.99.0.100', exp: t + 10_000 }, // active: its renewal may be lost
        { op: 'commit', mac: mac(2), ip: '10.99.0.101', exp: t - 10_000_000 }, // long gone: stays expired
      ]
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
    const s = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 600, now: () => t });
    await s.load();
    expect(s.get(mac(1))!.expiresAt).toBe(t + 600_000 + RENEW_SYNC_MS);
    expect(s.get(mac(2))!.expiresAt).toBe(t - 10_000_000 + 600_000 + RENEW_SYNC_MS);
    expect(s.macForIp('10.99.0.101')).toBeUndefined();
    expect(s.canAssign(mac(9), '10.99.0.100')).toBe(false);
    await s.close();
    // a clean end: nothing is stretched at the next load
    const r = new LeaseStore({ stateDir: dir, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 600, now: () => t });
    await r.load();
    expect(r.get(mac(1))!.expiresAt).toBe(t + 600_000 + RENEW_SYNC_MS);
    await r.close();
  });
});
