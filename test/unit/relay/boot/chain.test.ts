import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UpstreamError } from '../../../../proto/errors';
import { isChainFile, mapChainRequest, type ChainLoader } from '../../../../relay/boot/chain';
import { ChainSource } from '../../../../relay/boot/chain-source';
import { DirSource } from '../../../helpers/dir-source';

const sb: ChainLoader = { shim: 'sb/shimx64.efi', grub: 'sb/grubnetx64.efi.signed', fetch: 'tftp' };
const root: ChainLoader = { shim: 'shimx64.efi', grub: 'grub/netx64.efi', fetch: 'tftp' };

function kind(chains: ChainLoader[], p: string): string {
  const m = mapChainRequest(chains, p);
  return m ? (m.kind === 'missing' ? 'missing' : m.kind === 'failed' ? `failed:${m.step}` : `${m.kind}:${m.chain.shim}`) : 'upstream';
}

describe('mapChainRequest: the names the chain asks for (lab capture, Debian 12 signed shim + GRUB)', () => {
  it.each([
    // shim, boot file sb/shimx64.efi (file field): relative names in its own directory
    ['sb/revocations_sku.efi', 'missing'],
    ['sb/revocations_sbat.efi', 'missing'],
    ['sb/shim_certificate_0.efi', 'missing'],
    ['sb/grubx64.efi', 'grub:sb/shimx64.efi'],
    ['sb/mmx64.efi', 'missing'],
    // shim when the DHCP file field was empty: the same names at the root
    ['grubx64.efi', 'grub:sb/shimx64.efi'],
    ['revocations_sbat.efi', 'missing'],
    // GRUB: prefix (tftp,<relay>)/grub
    ['grub/x86_64-efi/command.lst', 'missing'],
    ['grub/x86_64-efi/fs.lst', 'missing'],
    ['grub/x86_64-efi/crypto.lst', 'missing'],
    ['grub/x86_64-efi/terminal.lst', 'missing'],
    ['grub/x86_64-efi/http.mod', 'missing'],
    ['grub/x86_64-efi/grub.cfg', 'missing'],
    ['grub/grub.cfg-01-52-54-00-12-34-56', 'missing'],
    ['grub/grub.cfg', 'config:sb/shimx64.efi'],
    // the generated config telling that a step failed
    ['grub/bootrelay-failed/kernel', 'failed:kernel'],
    ['grub/bootrelay-failed/initrd', 'failed:initrd'],
    // a GRUB whose prefix is its own directory
    ['sb/grub.cfg', 'config:sb/shimx64.efi'],
    ['sb/grub/grub.cfg', 'config:sb/shimx64.efi'],
    // the files themselves and everything else: from the upstream
    ['sb/shimx64.efi', 'upstream'],
    ['sb/grubnetx64.efi.signed', 'upstream'],
    ['debian/vmlinuz', 'upstream'],
    ['sb/other.efi', 'upstream'],
    ['ipxe/grubx64.efi', 'upstream'],
  ])('%s → %s', (p, want) => {
    expect(kind([sb], p)).toBe(want);
  });

  it('no chain configured: nothing is mapped', () => {
    expect(mapChainRequest([], 'grub/grub.cfg')).toBeUndefined();
    expect(mapChainRequest([], 'grubx64.efi')).toBeUndefined();
  });

  it('two chains: each shim directory gets its own GRUB', () => {
    const chains = [sb, root];
    expect(kind(chains, 'sb/grubx64.efi')).toBe('grub:sb/shimx64.efi');
    expect(kind(chains, 'grubx64.efi')).toBe('grub:shimx64.efi');
    expect(kind(chains, 'grub/netx64.efi')).toBe('upstream');
  });

  it('isChainFile: shim, GRUB under any of its names, the config', () => {
    expect(isChainFile([sb], 'sb/shimx64.efi')).toBe('loader');
    expect(isChainFile([sb], '/sb/grubx64.efi')).toBe('loader');
    expect(isChainFile([sb], 'grub/grub.cfg')).toBe('loader');
    expect(isChainFile([sb], 'grub/x86_64-efi/fs.lst')).toBeUndefined();
    expect(isChainFile([sb], 'debian/vmlinuz')).toBeUndefined();
  });
});

describe('ChainSource', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chain-src-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'sb'));
  writeFileSync(join(dir, 'sb/shimx64.efi'), 'SHIM');
  writeFileSync(join(dir, 'sb/grubnetx64.efi.signed'), 'GRUB-SIGNED');
  const inner = new DirSource(dir);
  const profiles: Record<string, { name: string; profile: { kernel?: string; initrd?: string[]; cmdline?: string; script?: string } }> = {
    '52:54:00:00:00:01': { name: 'debian', profile: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz'], cmdline: 'console=ttyS0' } },
    '52:54:00:00:00:02': { name: 'menu', profile: { script: 'menus/main.ipxe' } },
  };
  const src = new ChainSource(inner, () => ({ chains: [sb], server: '10.99.1.1', httpPort: 80, resolveProfile: (mac) => (mac ? profiles[mac] : undefined) }));
  const read = async (p: string, mac?: string, start?: number, end?: number) => {
    const f = await src.open(p, { mac, start, end });
    const parts: Buffer[] = [];
    for await (const c of f.stream) parts.push(c as Buffer);
    return { f, body: Buffer.concat(parts).toString() };
  };

  it("serves the configured GRUB under shim's name, from the inner source", async () => {
    const { f, body } = await read('sb/grubx64.efi');
    expect(body).toBe('GRUB-SIGNED');
    expect(f.path).toBe('sb/grubx64.efi');
    expect(f.size).toBe(11);
    expect(inner.opened.at(-1)!.path).toBe('sb/grubnetx64.efi.signed');
  });

  it('refuses probes at once with a not-found, without asking the inner source', async () => {
    const n = inner.opened.length;
    for (const p of ['sb/revocations_sku.efi', 'grub/x86_64-efi/command.lst']) {
      const err = await src.open(p).catch((e) => e);
      expect(err).toBeInstanceOf(UpstreamError);
      expect((err as UpstreamError).code).toBe('ENOENT');
    }
    expect(inner.opened.length).toBe(n);
  });

  it("generates grub.cfg from the asking client's profile (and honours a range)", async () => {
    const { f, body } = await read('grub/grub.cfg', '52:54:00:00:00:01');
    expect(body).toMatch(/^if linux \(tftp,10\.99\.1\.1\)\/debian\/vmlinuz console=ttyS0; then$/m);
    expect(body).toMatch(/^ {2}if initrd \(tftp,10\.99\.1\.1\)\/debian\/initrd\.gz; then$/m);
    expect(f.size).toBe(Buffer.byteLength(body));
    expect((await read('grub/grub.cfg', '52:54:00:00:00:01', 2, 5)).body).toBe(body.slice(2, 6));
  });

  it('an iPXE-script profile gets a config that says it needs iPXE; an unknown client one that says there is no profile', async () => {
    expect((await read('grub/grub.cfg', '52:54:00:00:00:02')).body).toMatch(/needs iPXE/);
    expect((await read('grub/grub.cfg')).body).not.toMatch(/linux/m);
  });

  it('passes everything else through', async () => {
    expect((await read('sb/shimx64.efi')).body).toBe('SHIM');
  });
});
