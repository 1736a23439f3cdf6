/**
 * bench/http (issue 4): cold and warm delivery of one big file through a slow
 * uplink, the agent (dist/bootrelay.js) against nginx with proxy_cache +
 * proxy_cache_lock and nginx with slice (1 MiB) + proxy_cache + lock, same
 * namespaces, same upstream, same file, same clients (curl):
 *
 *   <p>-up    upstream file server (this bundle --upstream, counts the bytes it sends)
 *      | uplink: netemu 10 ms each way, 20 Mbit/s        | plain veth (RSS rows)
 *   <p>-relay the agent or nginx, lan 10.99.80.1
 *      | veth
 *   <p>-cli   1, 5, 20 concurrent curl
 *
 * Per row: a fresh server with an empty cache; the cold round (all clients at
 * once), then the warm round (same clients again). Reported: per-client first
 * byte (min/median/max), the time until the last client finished, that time
 * over the physical limit (size / link rate), bytes fetched from upstream.
 * Then the agent's peak RSS (VmHWM) for 20 concurrent transfers of a 10 MiB and
 * a 1 GiB file (unthrottled uplink): it must not grow with the file size.
 * Env: BENCH_HTTP_MB (200), BENCH_HTTP_CLIENTS ("1,5,20"), BENCH_HTTP_SLICE_CLIENTS
 * ("20": nginx slice only there, to keep `make bench` short), BENCH_HTTP_RSS_MB ("10,1024").
 * Namespaces `brht<pid>-*`, 10.99.80-82.x. Run: node scripts/run-ts.mjs bench/http.ts
 */
import { type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupV1, CpuGroup } from './_lib/cgroup';
import { BenchLab, MB, curl, fx, has, isRoot, launcherNodeArgs, machineLine, makeFile, pct, rssMb, runMain, startAgent, startUpstream, table, waitFor, type CurlResult } from './_lib/common';

const SIZE_MB = Number(process.env.BENCH_HTTP_MB ?? 200);
const CLIENTS = (process.env.BENCH_HTTP_CLIENTS ?? '1,5,20').split(',').filter(Boolean).map(Number);
const SLICE_CLIENTS = (process.env.BENCH_HTTP_SLICE_CLIENTS ?? '20').split(',').filter(Boolean).map(Number);
const RSS_MB = (process.env.BENCH_HTTP_RSS_MB ?? '10,256,1024').split(',').filter(Boolean).map(Number);
const ONLY = process.env.BENCH_HTTP_ONLY; // "rss" | "delivery" | "quota"
const RSS_GOAL_MB = 72;
const QUOTA = 0.25;
const QUOTA_CLIENTS = 5;
const QUOTA_MB = Number(process.env.BENCH_HTTP_QUOTA_MB ?? 256); // issue 13: peak at 20 concurrent transfers
const IDLE_GOAL_MB = 56;
const RSS_CLIENTS = 20;
const UP_DELAY_US = 10_000;
const UP_KBIT = 20_000;
const LAN = '10.99.80.1';
const UP_SLOW = '10.99.81.1';
const UP_FAST = '10.99.82.1';

type Kind = 'bootrelay' | 'nginx lock' | 'nginx slice';

interface Server {
  url: string;
  pid?: number;
  stop(): Promise<void>;
}

function nginxConf(dir: string, upstream: string, slice: boolean): string {
  return `worker_processes 2;
daemon off;
user root;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/temp;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=boot:10m max_size=3g inactive=1h use_temp_path=off;
  server {
    listen ${LAN}:80;
    location / {
      proxy_pass http://${upstream}:8080;
      proxy_http_version 1.1;
      proxy_cache boot;
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 600s;
      proxy_cache_lock_age 600s;
${slice ? '      slice 1m;\n      proxy_cache_key $uri$is_args$args$slice_range;\n      proxy_set_header Range $slice_range;\n' : ''}    }
  }
}
`;
}

