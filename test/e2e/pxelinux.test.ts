/**
 * End to end (issue 4): PXELINUX chained from iPXE, finding its config through
 * the relay. SeaBIOS + iPXE ROM gets the relay's /boot.ipxe, which for the
 * `pxelinux` profile is an upstream iPXE script (lab/pxelinux/chain.ipxe) that
 * chains pxelinux.0 over the relay's TFTP. PXELINUX (running on iPXE's PXE API)
 * loads ldlinux.c32, probes pxelinux.cfg/<uuid>, 01-<mac>, the hex-IP prefixes and
 * finally `default`, all over the relay's TFTP, then loads the kernel and initrd
 * over TFTP too. Every file comes from the upstream through the relay's cache;
 * the misses are remembered (cache.negativeTtlSeconds), so a second VM's probes
 * of the same names never reach the upstream again.
 *
 * Needs Debian's `pxelinux` and `syslinux-common` packages.
 */
import { it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BootLab, labWorkDir, labSkipReason, RELAY_LAN_IP, type AgentLine } from './lab';
import { agentBundle, expectInOrder, is } from './steps';
import { describeSkipIf } from '../helpers/skip';

const PXELINUX_0 = '/usr/lib/PXELINUX/pxelinux.0';
const LDLINUX = '/usr/lib/syslinux/modules/bios/ldlinux.c32';
const OWN = join(__dirname, 'lab', 'pxelinux');

function skip(): string | undefined {
  const r = labSkipReason();
  if (r) return r;
  const missing = [PXELINUX_0, LDLINUX].find((f) => !existsSync(f));
  if (missing) {
    const why = `no ${missing} (apt-get install pxelinux syslinux-common)`;
    console.warn(`[e2e] skipped: ${why}`);
    return why;
  }
  return undefined;
}
const reason = skip();

/** lower-case hex of an IPv4 address, upper case as PXELINUX asks: 10.99.1.100 -> 0A630164 */
const hexIp = (ip: string) =>
  ip
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();

