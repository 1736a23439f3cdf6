/**
 * Uplink faults against the real agent bundle, with the upstream in its own
 * network namespace behind a Wi-Fi-like link (issue 4):
 *
 *   <p>-up      eth0 10.99.2.1/24   faulty upstream (fixtures/faulty-upstream.ts) on :8080
 *                 |  Wi-Fi-like: netemu 10 ms each way + 20 Mbit/s (bench/_lib/netemu.c),
 *                 |  or, without it, a veth with tbf 20 Mbit/s on both ends
 *   <p>-relay   wan 10.99.2.2/24    dist-equivalent bootrelay.js (dhcp off, TFTP :69, HTTP :80)
 *               lan 10.99.1.1/24
 *                 |  veth
 *   <p>-client  eth0 10.99.1.10/24  curl (HTTP), atftp (TFTP, blksize 1468)
 *
 * Each test says what the fault cost the client; the table is printed at the end.
 * Two tests were written against product bugs they found, now fixed: a kept-alive upstream
 * connection made the first miss after the link died wait the whole upstream timeout (15 s;
 * now about 0.6 s: a dead kept-alive socket is retried once on a fresh connection, and a
 * link-down from the uplink monitor drops every upstream connection); a hanging-up upstream
 * was taken for a lost uplink (now only unreachable/refused/timeout count as uplink faults).
 *
 * Env: BOOTRELAY_AGENT_JS / BOOTRELAY_RELAYCTL_JS run given bundles (e.g. dist/) instead of
 * ones built from the sources into the tmp dir; BRF_NO_NETEMU=1 uses the veth + tbf link;
 * BRF_KEEP=1 keeps the work dir (agent.log).
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundle } from '../helpers/bundle';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NetLab, skipReason, waitFor } from '../helpers/netns';
import { netemuSkipReason, startNetemu } from '../helpers/netemu';
import { describeSkipIf } from '../helpers/skip';

const reason = skipReason('curl', 'atftp', 'tc', 'ss', 'mount', 'umount');
const UP_IP = '10.99.2.1';
const RELAY_WAN = '10.99.2.2';
const RELAY_LAN = '10.99.1.1';
const CLIENT_IP = '10.99.1.10';
const UP_PORT = 8080;
const KiB = 1024;
const MiB = 1024 * 1024;
const UPSTREAM_TIMEOUT_MS = 15_000;

/** The files the upstream publishes under /boot/f/ (random bytes; SHA256SUMS lists them all). */
const FILES: Record<string, number> = {
  'base-http.bin': 4 * MiB,
  'cut-http.bin': 4 * MiB,
  'base-tftp.bin': 1 * MiB,
  'cut-tftp.bin': 1 * MiB,
  'cut-both.bin': 2 * MiB,
  'altered.bin': 1 * MiB,
  'truncated.bin': 1 * MiB,
  'big.bin': 10 * MiB,
  'stale.bin': 256 * KiB,
  'uncached.bin': 256 * KiB,
  'uncached2.bin': 256 * KiB,
  'quota.bin': 5 * MiB,
  'quota-small.bin': 300 * KiB,
};

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Fetched {
  code: number | null;
  status: number;
  bytes: number;
  sha: string;
  ms: number;
  body: string;
  stderr: string;
}