async function startServer(lab: BenchLab, kind: Kind, upstreamIp: string, file: string): Promise<Server> {
  const relay = lab.net.ns('relay');
  const cli = lab.net.ns('cli');
  if (kind === 'bootrelay') {
    const ag = await startAgent(lab, { ns: relay, dir: join(lab.tmp, 'agent'), lanIf: 'lan', lanIp: LAN, upstreamUrl: `http://${upstreamIp}:8080/` });
    return { url: `http://${LAN}/files/${file}`, pid: ag.pid, stop: ag.stop };
  }
  const dir = join(lab.tmp, 'nginx');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, upstreamIp, kind === 'nginx slice'));
  const p: ChildProcess = lab.net.spawn(relay, '/usr/sbin/nginx', ['-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  await waitFor(async () => {
    if (p.exitCode !== null) throw new Error(`nginx exited: ${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`);
    return (await curl(lab, cli, `http://${LAN}/probe.txt`, ['--max-time', '2'])).http === 200;
  }, 10_000, 'nginx');
  return { url: `http://${LAN}/${file}`, pid: p.pid, stop: () => lab.net.kill(p) };
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Round {
  /** seconds from the common start until the last client finished */
  wall: number;
  fb: number[];
  ok: number;
  results: CurlResult[];
}

async function round(lab: BenchLab, url: string, n: number, size: number): Promise<Round> {
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: n }, () => curl(lab, lab.net.ns('cli'), url, ['--max-time', '600'])));
  const wall = (performance.now() - t0) / 1000;
  return { wall, fb: results.map((r) => r.firstByte), ok: results.filter((r) => r.http === 200 && r.bytes === size).length, results };
}

