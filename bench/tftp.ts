/**
 * bench/tftp. First (issue 13, function lockstep below): lock-step curl, 32 MiB
 * warm, bootrelay beside tftpd-hpa on one veth, pinned to one CPU, per-server
 * CPU from cpuacct cgroups, then the same under a 25 % CPU quota with atftp
 * windowsize 4 beside; it prints both servers and the ratios. A third server
 * in the lock-step rows, node-floor (bench/_lib/bare-tftp), is Node's dgram
 * doing nothing but the lock-step loop from memory: how close to C a Node
 * server can get on this machine, measured in the same run.
 * Then (issue 4): TFTP MB/s of the agent (dist/bootrelay.js) against
 * tftpd-hpa and dnsmasq, same namespaces, same file, same client (atftp),
 * blksize 1468, windowsize 1, 4 and 16, on three links:
 *   clean  a plain veth
 *   1 ms   netemu, 1 ms each way (RTT 2 ms), no rate limit
 *   5 ms   netemu, 5 ms each way (RTT 10 ms), no rate limit
 * Lock-step TFTP is RTT-bound, so the file is smaller on the slow links (env
 * BENCH_TFTP_MB="128,4,1" for clean,1ms,5ms). The agent reads through its cache:
 * one warm-up transfer fills it before the measured ones. tftpd-hpa and dnsmasq
 * do not implement windowsize (RFC 7440): they leave it out of their OACK and
 * atftp falls back to lock-step; those rows are measured anyway.
 * Namespaces `brtf<pid>-*`, 10.99.71-73.x; every transfer bounded in time.
 * Run: node scripts/run-ts.mjs bench/tftp.ts
 */
import { type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BenchLab, MB, fx, has, isRoot, launcherNodeArgs, machineLine, makeFile, runMain, startAgent, startUpstream, table, waitFor, type Agent } from './_lib/common';
import { cgroupV1, CpuGroup, pin } from './_lib/cgroup';

const SIZES = (process.env.BENCH_TFTP_MB ?? '128,4,1').split(',').map(Number);
const WINDOWS = [1, 4, 16];
const LIMIT_MS = 150_000;
/** issue 13: the lock-step file (MiB) and transfers per server per scenario */
const LOCK_MB = Number(process.env.BENCH_TFTP_LOCK_MB ?? 32);
const LOCK_ROUNDS = Number(process.env.BENCH_TFTP_LOCK_ROUNDS ?? 3);
const ONLY = process.env.BENCH_TFTP_ONLY; // "lockstep" | "windows"
/** bench/_lib/bare-tftp: Node's dgram with nothing but the lock-step loop */
const NODE_FLOOR = 'node-floor';

interface Link {
  name: string;
  delayUs: number;
  net: number;
  sizeMb: number;
}

async function atftp(lab: BenchLab, ns: string, ip: string, file: string, out: string, ws: number): Promise<{ ok: boolean; s: number; bytes: number; err: string }> {
  rmSync(out, { force: true });
  const args = ['--option', 'blksize 1468', ...(ws > 1 ? ['--option', `windowsize ${ws}`] : []), '-g', '-r', file, '-l', out, ip, '69'];
  const t0 = performance.now();
  const r = await lab.net.exec(ns, 'atftp', args, { timeoutMs: LIMIT_MS });
  const s = (performance.now() - t0) / 1000;
  const bytes = existsSync(out) ? statSync(out).size : 0;
  rmSync(out, { force: true });
  return { ok: r.code === 0, s, bytes, err: (r.stderr + r.stdout).trim().slice(0, 120) };
}

interface Tx {
  ok: boolean;
  s: number;
  err: string;
}

/** curl as a lock-step client (no windowsize, like PXE ROMs), pinned to CPU 0. */
async function curlTftp(lab: BenchLab, ns: string, ip: string, file: string, size: number): Promise<Tx> {
  const t0 = performance.now();
  const r = await lab.net.exec(ns, 'taskset', ['-c', '0', 'curl', '-sS', '--max-time', String(LIMIT_MS / 1000), '--tftp-blksize', '1468', '-o', '/dev/null', '-w', '%{size_download}', `tftp://${ip}/${file}`], { timeoutMs: LIMIT_MS + 5000 });
  const s = (performance.now() - t0) / 1000;
  return { ok: r.code === 0 && Number(r.stdout.trim()) === size, s, err: (r.stderr + r.stdout).trim().slice(0, 120) };
}

