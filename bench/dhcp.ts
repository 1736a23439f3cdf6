/**
 * bench/dhcp: how many DORA/s each DHCP server sustains and how long its answers take, with
 * perfdhcp (Kea) as the load client acting as a relay agent:
 *   - bootrelay: dist/bootrelay.js, server mode, every lease fdatasynced before its ACK;
 *   - dnsmasq-openwrt: dnsmasq as OpenWrt runs it (lease file written on every change, the
 *     ping check before an OFFER left on, authoritative);
 *   - dnsmasq-noping: the same with `no-ping`.
 * Knee: the highest offered rate with < 1 % loss on every exchange (DISCOVER-OFFER,
 * REQUEST-ACK, renewal REQUEST-ACK), found by doubling then bisection between the last passing
 * and the first failing rate (to PRECISION). Every trial starts its server afresh (new state).
 * Workloads: `new` (fresh MACs from a 2^20 space into a /16 pool: every DORA allocates),
 * `renew` (as `new`, plus as many renewals (REQUEST from ciaddr) per second as DORAs), and
 * `alloc` (bootrelay only: the pool already full of expired leases of other clients, every new
 * client takes the longest-expired one and releases it; on a /16 pool vs a /24 pool, which
 * shows whether allocation scans the range). Repetitions alternate the servers and are reported
 * as min–median–max. Latency: perfdhcp's per-exchange timestamps (-x t) at two fixed rates,
 * a quarter and a half of the lowest knee, p50/p99/max, bootrelay beside dnsmasq-noping (both
 * have the binding on disk before the ACK: dnsmasq rewrites and fsyncs its lease file before it
 * sends), with bootrelay's own stage timings (BOOTRELAY_DHCP_TIMING) beside.
 * Runs as root inside namespaces `brdb<pid>-*` (10.99.0.0/16 only); bounded in count and time.
 * Knobs: BENCH_DHCP_REPS (3), BENCH_DHCP_SECONDS (2, per trial), BENCH_DHCP_SCENARIOS
 * ("new,renew,alloc"), BENCH_DHCP_LAT_RATE (comma list; default a quarter and a half of the lowest
 * knee a server reached in the first repetition, 50…2000), BENCH_DHCP_LAT_SECONDS (10).
 * Run: node scripts/run-ts.mjs bench/dhcp.ts
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { intToIp, ipToInt } from '../proto/dhcp/options';
import { skipReason } from '../test/helpers/netns';
import { BenchLab, fx, helperMode, machineLine, startAgent, table } from './_lib/common';
import { median, spread, startDnsmasq } from './_lib/dhcp-bench';

const LAN = '10.99.0.1';
const CLIENT = '10.99.0.3';
const POOL16: [string, string] = ['10.99.1.0', '10.99.255.254'];
const POOL24: [string, string] = ['10.99.0.10', '10.99.0.250'];
const REPS = Math.max(1, Number(process.env.BENCH_DHCP_REPS ?? 3));
const SECONDS = Math.max(1, Number(process.env.BENCH_DHCP_SECONDS ?? 2));
const SCENARIOS = (process.env.BENCH_DHCP_SCENARIOS ?? 'new,renew,alloc').split(',').filter(Boolean);
const START_RATE = 500;
const MAX_RATE = 32_000;
const MIN_RATE = 25;
const PRECISION = 0.07;
const MAX_TRIALS = 10;
const LAT_SECONDS = Math.max(1, Number(process.env.BENCH_DHCP_LAT_SECONDS ?? 10));
/** the latency runs' rates, as fractions of the lowest knee (new or renew) any server reached */
const LAT_FRACTIONS = [0.25, 0.5];
const CLIENT_SPACE = 1 << 20;

