/**
 * bench/uplink (issue 15): what one uplink poll costs the agent's event loop, the way the agent
 * polls every 3 s: the old reader (readUplinkStatus: `ubus` tried, then `ip -j route get` and
 * `ip -j addr show`, three process launches) against the new one (UplinkReader: /proc/net/route,
 * /sys/class/net, getifaddrs; ubus tried once), interleaved in one process whose heap is grown to
 * an agent's size (a fork copies the page tables: the bigger the process, the longer the stall).
 * Per poll: the loop's active time (eventLoopUtilization) and its longest delay
 * (monitorEventLoopDelay, 1 ms timer). Reads this namespace's files only; no traffic.
 * Knobs: BENCH_UPLINK_POLLS (40 of each), BENCH_UPLINK_HEAP_MB (150).
 * Run: node scripts/run-ts.mjs bench/uplink.ts
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { defaultExec, readUplinkStatus, UplinkReader } from '../agent/uplink/status';
import { fx, machineLine, pct, rssMb, runMain, table } from './_lib/common';

const POLLS = Math.max(5, Number(process.env.BENCH_UPLINK_POLLS ?? 40));
const HEAP_MB = Math.max(0, Number(process.env.BENCH_UPLINK_HEAP_MB ?? 150));
const TARGET = '127.0.0.1';

async function main(): Promise<void> {
  console.log(machineLine());
  // the agent's heap: live objects, not one buffer (page tables grow with what is mapped and touched)
  const ballast: number[][] = [];
  for (let i = 0; i < HEAP_MB * 16; i++) ballast.push(Array.from({ length: 8192 }, (_, k) => k + i));
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const reader = new UplinkReader({ target: TARGET });
  const paths = {
    'ip + ubus processes (before)': () => readUplinkStatus(defaultExec, { target: TARGET }),
    'kernel files (after)': () => reader.read(),
  } as const;
  const names = Object.keys(paths) as Array<keyof typeof paths>;
  const busy = new Map<string, number[]>(names.map((n) => [n, []]));
  const stall = new Map<string, number[]>(names.map((n) => [n, []]));
  const seen = new Map<string, string>();
  for (const n of names) seen.set(n, JSON.stringify(await paths[n]())); // warm up (the new reader tries ubus once here)
  for (let i = 0; i < POLLS; i++) {
    for (const n of i % 2 ? [...names].reverse() : names) {
      await new Promise((r) => setTimeout(r, 20));
      h.reset();
      const e0 = performance.eventLoopUtilization();
      await paths[n]();
      busy.get(n)!.push(performance.eventLoopUtilization(e0).active);
      // let the 1 ms timer see the end of the last stall
      await new Promise((r) => setTimeout(r, 3));
      stall.get(n)!.push(h.max / 1e6);
    }
  }
  h.disable();
  const rss = rssMb(process.pid, 'VmRSS');
  console.log(`\nuplink poll cost to the event loop, ${POLLS} polls of each, interleaved; process RSS ${fx(rss, 0)} MiB (heap grown by ~${HEAP_MB} MiB like a busy agent); target ${TARGET}`);
  const rows = names.map((n) => {
    const b = busy.get(n)!;
    const s = stall.get(n)!;
    return [n, fx(pct(b, 50), 2), fx(pct(b, 90), 2), fx(Math.max(...b), 2), fx(pct(s, 50), 1), fx(Math.max(...s), 1)];
  });
  const [a, b] = names.map((n) => busy.get(n)!);
  const [sa, sb] = names.map((n) => stall.get(n)!);
  rows.push(['ratio before ÷ after', fx(pct(a!, 50) / pct(b!, 50), 0), fx(pct(a!, 90) / pct(b!, 90), 0), fx(Math.max(...a!) / Math.max(...b!), 0), fx(pct(sa!, 50) / pct(sb!, 50), 1), fx(Math.max(...sa!) / Math.max(...sb!), 1)]);
  console.log(table(['reader', 'loop busy p50 ms', 'p90', 'max', 'longest loop delay p50 ms', 'max'], rows));
  console.log(`\nper poll at the agent's 3 s interval: before ${fx((pct(a!, 50) / 3000) * 100, 2)} % of the loop, after ${fx((pct(b!, 50) / 3000) * 100, 3)} %`);
  for (const [n, s] of seen) console.log(`  ${n}: ${s}`);
  void ballast.length;
}

void runMain(main);