describeSkipIf(reason)('uplink faults: the real agent between a faulty upstream on a Wi-Fi-like link and LAN clients', () => {
  const work = mkdtempSync(join(tmpdir(), 'brf-'));
  const lab = new NetLab(`brf${process.pid % 10000}`);
  const www = join(work, 'www');
  const dl = join(work, 'dl');
  const cacheDir = join(work, 'cache');
  const quotaDir = join(work, 'qcache');
  const sock = join(work, 'ctl.sock');
  const want = new Map<string, { buf: Buffer; sha: string }>();
  const timings: Array<[string, string]> = [];
  let AGENT = process.env.BOOTRELAY_AGENT_JS ?? '';
  let CTL = process.env.BOOTRELAY_RELAYCTL_JS ?? '';
  let nsUp: string;
  let nsR: string;
  let nsC: string;
  let link = '';
  let mounted = false;
  let upstream: UpstreamCtl;
  let agent: ChildProcess | undefined;
  let lines: Array<Record<string, any>> = [];
  let agentErr = '';
  let dlCount = 0;
  let tFixed = 0;

  const note = (what: string, value: string) => {
    timings.push([what, value]);
  };

  // ---- the agent ------------------------------------------------------------

  const writeConfig = (dir: string): string => {
    const file = join(work, 'relay.json');
    writeFileSync(
      file,
      JSON.stringify({
        agentId: 'faults-relay',
        stateDir: join(work, 'state'),
        lan: { interface: 'lan', address: RELAY_LAN, prefix: 24 },
        dhcp: { mode: 'off' },
        tftp: { port: 69 },
        http: { port: 80 },
        upstream: { url: `http://${UP_IP}:${UP_PORT}/boot/`, timeoutMs: UPSTREAM_TIMEOUT_MS },
        // ttl 0: every hit is revalidated, so a cached file served while the uplink is gone is a stale one
        cache: { dir, maxBytes: 1_000_000_000, ttlSeconds: 0 },
        boot: { loaders: {}, defaultProfile: 'lab', profiles: { lab: { kernel: 'f/big.bin' } } },
        control: { socket: sock },
        log: { level: 'info' },
      }),
    );
    return file;
  };

  /** Starts the agent in the relay namespace; resolves (with the ms it took) once it says it started. */
  const startAgent = async (config: string): Promise<number> => {
    const t0 = Date.now();
    lines = [];
    agentErr = '';
    const a = lab.spawn(nsR, process.execPath, [AGENT, '--config', config]);
    agent = a;
    let buf = '';
    a.stdout!.on('data', (d: Buffer) => {
      appendFileSync(join(work, 'agent.log'), d);
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(l) as Record<string, any>);
        } catch {
          /* not JSON */
        }
      }
    });
    a.stderr!.on('data', (d: Buffer) => (agentErr += d.toString()));
    await waitFor(
      () => {
        if (a.exitCode !== null || a.signalCode !== null) throw new Error(`agent exited ${a.exitCode ?? a.signalCode}: ${agentErr.slice(-2000)}`);
        return lines.some((l) => l.msg === 'bootrelay started');
      },
      15_000,
      'agent started',
    );
    return Date.now() - t0;
  };

  /** The last agent log line matching, waiting briefly for it (stdout lags the client's answer). */
  const logged = (match: (l: Record<string, any>) => boolean, timeoutMs = 2000) =>
    waitFor(() => lines.filter(match).pop(), timeoutMs, 'agent log line');

  const agentAlive = () => !!agent && agent.exitCode === null && agent.signalCode === null;

  const ctl = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CTL, '--socket', sock, ...args], { encoding: 'utf8', timeout: 15_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const cacheList = (): Array<{ path: string; size: number; complete: boolean; sha256?: string }> => {
    const r = ctl('cache', 'ls', '--json');
    if (r.code !== 0) throw new Error(`relayctl cache ls: ${r.stderr}`);
    return JSON.parse(r.stdout) as Array<{ path: string; size: number; complete: boolean; sha256?: string }>;
  };
  const cached = (name: string) => cacheList().find((e) => e.path === `f/${name}`);

  const metrics = async (): Promise<string> => (await lab.exec(nsC, 'curl', ['-sS', '--max-time', '5', `http://${RELAY_LAN}/metrics`])).stdout;
  const metric = (text: string, name: string, labels: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line ? Number(line.trim().split(/\s+/).pop()) : 0;
  };

  // ---- clients --------------------------------------------------------------

  const outFile = (name: string) => join(dl, `${name}.${dlCount++}`);
  const readOut = (file: string) => (existsSync(file) ? readFileSync(file) : Buffer.alloc(0));

  const httpGet = async (name: string, maxTimeS = 60): Promise<Fetched> => {
    const out = outFile(name);
    const t0 = Date.now();
    const r = await lab.exec(nsC, 'curl', ['-sS', '--max-time', String(maxTimeS), '-o', out, '-w', '%{http_code}', `http://${RELAY_LAN}/files/f/${name}`], {
      timeoutMs: (maxTimeS + 10) * 1000,
    });
    const ms = Date.now() - t0;
    const data = readOut(out);
    return { code: r.code, status: Number(r.stdout.trim()), bytes: data.length, sha: sha256(data), ms, body: data.length < 200 ? data.toString() : '', stderr: r.stderr.trim() };
  };

  const httpHead = async (name: string): Promise<{ status: number; length: number | undefined }> => {
    const r = await lab.exec(nsC, 'curl', ['-sS', '--max-time', '30', '-I', `http://${RELAY_LAN}/files/f/${name}`], { timeoutMs: 40_000 });
    const status = Number(/^HTTP\/[\d.]+ (\d+)/m.exec(r.stdout)?.[1] ?? 0);
    const len = /^content-length:\s*(\d+)/im.exec(r.stdout)?.[1];
    return { status, length: len === undefined ? undefined : Number(len) };
  };

  const tftpGet = async (name: string): Promise<Fetched> => {
    const out = outFile(name);
    const t0 = Date.now();
    const r = await lab.exec(nsC, 'atftp', ['--option', 'blksize 1468', '--tftp-timeout', '2', '-g', '-r', `f/${name}`, '-l', out, RELAY_LAN], { timeoutMs: 60_000 });
    const ms = Date.now() - t0;
    const data = readOut(out);
    return { code: r.code, status: 0, bytes: data.length, sha: sha256(data), ms, body: '', stderr: (r.stderr + r.stdout).trim() };
  };

  const expectWhole = (name: string, f: Fetched, what: string) => {
    const w = want.get(name)!;
    expect({ what, code: f.code, bytes: f.bytes, sha: f.sha, err: f.code === 0 ? '' : f.stderr }).toEqual({ what, code: 0, bytes: w.buf.length, sha: w.sha, err: '' });
    if (f.status) expect(f.status).toBe(200);
  };
  /** A failed transfer: the client knows (non-zero exit) and does not hold the file. */
  const expectFailed = (name: string, f: Fetched, what: string) => {
    const w = want.get(name)!;
    expect(f.code, `${what}: the client must see a failure (${f.bytes} bytes, ${f.stderr})`).not.toBe(0);
    expect(f.sha === w.sha && f.bytes === w.buf.length, `${what}: got the whole file anyway`).toBe(false);
  };

  const ms = (n: number) => `${n} ms`;

  // ---- lab ------------------------------------------------------------------

  beforeAll(async () => {
    mkdirSync(dl, { recursive: true });
    mkdirSync(join(www, 'f'), { recursive: true });
    mkdirSync(quotaDir, { recursive: true });
    const upJs = join(work, 'faulty-upstream.js');
    // the agent exactly as scripts/build.mjs bundles it (into our own dir: dist/ may be rebuilt under us)
    const builds: Array<Promise<string>> = [bundle('test/integration/fixtures/faulty-upstream.ts', upJs, '0.0.0-faults')];
    if (!AGENT) builds.push(bundle('agent/main.ts', (AGENT = join(work, 'bootrelay.js')), '0.0.0-faults'));
    if (!CTL) builds.push(bundle('agent/cli/relayctl.ts', (CTL = join(work, 'relayctl.js')), '0.0.0-faults'));
    await Promise.all(builds);

    const sums: string[] = [];
    for (const [name, size] of Object.entries(FILES)) {
      const buf = randomFillSync(Buffer.alloc(size));
      writeFileSync(join(www, 'f', name), buf);
      want.set(name, { buf, sha: sha256(buf) });
      sums.push(`${sha256(buf)}  ${name}`);
    }
    writeFileSync(join(www, 'f', 'SHA256SUMS'), sums.join('\n') + '\n');

    nsUp = lab.addNs('up');
    nsR = lab.addNs('relay');
    nsC = lab.addNs('client');
    // the Wi-Fi-like uplink
    if (!process.env.BRF_NO_NETEMU && !netemuSkipReason()) {
      await startNetemu(lab, { ns: nsUp, dev: 'eth0' }, { ns: nsR, dev: 'wan' }, { delayUs: 10_000, rateKbit: 20_000, limit: 1000, workDir: work });
      lab.ip(nsUp, 'link', 'set', 'eth0', 'up');
      lab.ip(nsR, 'link', 'set', 'wan', 'up');
      link = 'netemu: 10 ms each way, 20 Mbit/s';
    } else {
      lab.veth(nsUp, 'eth0', nsR, 'wan');
      for (const [ns, dev] of [[nsUp, 'eth0'], [nsR, 'wan']] as const) {
        const r = spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', '20mbit', 'burst', '32kb', 'latency', '50ms'], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`tc tbf: ${r.stderr}`);
      }
      link = 'veth + tbf 20 Mbit/s (no netemu: no added delay)';
    }
    lab.addr(nsUp, 'eth0', `${UP_IP}/24`);
    lab.addr(nsR, 'wan', `${RELAY_WAN}/24`);
    lab.veth(nsR, 'lan', nsC, 'eth0');
    lab.addr(nsR, 'lan', `${RELAY_LAN}/24`);
    lab.addr(nsC, 'eth0', `${CLIENT_IP}/24`);

    upstream = new UpstreamCtl(lab.spawn(nsUp, process.execPath, [upJs, '--dir', www, '--host', UP_IP, '--port', String(UP_PORT)]));
    await upstream.ready;
    await startAgent(writeConfig(cacheDir));
    note('uplink', link);
  }, 90_000);

  afterAll(async () => {
    await lab.cleanup();
    if (mounted) {
      if (spawnSync('umount', [quotaDir]).status !== 0) spawnSync('umount', ['-l', quotaDir]);
    }
    if (process.env.BRF_KEEP) console.log(`[uplink-faults] kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
    if (timings.length) {
      const w = Math.max(...timings.map(([k]) => k.length));
      console.log(`[uplink-faults] what the faults cost the client\n${timings.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n')}`);
    }
  });

  // ---- 1 ----------------------------------------------------------------------

  it('upstream connection cut mid-file: HTTP and TFTP clients get the right bytes; the relay resumed with Range', async () => {
    const base = await httpGet('base-http.bin');
    expectWhole('base-http.bin', base, 'http baseline');
    await upstream.call('cut', { path: 'f/cut-http.bin', at: Math.floor(1.5 * MiB) });
    const cut = await httpGet('cut-http.bin');
    expectWhole('cut-http.bin', cut, 'http through a cut');
    note('http 4 MiB uncached, clean upstream', ms(base.ms));
    note('http 4 MiB uncached, cut at 1.5 MiB', `${ms(cut.ms)} (+${cut.ms - base.ms} ms)`);

    const tbase = await tftpGet('base-tftp.bin');
    expectWhole('base-tftp.bin', tbase, 'tftp baseline');
    await upstream.call('cut', { path: 'f/cut-tftp.bin', at: 700_000 });
    const tcut = await tftpGet('cut-tftp.bin');
    expectWhole('cut-tftp.bin', tcut, 'tftp through a cut');
    note('tftp 1 MiB uncached, clean upstream', ms(tbase.ms));
    note('tftp 1 MiB uncached, cut at 700 kB', `${ms(tcut.ms)} (+${tcut.ms - tbase.ms} ms)`);

    // both clients on the same fill when the cut happens
    await upstream.call('cut', { path: 'f/cut-both.bin', at: 1 * MiB });
    const [h, t] = await Promise.all([httpGet('cut-both.bin'), tftpGet('cut-both.bin')]);
    expectWhole('cut-both.bin', h, 'http, shared fill through a cut');
    expectWhole('cut-both.bin', t, 'tftp, shared fill through a cut');
    note('http+tftp together, 2 MiB cut at 1 MiB', `http ${ms(h.ms)}, tftp ${ms(t.ms)}`);

    for (const [name, at] of [['cut-http.bin', 1.5 * MiB], ['cut-tftp.bin', 700_000], ['cut-both.bin', 1 * MiB]] as const) {
      const reqs = (await upstream.call('requests', { path: `f/${name}` })) as Array<{ method: string; range?: string; ifRange?: string; status: number }>;
      const gets = reqs.filter((r) => r.method === 'GET');
      // one whole-file GET, then one resume from where the bytes on disk end
      expect(gets.length, JSON.stringify(reqs)).toBe(2);
      const resume = gets.find((r) => r.range)!;
      expect(resume, JSON.stringify(reqs)).toBeDefined();
      const from = Number(/^bytes=(\d+)-$/.exec(resume.range!)?.[1]);
      expect(from).toBeGreaterThan(0);
      expect(from).toBeLessThanOrEqual(at);
      expect(resume.ifRange).toBeTruthy();
      expect(resume.status).toBe(206);
      expect(cached(name)).toMatchObject({ complete: true, size: FILES[name], sha256: want.get(name)!.sha });
    }
    await waitFor(() => lines.filter((l) => l.msg === 'upstream fetch resumed').length >= 3, 2000, 'three resumes in the log');
    expect(lines.filter((l) => l.msg === 'upstream fetch resumed').length).toBe(3);
  }, 60_000);

  // ---- 2 ----------------------------------------------------------------------

  it('altered or truncated upstream file: HTTP and TFTP transfers fail, nothing is committed', async () => {
    const m0 = await metrics();
    await upstream.call('alter', { path: 'f/altered.bin', flipAt: FILES['altered.bin']! - 5000 });
    await upstream.call('truncate', { path: 'f/truncated.bin', at: 600_000 });
    const [ah, at, th, tt] = await Promise.all([httpGet('altered.bin'), tftpGet('altered.bin'), httpGet('truncated.bin'), tftpGet('truncated.bin')]);
    expectFailed('altered.bin', ah, 'http altered');
    expectFailed('altered.bin', at, 'tftp altered');
    expectFailed('truncated.bin', th, 'http truncated');
    expectFailed('truncated.bin', tt, 'tftp truncated');
    // HTTP: the headers promised the whole size, the body stopped short of it (curl: 18, partial file)
    expect(ah.status).toBe(200);
    expect(ah.bytes).toBeLessThan(FILES['altered.bin']!);
    expect(th.bytes).toBeLessThanOrEqual(600_000);
    note('altered 1 MiB: error seen after', `http ${ms(ah.ms)} (curl ${ah.code}), tftp ${ms(at.ms)} (atftp ${at.code})`);
    note('truncated at 600 kB: error seen after', `http ${ms(th.ms)} (curl ${th.code}), tftp ${ms(tt.ms)} (atftp ${tt.code})`);

    expect(cached('altered.bin')).toBeUndefined();
    expect(cached('truncated.bin')).toBeUndefined();
    const m1 = await metrics();
    expect(metric(m1, 'bootrelay_cache_errors_total', 'reason="integrity"')).toBeGreaterThan(metric(m0, 'bootrelay_cache_errors_total', 'reason="integrity"'));
    expect(metric(m1, 'bootrelay_cache_errors_total', 'reason="upstream"')).toBeGreaterThan(metric(m0, 'bootrelay_cache_errors_total', 'reason="upstream"'));
    expect(readdirSync(join(cacheDir, 'partial'))).toEqual([]);
    // the relay tried to resume the truncated body before it gave up
    const treqs = (await upstream.call('requests', { path: 'f/truncated.bin' })) as Array<{ method: string; range?: string }>;
    const resumes = treqs.filter((r) => r.method === 'GET' && r.range).map((r) => Number(/^bytes=(\d+)-$/.exec(r.range!)?.[1]));
    expect(resumes.length, JSON.stringify(treqs)).toBeGreaterThanOrEqual(1);
    for (const from of resumes) expect(from).toBeLessThanOrEqual(600_000);
    note('truncated: upstream requests', treqs.map((r) => `${r.method}${r.range ? ' ' + r.range : ''}`).join(', '));

    await upstream.call('clear', {});
    tFixed = Date.now();
  }, 60_000);

  // Product bug (see the report of issue 4): the truncating upstream's hang-ups during the resumes
  // count as a lost uplink, so for uplinkRetryMs (3 s) every miss, of any file, is answered
  // "uplink down" (and uplink.down is published) although the upstream answers. Remove `.fails` once fixed.
  let firstTry: Fetched | undefined;
  it('right after a truncating upstream is fixed, the next request is served (its hang-ups are not a lost uplink)', async () => {
    firstTry = await httpGet('altered.bin');
    expect(firstTry.body).not.toMatch(/upstream failed/);
    expect(lines.filter((l) => l.type === 'http.error' && l.file === 'f/altered.bin').pop()?.error ?? '').not.toMatch(/uplink down/);
    expectWhole('altered.bin', firstTry, 'first request after the fix');
  });

  it('the fixed upstream serves the right files; they are committed with the right sha256', async () => {
    let tries = 1;
    const ah2 =
      firstTry && firstTry.code === 0 && firstTry.status === 200
        ? firstTry
        : await waitFor(async () => {
            tries++;
            const f = await httpGet('altered.bin', 20);
            return f.code === 0 && f.status === 200 ? f : undefined;
          }, 10_000, 'the fixed upstream file');
    note('upstream fixed → right file served', `${ms(Date.now() - tFixed)}, ${tries} tries (first answer: ${firstTry?.status} ${firstTry?.body.trim()})`);
    const [at2, th2, tt2] = await Promise.all([tftpGet('altered.bin'), httpGet('truncated.bin'), tftpGet('truncated.bin')]);
    expectWhole('altered.bin', ah2, 'http altered, fixed');
    expectWhole('altered.bin', at2, 'tftp altered, fixed');
    expectWhole('truncated.bin', th2, 'http truncated, fixed');
    expectWhole('truncated.bin', tt2, 'tftp truncated, fixed');
    for (const name of ['altered.bin', 'truncated.bin']) expect(cached(name)).toMatchObject({ complete: true, size: FILES[name], sha256: want.get(name)!.sha });
    expect(agentAlive()).toBe(true);
  }, 60_000);

  // ---- 3 ----------------------------------------------------------------------

  it('agent SIGKILLed mid-fill through the slow uplink and restarted: no partial served as whole, the next client gets the file', async () => {
    const name = 'big.bin';
    const size = FILES[name]!;
    const t0 = Date.now();
    let settled: Fetched | undefined;
    const first = httpGet(name).then((f) => (settled = f));
    // kill once a good part of the file is on disk (but not all of it)
    const partialDir = join(cacheDir, 'partial');
    const onDisk = () => readdirSync(partialDir).reduce((n, f) => n + statSync(join(partialDir, f)).size, 0);
    const at = await waitFor(() => {
      if (settled) throw new Error(`the request ended before the kill: ${settled.status} ${settled.body} ${settled.stderr}`);
      const n = onDisk();
      return n >= 3 * MiB ? n : 0;
    }, 20_000, '3 MiB of big.bin in the partial file');
    expect(at).toBeLessThan(size);
    agent!.kill('SIGKILL');
    const f1 = await first;
    const killedAfter = Date.now() - t0;
    expectFailed(name, f1, 'http client of the killed agent');
    expect(f1.bytes).toBeLessThan(size);

    const restartMs = await startAgent(writeConfig(cacheDir));
    const cleaned = lines.find((l) => l.msg === 'cache cleaned at start');
    expect(cleaned?.partials).toBeGreaterThanOrEqual(1);
    expect(readdirSync(partialDir)).toEqual([]);
    expect(cached(name)).toBeUndefined();

    const head = await httpHead(name);
    expect(head).toEqual({ status: 200, length: size });
    const f2 = await httpGet(name);
    expectWhole(name, f2, 'http after the restart');
    expect(cached(name)).toMatchObject({ complete: true, size, sha256: want.get(name)!.sha });
    const hit = await httpGet(name);
    expectWhole(name, hit, 'http hit after the restart');
    note('10 MiB fill killed at', `${(at / MiB).toFixed(1)} MiB, ${ms(killedAfter)} after the request (client: curl ${f1.code}, ${f1.bytes} bytes)`);
    note('agent restart to "started"', ms(restartMs));
    note('10 MiB after the restart', `${ms(f2.ms)} (then a hit: ${ms(hit.ms)})`);
  }, 60_000);

  // ---- 4 ----------------------------------------------------------------------

  /** Established TCP connections from the relay to the upstream. */
  const upstreamConns = async () =>
    (await lab.exec(nsR, 'ss', ['-Htn', 'state', 'established', 'dst', `${UP_IP}:${UP_PORT}`])).stdout.split('\n').filter((l) => l.trim()).length;

  /** Link up again; resolves with the ms until an uncached file is served and how many tries that took. */
  const linkUpAndRecover = async (name: string): Promise<string> => {
    const tUp = Date.now();
    let tries = 0;
    const back = await waitFor(async () => {
      tries++;
      const f = await httpGet(name, 20);
      return f.code === 0 && f.status === 200 ? f : undefined;
    }, 25_000, `${name} after the uplink came back`);
    expectWhole(name, back, 'after link up');
    return `${ms(Date.now() - tUp)} (${tries} tries)`;
  };

  it('uplink gone: an uncached file fails fast and clearly, a cached one is served stale; link up again works', async () => {
    const warm = await httpGet('stale.bin');
    expectWhole('stale.bin', warm, 'warm up');
    // no kept-alive upstream connection left (see the next test for the case with one)
    await upstream.call('drop-idle', {});
    await waitFor(async () => (await upstreamConns()) === 0, 5000, 'no upstream connection');
    lab.ip(nsR, 'link', 'set', 'wan', 'down');
    let recovered = '';
    try {
      const miss = await httpGet('uncached.bin', 30);
      // the agent's log line may reach us a moment after the client's answer
      const err = await logged((l) => l.type === 'http.error' && l.file === 'f/uncached.bin');
      note('uplink down: uncached (http)', `${ms(miss.ms)} (${miss.status} "${miss.body.trim()}"; log: ${err?.error})`);
      expect(miss.status).toBe(502);
      expect(miss.body).toMatch(/upstream/);
      expect(err?.error).toMatch(/ENETUNREACH|unreachable|uplink down/i);
      expect(miss.ms).toBeLessThan(UPSTREAM_TIMEOUT_MS / 3);

      const tmiss = await tftpGet('uncached.bin');
      note('uplink down: uncached (tftp)', `${ms(tmiss.ms)} (atftp ${tmiss.code}: ${tmiss.stderr.split('\n').pop()})`);
      expect(tmiss.code).not.toBe(0);
      expect(tmiss.bytes).toBe(0);
      expect(tmiss.ms).toBeLessThan(UPSTREAM_TIMEOUT_MS / 3);

      const stale = await httpGet('stale.bin');
      expectWhole('stale.bin', stale, 'http stale while the uplink is down');
      await logged((l) => l.type === 'cache.stale' && l.file === 'f/stale.bin');
      const tstale = await tftpGet('stale.bin');
      expectWhole('stale.bin', tstale, 'tftp stale while the uplink is down');
      note('uplink down: cached file (stale)', `http ${ms(stale.ms)}, tftp ${ms(tstale.ms)}`);
    } finally {
      lab.ip(nsR, 'link', 'set', 'wan', 'up');
      recovered = await linkUpAndRecover('uncached.bin');
    }
    note('link up → uncached file served', recovered);
  }, 60_000);

  // Product bug (see the report of issue 4): a request that goes out on a kept-alive upstream
  // connection after the link died waits for the whole upstream timeout (15 s; 5 s for a
  // revalidation), and the uplink monitor's "down" does not cut it short. Remove `.fails` once fixed.
  it('uplink gone with a kept-alive upstream connection open: the first uncached request still fails fast', async () => {
    const warm = await httpGet('stale.bin');
    expectWhole('stale.bin', warm, 'warm up');
    expect(await upstreamConns()).toBeGreaterThanOrEqual(1);
    lab.ip(nsR, 'link', 'set', 'wan', 'down');
    let miss: Fetched;
    let recovered = '';
    try {
      miss = await httpGet('uncached2.bin', 30);
      const err = await logged((l) => l.type === 'http.error' && l.file === 'f/uncached2.bin').catch(() => undefined);
      note('uplink down, kept-alive conn: 1st uncached (http)', `${ms(miss.ms)} (${miss.status}; log: ${err?.error})`);
      expect(miss.status).toBe(502);
    } finally {
      lab.ip(nsR, 'link', 'set', 'wan', 'up');
      recovered = await linkUpAndRecover('uncached2.bin');
    }
    note('link up → uncached file served', recovered);
    expect(miss.ms, 'the first uncached request after the uplink died').toBeLessThan(UPSTREAM_TIMEOUT_MS / 3);
  }, 60_000);

  // ---- 5 ----------------------------------------------------------------------

  it('disk quota: a file larger than the cache filesystem is streamed through whole, the agent stays up', async () => {
    await new Promise<void>((resolve) => {
      agent!.once('exit', () => resolve());
      agent!.kill('SIGTERM');
    });
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', quotaDir], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    mounted = true;
    await startAgent(writeConfig(quotaDir));
    const m0 = await metrics();

    const [h, t] = await Promise.all([httpGet('quota.bin'), tftpGet('quota-small.bin')]);
    expectWhole('quota.bin', h, 'http, 5 MiB through a 2 MiB cache fs');
    expectWhole('quota-small.bin', t, 'tftp beside it');
    // the disk stays full for a while: this one is streamed through (bypass), whole and verified
    const again = await httpGet('quota.bin');
    expectWhole('quota.bin', again, 'http, while the disk is known full');
    expect(agentAlive()).toBe(true);
    const m1 = await metrics();
    expect(metric(m1, 'bootrelay_cache_errors_total', 'reason="disk-full"')).toBeGreaterThan(metric(m0, 'bootrelay_cache_errors_total', 'reason="disk-full"'));
    expect(cached('quota.bin')).toBeUndefined();
    // nothing left behind that keeps the small disk full
    await waitFor(() => readdirSync(join(quotaDir, 'partial')).length === 0, 5000, 'no partial files');
    const st = statfsSync(quotaDir);
    const used = (st.blocks - st.bfree) * st.bsize;
    expect(used).toBeLessThan(1 * MiB);
    note('5 MiB, cache fs 2 MiB (disk full mid-fill)', `${ms(h.ms)}; again while known full ${ms(again.ms)} (4 MiB clean miss: ${timings.find(([k]) => k.startsWith('http 4 MiB uncached, clean'))?.[1] ?? '?'})`);
    note('cache fs used afterwards', `${Math.round(used / KiB)} KiB`);
  }, 60_000);
});

/** The upstream fixture's stdin/stdout control channel. */
class UpstreamCtl {
  readonly ready: Promise<void>;
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private err = '';

  constructor(private readonly p: ChildProcess) {
    let buf = '';
    let onReady!: () => void;
    let onFail!: (e: Error) => void;
    this.ready = new Promise<void>((res, rej) => {
      onReady = res;
      onFail = rej;
    });
    p.stderr!.on('data', (d: Buffer) => (this.err += d.toString()));
    p.on('close', (code) => {
      const e = new Error(`upstream exited ${code}: ${this.err.slice(-1000)}`);
      onFail(e);
      for (const w of this.pending.values()) w.reject(e);
      this.pending.clear();
    });
    p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let msg: { ready?: boolean; id?: number; ok?: boolean; data?: unknown; error?: string };
        try {
          msg = JSON.parse(line);
        } catch {
          continue;
        }
        if (msg.ready) onReady();
        const w = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (!w) continue;
        this.pending.delete(msg.id!);
        if (msg.ok) w.resolve(msg.data);
        else w.reject(new Error(msg.error));
      }
    });
  }

  call(op: string, args: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.p.stdin!.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  }
}
