/**
 * bench/dhcp6: DHCPv6 Solicit→Advertise→Request→Reply exchanges per second, bootrelay against
 * dnsmasq's DHCPv6 server in the same run, with perfdhcp -6 (Kea) as the load client:
 *   - bootrelay: dist/bootrelay.js, dhcp6 server mode, every lease fdatasynced before its REPLY;
 *   - dnsmasq: DHCPv6 range on the same prefix, its lease file written on every change.
 * Knee: the highest offered rate (new clients per second, each a 4-message exchange) with < 1 %
 * loss on both exchanges (SOLICIT-ADVERTISE, REQUEST-REPLY); doubling then bisection to
 * PRECISION; every trial starts its server afresh. Repetitions alternate the servers; reported
 * as min–median–max with the per-repetition ratio. Runs as root in namespaces `br6b<pid>-*`
 * (fd99:b::/64 only); bounded in count and time.
 * Knobs: BENCH_DHCP6_REPS (3), BENCH_DHCP6_SECONDS (2, per trial).
 * Run: node scripts/run-ts.mjs bench/dhcp6.ts
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { skipReason, waitFor } from '../test/helpers/netns';
import { BenchLab, helperMode, machineLine, startAgent, table } from './_lib/common';
import { median, spread, startDnsmasq } from './_lib/dhcp-bench';

const LAN = '10.99.0.1';
const LAN6 = 'fd99:b::1';
const POOL: [string, string] = ['fd99:b::1:0', 'fd99:b::ffff:ffff'];
const REPS = Math.max(1, Number(process.env.BENCH_DHCP6_REPS ?? 3));
const SECONDS = Math.max(1, Number(process.env.BENCH_DHCP6_SECONDS ?? 2));
const START_RATE = 250;
const MAX_RATE = 16_000;
const MIN_RATE = 25;
const PRECISION = 0.07;
const MAX_TRIALS = 10;
const CLIENT_SPACE = 1 << 20;

type ServerName = 'bootrelay' | 'dnsmasq';
const SERVERS: ServerName[] = ['bootrelay', 'dnsmasq'];

interface Trial {
  rate: number;
  ok: boolean;
  clientLimited: boolean;
  ex: Record<string, { sent: number; received: number; drops: number }>;
}

function parsePerf(rate: number, seconds: number, out: string): Trial {
  const ex: Trial['ex'] = {};
  let cur: string | undefined;
  for (const line of out.split('\n')) {
    const m = /^\*\*\*Statistics for: (.+)\*\*\*$/.exec(line);
    if (m) {
      cur = m[1]!;
      ex[cur] = { sent: 0, received: 0, drops: 0 };
      continue;
    }
    const c = cur && /^(sent packets|received packets|drops): (\d+)/.exec(line);
    if (c) ex[cur!]![c[1] === 'sent packets' ? 'sent' : c[1] === 'drops' ? 'drops' : 'received'] = Number(c[2]);
  }
  const kinds = Object.keys(ex);
  const lossOk = kinds.length >= 2 && kinds.every((k) => ex[k]!.sent > 0 && ex[k]!.drops / ex[k]!.sent < 0.01);
  const clientLimited = (ex['SOLICIT-ADVERTISE']?.sent ?? 0) < 0.97 * rate * seconds;
  return { rate, ok: lossOk && !clientLimited, clientLimited, ex };
}

async function main(): Promise<void> {
  const why = skipReason('perfdhcp', 'dnsmasq');
  if (why) {
    console.log(`bench dhcp6 skipped: ${why}`);
    return;
  }
  console.log(machineLine());
  const t0 = Date.now();
  const blab = new BenchLab(`br6b${process.pid % 10000}`);
  const lab = blab.net;
  const tmp = blab.tmp;
  const R = lab.addNs('r');
  const C = lab.addNs('c');
  for (const ns of [R, C]) spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.default.disable_ipv6=0', 'net.ipv6.conf.default.accept_dad=0']);
  lab.veth(R, 'lan', C, 'c0');
  lab.addr(R, 'lan', `${LAN}/24`);
  lab.ip(R, 'addr', 'add', `${LAN6}/64`, 'dev', 'lan', 'nodad');
  await waitFor(() => /inet6 fe80::/.test(spawnSync('ip', ['-n', C, '-6', 'addr', 'show', 'dev', 'c0'], { encoding: 'utf8' }).stdout), 10_000, 'client link-local');

  async function start(server: ServerName): Promise<() => Promise<void>> {
    if (server === 'bootrelay') {
      const agent = await startAgent(blab, {
        ns: R,
        dir: join(tmp, 'agent'),
        lanIf: 'lan',
        lanIp: LAN,
        upstreamUrl: 'http://127.0.0.1:9/',
        lan6: { address6: LAN6, prefix6: 64 },
        dhcp6: { mode: 'server', range: POOL, leaseSeconds: 3600 },
      });
      return () => agent.stop();
    }
    return startDnsmasq(lab, R, tmp, 'dnsmasq6', (leaseFile) => [
      'port=0',
      'interface=lan',
      'bind-interfaces',
      `dhcp-range=${POOL[0]},${POOL[1]},64,1h`,
      `dhcp-leasefile=${leaseFile}`,
      'dhcp-authoritative',
      'dhcp-lease-max=1000000',
      'user=root',
      'quiet-dhcp6',
    ]);
  }

  async function trial(server: ServerName, rate: number): Promise<Trial> {
    const stop = await start(server);
    try {
      const r = await lab.exec(C, 'perfdhcp', ['-6', '-l', 'c0', '-r', String(rate), '-R', String(CLIENT_SPACE), '-p', String(SECONDS)], { timeoutMs: (SECONDS + 20) * 1000 });
      return parsePerf(rate, SECONDS, r.stdout + r.stderr);
    } finally {
      await stop();
    }
  }

  async function search(server: ServerName, hint?: number): Promise<{ knee: number; trials: Trial[] }> {
    const trials: Trial[] = [];
    let pass = 0;
    let fail = Infinity;
    const step = hint ? 1.25 : 2;
    let r = Math.round(hint ?? START_RATE);
    while (trials.length < MAX_TRIALS) {
      const t = await trial(server, r);
      trials.push(t);
      if (t.ok) pass = Math.max(pass, r);
      else fail = Math.min(fail, r);
      if ((pass > 0 && fail < Infinity) || pass >= MAX_RATE || (fail < Infinity && r <= MIN_RATE)) break;
      r = t.ok ? Math.min(MAX_RATE, Math.round(r * step)) : Math.max(MIN_RATE, Math.round(r / step));
    }
    while (pass > 0 && fail < Infinity && (fail - pass) / pass > PRECISION && trials.length < MAX_TRIALS) {
      const mid = Math.round((pass + fail) / 2);
      const t = await trial(server, mid);
      trials.push(t);
      if (t.ok) pass = mid;
      else fail = mid;
    }
    return { knee: pass, trials };
  }

  const knees: Record<ServerName, number[]> = { bootrelay: [], dnsmasq: [] };
  try {
    for (let rep = 0; rep < REPS; rep++) {
      for (let i = 0; i < SERVERS.length; i++) {
        const srv = SERVERS[(i + rep) % SERVERS.length]!;
        const prev = knees[srv];
        const s = await search(srv, prev.length && prev[0]! > 0 ? median(prev) : undefined);
        prev.push(s.knee);
        console.log(`  rep ${rep + 1} ${srv.padEnd(10)} knee ${s.knee}/s  [${s.trials.map((t) => `${t.rate}${t.ok ? '✓' : t.clientLimited ? '✗c' : '✗'}`).join(' ')}]`);
      }
    }
  } finally {
    await blab.cleanup();
  }
  console.log(
    `\nDHCPv6 knees: highest offered rate of new clients (SOLICIT→ADVERTISE→REQUEST→REPLY each) with < 1 % loss on both exchanges (perfdhcp -6, ${SECONDS} s per trial, fresh server state per trial, bisection to ${Math.round(PRECISION * 100)} %); ${REPS} repetitions, min–median–max; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`,
  );
  const ratios = knees.bootrelay.map((b, i) => b / (knees.dnsmasq[i] ?? NaN));
  console.log(
    table(
      ['server', 'knee exchanges/s (min–med–max)', 'ratio per repetition'],
      [
        ['bootrelay (leases fdatasynced before REPLY)', spread(knees.bootrelay), '1 (baseline)'],
        ['dnsmasq DHCPv6 (lease file)', spread(knees.dnsmasq), `bootrelay ÷ dnsmasq: ${spread(ratios, 2)}×`],
      ],
    ),
  );
}

if (!helperMode())
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
