/**
 * End to end, Secure Boot (issue 14): OVMF with Secure Boot enforced (q35 + SMM, Debian's
 * OVMF_CODE_4M.secboot.fd + a copy of OVMF_VARS_4M.ms.fd, Microsoft keys) PXE-boots through the
 * relay: Debian's signed shim → Debian's signed network GRUB → a grub.cfg the relay generates
 * from the profile → Debian's signed kernel + the lab initrd, every file read from the upstream
 * through the relay. The booted system reports the SecureBoot efivar. Then the same chain with
 * Secure Boot off, and the unsigned iPXE under Secure Boot: the relay must say "Secure Boot".
 * Debian's signed packages are fetched with apt-get download + dpkg-deb -x (test/e2e/lab/signed.sh).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSkipIf } from '../helpers/skip';
import { BootLab, labBaseDir, labSkipReason, labWorkDir } from './lab';
import { agentBundle, expectInOrder, is } from './steps';
import { clientState, discoverToBooted, installSignedPayload, ovmfSecureBootArgs, runVm, useSignedChain } from './vm';

function sbSkipReason(): string | undefined {
  const r = labSkipReason();
  if (r) return r;
  for (const f of ['OVMF_CODE_4M.secboot.fd', 'OVMF_VARS_4M.ms.fd', 'OVMF_CODE_4M.fd', 'OVMF_VARS_4M.fd']) {
    if (!existsSync(`/usr/share/OVMF/${f}`)) return `no /usr/share/OVMF/${f} (apt-get install ovmf)`;
  }
  if (spawnSync('apt-cache', ['show', 'shim-signed'], { stdio: 'ignore' }).status !== 0) return 'apt cannot see shim-signed (apt-get update; the main component)';
  return undefined;
}
const reason = sbSkipReason();

// a command line with spaces, quotes, `$` and `;`: GRUB's lexer and its loader must hand it over intact
const QUOTING = 'lab.quoting="x y;$z"';

describeSkipIf(reason)('e2e: Secure Boot through the relay (QEMU q35 + SMM, OVMF secboot, TCG)', () => {
  let lab: BootLab;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    const work = labWorkDir('e2e-secureboot');
    const agent = agentBundle(work);
    lab = new BootLab({
      prefix: `brs${process.pid % 10000}`,
      work,
      agentJs: agent.js,
      // the signed binaries and the Secure Boot initrd next to the lab's kernel (shared, cached)
      beforeAgent: async (l) => installSignedPayload(l, labBaseDir(), join(__dirname, 'lab', 'signed.sh')),
      configure: (cfg) => useSignedChain(cfg, QUOTING),
    });
    timings.labUp = await lab.upOrCleanup();
  }, 240_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e-secureboot', timings);
    await lab.cleanup();
  }, 60_000);

  it('Secure Boot on: signed shim → signed GRUB → generated grub.cfg → signed kernel; booted reports secureboot=1', async () => {
    const mac = '52:54:00:99:5b:01';
    const r = await runVm(lab, { name: 'sb1-chain', mac, args: ovmfSecureBootArgs(lab.opts.work, 'sb1', true), nic: ['-device', `virtio-net-pci,netdev=n0,mac=${mac},bootindex=1,romfile=`], timeoutMs: 240_000 });
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const ev = lab.events(mac);
    timings.sbOnDiscoverToBooted = discoverToBooted(ev) ?? -1;
    timings.sbOnVm = r.seconds;
    expectInOrder(ev, [
      ['DISCOVER', is('dhcp.discover')],
      ['ACK names the shim', is('dhcp.ack', /^sb\/shimx64\.efi$/)],
      ['shim', is('tftp.done', /^sb\/shimx64\.efi$/)],
      ['GRUB under shim\'s name', is('tftp.done', /^sb\/grubx64\.efi$/)],
      ['generated grub.cfg', is('tftp.done', /^grub\/grub\.cfg$/)],
      ['kernel', is('tftp.done', /^debian\/vmlinuz$/)],
      ['initrd', is('tftp.done', /^debian\/initrd-sb\.gz$/)],
      ['booted', is('client.booted')],
    ]);
    // every optional probe was refused at once (not found), never waiting on anything
    const probes = ev.filter((e) => e.type === 'tftp.error' && /revocations|shim_certificate|x86_64-efi\//.test(String(e.file)));
    expect(probes.length).toBeGreaterThanOrEqual(3);
    for (const p of probes) expect(String(p.reason ?? p.error)).toMatch(/not-found|not found/);
    expect(r.serial).toMatch(/Secure boot enabled|UEFI Secure Boot is enabled/);
    const st = await clientState(lab, mac);
    expect(st).toMatchObject({ phase: 'booted', secureBoot: true });
    expect(st!.report.secureboot).toBe('1');
    // the kernel got the quoted parameter as one word, `$` and `;` intact
    expect(decodeURIComponent(st!.report.cmdline)).toContain('"lab.quoting=x y;$z"');
    expect(Object.keys(st!.phases)).toEqual(['dhcp', 'bound', 'loader', 'kernel', 'initrd', 'handoff', 'booted']);
    // the upstream saw GRUB once, under its own name, and never the probes
    const up = lab.upstreamLog();
    expect(up.filter((l) => l.includes('GET /sb/grubnetx64.efi.signed ')).length).toBe(1);
    expect(up.filter((l) => /revocations|grub\/x86_64-efi|grub\.cfg/.test(l))).toEqual([]);
  }, 300_000);

  it('Secure Boot off (OVMF_CODE_4M.fd, no keys): the same chain boots, secureboot=0', async () => {
    const mac = '52:54:00:99:5b:02';
    const r = await runVm(lab, { name: 'sb0-chain', mac, args: ovmfSecureBootArgs(lab.opts.work, 'sb0', false), nic: ['-device', `virtio-net-pci,netdev=n0,mac=${mac},bootindex=1,romfile=`], timeoutMs: 240_000 });
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    timings.sbOffDiscoverToBooted = discoverToBooted(lab.events(mac)) ?? -1;
    timings.sbOffVm = r.seconds;
    const st = await clientState(lab, mac);
    expect(st).toMatchObject({ phase: 'booted', secureBoot: false });
  }, 300_000);

  it('the unsigned iPXE under Secure Boot: the relay says Secure Boot within 60 s of the loader transfer, and the next power-on gets the chain', async () => {
    // the same relay, now handing UEFI clients the unsigned iPXE (the agent restarts with that config)
    await lab.stopAgent();
    // iPXE first, the signed chain as its fallback: after the refusal the relay switches this MAC
    lab.opts.configure = (cfg) => {
      useSignedChain(cfg);
      cfg.boot.loaders['uefi-x64'] = ['ipxe/ipxe.efi', cfg.boot.loaders['uefi-x64']];
    };
    lab.writeConfig();
    lab.lines.length = 0;
    await lab.startAgent();
    const mac = '52:54:00:99:5b:03';
    const failed = (ev: typeof lab.lines) => ev.some((e) => e.type === 'client.failed' && /Secure Boot/.test(String(e.error)));
    const r = await runVm(lab, {
      name: 'sb1-ipxe',
      mac,
      args: ovmfSecureBootArgs(lab.opts.work, 'sb1ipxe', true),
      nic: ['-device', `virtio-net-pci,netdev=n0,mac=${mac},bootindex=1,romfile=`],
      timeoutMs: 150_000,
      until: failed,
      failRe: /Kernel panic|LAB: BOOTED/,
    });
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    expect(r.serial).toMatch(/Access Denied/);
    const ev = lab.events(mac);
    const done = ev.find((e) => e.type === 'tftp.done' && e.file === 'ipxe/ipxe.efi');
    const diag = ev.find((e) => e.type === 'client.failed')!;
    expect(done).toBeDefined();
    const secs = (Date.parse(String(diag.time)) - Date.parse(String(done!.time))) / 1000;
    timings.refusalDiagnosedAfter = secs;
    expect(secs).toBeLessThan(60);
    expect(String(diag.error)).toMatch(/fetched all of ipxe\/ipxe\.efi.*Secure Boot is most likely on and refused this unsigned loader; from its next network boot on it is offered sb\/shimx64\.efi/);
    const st = await clientState(lab, mac);
    expect(st).toMatchObject({ phase: 'failed' });
    expect(st!.error).toMatch(/Secure Boot/);
    const explain = await lab.net.exec(lab.nsRelay, process.execPath, [lab.opts.agentJs.replace(/bootrelay\.js$/, 'relayctl.js'), '--socket', lab.socketPath, 'explain', mac]);
    if (explain.code === 0 || explain.stdout) expect(explain.stdout).toMatch(/"shim"/);
    // the next power-on of the same machine: PXE again, now handed the signed chain, and it boots
    const again = await runVm(lab, {
      name: 'sb1-ipxe-then-chain',
      mac,
      args: ovmfSecureBootArgs(lab.opts.work, 'sb1ipxe2', true),
      nic: ['-device', `virtio-net-pci,netdev=n0,mac=${mac},bootindex=1,romfile=`],
      timeoutMs: 240_000,
    });
    expect(again.ok, `${again.reason}\n${again.serialTail}`).toBe(true);
    const ev2 = lab.events(mac);
    expect(ev2.some((e) => e.type === 'dhcp.loader-fallback' && e.file === 'sb/shimx64.efi')).toBe(true);
    expect(await clientState(lab, mac)).toMatchObject({ phase: 'booted', secureBoot: true });
  }, 420_000);

  it('a kernel not signed for this shim (one byte changed) under Secure Boot: GRUB refuses it and the relay says so', async () => {
    // the same chain again, and a profile whose kernel no longer matches its signature
    const www = lab.www;
    const k = readFileSync(join(www, 'debian', 'vmlinuz'));
    const bad = Buffer.from(k);
    bad[Math.floor(bad.length / 2)] ^= 0xff;
    writeFileSync(join(www, 'debian', 'vmlinuz-tampered'), bad);
    const mac = '52:54:00:99:5b:04';
    await lab.stopAgent();
    lab.opts.configure = (cfg) => {
      useSignedChain(cfg);
      cfg.boot.profiles.tampered = { ...cfg.boot.profiles.lab, kernel: 'debian/vmlinuz-tampered' };
      cfg.boot.assign = { [mac]: 'tampered' };
    };
    lab.writeConfig();
    lab.lines.length = 0;
    await lab.startAgent();
    const refused = (ev: typeof lab.lines) => ev.some((e) => e.type === 'client.failed' && e.reason === 'kernel-refused');
    const r = await runVm(lab, {
      name: 'sb1-tampered',
      mac,
      args: ovmfSecureBootArgs(lab.opts.work, 'sb1bad', true),
      nic: ['-device', `virtio-net-pci,netdev=n0,mac=${mac},bootindex=1,romfile=`],
      timeoutMs: 180_000,
      until: refused,
      failRe: /Kernel panic|LAB: BOOTED/,
    });
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    expect(r.serial).toMatch(/bad shim signature|Access Denied|verification failed/i);
    const ev = lab.events(mac);
    expect(ev.some((e) => e.type === 'tftp.start' && e.file === 'debian/initrd-sb.gz')).toBe(false);
    const st = await clientState(lab, mac);
    expect(st).toMatchObject({ phase: 'failed' });
    expect(st!.error).toMatch(/GRUB refused the kernel debian\/vmlinuz-tampered: under Secure Boot it must be signed/);
  }, 240_000);
});
