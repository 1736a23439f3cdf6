/**
 * bench/tftp (issue 4): TFTP MB/s of the agent (dist/bootrelay.js) against
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
import { BenchLab, MB, fx, has, isRoot, machineLine, makeFile, runMain, startAgent, startUpstream, table, waitFor, type Agent } from './_lib/common';

const SIZES = (process.env.BENCH_TFTP_MB ?? '128,4,1').split(',').map(Number);
const WINDOWS = [1, 4, 16];
const LIMIT_MS = 150_000;

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
