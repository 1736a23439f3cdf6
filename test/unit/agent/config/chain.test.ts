import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../agent/config/load';
import { uciToConfigObject } from '../../../../agent/config/uci';

function base(loaders: unknown): Record<string, any> {
  return {
    lan: { address: '10.99.0.1', prefix: 24 },
    upstream: { url: 'http://10.99.1.2/boot/' },
    boot: { loaders, defaultProfile: 'debian', profiles: { debian: { kernel: 'debian/vmlinuz' } } },
  };
}

function messages(obj: unknown): string[] {
  const r = parseConfig(obj);
  return r.ok ? [] : r.issues.map((i) => i.message);
}

describe('boot.loaders: a Secure Boot chain', () => {
  it('{shim, grub}: the shim is the loader, the chain is kept by its shim path', () => {
    const r = parseConfig(base({ bios: 'ipxe/undionly.kpxe', 'uefi-x64': { shim: '/sb/shimx64.efi', grub: 'sb/grubx64.efi' } }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.boot.loaders['uefi-x64']).toEqual(['sb/shimx64.efi']);
    expect(r.config.boot.chains).toEqual({ 'sb/shimx64.efi': { shim: 'sb/shimx64.efi', grub: 'sb/grubx64.efi', fetch: 'tftp' } });
  });

  it('in a fallback list with iPXE, and fetch: http', () => {
    const r = parseConfig(base({ 'uefi-x64': ['ipxe/ipxe.efi', { shim: 'sb/shimx64.efi', grub: 'sb/grubx64.efi', fetch: 'http' }] }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.boot.loaders['uefi-x64']).toEqual(['ipxe/ipxe.efi', 'sb/shimx64.efi']);
    expect(r.config.boot.chains!['sb/shimx64.efi']!.fetch).toBe('http');
  });

  it('plain loaders: no chains key at all', () => {
    const r = parseConfig(base({ bios: 'ipxe/undionly.kpxe' }));
    expect(r.ok && r.config.boot.chains).toBeUndefined();
  });

  it.each([
    [{ 'uefi-x64': { shim: 'sb/shimx64.efi' } }, /boot\.loaders\.uefi-x64\.grub: expected the path of the signed network GRUB/],
    [{ 'uefi-x64': { grub: 'sb/grubx64.efi' } }, /boot\.loaders\.uefi-x64\.shim: expected the path of the signed shim/],
    [{ 'uefi-x64': { shim: 'sb/shimx64.efi', grub: '../x' } }, /boot\.loaders\.uefi-x64\.grub: expected a clean path/],
    [{ 'uefi-x64': { shim: 'sb/shimx64.efi', grub: 'sb/g.efi', fetch: 'ftp' } }, /boot\.loaders\.uefi-x64\.fetch: expected "tftp".*got "ftp"/],
    [{ 'uefi-x64': { shim: 'sb/shimx64.efi', grub: 'sb/g.efi', kernel: 'x' } }, /boot\.loaders\.uefi-x64\.kernel: .*unknown key/],
    [{ bios: { shim: 'sb/shimx64.efi', grub: 'sb/g.efi' } }, /boot\.loaders\.bios: expected a plain loader path: a Secure Boot chain .* UEFI firmware only/],
    [{ 'uefi-x64': { shim: 'sb/shimx64.efi', grub: 'sb/shimx64.efi' } }, /\.grub: expected a file other than the shim/],
    [{ 'uefi-x64': [{ shim: 'sb/shimx64.efi', grub: 'sb/a.efi' }, { shim: 'sb/other.efi', grub: 'sb/b.efi' }] }, /boot\.loaders\.uefi-x64\[1\]\.shim: expected a shim in a directory of its own/],
    [{ "uefi-x64": [42] }, /boot\.loaders\.uefi-x64\[0\]: expected a path relative to upstream.url, got 42/],
  ])('%j is refused naming the field', (loaders, re) => {
    const m = messages(base(loaders));
    expect(m.some((x) => re.test(x)), m.join('\n')).toBe(true);
  });

  it('UCI: option shim + option grub (after any paths: fallbacks)', () => {
    const text = `
config lan
	option address '10.99.0.1'
	option prefix '24'
config upstream
	option url 'http://10.99.1.2/boot/'
config loader
	option arch 'uefi-x64'
	option shim 'sb/shimx64.efi'
	option grub 'sb/grubx64.efi'
config loader
	option arch 'uefi-arm64'
	list path 'ipxe/ipxe-arm64.efi'
	option shim 'sbarm/shimaa64.efi'
	option grub 'sbarm/grubaa64.efi'
	option fetch 'http'
config profile 'debian'
	option kernel 'debian/vmlinuz'
`;
    const { config, issues } = uciToConfigObject(text);
    expect(issues).toEqual([]);
    const r = parseConfig(config);
    expect(r.ok, r.ok ? '' : r.issues.map((i) => i.message).join('\n')).toBe(true);
    if (!r.ok) return;
    expect(r.config.boot.loaders).toEqual({ 'uefi-x64': ['sb/shimx64.efi'], 'uefi-arm64': ['ipxe/ipxe-arm64.efi', 'sbarm/shimaa64.efi'] });
    expect(r.config.boot.chains!['sbarm/shimaa64.efi']).toEqual({ shim: 'sbarm/shimaa64.efi', grub: 'sbarm/grubaa64.efi', fetch: 'http' });
  });

  it('UCI: a chain without grub is refused naming the option', () => {
    const { config } = uciToConfigObject(`
config lan
	option address '10.99.0.1'
	option prefix '24'
config upstream
	option url 'http://10.99.1.2/boot/'
config loader
	option arch 'uefi-x64'
	option shim 'sb/shimx64.efi'
config profile 'debian'
	option kernel 'debian/vmlinuz'
`);
    expect(messages(config).join('\n')).toMatch(/\.grub: expected the path of the signed network GRUB/);
  });
});

describe('boot.loaders chain: cross-field checks', () => {
  const chainCfg = () => base({ 'uefi-x64': { shim: 'sb/shimx64.efi', grub: 'sb/grubx64.efi' } });
  it('proxy mode: a warning that GRUB asks the address server (siaddr)', () => {
    const r = parseConfig({ ...chainCfg(), dhcp: { mode: 'proxy' } });
    expect(r.ok).toBe(true);
    expect(r.warnings.join('\n')).toMatch(/Secure Boot chain in proxy mode: GRUB asks the DHCP server that gave the address/);
  });
  it('tftp: false is refused (shim and GRUB load over TFTP)', () => {
    expect(messages({ ...chainCfg(), tftp: false }).join('\n')).toMatch(/^tftp: expected TFTP on \(a Secure Boot chain/m);
  });
});
