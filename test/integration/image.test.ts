/**
 * The OpenWrt package as opkg sees it: built by image/build-ipk.sh from the real bundles,
 * unpacked here with plain tar, its layout, control fields and scripts checked, and the
 * packaged programs run.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSkipIf, missingCmds } from '../helpers/skip';

const root = join(__dirname, '../..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
/** <package.json version>-r<PKG_RELEASE of the SDK feed Makefile>: one version for .ipk, .apk and SDK */
const release = /^PKG_RELEASE:=(\d+)$/m.exec(readFileSync(join(root, 'image/openwrt/Makefile'), 'utf8'))![1]!;
const version = `${pkg.version}-r${release}`;
const tmp = mkdtempSync(join(tmpdir(), 'bootrelay-image-'));
const ipk = join(tmp, 'out', `bootrelay_${version}_all.ipk`);
const outer = join(tmp, 'outer');
const data = join(tmp, 'data');
const control = join(tmp, 'control');
/** where the bundles come from: dist/ (after `make build`), or BUNDLE_DIR as for build-ipk.sh */
const bundleDir = process.env.BUNDLE_DIR ?? join(root, 'dist');
const epoch = '1767225600'; // fixed SOURCE_DATE_EPOCH: two builds must be byte-identical

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(cmd, args, {
    cwd: opts.cwd ?? root,
    env: { ...process.env, ...opts.env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}

function buildIpk(outDir: string): void {
  // the .apk is checked with the real apk in image-apk.test.ts
  sh('bash', ['image/build-ipk.sh', outDir], { env: { SOURCE_DATE_EPOCH: epoch, APK: 'none' } });
}

/** `tar -tvzf` → {path: {mode, owner}} */
function listing(file: string): Map<string, { mode: string; owner: string }> {
  const out = new Map<string, { mode: string; owner: string }>();
  for (const line of sh('tar', ['--numeric-owner', '-tvzf', file]).split('\n')) {
    const m = /^(\S+)\s+(\S+)\s+\d+\s+\S+\s+\S+\s+(.+)$/.exec(line);
    if (m) out.set(m[3]!, { mode: m[1]!, owner: m[2]! });
  }
  return out;
}

function controlFields(text: string): Record<string, string> {
  const f: Record<string, string> = {};
  let last = '';
  for (const line of text.split('\n')) {
    if (/^\s/.test(line) && last) f[last] += `\n${line.trim()}`;
    else {
      const m = /^([A-Za-z-]+):\s?(.*)$/.exec(line);
      if (m) f[(last = m[1]!)] = m[2]!.trim();
    }
  }
  return f;
}

beforeAll(() => {
  const bundles = ['bootrelay.js', 'relayctl.js'].map((f) => join(bundleDir, f));
  if (!bundles.every((f) => existsSync(f)) && !process.env.BUNDLE_DIR) {
    const r = spawnSync('node', ['scripts/build.mjs'], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`make build failed, so there is nothing to package:\n${r.stderr || r.stdout}`);
  }
  buildIpk(join(tmp, 'out'));
  for (const d of [outer, data, control]) mkdirSync(d, { recursive: true });
  sh('tar', ['-xzf', ipk], { cwd: outer });
  sh('tar', ['-xzf', join(outer, 'data.tar.gz')], { cwd: data });
  sh('tar', ['-xzf', join(outer, 'control.tar.gz')], { cwd: control });
}, 120_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('bootrelay_<version>_all.ipk', () => {
  it('is a gzipped tar, not an ar archive, of exactly debian-binary, data.tar.gz, control.tar.gz', () => {
    const head = readFileSync(ipk).subarray(0, 8);
    expect([head[0], head[1]]).toEqual([0x1f, 0x8b]);
    expect(head.toString('latin1')).not.toMatch(/^!<arch>/);
    expect([...listing(ipk).keys()]).toEqual(['./debian-binary', './data.tar.gz', './control.tar.gz']);
    for (const [, e] of listing(ipk)) expect(e.owner).toBe('0/0');
    expect(readFileSync(join(outer, 'debian-binary'), 'utf8')).toBe('2.0\n');
  });

  it('has the control fields opkg needs', () => {
    const f = controlFields(readFileSync(join(control, 'control'), 'utf8'));
    expect(f.Package).toBe('bootrelay');
    expect(f.Version).toBe(version);
    expect(version).toMatch(/^\d+\.\d+\.\d+-r\d+$/);
    expect(f.Architecture).toBe('all');
    expect(f.Depends!.split(/,\s*/)).toContain('node');
    expect(f.Section).toBe('net');
    expect(f.License).toBe('MIT');
    expect(f.SourceDateEpoch).toBe(epoch);
    expect(f.Description).toMatch(/network-boot relay/i);
    // ipkg-build: Installed-Size is the size of the uncompressed data tar
    const dataTar = gunzipSync(readFileSync(join(outer, 'data.tar.gz')));
    expect(Number(f['Installed-Size'])).toBe(dataTar.length);
  });

  it('ships /etc/config/bootrelay without comments (uci commit would drop them) and documents it in config.txt', () => {
    const conf = readFileSync(join(data, 'etc/config/bootrelay'), 'utf8');
    expect(conf, 'document options in image/files/usr/share/bootrelay/config.txt, not in the conffile').not.toMatch(/#/);
    const doc = readFileSync(join(data, 'usr/share/bootrelay/config.txt'), 'utf8');
    // every setting of the conffile is in the documented copy
    for (const line of conf.split('\n').filter((l) => l.trim())) expect(doc, line).toContain(line.trim());
  });

  it('keeps /etc/config/bootrelay over upgrades (conffiles) and wires the OpenWrt default scripts', () => {
    expect(readFileSync(join(control, 'conffiles'), 'utf8')).toBe('/etc/config/bootrelay\n');
    const ctl = listing(join(outer, 'control.tar.gz'));
    expect([...ctl.keys()].sort()).toEqual(['./', './conffiles', './control', './postinst', './postinst-pkg', './prerm', './prerm-pkg']);
    for (const s of ['./postinst', './prerm', './postinst-pkg', './prerm-pkg']) expect(ctl.get(s)!.mode).toBe('-rwxr-xr-x');
    expect(readFileSync(join(control, 'postinst'), 'utf8')).toContain('default_postinst "$0" "$@"');
    expect(readFileSync(join(control, 'prerm'), 'utf8')).toContain('default_prerm "$0" "$@"');
    expect(readFileSync(join(control, 'prerm-pkg'), 'utf8')).toContain('/usr/libexec/bootrelay-router revert');
  });

  it('installs the bundles, wrappers, procd init script, UCI config and uci-defaults with their modes', () => {
    const d = listing(join(outer, 'data.tar.gz'));
    const files = [...d].filter(([, e]) => !e.mode.startsWith('d')).map(([p, e]) => [p, e.mode]);
    expect(Object.fromEntries(files)).toEqual({
      './etc/config/bootrelay': '-rw-------',
      './etc/init.d/bootrelay': '-rwxr-xr-x',
      './etc/uci-defaults/90-bootrelay': '-rwxr-xr-x',
      './lib/upgrade/keep.d/bootrelay': '-rw-r--r--',
      './usr/bin/bootrelay': '-rwxr-xr-x',
      './usr/bin/relayctl': '-rwxr-xr-x',
      './usr/lib/bootrelay/bootrelay.js': '-rw-r--r--',
      './usr/lib/bootrelay/relayctl.js': '-rw-r--r--',
      './usr/libexec/bootrelay-router': '-rwxr-xr-x',
      './usr/share/bootrelay/config.txt': '-rw-r--r--',
    });
    for (const [, e] of d) expect(e.owner).toBe('0/0');
    // sorted, ./-prefixed, as ipkg-build's tar --sort=name makes it
    const names = [...d.keys()];
    expect(names[0]).toBe('./');
    expect(names).toEqual([...names].sort());
    expect(readFileSync(join(data, 'usr/bin/bootrelay'), 'utf8')).toMatch(/\nexec node (--[a-z-]+=\d+ )*\/usr\/lib\/bootrelay\/bootrelay\.js "\$@"\n$/);
    expect(readFileSync(join(data, 'usr/lib/bootrelay/bootrelay.js'))).toEqual(readFileSync(join(bundleDir, 'bootrelay.js')));
  });

  it('the wrappers say in one line when node is missing or older than 20 (exit 127)', () => {
    const bin = join(tmp, 'fake-node');
    mkdirSync(bin, { recursive: true });
    for (const w of ['bootrelay', 'relayctl']) {
      const wrapper = join(data, 'usr/bin', w);
      const none = spawnSync('/bin/sh', [wrapper, '--version'], { encoding: 'utf8', env: { PATH: bin } });
      expect(none.status).toBe(127);
      expect(none.stderr).toMatch(new RegExp(`^${w}: node is not installed \\(needs Node\\.js >= 20: [^\n]*opkg install node[^\n]*apk add node[^\n]*\\)\n$`));
      writeFileSync(join(bin, 'node'), '#!/bin/sh\necho v18.20.4\n', { mode: 0o755 });
      const old = spawnSync('/bin/sh', [wrapper, '--version'], { encoding: 'utf8', env: { PATH: bin } });
      expect(old.status).toBe(127);
      expect(old.stderr).toBe(`${w}: node v18.20.4 is too old (Node.js 20 or newer is needed)\n`);
      rmSync(join(bin, 'node'));
    }
  });

  it('has a procd init script that respawns, logs to logd, reloads on UCI changes and validates first', () => {
    const init = readFileSync(join(data, 'etc/init.d/bootrelay'), 'utf8');
    expect(init.split('\n')[0]).toBe('#!/bin/sh /etc/rc.common');
    for (const s of [
      'USE_PROCD=1',
      'procd_set_param command "$PROG" --config "$CONF"',
      'procd_set_param respawn',
      'procd_set_param stdout 1',
      'procd_set_param stderr 1',
      'procd_add_reload_trigger bootrelay',
      'procd_send_signal bootrelay bootrelay HUP',
      'CTL=/usr/bin/relayctl',
      '"$CTL" config check "$CONF"',
      'logger -t bootrelay -p daemon.err',
    ]) {
      expect(init).toContain(s);
    }
  });

  it('is reproducible: the same inputs give the same bytes', () => {
    buildIpk(join(tmp, 'again'));
    expect(readFileSync(join(tmp, 'again', `bootrelay_${version}_all.ipk`))).toEqual(readFileSync(ipk));
  });

  it('runs the packaged relayctl', () => {
    const r = spawnSync('node', [join(data, 'usr/lib/bootrelay/relayctl.js'), '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/status/);
  });

  it('runs the packaged agent: --version, and --check on the packaged UCI config', () => {
    const agent = join(data, 'usr/lib/bootrelay/bootrelay.js');
    const v = spawnSync('node', [agent, '--version'], { encoding: 'utf8', timeout: 20_000 });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(pkg.version);
    const ok = spawnSync('node', [agent, '--config', join(data, 'etc/config/bootrelay'), '--check'], { encoding: 'utf8', timeout: 20_000 });
    expect(ok.status, ok.stdout + ok.stderr).toBe(0);
    const bad = spawnSync('node', [agent, '--config', join(root, 'test/fixtures/uci/bad-number.uci'), '--check'], { encoding: 'utf8', timeout: 20_000 });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"');
  });

  it('validates the packaged UCI config with the packaged relayctl, as the init script does', () => {
    const good = spawnSync('node', [join(data, 'usr/lib/bootrelay/relayctl.js'), 'config', 'check', join(data, 'etc/config/bootrelay')], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(good.status, good.stdout + good.stderr).toBe(0);
    const bad = spawnSync('node', [join(data, 'usr/lib/bootrelay/relayctl.js'), 'config', 'check', join(root, 'test/fixtures/uci/bad-number.uci')], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(bad.status).toBe(1);
    expect(bad.stdout + bad.stderr).toContain('bootrelay.@dhcp[0].lease_seconds: expected an integer, got "abc"');
  });

  it('has an OpenWrt feed Makefile that installs the same files', () => {
    const mk = readFileSync(join(root, 'image/openwrt/Makefile'), 'utf8');
    for (const s of [
      'include $(TOPDIR)/rules.mk',
      'include $(INCLUDE_DIR)/package.mk',
      'PKG_NAME:=bootrelay',
      'DEPENDS:=+node',
      'PKGARCH:=all',
      'define Package/bootrelay/conffiles\n/etc/config/bootrelay\nendef',
      'define Package/bootrelay/install',
      '$(eval $(call BuildPackage,bootrelay))',
    ]) {
      expect(mk).toContain(s);
    }
    const dataFiles = [...listing(join(outer, 'data.tar.gz'))].filter(([, e]) => !e.mode.startsWith('d')).map(([p]) => p.slice(1));
    for (const f of dataFiles) {
      const base = f.split('/').pop()!;
      const dir = f.slice(0, f.length - base.length - 1);
      expect(mk, f).toMatch(new RegExp(`\\b${base.replace(/[.-]/g, '\\$&')}\\b`));
      expect(mk, f).toContain(`$(1)${dir}`);
    }
  });
});

function shellScripts(): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (readFileSync(p, 'utf8').startsWith('#!') && /^#!.*\b(sh|bash|ash)\b/.test(readFileSync(p, 'utf8').split('\n')[0]!)) out.push(p);
    }
  };
  walk(join(root, 'image'));
  return out.sort();
}

describeSkipIf(missingCmds('shellcheck'))('shell scripts in image/ (shellcheck)', () => {
  const scripts = shellScripts();

  it('finds them all', () => {
    expect(scripts.map((p) => relative(root, p))).toEqual([
      'image/build-ipk.sh',
      'image/control/postinst',
      'image/control/postinst-pkg',
      'image/control/prerm',
      'image/control/prerm-pkg',
      'image/files/etc/init.d/bootrelay',
      'image/files/etc/uci-defaults/90-bootrelay',
      'image/files/usr/bin/bootrelay',
      'image/files/usr/bin/relayctl',
      'image/files/usr/libexec/bootrelay-router',
    ]);
  });

  it.each(shellScripts().map((p) => [relative(root, p), p]))('%s is clean', (_name, p) => {
    const bash = readFileSync(p, 'utf8').split('\n')[0]!.includes('bash');
    const r = spawnSync('shellcheck', ['-s', bash ? 'bash' : 'sh', p], { encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