type ServerName = 'bootrelay' | 'dnsmasq-openwrt' | 'dnsmasq-noping';
const SERVERS: ServerName[] = ['bootrelay', 'dnsmasq-openwrt', 'dnsmasq-noping'];
/** dnsmasq as OpenWrt runs it answers no OFFER inside perfdhcp's drop time (its ping check): no latency to measure */
const LAT_SERVERS: ServerName[] = ['bootrelay', 'dnsmasq-noping'];

interface Exchange {
  sent: number;
  received: number;
  drops: number;
}

interface Trial {
  rate: number;
  ok: boolean;
  /** perfdhcp could not send at the rate asked (the client, not the server, was the limit) */
  clientLimited: boolean;
  ex: Record<string, Exchange>;
  /** delays (ms) per exchange kind, with -x t */
  delays: Record<string, number[]>;
  /** per exchange kind, the delays of the first and of the second half of the run (by send time) */
  halves: Record<string, [number[], number[]]>;
}

/** perfdhcp's final report: per-exchange counters and (with -x t) the timestamps of every successful exchange. */
function parsePerf(rate: number, seconds: number, out: string): Trial {
  const ex: Record<string, Exchange> = {};
  const delays: Record<string, number[]> = {};
  const sent: Record<string, number[]> = {};
  let stats: string | undefined;
  let stamps: string | undefined;
  for (const line of out.split('\n')) {
    let m = /^\*\*\*Statistics for: (.+)\*\*\*$/.exec(line);
    if (m) {
      stats = m[1]!;
      stamps = undefined;
      ex[stats] = { sent: 0, received: 0, drops: 0 };
      continue;
    }
    m = /^\*\*\*Timestamps for packets: (.+)\*\*\*$/.exec(line);
    if (m) {
      stamps = m[1]!;
      stats = undefined;
      delays[stamps] = [];
      continue;
    }
    if (stats) {
      m = /^(sent packets|received packets|drops): (\d+)/.exec(line);
      if (m) ex[stats]![m[1] === 'sent packets' ? 'sent' : m[1] === 'drops' ? 'drops' : 'received'] = Number(m[2]);
    } else if (stamps) {
      m = /^sent \/ received: ([\d.]+) \/ ([\d.]+)/.exec(line);
      if (m) {
        delays[stamps]!.push((Number(m[2]) - Number(m[1])) * 1000);
        (sent[stamps] ??= []).push(Number(m[1]));
      }
    }
  }
  const kinds = Object.keys(ex).filter((k) => k !== 'RELEASE'); // RELEASE has no answer
  const lossOk = kinds.length > 0 && kinds.every((k) => ex[k]!.sent > 0 && ex[k]!.drops / ex[k]!.sent < 0.01);
  const doSent = ex['DISCOVER-OFFER']?.sent ?? 0;
  const clientLimited = doSent < 0.97 * rate * seconds;
  const halves: Record<string, [number[], number[]]> = {};
  const t0 = Math.min(...Object.values(sent).flatMap((xs) => (xs.length ? [Math.min(...xs)] : [])));
  for (const [k, ds] of Object.entries(delays)) {
    const h: [number[], number[]] = [[], []];
    ds.forEach((d, i) => h[sent[k]![i]! - t0 < seconds / 2 ? 0 : 1].push(d));
    halves[k] = h;
  }
  return { rate, ok: lossOk && !clientLimited, clientLimited, ex, delays, halves };
}