async function main(): Promise<void> {
  console.log(machineLine());
  const missing = ['curl', 'gcc', '/usr/sbin/nginx'].filter((c) => !has(c));
  if (!isRoot() || missing.length) {
    console.log(`bench http skipped: ${!isRoot() ? 'needs root' : `missing ${missing.join(', ')}`}`);
    return;
  }
  const lab = new BenchLab(`brht${process.pid}`);
  const size = SIZE_MB * MB;
  const limitS = (size * 8) / (UP_KBIT * 1000);
  // netemu charges whole Ethernet frames: a full TCP segment (1448 payload + timestamps) is a 1514-byte frame
  const wireS = (limitS * 1514) / 1448;
  const rows: string[][] = [];
  const rssRows: string[][] = [];
  const quotaRows: string[][] = [];
  try {
    const up = lab.net.addNs('up');
    const relay = lab.net.addNs('relay');
    const cli = lab.net.addNs('cli');
    await lab.netemuLink({ ns: up, dev: 'slow', cidr: `${UP_SLOW}/24` }, { ns: relay, dev: 'wan', cidr: '10.99.81.2/24' }, UP_DELAY_US, UP_KBIT);
    lab.veth({ ns: up, dev: 'fast', cidr: `${UP_FAST}/24` }, { ns: relay, dev: 'wan2', cidr: '10.99.82.2/24' });
    lab.veth({ ns: relay, dev: 'lan', cidr: `${LAN}/24` }, { ns: cli, dev: 'eth0', cidr: '10.99.80.2/24' });
    const www = join(lab.tmp, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, 'probe.txt'), 'probe\n');
    if (!ONLY || ONLY === 'delivery') makeFile(join(www, 'big.bin'), size);
    const ups = await startUpstream(lab, up, www, '0.0.0.0', 8080);

    console.log(`file ${SIZE_MB} MiB; uplink ${UP_KBIT / 1000} Mbit/s, ${UP_DELAY_US / 1000} ms each way (netemu); physical limit ${fx(limitS, 1)} s`);
    const plan: Array<[Kind, number]> = [];
    if (!ONLY || ONLY === 'delivery') {
      for (const n of CLIENTS) plan.push(['bootrelay', n], ['nginx lock', n]);
      for (const n of SLICE_CLIENTS) plan.push(['nginx slice', n]);
    }
    for (const [kind, n] of plan) {
      const srv = await startServer(lab, kind, UP_SLOW, 'big.bin');
      try {
        ups.reset();
        const cold = await round(lab, srv.url, n, size);
        const upBytes = ups.reqs.filter((r) => r.path === '/big.bin').reduce((s, r) => s + r.bytes, 0);
        const upReqs = ups.reqs.filter((r) => r.path === '/big.bin').length;
        const warm = await round(lab, srv.url, n, size);
        // nginx: master + workers (its children)
        const peak = srv.pid ? [srv.pid, ...childrenOf(srv.pid)].reduce((sum, pid) => sum + rssMb(pid), 0) : NaN;
        const row = [
          kind,
          String(n),
          `${fx(pct(cold.fb, 0), 2)} / ${fx(pct(cold.fb, 50), 2)} / ${fx(pct(cold.fb, 100), 2)}`,
          fx(cold.wall, 1),
          `${fx(cold.wall / limitS, 3)}×`,
          `${fx(cold.wall / wireS, 3)}×`,
          `${fx(upBytes / MB, 1)} (${upReqs} req)`,
          `${cold.ok}/${n}`,
          fx(pct(warm.fb, 100), 3),
          fx(warm.wall, 2),
          fx((n * size) / MB / warm.wall, 0),
          `${warm.ok}/${n}`,
          fx(peak, 0),
        ];
        rows.push(row);
        console.log(`  ${row.join(' | ')}`);
      } finally {
        await srv.stop();
      }
    }
    rmSync(join(www, 'big.bin'), { force: true });
    rmSync(join(lab.tmp, 'agent'), { recursive: true, force: true });
    rmSync(join(lab.tmp, 'nginx'), { recursive: true, force: true });

    // issue 13: peak RSS idle, then per file size (a fresh agent per scenario): 20
    // concurrent cold transfers over the unthrottled uplink, then 20 warm ones
    if (!ONLY || ONLY === 'rss') {
      const idle = await startServer(lab, 'bootrelay', UP_FAST, 'probe.txt');
      try {
        await curl(lab, cli, idle.url);
        await new Promise((r) => setTimeout(r, 3000));
        const hwm = rssMb(idle.pid!);
        rssRows.push(['idle (one small request)', '-', '-', '-', '-', fx(rssMb(idle.pid!, 'VmRSS'), 0), fx(hwm, 0), `${fx(hwm / IDLE_GOAL_MB, 2)}× of ${IDLE_GOAL_MB}`]);
        console.log(`  rss ${rssRows[rssRows.length - 1]!.join(' | ')}`);
      } finally {
        await idle.stop();
        rmSync(join(lab.tmp, 'agent'), { recursive: true, force: true });
      }
    }
    for (const mb of !ONLY || ONLY === 'rss' ? RSS_MB : []) {
      const name = `rss-${mb}.bin`;
      makeFile(join(www, name), mb * MB);
      const srv = await startServer(lab, 'bootrelay', UP_FAST, name);
      try {
        const before = rssMb(srv.pid!, 'VmRSS');
        const cold = await round(lab, srv.url, RSS_CLIENTS, mb * MB);
        const coldHwm = rssMb(srv.pid!);
        const warm = await round(lab, srv.url, RSS_CLIENTS, mb * MB);
        const hwm = rssMb(srv.pid!);
        rssRows.push([`${mb} MiB`, String(RSS_CLIENTS), `${cold.ok}+${warm.ok}/${2 * RSS_CLIENTS}`, `${fx(cold.wall, 1)} / ${fx(warm.wall, 1)}`, fx(before, 0), fx(coldHwm, 0), fx(hwm, 0), `${fx(hwm / RSS_GOAL_MB, 2)}× of ${RSS_GOAL_MB}`]);
        console.log(`  rss ${rssRows[rssRows.length - 1]!.join(' | ')}`);
      } finally {
        await srv.stop();
        rmSync(join(www, name), { force: true });
        rmSync(join(lab.tmp, 'agent'), { recursive: true, force: true });
      }
    }
    // issue 13: a small router core's budget: the server's cgroup limited to 25 % of one
    // CPU, warm cache, QUOTA_CLIENTS clients at once; nginx (proxy_cache) the baseline
    if ((!ONLY || ONLY === 'quota') && !cgroupV1()) {
      const name = 'quota.bin';
      makeFile(join(www, name), QUOTA_MB * MB);
      for (const kind of ['bootrelay', 'nginx lock'] as const) {
        const srv = await startServer(lab, kind, UP_FAST, name);
        const g = new CpuGroup(`brht${process.pid}-q`);
        try {
          await round(lab, srv.url, 1, QUOTA_MB * MB); // fills the cache
          for (const pid of [srv.pid!, ...childrenOf(srv.pid!)]) g.add(pid);
          g.quota(QUOTA);
          const c0 = g.cpuMs();
          const r = await round(lab, srv.url, QUOTA_CLIENTS, QUOTA_MB * MB);
          const cpu = g.cpuMs() - c0;
          const mbs = (r.ok * QUOTA_MB) / r.wall;
          quotaRows.push([kind, String(QUOTA_CLIENTS), `${r.ok}/${QUOTA_CLIENTS}`, fx(r.wall, 1), fx(mbs, 1), fx((mbs * MB) / 1e6, 1), fx(cpu / (r.ok * QUOTA_MB), 2)]);
          console.log(`  quota ${quotaRows[quotaRows.length - 1]!.join(' | ')}`);
        } finally {
          g.remove();
          await srv.stop();
          rmSync(join(lab.tmp, 'agent'), { recursive: true, force: true });
          rmSync(join(lab.tmp, 'nginx'), { recursive: true, force: true });
        }
      }
      rmSync(join(www, name), { force: true });
    }
  } finally {
    await lab.cleanup();
  }
  console.log('');
  console.log(`HTTP delivery of a ${SIZE_MB} MiB file through a ${UP_KBIT / 1000} Mbit/s, ${UP_DELAY_US / 1000} ms (each way) uplink; physical limit size/rate = ${fx(limitS, 1)} s.`);
  console.log(`netemu counts whole Ethernet frames against the rate, so TCP goodput tops out at 1448/1514 of it: the wire limit is ${fx(wireS, 1)} s (≈1.046× the limit).`);
  console.log('Bar (issue 4): one upstream copy, every first byte < 1 s, all done within 1.05× the limit.');
  console.log(
    table(
      ['server', 'clients', 'cold first byte s min/med/max', 'cold all done s', 'vs limit', 'vs wire limit', 'upstream MiB', 'cold ok', 'warm first byte max s', 'warm all done s', 'warm MiB/s total', 'warm ok', 'peak RSS MiB (nginx: all processes)'],
      rows,
    ),
  );
  console.log('');
  console.log(`Agent peak RSS (VmHWM, whole process; a fresh agent per row; node options: ${launcherNodeArgs().join(' ') || 'none'}) idle and vs file size,`);
  console.log(`${RSS_CLIENTS} concurrent cold transfers then ${RSS_CLIENTS} warm ones, unthrottled uplink (veth). Goal (issue 13): ≤ ${RSS_GOAL_MB} MiB at 20 transfers, ≤ ${IDLE_GOAL_MB} MiB idle.`);
  console.log(table(['file', 'clients', 'ok (cold+warm)', 'all done s cold / warm', 'RSS at start MiB', 'peak after cold MiB', 'peak RSS MiB', 'vs goal'], rssRows));
  if (quotaRows.length) {
    console.log('');
    console.log(`Under a CPU quota of ${QUOTA * 100} % of one core (cgroup cpu.cfs_quota_us, the server's processes only), warm cache, ${QUOTA_CLIENTS} clients fetching ${QUOTA_MB} MiB at once.`);
    console.log('Goal (issue 13): bootrelay ≥ 11 MB/s together (a 100 Mbit/s LAN filled). MB/s = 10^6 bytes/s; MiB/s beside.');
    console.log(table(['server', 'clients', 'ok', 'all done s', 'MiB/s total', 'MB/s total', 'CPU ms/MiB'], quotaRows));
    const a = quotaRows.find((r) => r[0] === 'bootrelay');
    const n = quotaRows.find((r) => r[0] === 'nginx lock');
    if (a && n) console.log(`bootrelay/nginx throughput under the quota: ${fx(Number(a[5]) / Number(n[5]), 2)} ×; bootrelay ${a[5]} MB/s vs goal 11 MB/s: ${fx(Number(a[5]) / 11, 2)} ×`);
  }
}

void runMain(main);
