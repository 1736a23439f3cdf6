/**
 * TFTP and HTTP over IPv6 beside IPv4 (loopback ::1 and 127.0.0.1, same port):
 * tftp-hpa -6 and curl -6 as the clients; a script asked for over IPv6 names IPv6 URLs.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../agent/log';
import type { RelayEvent } from '../../proto/events';
import { HttpService } from '../../relay/http/service';
import { Metrics } from '../../relay/metrics';
import { TftpService } from '../../relay/tftp/service';
import { DirSource } from '../helpers/dir-source';
import { hasCmd } from '../helpers/netns';
import { describeSkipIf } from '../helpers/skip';

const v6 = spawnSync('ip', ['-6', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' }).stdout.includes('::1/128');
const reason = !v6 ? 'no ::1 on loopback (IPv6 disabled here)' : !hasCmd('tftp') || !hasCmd('curl') ? 'missing tools: tftp (tftp-hpa), curl' : undefined;
/** A client run without blocking the event loop (the servers are in this process); waits for `close`. */
function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', (status) => {
      clearTimeout(t);
      resolve({ status, stdout, stderr });
    });
  });
}

const MAC4 = '52:54:00:00:04:04';
const MAC6 = '52:54:00:00:06:06';

describeSkipIf(reason)('TFTP and HTTP on IPv6 too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'br6-files-'));
  const events: RelayEvent[] = [];
  let tftp: TftpService;
  let http: HttpService;
  const macForIp = (ip: string) => (ip === '::1' ? MAC6 : ip === '127.0.0.1' ? MAC4 : undefined);

  beforeAll(async () => {
    mkdirSync(join(dir, 'ipxe'));
    writeFileSync(join(dir, 'ipxe/snponly.efi'), Buffer.alloc(70_000, 7));
    const source = new DirSource(dir);
    tftp = new TftpService({
      address: '127.0.0.1',
      address6: '::1',
      port: 0,
      source,
      config: { port: 0, maxBlksize: 1468, maxWindowsize: 64, timeout: 1, retries: 4, maxTransfers: 16, maxTransfersPerClient: 8 },
      log: silentLogger,
      metrics: new Metrics(),
      emit: (e) => events.push(e as RelayEvent),
      macForIp,
    });
    await tftp.start();
    http = new HttpService({
      address: '127.0.0.1',
      address6: '::1',
      port: 0,
      source,
      log: silentLogger,
      metrics: new Metrics(),
      emit: (e) => events.push(e as RelayEvent),
      macForIp,
      plan: { profileFor: () => ({ name: 'd', profile: { kernel: 'd/vmlinuz', initrd: ['d/initrd.img'], cmdline: 'quiet' } }) },
      api: { status: () => ({}), clients: () => [] },
      subscribe: () => () => {},
    });
    await http.start();
  });

  afterAll(async () => {
    await tftp?.stop();
    await http?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tftp-hpa gets the loader over IPv6 and over IPv4 from the same port', async () => {
    for (const [fam, host] of [['-6', '::1'], ['-4', '127.0.0.1']] as const) {
      const out = join(dir, `got${fam}`);
      const r = await run('tftp', [fam, host, String(tftp.port), '-m', 'binary', '-c', 'get', 'ipxe/snponly.efi', out]);
      expect(r.status, r.stderr + r.stdout).toBe(0);
      expect(readFileSync(out).equals(readFileSync(join(dir, 'ipxe/snponly.efi')))).toBe(true);
    }
    const done = events.filter((e) => e.type === 'tftp.done');
    expect(done.map((e) => [e.ip, e.mac])).toEqual([
      ['::1', MAC6],
      ['127.0.0.1', MAC4],
    ]);
  });

  it('a boot script asked for over IPv6 names IPv6 URLs; over IPv4, IPv4 ones', async () => {
    const r6 = await run('curl', ['-6', '-gsf', `http://[::1]:${http.port}/boot.ipxe?mac=${MAC6}`]);
    expect(r6.status, r6.stderr).toBe(0);
    expect(r6.stdout).toContain(`http://[::1]:${http.port}/files/d/vmlinuz`);
    expect(r6.stdout).not.toContain('127.0.0.1');
    const r4 = await run('curl', ['-4', '-gsf', `http://127.0.0.1:${http.port}/boot.ipxe?mac=${MAC4}`]);
    expect(r4.stdout).toContain(`http://127.0.0.1:${http.port}/files/d/vmlinuz`);
    const f = await run('curl', ['-6', '-gsf', '-o', '/dev/null', '-w', '%{size_download}', `http://[::1]:${http.port}/files/ipxe/snponly.efi`]);
    expect(f.stdout).toBe('70000');
  });

  it('an IPv6 address not (yet) on any interface costs no IPv4 service', async () => {
    const source = new DirSource(dir);
    const t = new TftpService({ address: '127.0.0.1', address6: 'fd99:ffff::1', port: 0, source, config: { port: 0, maxBlksize: 1468, maxWindowsize: 64, timeout: 1, retries: 4, maxTransfers: 16, maxTransfersPerClient: 8 }, log: silentLogger, metrics: new Metrics(), emit: () => {} });
    const h = new HttpService({ address: '127.0.0.1', address6: 'fd99:ffff::1', port: 0, source, log: silentLogger, metrics: new Metrics(), emit: () => {}, macForIp: () => undefined, plan: { profileFor: () => undefined }, api: { status: () => ({}), clients: () => [] }, subscribe: () => () => {} });
    try {
      await t.start();
      await h.start();
      const r = await run('tftp', ['-4', '127.0.0.1', String(t.port), '-m', 'binary', '-c', 'get', 'ipxe/snponly.efi', join(dir, 'got-v4-only')]);
      expect(r.status, r.stderr).toBe(0);
      expect(readFileSync(join(dir, 'got-v4-only')).length).toBe(70_000);
      expect((await run('curl', ['-4', '-gsf', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${h.port}/files/ipxe/snponly.efi`])).stdout).toBe('200');
    } finally {
      await t.stop();
      await h.stop();
    }
  });

  it('without a Host header (HTTP/1.0), the address the client reached', async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const s = connect({ host: '::1', port: http.port }, () => s.write(`GET /boot.ipxe?mac=${MAC6} HTTP/1.0\r\n\r\n`));
      let buf = '';
      s.on('data', (d) => (buf += d));
      s.on('end', () => resolve(buf));
      s.on('error', reject);
    });
    expect(text).toContain(`http://[::1]:${http.port}/files/d/vmlinuz`);
  });
});
