/**
 * bench/dhcp: the agent (dist/bootrelay.js, DHCP server mode) against dnsmasq (no-ping),
 * same namespaces, same clients.
 *   - the highest DORA rate perfdhcp sustains with < 1 % drops (DISCOVER-OFFER and REQUEST-ACK)
 *   - DORA latency p50/p99 at a fixed rate, from a relay-style load client (this bundle, --client)
 * Our server fsyncs its lease journal once per batch before ACKing; dnsmasq does not fsync.
 * Runs as root inside namespaces `brdb<pid>-*` (10.99.60.0/24 only); bounded in count and time.
 * Run: node scripts/run-ts.mjs bench/dhcp.ts
 */
import dgram from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { MessageType, Opt, OptionMap } from '../proto/dhcp/options';
import { decodeDhcp, encodeDhcp, messageType } from '../proto/dhcp/packet';
import { skipReason, waitFor } from '../test/helpers/netns';
import { BenchLab, helperMode, machineLine, startAgent, type Agent } from './_lib/common';

const LAN = '10.99.60.1';
const GIADDR = '10.99.60.3';
const RATES = [250, 500, 1000, 2000, 4000, 8000];
const PERF_SECONDS = 4;
const PERF_CLIENTS = 100; // + LAT_CLIENTS: fits the 241-address pool
const LAT_CLIENTS = 100;
const LAT_RATE = 200;
const LAT_MS = 3000;

/** Relay-style DORA load client: open loop at `rate`, latency DISCOVER → ACK. */
async function client(a: { server: string; rate: number; ms: number; clients: number }): Promise<void> {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((r) => s.bind(67, GIADDR, () => r()));
  const started = new Map<number, number>();
  const lat: number[] = [];
  const mk = (type: number, xid: number, extra: (o: OptionMap) => void) => {
    const i = xid % a.clients;
    const chaddr = Buffer.alloc(16);
    Buffer.from([0x02, 0xbe, 0x00, 0x00, (i >> 8) & 255, i & 255]).copy(chaddr);
    const options = new OptionMap().setU8(Opt.MessageType, type);
    extra(options);
    return encodeDhcp({ op: 1, htype: 1, hlen: 6, hops: 1, xid, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: GIADDR, chaddr, mac: '', sname: '', file: '', options });
  };
  s.on('message', (b) => {
    let m;
    try {
      m = decodeDhcp(b);
    } catch {
      return;
    }
    const t0 = started.get(m.xid);
    if (t0 === undefined) return;
    const t = messageType(m);
    if (t === MessageType.OFFER) {
      const sid = m.options.ip(Opt.ServerIdentifier) ?? a.server;
      s.send(mk(MessageType.REQUEST, m.xid, (o) => o.setIp(Opt.ServerIdentifier, sid).setIp(Opt.RequestedIpAddress, m.yiaddr)), 67, a.server);
    } else if (t === MessageType.ACK) {
      lat.push(performance.now() - t0);
      started.delete(m.xid);
    }
  });
  const total = Math.round((a.rate * a.ms) / 1000);
  const t0 = performance.now();
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * a.rate) / 1000));
      while (sent < due) {
        const xid = 0x10000 + sent++;
        started.set(xid, performance.now());
        s.send(mk(MessageType.DISCOVER, xid, () => {}), 67, a.server);
      }
      if (sent >= total) {
        clearInterval(tick);
        done();
      }
    }, 5);
  });
  await new Promise((r) => setTimeout(r, 1000)); // late answers
  s.close();
  lat.sort((x, y) => x - y);
  const q = (p: number) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! : NaN);
  process.stdout.write(JSON.stringify({ sent: total, done: lat.length, p50: q(0.5), p99: q(0.99) }) + '\n');
}

interface PerfResult {
  rate: number;
  achieved: number;
  dropDO: number;
  dropRA: number;
  avgMs: number;
}

function parsePerf(rate: number, out: string): PerfResult {
  const drops = [...out.matchAll(/drops ratio: ([\d.]+|nan) ?%/g)].map((m) => (m[1] === 'nan' ? 100 : Number(m[1])));
  const achieved = Number(/Rate: ([\d.]+) 4-way/.exec(out)?.[1] ?? 0);
  const avg = [...out.matchAll(/avg delay: ([\d.]+) ms/g)].map((m) => Number(m[1]));
  return { rate, achieved, dropDO: drops[0] ?? 100, dropRA: drops[1] ?? 100, avgMs: avg.reduce((x, y) => x + y, 0) };
}