const CFG = 'pxelinux/pxelinux.cfg/';
const isCfg = (e: AgentLine) => String(e.file ?? '').startsWith(CFG);
const cfgName = (e: AgentLine) => String(e.file).slice(CFG.length);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describeSkipIf(reason)('e2e: PXELINUX chained from iPXE, config over the relay (QEMU, TCG)', () => {
  let lab: BootLab;
  let work: string;
  const timings: Record<string, number> = {};
  const NEG_TTL = 600;
  const macs = ['52:54:00:99:5c:01', '52:54:00:99:5c:02'];
  /** config names each VM probed, in order, and which of them missed */
  const probed: Record<string, { names: string[]; missed: string[]; ip: string }> = {};

  beforeAll(async () => {
    work = labWorkDir('e2e-pxelinux');
    const agent = agentBundle(work);
    console.log(`[e2e-pxelinux] agent from ${agent.js}`);
    lab = new BootLab({
      prefix: `brx${process.pid % 10000}`,
      work,
      agentJs: agent.js,
      configure: (cfg) => {
        // the upstream's files (www exists by now; python serves it once started)
        const dir = join(lab.www, 'pxelinux');
        mkdirSync(join(dir, 'pxelinux.cfg'), { recursive: true });
        copyFileSync(PXELINUX_0, join(dir, 'pxelinux.0'));
        copyFileSync(LDLINUX, join(dir, 'ldlinux.c32'));
        copyFileSync(join(OWN, 'chain.ipxe'), join(dir, 'chain.ipxe'));
        copyFileSync(join(OWN, 'pxelinux.cfg', 'default'), join(dir, 'pxelinux.cfg', 'default'));
        cfg.boot.profiles.pxelinux = { script: 'pxelinux/chain.ipxe' };
        cfg.boot.defaultProfile = 'pxelinux';
        cfg.cache.negativeTtlSeconds = NEG_TTL;
      },
    });
    timings.labUp = await lab.upOrCleanup();
  }, 180_000);

  afterAll(async () => {
    if (!lab) return;
    await lab.stopAndReport('e2e-pxelinux', timings);
    for (const [mac, p] of Object.entries(probed)) console.log(`[e2e-pxelinux] ${mac} (${p.ip}) probed ${p.names.join(' ')}`);
    await lab.cleanup();
  }, 60_000);

  /** Boots one BIOS VM and checks the whole chain from the relay's events. */
  async function bootThroughPxelinux(mac: string): Promise<void> {
    const r = await lab.boot('bios', mac, 240_000);
    timings[mac] = r.seconds;
    expect(r.ok, `${r.reason}\n${r.serialTail}`).toBe(true);
    const ev = lab.events(mac);
    const steps = expectInOrder(ev, [
      ['DISCOVER', is('dhcp.discover')],
      ['ACK (iPXE)', is('dhcp.ack', /boot\.ipxe/)],
      ['upstream script', is('http.done', /^pxelinux\/chain\.ipxe$/)],
      ['pxelinux.0 start', is('tftp.start', /^pxelinux\/pxelinux\.0$/)],
      ['pxelinux.0 done', is('tftp.done', /^pxelinux\/pxelinux\.0$/)],
      ['ldlinux.c32 start', is('tftp.start', /^pxelinux\/ldlinux\.c32$/)],
      ['ldlinux.c32 done', is('tftp.done', /^pxelinux\/ldlinux\.c32$/)],
      ['config default', is('tftp.done', /^pxelinux\/pxelinux\.cfg\/default$/)],
      ['kernel start', is('tftp.start', /^debian\/vmlinuz$/)],
      ['kernel done', is('tftp.done', /^debian\/vmlinuz$/)],
      ['initrd start', is('tftp.start', /^debian\/initrd\.gz$/)],
      ['initrd done', is('tftp.done', /^debian\/initrd\.gz$/)],
      ['booted', is('client.booted')],
    ]);
    const ip = String(steps.at(-1)!.ip ?? ev.find((e) => e.type === 'dhcp.ack')?.ip ?? '');
    expect(ip).toMatch(/^10\.99\.1\.\d+$/);

    // PXELINUX's config search, in its documented order; every name before `default` missed
    const cfgEvents = ev.filter((e) => isCfg(e) && /^tftp\.(done|error)$/.test(String(e.type)));
    const names = cfgEvents.map(cfgName);
    const missed = cfgEvents.filter((e) => e.type === 'tftp.error').map(cfgName);
    probed[mac] = { names, missed, ip };
    const h = hexIp(ip);
    const expected = [`01-${mac.replace(/:/g, '-')}`, ...Array.from({ length: 8 }, (_, i) => h.slice(0, 8 - i)), 'default'];
    // the UUID is tried first only when the PXE stack reports one (QEMU without -uuid may not)
    const rest = names.length && UUID_RE.test(names[0]!) ? names.slice(1) : names;
    expect(rest, `probed: ${names.join(' ')}`).toEqual(expected);
    for (const e of cfgEvents.slice(0, -1)) {
      expect(e.type, cfgName(e)).toBe('tftp.error');
      expect(e.reason, cfgName(e)).toBe('not-found');
      expect(e.code, cfgName(e)).toBe(1);
    }
    expect(cfgEvents.at(-1)!.type).toBe('tftp.done');
    // the kernel and the initrd went over TFTP, not HTTP
    expect(ev.filter((e) => e.type === 'http.start' && /debian\//.test(String(e.file)))).toHaveLength(0);
    const kernel = steps[9]!;
    expect(kernel.bytes).toBeGreaterThan(1_000_000);
    expect(kernel.bytes).toBe(kernel.totalBytes);
    // PXELINUX got ldlinux.c32 and its config from its own directory: the prefix came through
    expect(ev.some((e) => e.type === 'tftp.error' && /ldlinux\.c32$/.test(String(e.file)) && !/^pxelinux\//.test(String(e.file)))).toBe(false);
  }

  it('boots SeaBIOS/iPXE -> upstream script -> pxelinux.0 -> ldlinux.c32 -> pxelinux.cfg -> kernel, all via the relay', async () => {
    await bootThroughPxelinux(macs[0]!);
  }, 260_000);

  it('a second VM probing the same missing names within negativeTtlSeconds does not reach the upstream for them', async () => {
    const t0 = Date.now();
    await bootThroughPxelinux(macs[1]!);
    expect((Date.now() - t0) / 1000).toBeLessThan(NEG_TTL);
    const a = probed[macs[0]!]!;
    const b = probed[macs[1]!]!;
    const shared = a.missed.filter((n) => b.missed.includes(n));
    // the hex-IP prefixes shorter than the address itself are common to both VMs (and the UUID when QEMU reports one)
    expect(shared.length, `shared misses of ${a.missed.join(' ')} / ${b.missed.join(' ')}`).toBeGreaterThanOrEqual(5);
    const log = lab.upstreamLog();
    const gets = (p: string) => log.filter((l) => l.includes(`"GET /${p} `) || l.includes(`"HEAD /${p} `)).length;
    for (const n of shared) expect(gets(CFG + n), `${n} asked upstream`).toBe(1);
    for (const n of new Set([...a.missed, ...b.missed])) expect(gets(CFG + n), `${n} asked upstream`).toBeLessThanOrEqual(1);
  }, 260_000);

  it('read every file from the upstream once, through the cache', () => {
    const log = lab.upstreamLog();
    const gets = (p: string) => log.filter((l) => l.includes(`"GET /${p} `)).length;
    expect(gets('pxelinux/chain.ipxe')).toBe(1);
    expect(gets('pxelinux/pxelinux.0')).toBe(1);
    expect(gets('pxelinux/ldlinux.c32')).toBe(1);
    expect(gets('pxelinux/pxelinux.cfg/default')).toBe(1);
    expect(gets('debian/vmlinuz')).toBe(1);
    expect(gets('debian/initrd.gz')).toBe(1);
    // the relay's TFTP saw both VMs' misses (the relay answered them, the upstream did not hear all of them)
    const misses = lab.events().filter((e) => e.type === 'tftp.error' && isCfg(e) && e.reason === 'not-found').length;
    expect(misses).toBe(Object.values(probed).reduce((n, p) => n + p.missed.length, 0));
    expect(RELAY_LAN_IP).toBe('10.99.1.1'); // the address chain.ipxe and pxelinux.cfg/default name
  });
});