function q(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

interface Setup {
  pool: [string, string];
  /** journal lines: every pool address leased to another client and expired (alloc) */
  preloadExpired?: boolean;
}

interface Search {
  knee: number;
  limited: boolean;
  trials: Trial[];
}

async function main(): Promise<void> {
  const why = skipReason('perfdhcp', 'dnsmasq');
  if (why) {
    console.log(`bench dhcp skipped: ${why}`);
    return;
  }
  console.log(machineLine());
  const t0 = Date.now();
  const blab = new BenchLab(`brdb${process.pid}`);
  const lab = blab.net;
  const tmp = blab.tmp;
  const R = lab.addNs('r');
  const C = lab.addNs('c');
  lab.veth(R, 'lan', C, 'c0');
  lab.addr(R, 'lan', `${LAN}/16`);
  lab.addr(C, 'c0', `${CLIENT}/16`);

  /** Starts one server with fresh state; resolves to its stop(). */
  async function start(server: ServerName, setup: Setup, timingFile?: string): Promise<() => Promise<void>> {
    if (server === 'bootrelay') {
      const stateFiles: Record<string, string> = {};
      if (setup.preloadExpired) {
        const [a, b] = setup.pool.map(ipToInt) as [number, number];
        const exp = Date.now() - 600_000;
        const lines: string[] = [];
        for (let n = a; n <= b; n++) {
          const i = n - a;
          const mac = `02:ee:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
          lines.push(JSON.stringify({ op: 'commit', mac, ip: intToIp(n), exp: exp + (i % 1000) }));
        }
        lines.push(JSON.stringify({ op: 'clean' })); // a cleanly stopped server's journal
        stateFiles['leases.jsonl'] = lines.join('\n') + '\n';
      }
      const agent = await startAgent(blab, {
        ns: R,
        dir: join(tmp, 'agent'),
        lanIf: 'lan',
        lanIp: LAN,
        lanPrefix: 16,
        upstreamUrl: 'http://127.0.0.1:9/',
        dhcp: { mode: 'server', range: setup.pool, leaseSeconds: 3600, router: LAN, dns: [LAN] },
        env: timingFile ? { BOOTRELAY_DHCP_TIMING: timingFile } : undefined,
        stateFiles,
      });
      return () => agent.stop();
    }
    // OpenWrt's init script: a lease file (/tmp/dhcp.leases there), authoritative, the ping check left on
    return startDnsmasq(lab, R, tmp, 'dnsmasq', (leaseFile) => [
      'port=0',
      'interface=lan',
      'bind-interfaces',
      `dhcp-range=${setup.pool[0]},${setup.pool[1]},255.255.0.0,1h`,
      `dhcp-leasefile=${leaseFile}`,
      'dhcp-authoritative',
      'dhcp-lease-max=150000',
      'user=root',
      'quiet-dhcp',
      ...(server === 'dnsmasq-noping' ? ['no-ping'] : []),
    ]);
  }

  function perfArgs(workload: string, rate: number, seconds: number, timestamps: boolean): string[] {
    const a = ['-4', '-l', 'c0', '-r', String(rate), '-R', String(CLIENT_SPACE), '-p', String(seconds), '-W', '500000'];
    if (workload === 'renew') a.push('-f', String(rate));
    if (workload === 'alloc') a.push('-F', String(rate));
    if (timestamps) a.push('-x', 't');
    return [...a, LAN];
  }

  async function trial(server: ServerName, workload: string, setup: Setup, rate: number, seconds = SECONDS, timingFile?: string): Promise<Trial> {
    const stop = await start(server, setup, timingFile);
    try {
      const r = await lab.exec(C, 'perfdhcp', perfArgs(workload, rate, seconds, !!timingFile || seconds === LAT_SECONDS), { timeoutMs: (seconds + 20) * 1000 });
      return parsePerf(rate, seconds, r.stdout + r.stderr);
    } finally {
      await stop();
    }
  }

  /** Doubling (or ×1.25 around a hint) to bracket the knee, then bisection to PRECISION. */
  async function search(server: ServerName, workload: string, setup: Setup, hint?: number): Promise<Search> {
    const trials: Trial[] = [];
    let pass = 0;
    let fail = Infinity;
    let limited = false;
    const step = hint ? 1.25 : 2;
    let r = Math.round(hint ?? START_RATE);
    while (trials.length < MAX_TRIALS) {
      const t = await trial(server, workload, setup, r);
      trials.push(t);
      if (t.ok) pass = Math.max(pass, r);
      else {
        fail = Math.min(fail, r);
        if (t.clientLimited) limited = true;
      }
      if (pass > 0 && fail < Infinity) break;
      if (pass >= MAX_RATE) break;
      if (fail < Infinity && r <= MIN_RATE) break;
      // next to nothing answered within perfdhcp's drop time (1 s): straight to the lowest rate
      const answered = (t.ex['DISCOVER-OFFER']?.received ?? 0) / Math.max(1, t.ex['DISCOVER-OFFER']?.sent ?? 0);
      r = t.ok ? Math.min(MAX_RATE, Math.round(r * step)) : answered < 0.05 ? MIN_RATE : Math.max(MIN_RATE, Math.round(r / step));
    }
    while (pass > 0 && fail < Infinity && (fail - pass) / pass > PRECISION && trials.length < MAX_TRIALS) {
      const mid = Math.round((pass + fail) / 2);
      const t = await trial(server, workload, setup, mid);
      trials.push(t);
      if (t.ok) pass = mid;
      else {
        fail = mid;
        limited = t.clientLimited;
      }
    }
    return { knee: pass, limited: limited && fail - pass <= pass * PRECISION * 2, trials };
  }

  const rows: Array<{ scenario: string; server: string; setup: Setup }> = [];
  for (const s of SCENARIOS) {
    if (s === 'alloc') {
      rows.push({ scenario: 'alloc', server: 'bootrelay /24', setup: { pool: POOL24, preloadExpired: true } });
      rows.push({ scenario: 'alloc', server: 'bootrelay /16', setup: { pool: POOL16, preloadExpired: true } });
    } else if (s === 'new' || s === 'renew') for (const srv of SERVERS) rows.push({ scenario: s, server: srv, setup: { pool: POOL16 } });
    else throw new Error(`BENCH_DHCP_SCENARIOS: unknown scenario ${s} (new, renew, alloc)`);
  }
  const knees = new Map<string, Search[]>();
  const key = (r: { scenario: string; server: string }) => `${r.scenario} ${r.server}`;
  const timings = new Map<number, Array<Record<string, { p50: number; p99: number; max: number; n: number }>>>();
  /** rate → server → one record per repetition */
  const lat = new Map<number, Map<ServerName, Array<Record<string, number[]>>>>();
  let latRates = (process.env.BENCH_DHCP_LAT_RATE ?? '')
    .split(',')
    .map(Number)
    .filter((r) => r > 0);
  try {
    for (let rep = 0; rep < REPS; rep++) {
      // alternate: each repetition runs every server once per scenario, the order rotated
      for (const scenario of SCENARIOS) {
        const here = rows.filter((r) => r.scenario === scenario);
        const order = here.map((_, i) => here[(i + rep) % here.length]!);
        for (const row of order) {
          const prev = knees.get(key(row)) ?? [];
          const hint = prev.length && prev[0]!.knee > 0 ? median(prev.map((p) => p.knee)) : undefined;
          const s = await search(row.server.startsWith('bootrelay') ? 'bootrelay' : (row.server as ServerName), scenario, row.setup, hint);
          prev.push(s);
          knees.set(key(row), prev);
          const tr = s.trials.map((t) => `${t.rate}${t.ok ? '✓' : t.clientLimited ? '✗c' : '✗'}`).join(' ');
          console.log(`  rep ${rep + 1} ${scenario.padEnd(5)} ${row.server.padEnd(15)} knee ${s.knee}/s${s.limited ? ' (perfdhcp limit)' : ''}  [${tr}]`);
        }
      }
      // latency at a fixed rate under every knee: new clients plus as many renewals
      if (!latRates.length) {
        // a quarter and a half of the lowest knee any server reached (new or renew: the latency
        // run is both at once), under every knee even on a noisy machine
        const ks = ['new', 'renew'].flatMap((sc) => SERVERS.map((srv) => median((knees.get(`${sc} ${srv}`) ?? []).map((s) => s.knee)))).filter((k) => Number.isFinite(k) && k > 0);
        const low = ks.length ? Math.min(...ks) : 400;
        latRates = [...new Set(LAT_FRACTIONS.map((f) => Math.max(50, Math.min(2000, Math.round((low * f) / 25) * 25))))];
      }
      for (const rate of latRates) {
        const byServer = lat.get(rate) ?? new Map<ServerName, Array<Record<string, number[]>>>();
        lat.set(rate, byServer);
        for (let i = 0; i < LAT_SERVERS.length; i++) {
          const srv = LAT_SERVERS[(i + rep) % LAT_SERVERS.length]!;
          const tf = srv === 'bootrelay' ? join(tmp, `timing-${rate}-${rep}.json`) : undefined;
          const t = await trial(srv, 'renew', { pool: POOL16 }, rate, LAT_SECONDS, tf);
          const l = byServer.get(srv) ?? [];
          l.push({ ...t.delays, ackFirstHalf: t.halves['REQUEST-ACK']?.[0] ?? [], ackSecondHalf: t.halves['REQUEST-ACK']?.[1] ?? [], lossPct: [Math.max(...Object.entries(t.ex).filter(([k]) => k !== 'RELEASE').map(([, e]) => (100 * e.drops) / Math.max(1, e.sent)))] });
          byServer.set(srv, l);
          if (tf && existsSync(tf)) timings.set(rate, [...(timings.get(rate) ?? []), JSON.parse(readFileSync(tf, 'utf8'))]);
        }
        console.log(`  rep ${rep + 1} latency at ${rate}/s done`);
      }
    }
  } finally {
    await blab.cleanup();
  }

  console.log(
    `\nDHCP knees: highest offered DORA/s with < 1 % loss on every exchange (perfdhcp ${SECONDS} s per trial, fresh server state per trial, bisection to ${Math.round(PRECISION * 100)} %); ${REPS} repetitions, min–median–max; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`,
  );
  const kneeRows: string[][] = [];
  for (const row of rows) {
    const ks = (knees.get(key(row)) ?? []).map((s) => s.knee);
    const base = row.scenario === 'alloc' ? knees.get('alloc bootrelay /24') : knees.get(`${row.scenario} bootrelay`);
    // per-repetition ratio bootrelay ÷ this server (the pair ran in the same repetition)
    const ratios = (base ?? []).map((b, i) => b.knee / (ks[i] ?? NaN));
    const isBase = row.server === 'bootrelay' || row.server === 'bootrelay /24';
    const limited = (knees.get(key(row)) ?? []).some((s) => s.limited) ? ' (perfdhcp limit)' : '';
    kneeRows.push([
      row.scenario,
      row.server,
      (ks.every((k) => k === 0) ? `< ${MIN_RATE} (no rate passed)` : spread(ks)) + limited,
      isBase
        ? '1 (baseline of the row group)'
        : ks.every((k) => k === 0)
          ? 'n/a (no rate passed)'
          : row.scenario === 'alloc'
            ? `/24 ÷ /16: ${spread(ratios, 2)}`
            : `bootrelay ÷ this: ${spread(ratios, 2)}×`,
    ]);
  }
  console.log(table(['workload', 'server', 'knee DORA/s (min–med–max)', 'ratio per repetition (min–med–max)'], kneeRows));

  const kinds: Array<[string, string]> = [
    ['DISCOVER-OFFER', 'OFFER'],
    ['REQUEST-ACK', 'ACK'],
    ['REQUEST-ACK (renewal)', 'renew ACK'],
  ];
  const fmt = (xs: number[]) => {
    const v = xs.filter(Number.isFinite);
    return v.length ? `${fx(median(v), 2)} [${fx(Math.min(...v), 2)}–${fx(Math.max(...v), 2)}]` : '-';
  };
  const summary: string[] = [];
  for (const rate of latRates) {
    const byServer = lat.get(rate) ?? new Map<ServerName, Array<Record<string, number[]>>>();
    console.log(
      `\nDHCP latency at ${rate} DORA/s + ${rate} renewals/s (perfdhcp -x t, ${LAT_SECONDS} s, fresh state, every binding on disk before its ACK (both servers); ms, median of ${REPS} repetitions [min–max of the repetitions]). dnsmasq-openwrt is left out: its ping check answers no OFFER inside perfdhcp's drop time.`,
    );
    const cell = (srv: ServerName, kind: string, p: number) => (byServer.get(srv) ?? []).map((r) => (p < 0 ? (r[kind]?.length ? Math.max(...r[kind]!) : NaN) : q(r[kind] ?? [], p)));
    const latRows: string[][] = [];
    for (const srv of LAT_SERVERS) {
      for (const [kind, label] of kinds) latRows.push([srv, label, fmt(cell(srv, kind, 0.5)), fmt(cell(srv, kind, 0.99)), fmt(cell(srv, kind, -1)), fmt((byServer.get(srv) ?? []).map((r) => r.lossPct?.[0] ?? NaN))]);
    }
    console.log(table(['server', 'answer', 'p50', 'p99', 'max', 'worst loss %'], latRows));
    const ratioRows: string[][] = [];
    for (const other of LAT_SERVERS.slice(1)) {
      for (const [kind, label] of kinds) {
        const r = (p: number) => {
          const a = cell('bootrelay', kind, p);
          const b = cell(other, kind, p);
          return spread(
            a.map((x, i) => x / (b[i] ?? NaN)),
            2,
          );
        };
        ratioRows.push([`bootrelay ÷ ${other}`, label, r(0.5), r(0.99), r(-1)]);
        if (label === 'ACK') {
          const half = (k: string) => {
            const a = cell('bootrelay', k, 0.99);
            const b = cell(other, k, 0.99);
            return `${spread(a.map((x, i) => x / (b[i] ?? NaN)), 2)} (${fmt(a)} vs ${fmt(b)} ms)`;
          };
          summary.push(`  at ${rate}/s: ACK p50 ${r(0.5)}, p99 ${r(0.99)} (bootrelay ÷ ${other}, per repetition min–med–max)`);
          summary.push(`    ACK p99, first ${LAT_SECONDS / 2} s (${other} holding < ${Math.round((rate * LAT_SECONDS) / 2)} leases): ${half('ackFirstHalf')}; last ${LAT_SECONDS / 2} s: ${half('ackSecondHalf')}`);
        }
      }
    }
    console.log(table(['ratio (per repetition, min–med–max; < 1: bootrelay faster)', 'answer', 'p50', 'p99', 'max'], ratioRows));

    const ts = timings.get(rate) ?? [];
    if (ts.length) {
      console.log(
        `bootrelay stage times at ${rate}/s (BOOTRELAY_DHCP_TIMING, process.hrtime; ms except batch-records; median of ${ts.length} runs; loop-delay: the agent's event-loop delay from its first datagram on, 1 ms timer)`,
      );
      const names = [...new Set(ts.flatMap((t) => Object.keys(t)))];
      const order = ['decode', 'policy', 'events-in', 'commit-wait', 'batch-write', 'batch-fdatasync', 'batch-write+sync', 'batch-records', 'encode', 'send', 'events-out', 'total-offer', 'total-ack', 'loop-delay'];
      names.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
      console.log(
        table(
          ['stage', 'n', 'p50', 'p99', 'max'],
          names.map((n) => {
            const v = (f: 'p50' | 'p99' | 'max' | 'n') => median(ts.map((t) => t[n]?.[f] ?? NaN));
            return [n, fx(v('n'), 0), fx(v('p50'), 3), fx(v('p99'), 3), fx(v('max'), 3)];
          }),
        ),
      );
    }
  }
  if (summary.length) console.log(`\nDHCP ACK latency, bootrelay ÷ dnsmasq-noping (< 1: bootrelay faster):\n${summary.join('\n')}`);
}

if (!helperMode())
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
