/**
 * The Secure Boot chain's names over real sockets and real clients: TftpService and HttpService
 * on 127.0.0.1 reading through ChainSource (in front of a directory standing in for the cache).
 * What shim and GRUB ask for (lab capture, Debian 12): GRUB under shim's name, the generated
 * grub.cfg, optional probes refused at once (TFTP ERROR 1 / HTTP 404, never an upstream wait).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSkipIf, missingCmds } from '../helpers/skip';
import { silentLogger } from '../../agent/log';
import { makeEvent, type RelayEvent } from '../../proto/events';
import { ChainSource } from '../../relay/boot/chain-source';
import type { ChainLoader } from '../../relay/boot/chain';
import { HttpService } from '../../relay/http/service';
import { Metrics } from '../../relay/metrics';
import type { FileSource, OpenOptions } from '../../relay/source';
import { TftpService } from '../../relay/tftp/service';
import { DirSource } from '../helpers/dir-source';

const MAC = '52:54:00:99:c4:01';
const chain: ChainLoader = { shim: 'sb/shimx64.efi', grub: 'sb/grubnetx64.efi.signed', fetch: 'tftp' };
const profile = { name: 'debian', profile: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'], cmdline: 'console=ttyS0 label="Debian 12"' } };

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: 30_000 }, (err, _o, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stderr: String(stderr), ms: Date.now() - t0 });
    }),
  );
}

/** A source that never answers: what a slow upstream would be. A probe reaching it would hang. */
class Hanging implements FileSource {
  opened: string[] = [];
  constructor(private readonly inner: FileSource) {}
  open(path: string, opts?: OpenOptions) {
    this.opened.push(path);
    if (path.includes('revocations') || path.includes('x86_64-efi')) return new Promise<never>(() => {});
    return this.inner.open(path, opts);
  }
}

describeSkipIf(missingCmds('curl'))('Secure Boot chain over TFTP and HTTP (curl)', () => {
  let dir: string;
  let out: string;
  let tftp: TftpService;
  let http: HttpService;
  let upstream: Hanging;
  const events: RelayEvent[] = [];
  const grub = randomBytes(300_000);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'brchain-'));
    out = mkdtempSync(join(tmpdir(), 'brchain-out-'));
    mkdirSync(join(dir, 'sb'));
    writeFileSync(join(dir, 'sb/shimx64.efi'), randomBytes(10_000));
    writeFileSync(join(dir, 'sb/grubnetx64.efi.signed'), grub);
    upstream = new Hanging(new DirSource(dir));
    const source = new ChainSource(upstream, () => ({ chains: [chain], server: '127.0.0.1', httpPort: 80, resolveProfile: (mac) => (mac === MAC ? profile : undefined) }));
    const emit = (ev: Parameters<typeof makeEvent>[0]) => events.push(makeEvent(ev));
    tftp = new TftpService({
      address: '127.0.0.1',
      port: 0,
      source,
      config: { port: 0, maxBlksize: 1468, maxWindowsize: 64, timeout: 1, retries: 4, maxTransfers: 16, maxTransfersPerClient: 8 },
      log: silentLogger,
      metrics: new Metrics(),
      emit,
      macForIp: (ip) => (ip === '127.0.0.1' ? MAC : undefined),
    });
    http = new HttpService({
      address: '127.0.0.1',
      port: 0,
      source,
      log: silentLogger,
      metrics: new Metrics(),
      emit,
      macForIp: (ip) => (ip === '127.0.0.1' ? MAC : undefined),
      plan: { profileFor: () => profile },
      api: { status: () => ({}), clients: () => [] },
      subscribe: () => () => {},
      dashboardHtml: '<!doctype html>',
    });
    await tftp.start();
    await http.start();
  });

  afterAll(async () => {
    await tftp?.stop();
    await http?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  });

  it("TFTP: shim's sb/grubx64.efi (blksize 512, as shim asks) is the configured GRUB", async () => {
    const r = await run('curl', ['-sS', '--tftp-blksize', '512', `tftp://127.0.0.1:${tftp.port}/sb/grubx64.efi`, '-o', join(out, 'g')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(out, 'g')).equals(grub)).toBe(true);
    expect(events.some((e) => e.type === 'tftp.done' && e.file === 'sb/grubx64.efi')).toBe(true);
  });

  it("TFTP: GRUB's /grub/grub.cfg is generated for the asking client", async () => {
    const r = await run('curl', ['-sS', '--tftp-blksize', '1024', `tftp://127.0.0.1:${tftp.port}//grub/grub.cfg`, '-o', join(out, 'c')]);
    expect(r.code, r.stderr).toBe(0);
    const cfg = readFileSync(join(out, 'c'), 'utf8');
    expect(cfg).toMatch(/^if linux \(tftp,127\.0\.0\.1\)\/debian\/vmlinuz console=ttyS0 'label=Debian 12'; then$/m);
    expect(cfg).toMatch(/^ {2}if initrd \(tftp,127\.0\.0\.1\)\/debian\/initrd\.gz; then$/m);
    expect(cfg).toMatch(/^ {4}boot$/m);
  });

  it('TFTP: the probes get ERROR 1 at once although the upstream would never answer them', async () => {
    for (const p of ['sb/revocations_sku.efi', 'sb/revocations_sbat.efi', 'sb/shim_certificate_0.efi', 'grub/x86_64-efi/command.lst']) {
      const r = await run('curl', ['-sS', `tftp://127.0.0.1:${tftp.port}/${p}`, '-o', join(out, 'x')]);
      expect(r.code, `${p}: ${r.stderr}`).toBe(68); // curl: TFTP file not found
    }
    expect(upstream.opened.filter((p) => /revocations|x86_64-efi/.test(p))).toEqual([]);
  });

  it('HTTP: /files/sb/grubx64.efi (shim under UEFI HTTP Boot) and /grub/grub.cfg; probes 404', async () => {
    const base = `http://127.0.0.1:${http.port}`;
    const g = await fetch(`${base}/files/sb/grubx64.efi`);
    expect(g.status).toBe(200);
    expect(Buffer.from(await g.arrayBuffer()).equals(grub)).toBe(true);
    const c = await fetch(`${base}/grub/grub.cfg`);
    expect(c.status).toBe(200);
    expect(await c.text()).toMatch(/^if linux /m);
    const p = await fetch(`${base}/grub/x86_64-efi/fs.lst`);
    expect(p.status).toBe(404);
  });
});