async function main(): Promise<void> {
  const why = skipReason('perfdhcp', 'dnsmasq');
  if (why) {
    console.log(`bench dhcp skipped: ${why}`);
    return;
  }
  const self = process.argv[1]!;
  console.log(machineLine());
  const blab = new BenchLab(`brdb${process.pid}`);
  const lab = blab.net;
  const tmp = blab.tmp;
  let agent: Agent | undefined;
  const results: Record<string, { best?: PerfResult; runs: PerfResult[]; lat?: { sent: number; done: number; p50: number; p99: number } }> = {};
  try {
    const R = lab.addNs('r');
    const C = lab.addNs('c');
    lab.veth(R, 'lan', C, 'c0');
    lab.addr(R, 'lan', `${LAN}/24`);
    lab.addr(C, 'c0', `${GIADDR}/24`);
    for (const target of ['bootrelay', 'dnsmasq'] as const) {
      let server: ChildProcess;
      if (target === 'bootrelay') {
        // the product: dist/bootrelay.js in the namespace, DHCP server mode, no MQTT
        agent = await startAgent(blab, {
          ns: R,
          dir: join(tmp, 'agent'),
          lanIf: 'lan',
          lanIp: LAN,
          upstreamUrl: 'http://127.0.0.1:9/',
          dhcp: { mode: 'server', range: ['10.99.60.10', '10.99.60.250'], leaseSeconds: 3600, router: LAN, dns: [LAN] },
        });
        server = agent.proc;
      } else {
        const conf = join(tmp, 'dnsmasq.conf');
        writeFileSync(conf, `port=0\ninterface=lan\nbind-interfaces\ndhcp-range=10.99.60.10,10.99.60.250,255.255.255.0,1h\ndhcp-leasefile=${join(tmp, 'dnsmasq.leases')}\nno-ping\ndhcp-authoritative\nuser=root\ndhcp-lease-max=1000\nquiet-dhcp\n`);
        server = lab.spawn(R, 'dnsmasq', ['-k', '-C', conf, `--pid-file=${join(tmp, 'dnsmasq.pid')}`]);
        await waitFor(() => existsSync(join(tmp, 'dnsmasq.pid')), 10_000, 'dnsmasq');
      }
      const runs: PerfResult[] = [];
      for (const rate of RATES) {
        const r = await lab.exec(C, 'perfdhcp', ['-4', '-l', 'c0', '-r', String(rate), '-R', String(PERF_CLIENTS), '-p', String(PERF_SECONDS), '-W', '500000', LAN], { timeoutMs: (PERF_SECONDS + 10) * 1000 });
        const p = parsePerf(rate, r.stdout + r.stderr);
        runs.push(p);
        if (p.dropDO >= 1 || p.dropRA >= 1) break;
      }
      const best = runs.filter((p) => p.dropDO < 1 && p.dropRA < 1).pop();
      const lr = await lab.exec(C, process.execPath, [self, '--client', JSON.stringify({ server: LAN, rate: LAT_RATE, ms: LAT_MS, clients: LAT_CLIENTS })], { timeoutMs: LAT_MS + 10_000 });
      const lat = lr.stdout.trim() ? JSON.parse(lr.stdout.trim().split('\n').pop()!) : undefined;
      results[target] = { best, runs, lat };
      await lab.kill(server);
    }
  } finally {
    await blab.cleanup();
  }
  const f = (n: number | undefined, d = 1) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
  console.log(`DHCP server benchmark (perfdhcp ${PERF_SECONDS} s per rate, ${PERF_CLIENTS} clients; latency at ${LAT_RATE} DORA/s for ${LAT_MS / 1000} s, ${LAT_CLIENTS} other clients, after the perfdhcp runs)`);
  for (const [name, r] of Object.entries(results)) {
    console.log(`  ${name}: ` + r.runs.map((p) => `${p.rate}/s→${f(p.achieved, 0)}/s drops ${f(p.dropDO)}%/${f(p.dropRA)}%`).join(', '));
  }
  console.log('');
  console.log('| server    | max DORA/s (<1% loss) | perfdhcp avg delay (ms, DO+RA) | p50 DORA (ms) | p99 DORA (ms) | completed |');
  console.log('|-----------|----------------------:|-------------------------------:|--------------:|--------------:|----------:|');
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `| ${name.padEnd(9)} | ${f(r.best?.achieved, 0).padStart(21)} | ${f(r.best?.avgMs, 2).padStart(30)} | ${f(r.lat?.p50, 2).padStart(13)} | ${f(r.lat?.p99, 2).padStart(13)} | ${`${r.lat?.done ?? 0}/${r.lat?.sent ?? 0}`.padStart(9)} |`,
    );
  }
  const a = results.bootrelay;
  const b = results.dnsmasq;
  if (a?.best && b?.best) console.log(`\nratio bootrelay/dnsmasq: throughput ${(a.best.achieved / b.best.achieved).toFixed(2)}x, p50 ${f((a.lat?.p50 ?? NaN) / (b.lat?.p50 ?? NaN), 2)}x, p99 ${f((a.lat?.p99 ?? NaN) / (b.lat?.p99 ?? NaN), 2)}x`);
}

const mode = process.argv[2];
if (helperMode()) {
  /* helper process */
} else if (mode === '--client') void client(JSON.parse(process.argv[3]!));
else
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