/** atftp with windowsize, pinned to CPU 0. */
async function atftpWs(lab: BenchLab, ns: string, ip: string, file: string, out: string, size: number, ws: number): Promise<Tx> {
  rmSync(out, { force: true });
  const t0 = performance.now();
  const r = await lab.net.exec(ns, 'taskset', ['-c', '0', 'atftp', '--option', 'blksize 1468', '--option', `windowsize ${ws}`, '-g', '-r', file, '-l', out, ip, '69'], { timeoutMs: LIMIT_MS });
  const s = (performance.now() - t0) / 1000;
  const bytes = existsSync(out) ? statSync(out).size : 0;
  rmSync(out, { force: true });
  return { ok: r.code === 0 && bytes === size, s, err: (r.stderr + r.stdout).trim().slice(0, 120) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
};

/**
 * Issue 13: lock-step TFTP (curl, no windowsize), warm cache, 32 MiB at blksize
 * 1468, bootrelay and tftpd-hpa side by side on one veth (two addresses), both
 * servers and the client pinned to CPU 0, transfers interleaved A B A B …; per-
 * server CPU from its own cpuacct group (tftpd-hpa's per-transfer children
 * included). Then the same under cpu.cfs_quota_us = 25 % of one core, with
 * windowsize 4 (atftp) beside lock-step.
 */
async function lockstep(lab: BenchLab, www: string): Promise<void> {
  const why = cgroupV1() ?? (has('taskset') ? undefined : 'taskset missing');
  if (why) {
    console.log(`lock-step/CPU section skipped: ${why}`);
    return;
  }
  const s = lab.net.addNs('s70');
  const c = lab.net.addNs('c70');
  lab.veth({ ns: s, dev: 'lan', cidr: '10.99.70.1/24' }, { ns: c, dev: 'eth0', cidr: '10.99.70.2/24' });
  lab.net.addr(s, 'lan', '10.99.70.3/24');
  lab.net.addr(s, 'lan', '10.99.70.4/24');
  const file = `f${LOCK_MB}.bin`;
  const size = LOCK_MB * MB;
  if (!existsSync(join(www, file))) makeFile(join(www, file), size);
  const out = join(lab.tmp, 'out70.bin');
  const up = await startUpstream(lab, s, www, '127.0.0.1', 8080);
  const groups: CpuGroup[] = [];
  try {
    const gA = new CpuGroup(`brtf${process.pid}-agent`);
    const gT = new CpuGroup(`brtf${process.pid}-tftpd`);
    const gN = new CpuGroup(`brtf${process.pid}-bare`);
    groups.push(gA, gT, gN);
    const ag: Agent = await startAgent(lab, { ns: s, dir: join(lab.tmp, 'agent70'), lanIf: 'lan', lanIp: '10.99.70.1', upstreamUrl: 'http://127.0.0.1:8080/' });
    pin(ag.pid, 0);
    gA.add(ag.pid);
    const td = lab.net.spawn(s, 'taskset', ['-c', '0', 'in.tftpd', '-L', '-s', www, '-a', '10.99.70.3:69']);
    await waitFor(() => td.pid !== undefined, 5000, 'in.tftpd pid');
    gT.add(td.pid!);
    // the floor of Node's dgram: the same per-block pattern with nothing else (bench/_lib/bare-tftp)
    const bare = lab.net.spawn(s, process.execPath, [...launcherNodeArgs(), process.argv[1]!, '--bare-tftp', www, '10.99.70.4']);
    await waitFor(() => bare.pid !== undefined, 5000, 'bare-tftp pid');
    pin(bare.pid!, 0);
    gN.add(bare.pid!);
    const servers = [
      { name: 'bootrelay', ip: '10.99.70.1', g: gA },
      { name: 'tftpd-hpa', ip: '10.99.70.3', g: gT },
      { name: NODE_FLOOR, ip: '10.99.70.4', g: gN },
    ];
    for (const srv of servers) await waitFor(async () => (await curlTftp(lab, c, srv.ip, 'probe.txt', 6)).ok, 10_000, `${srv.name} tftp`);
    const warm = await curlTftp(lab, c, '10.99.70.1', file, size); // fills the agent's cache
    if (!warm.ok) console.log(`  warm-up transfer failed: ${warm.err}`);
    const rows: string[][] = [];
    const summary: Record<string, { mbs: number; cpuPerMb: number }> = {};
    const scenario = async (label: string, quota: number | undefined, kinds: Array<{ name: string; windowed?: boolean; run: (ip: string) => Promise<Tx> }>) => {
      for (const g of groups) g.quota(quota);
      for (const k of kinds) {
        // the Node floor is lock-step only: it has no windowsize
        const here = k.windowed ? servers.filter((v) => v.name !== NODE_FLOOR) : servers;
        const acc = new Map<string, { s: number[]; cpu: number; bytes: number; failed: string }>();
        for (const srv of here) acc.set(srv.name, { s: [], cpu: 0, bytes: 0, failed: '' });
        for (let i = 0; i < LOCK_ROUNDS; i++) {
          for (const srv of here) {
            const a = acc.get(srv.name)!;
            const c0 = srv.g.cpuMs();
            const r = await k.run(srv.ip);
            a.cpu += srv.g.cpuMs() - c0;
            if (r.ok) {
              a.s.push(r.s);
              a.bytes += size;
            } else a.failed = r.err;
          }
        }
        for (const srv of here) {
          const a = acc.get(srv.name)!;
          const mbs = size / MB / median(a.s);
          const cpuPerMb = a.cpu / (a.bytes / MB);
          summary[`${label}/${k.name}/${srv.name}`] = { mbs, cpuPerMb };
          rows.push([label, k.name, srv.name, `${a.s.length}/${LOCK_ROUNDS}`, fx(mbs, 1), fx(a.cpu, 0), fx(cpuPerMb, 2), a.failed ? `failed: ${a.failed}` : '']);
          console.log(`  ${label} ${k.name} ${srv.name}: ${fx(mbs, 1)} MB/s, ${fx(cpuPerMb, 2)} CPU ms/MiB${a.failed ? ` (failed: ${a.failed})` : ''}`);
        }
      }
    };
    const lock = { name: 'lock-step (curl)', run: (ip: string) => curlTftp(lab, c, ip, file, size) };
    const ws4 = { name: 'windowsize 4 (atftp)', windowed: true, run: (ip: string) => atftpWs(lab, c, ip, file, out, size, 4) };
    await scenario('no quota', undefined, [lock]);
    await scenario('25 % quota', 0.25, [lock, ws4]);
    await ag.stop();
    await lab.net.kill(td);
    await lab.net.kill(bare);
    console.log('');
    console.log(`TFTP lock-step and CPU (issue 13): ${LOCK_MB} MiB, blksize 1468, warm cache, one veth, servers and client pinned to CPU 0,`);
    console.log(`${LOCK_ROUNDS} transfers per server interleaved; MB/s = MiB/s (median); CPU = the server's cpuacct cgroup over all its transfers.`);
    console.log('tftpd-hpa has no windowsize: its "windowsize 4" rows are lock-step.');
    console.log(table(['scenario', 'client', 'server', 'ok', 'MB/s', 'CPU ms', 'CPU ms/MiB', ''], rows));
    const ratio = (label: string, k: string) => {
      const a = summary[`${label}/${k}/bootrelay`];
      const t = summary[`${label}/${k}/tftpd-hpa`];
      if (!a || !t) return;
      console.log(`${label}, ${k}: throughput bootrelay/tftpd-hpa = ${fx(a.mbs / t.mbs, 2)} × (goal ≥ 1.0 without quota), CPU per MiB bootrelay/tftpd-hpa = ${fx(a.cpuPerMb / t.cpuPerMb, 2)} × (goal ≤ 1.5)`);
      const n = summary[`${label}/${k}/${NODE_FLOOR}`];
      if (n) console.log(`  ${NODE_FLOOR}/tftpd-hpa: throughput ${fx(n.mbs / t.mbs, 2)} ×, CPU per MiB ${fx(n.cpuPerMb / t.cpuPerMb, 2)} × (the most a Node dgram server reaches); bootrelay/${NODE_FLOOR}: throughput ${fx(a.mbs / n.mbs, 2)} ×, CPU per MiB ${fx(a.cpuPerMb / n.cpuPerMb, 2)} ×`);
    };
    ratio('no quota', lock.name);
    ratio('25 % quota', lock.name);
    ratio('25 % quota', ws4.name);
  } finally {
    for (const g of groups) g.remove();
    await lab.net.kill(up.proc);
  }
}

async function main(): Promise<void> {
  console.log(machineLine());
  const missing = ['atftp', 'in.tftpd', 'dnsmasq', 'gcc', 'curl'].filter((c) => !has(c));
  if (!isRoot() || missing.length) {
    console.log(`bench tftp skipped: ${!isRoot() ? 'needs root' : `missing ${missing.join(', ')}`}`);
    return;
  }
  const lab = new BenchLab(`brtf${process.pid}`);
  const links: Link[] = [
    { name: 'clean', delayUs: 0, net: 71, sizeMb: SIZES[0] ?? 128 },
    { name: '1 ms', delayUs: 1000, net: 72, sizeMb: SIZES[1] ?? 4 },
    { name: '5 ms', delayUs: 5000, net: 73, sizeMb: SIZES[2] ?? 1 },
  ];
  const rows: string[][] = [];
  try {
    const www = join(lab.tmp, 'www');
    mkdirSync(www, { recursive: true });
    chmodSync(lab.tmp, 0o755);
    chmodSync(www, 0o755); // in.tftpd drops to nobody inside its chroot
    writeFileSync(join(www, 'probe.txt'), 'probe\n');
    if (ONLY !== 'windows') await lockstep(lab, www);
    if (ONLY === 'lockstep') return;
    for (const mb of new Set(links.map((l) => l.sizeMb))) makeFile(join(www, `f${mb}.bin`), mb * MB);
    for (const l of links) {
      const s = lab.net.addNs(`s${l.net}`);
      const c = lab.net.addNs(`c${l.net}`);
      const a = { ns: s, dev: 'lan', cidr: `10.99.${l.net}.1/24` };
      const b = { ns: c, dev: 'eth0', cidr: `10.99.${l.net}.2/24` };
      if (l.delayUs) await lab.netemuLink(a, b, l.delayUs, 0);
      else lab.veth(a, b);
    }
    const out = join(lab.tmp, 'out.bin');
    for (const l of links) {
      const s = lab.net.ns(`s${l.net}`);
      const c = lab.net.ns(`c${l.net}`);
      const ip = `10.99.${l.net}.1`;
      const file = `f${l.sizeMb}.bin`;
      const size = l.sizeMb * MB;
      const up = await startUpstream(lab, s, www, '127.0.0.1', 8080);
      const servers: Array<{ name: string; start: () => Promise<{ stop: () => Promise<void> }> }> = [
        {
          name: 'bootrelay',
          start: async () => {
            const ag: Agent = await startAgent(lab, { ns: s, dir: join(lab.tmp, 'agent'), lanIf: 'lan', lanIp: ip, upstreamUrl: 'http://127.0.0.1:8080/' });
            const warm = await atftp(lab, c, ip, file, out, 16); // fills the cache
            if (!warm.ok) console.log(`  warm-up transfer failed: ${warm.err}`);
            return { stop: ag.stop };
          },
        },
        {
          name: 'tftpd-hpa',
          start: async () => {
            const p = lab.net.spawn(s, 'in.tftpd', ['-L', '-s', www, '-a', `${ip}:69`]);
            return { stop: () => lab.net.kill(p) };
          },
        },
        {
          name: 'dnsmasq',
          start: async () => {
            const p: ChildProcess = lab.net.spawn(s, 'dnsmasq', ['-k', '--port=0', '--interface=lan', '--bind-interfaces', '--user=root', '--enable-tftp', `--tftp-root=${www}`, '--no-resolv', '--no-hosts', `--pid-file=${join(lab.tmp, 'dnsmasq.pid')}`]);
            return { stop: () => lab.net.kill(p) };
          },
        },
      ];
      for (const srv of servers) {
        const h = await srv.start();
        try {
          await waitFor(async () => (await atftp(lab, c, ip, 'probe.txt', out, 1)).ok, 10_000, `${srv.name} tftp`);
          for (const ws of WINDOWS) {
            const r = await atftp(lab, c, ip, file, out, ws);
            const ok = r.ok && r.bytes === size;
            rows.push([l.name, srv.name, String(ws), String(l.sizeMb), fx(r.s, 2), ok ? fx(size / MB / r.s, 2) : `failed ${r.err}`]);
            console.log(`  ${l.name} ${srv.name} ws ${ws}: ${ok ? `${fx(size / MB / r.s, 2)} MB/s` : `failed (${r.bytes} bytes) ${r.err}`}`);
          }
        } finally {
          await h.stop();
        }
      }
      await lab.net.kill(up.proc);
    }
  } finally {
    await lab.cleanup();
  }
  console.log('');
  console.log('TFTP read, blksize 1468, client atftp (MB/s = MiB/s). tftpd-hpa and dnsmasq ignore windowsize (lock-step).');
  console.log('Links: clean = veth; 1 ms / 5 ms = netemu delay each way (RTT 2 / 10 ms), no rate limit.');
  console.log(table(['link', 'server', 'windowsize', 'file MiB', 'time s', 'MB/s'], rows));
}

void runMain(main);
