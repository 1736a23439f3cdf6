/**
 * bench/flash (issue 13): what one complete client boot writes to the router's
 * flash. The agent (dist/bootrelay.js, DHCP server mode, MQTT off) runs under
 * `strace -f -y` (write/pwrite/writev/fsync/fdatasync/rename); every write and
 * fsync whose descriptor is a file below stateDir (or below the cache dir,
 * reported apart) is counted. A boot, as the lab's firmware does it:
 *   PXE DORA · the loader over TFTP · iPXE DORA · /boot.ipxe · kernel and initrd
 *   over HTTP · /booted · one renewal (REQUEST from the leased address)
 * BOOTS clients boot one after another on a warm cache (one cold boot first, not
 * counted), each followed by a pause so the agent's deferred saves land inside
 * its own window. Goal: ≤ 32 KiB and ≤ 8 fsyncs into stateDir per boot, with
 * "durable before the ACK" kept (the lease journal's fdatasync before each ACK).
 * Namespaces `brfl<pid>-*`, 10.99.95.x. Run: node scripts/run-ts.mjs bench/flash.ts
 */
import dgram from 'node:dgram';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MessageType, Opt } from '../proto/dhcp/options';
import { decodeDhcp, messageType, type DhcpMessage } from '../proto/dhcp/packet';
import { curlIn, encodePxe } from './_lib/pxe-client';
import { BenchLab, MB, fx, has, isRoot, machineLine, makeFile, runMain, startAgent, startUpstream, table, waitFor } from './_lib/common';

const LAN = '10.99.95.1';
const BOOTS = Number(process.env.BENCH_FLASH_BOOTS ?? 5);
const SETTLE_MS = Number(process.env.BENCH_FLASH_SETTLE_MS ?? 4000);
/** after the last boot: long enough for the cache index's 60 s deferred save */
const TAIL_MS = Number(process.env.BENCH_FLASH_TAIL_MS ?? 65_000);
const KIB_GOAL = 32;
const FSYNC_GOAL = 8;

// ------------------------------------------------------------ helper: one booting client (run in the client namespace)

/** --boot MACHEX: one client boots; prints {ok, why?}. */
async function bootOne(macHex: string): Promise<void> {
  const mac = Buffer.from(macHex, 'hex');
  const macStr = [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
  const uuid = randomBytes(16);
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((r) => s.bind(68, '0.0.0.0', () => r()));
  s.setBroadcast(true);
  const waiting = new Map<string, (m: DhcpMessage) => void>();
  s.on('message', (b) => {
    try {
      const m = decodeDhcp(b);
      waiting.get(`${m.xid}:${messageType(m)}`)?.(m);
    } catch {
      /* not DHCP */
    }
  });
  const wait = (xid: number, type: number) =>
    new Promise<DhcpMessage | undefined>((resolve) => {
      const k = `${xid}:${type}`;
      const t = setTimeout(() => (waiting.delete(k), resolve(undefined)), 2000);
      waiting.set(k, (m) => (clearTimeout(t), waiting.delete(k), resolve(m)));
    });
  const dora = async (xid: number, ipxe: boolean) => {
    for (let attempt = 0; attempt < 4; attempt++) {
      s.send(encodePxe({ type: MessageType.DISCOVER, xid, mac, uuid, ipxe }), 67, '255.255.255.255');
      const offer = await wait(xid, MessageType.OFFER);
      if (!offer) continue;
      s.send(encodePxe({ type: MessageType.REQUEST, xid, mac, uuid, ipxe, sid: offer.options.ip(Opt.ServerIdentifier) ?? LAN, ip: offer.yiaddr }), 67, '255.255.255.255');
      const ack = await wait(xid, MessageType.ACK);
      if (ack) return ack;
    }
    return undefined;
  };
  const out = (o: Record<string, unknown>) => {
    process.stdout.write(JSON.stringify(o) + '\n');
    s.close();
  };
  const xid0 = randomBytes(4).readUInt32BE(0) & 0x7fffff00;
  const ack = await dora(xid0, false);
  if (!ack) return out({ ok: false, why: 'no PXE ACK' });
  const ip = ack.yiaddr;
  spawnSync('ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  try {
    const loader = ack.file || ack.options.str(Opt.BootFileName) || '';
    const t = await curlIn(['--interface', ip, '--tftp-blksize', '1468', '-o', '/dev/null', `tftp://${LAN}/${loader}`]);
    if (t.code !== 0) return out({ ok: false, why: `tftp ${loader}: curl exit ${t.code}` });
    const ack2 = await dora(xid0 + 1, true);
    if (!ack2) return out({ ok: false, why: 'no iPXE ACK' });
    const scriptUrl = ack2.file || ack2.options.str(Opt.BootFileName) || `http://${LAN}/boot.ipxe`;
    const sc = await curlIn(['--interface', ip, scriptUrl]);
    const urls = [...sc.out.matchAll(/^(?:kernel|initrd)\s+(\S+)/gm)].map((m) => m[1]!);
    if (sc.code !== 0 || urls.length < 2) return out({ ok: false, why: `script ${scriptUrl}: exit ${sc.code}, ${urls.length} files` });
    for (const u of urls) {
      const r = await curlIn(['--interface', ip, '-f', '-o', '/dev/null', u]);
      if (r.code !== 0) return out({ ok: false, why: `${u}: curl exit ${r.code}` });
    }
    await curlIn(['--interface', ip, '-f', '-o', '/dev/null', `http://${LAN}/booted?mac=${macStr}`]);
    // the booted OS renews its lease (RFC 2131 §4.3.2 RENEWING: ciaddr set, unicast to the server)
    const rx = xid0 + 2;
    const renew = encodePxe({ type: MessageType.REQUEST, xid: rx, mac, uuid, ciaddr: ip });
    const r = wait(rx, MessageType.ACK);
    s.send(renew, 67, LAN);
    if (!(await r)) return out({ ok: false, why: 'renewal not ACKed' });
    out({ ok: true });
  } finally {
    spawnSync('ip', ['addr', 'del', `${ip}/24`, 'dev', 'eth0']);
  }
}

// ------------------------------------------------------------ strace accounting

interface Io {
  bytes: number;
  writes: number;
  /** fsync + fdatasync calls, and writes to a file opened O_DSYNC/O_SYNC (each is one flush to flash) */
  fsyncs: number;
  renames: number;
  files: Map<string, { bytes: number; fsyncs: number }>;
}

const emptyIo = (): Io => ({ bytes: 0, writes: 0, fsyncs: 0, renames: 0, files: new Map() });

/** Files the process holds open with O_DSYNC or O_SYNC (the lease journal): each write to them is a flush. */
function syncOpenFiles(pid: number): Set<string> {
  const out = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const flags = parseInt(/^flags:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0', 8);
        if (flags & 0o10000) out.add(readlinkSync(`/proc/${pid}/fd/${fd}`)); // O_DSYNC (O_SYNC includes it)
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* gone */
  }
  return out;
}

/** Counts the strace lines that touch paths under `dir`; writes to `syncFiles` count as flushes too. */
function account(lines: string[], dir: string, syncFiles: Set<string> = new Set()): Io {
  const io = emptyIo();
  const file = (p: string) => {
    let f = io.files.get(p);
    if (!f) io.files.set(p, (f = { bytes: 0, fsyncs: 0 }));
    return f;
  };
  for (const l of lines) {
    const m = /\b(write|pwrite64|writev|pwritev|pwritev2|fsync|fdatasync|rename|renameat|renameat2)\((\d+<([^>]*)>)?(.*)\) = (-?\d+)/.exec(l);
    if (!m) continue;
    const [, call, , path, rest, ret] = m;
    if (call!.startsWith('rename')) {
      if (rest!.includes(dir) && Number(ret) === 0) io.renames++;
      continue;
    }
    if (!path || !(path === dir || path.startsWith(dir + '/'))) continue;
    const short = path.slice(dir.length + 1).replace(/\.tmp[^/]*$/, '.tmp') || '.';
    if (call === 'fsync' || call === 'fdatasync') {
      io.fsyncs++;
      file(short).fsyncs++;
    } else if (Number(ret) > 0) {
      io.bytes += Number(ret);
      io.writes++;
      file(short).bytes += Number(ret);
      if (syncFiles.has(path)) {
        io.fsyncs++;
        file(short).fsyncs++;
      }
    }
  }
  return io;
}

// ------------------------------------------------------------ the bench

async function main(): Promise<void> {
  console.log(machineLine());
  const missing = ['curl', 'strace'].filter((c) => !has(c));
  if (!isRoot() || missing.length) {
    console.log(`bench flash skipped: ${!isRoot() ? 'needs root' : `missing ${missing.join(', ')}`}`);
    return;
  }
  const self = process.argv[1]!;
  const lab = new BenchLab(`brfl${process.pid}`);
  const rows: string[][] = [];
  const perFile = new Map<string, { bytes: number; fsyncs: number }>();
  let total = emptyIo();
  let cacheTotal = emptyIo();
  let ok = 0;
  let st: ChildProcess | undefined;
  try {
    const relay = lab.net.addNs('relay');
    const cli = lab.net.addNs('cli');
    lab.veth({ ns: relay, dev: 'lan', cidr: `${LAN}/24` }, { ns: cli, dev: 'eth0', cidr: '10.99.95.2/24' });
    lab.net.ip(cli, 'route', 'add', 'default', 'dev', 'eth0');
    const www = join(lab.tmp, 'www');
    mkdirSync(join(www, 'ipxe'), { recursive: true });
    mkdirSync(join(www, 'k'), { recursive: true });
    makeFile(join(www, 'ipxe/undionly.kpxe'), 70_000);
    makeFile(join(www, 'k/vmlinuz'), 8 * MB);
    makeFile(join(www, 'k/initrd'), 16 * MB);
    await startUpstream(lab, relay, www, '127.0.0.1', 8080);
    const dir = join(lab.tmp, 'agent');
    const agent = await startAgent(lab, {
      ns: relay,
      dir,
      lanIf: 'lan',
      lanIp: LAN,
      upstreamUrl: 'http://127.0.0.1:8080/',
      dhcp: { mode: 'server', range: ['10.99.95.100', '10.99.95.200'], leaseSeconds: 600, router: LAN, dns: [] },
      boot: { loaders: { bios: 'ipxe/undionly.kpxe' }, defaultProfile: 'b', profiles: { b: { kernel: 'k/vmlinuz', initrd: ['k/initrd'], cmdline: 'quiet' } } },
    });
    const stateDir = join(dir, 'state');
    const cacheDir = join(dir, 'cache');
    const boot = async (i: number) => {
      const r = await lab.net.exec(cli, process.execPath, [self, '--boot', `02be0f0000${i.toString(16).padStart(2, '0')}`], { timeoutMs: 120_000 });
      const line = r.stdout.trim().split('\n').pop() ?? '';
      try {
        return JSON.parse(line) as { ok: boolean; why?: string };
      } catch {
        return { ok: false, why: (r.stderr || line).slice(0, 200) };
      }
    };
    const cold = await boot(0); // fills the cache; not counted
    if (!cold.ok) console.log(`  cold boot failed: ${cold.why}`);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const syncFiles = syncOpenFiles(agent.pid);
    if (syncFiles.size) console.log(`  opened O_DSYNC (each write is a flush): ${[...syncFiles].map((f) => f.slice(dir.length + 1)).join(', ')}`);

    const trace = join(lab.tmp, 'strace.txt');
    st = spawn('strace', ['-f', '-y', '-qq', '-e', 'trace=write,pwrite64,writev,pwritev,pwritev2,fsync,fdatasync,rename,renameat,renameat2', '-o', trace, '-p', String(agent.pid)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 1000)); // attached
    let seen = 0;
    const newLines = () => {
      const all = readFileSync(trace, 'utf8').split('\n');
      const fresh = all.slice(seen, all.length - 1);
      seen = all.length - 1;
      return fresh;
    };
    newLines();
    for (let i = 1; i <= BOOTS; i++) {
      const r = await boot(i);
      await new Promise((res) => setTimeout(res, SETTLE_MS));
      const lines = newLines();
      const io = account(lines, stateDir, syncFiles);
      const cio = account(lines, cacheDir, syncFiles);
      if (r.ok) ok++;
      total = { ...total, bytes: total.bytes + io.bytes, writes: total.writes + io.writes, fsyncs: total.fsyncs + io.fsyncs, renames: total.renames + io.renames };
      cacheTotal = { ...cacheTotal, bytes: cacheTotal.bytes + cio.bytes, fsyncs: cacheTotal.fsyncs + cio.fsyncs };
      for (const [f, v] of io.files) {
        const p = perFile.get(f) ?? { bytes: 0, fsyncs: 0 };
        perFile.set(f, { bytes: p.bytes + v.bytes, fsyncs: p.fsyncs + v.fsyncs });
      }
      rows.push([String(i), r.ok ? 'ok' : `failed: ${r.why}`, fx(io.bytes / 1024, 1), String(io.writes), String(io.fsyncs), String(io.renames), fx(cio.bytes / 1024, 1), String(cio.fsyncs)]);
      console.log(`  boot ${i}: ${rows[rows.length - 1]!.slice(1).join(' | ')}`);
    }
    // deferred saves (the cache index waits 60 s after a hit) land here: shared by all the boots
    await new Promise((res) => setTimeout(res, TAIL_MS));
    const tailLines = newLines();
    const tio = account(tailLines, stateDir, syncFiles);
    const tcio = account(tailLines, cacheDir, syncFiles);
    total = { ...total, bytes: total.bytes + tio.bytes, writes: total.writes + tio.writes, fsyncs: total.fsyncs + tio.fsyncs, renames: total.renames + tio.renames };
    cacheTotal = { ...cacheTotal, bytes: cacheTotal.bytes + tcio.bytes, fsyncs: cacheTotal.fsyncs + tcio.fsyncs };
    for (const [f, v] of tio.files) {
      const p = perFile.get(f) ?? { bytes: 0, fsyncs: 0 };
      perFile.set(f, { bytes: p.bytes + v.bytes, fsyncs: p.fsyncs + v.fsyncs });
    }
    rows.push([`after (${TAIL_MS / 1000} s)`, 'deferred saves', fx(tio.bytes / 1024, 1), String(tio.writes), String(tio.fsyncs), String(tio.renames), fx(tcio.bytes / 1024, 1), String(tcio.fsyncs)]);
    console.log(`  after the boots: ${rows[rows.length - 1]!.slice(2).join(' | ')}`);
  } finally {
    if (st?.pid) {
      try {
        process.kill(st.pid, 'SIGINT');
      } catch {
        /* gone */
      }
      await waitFor(() => st!.exitCode !== null || st!.signalCode !== null, 5000, 'strace exit').catch(() => st?.kill('SIGKILL'));
    }
    await lab.cleanup();
  }
  const n = Math.max(1, BOOTS);
  console.log('');
  console.log(`Flash writes per complete client boot (PXE DORA, TFTP loader, iPXE DORA, script, kernel + initrd over HTTP, /booted, one renewal),`);
  console.log(`warm cache, ${BOOTS} boots one after another, ${SETTLE_MS} ms after each, then ${TAIL_MS / 1000} s for deferred saves (counted, shared by the boots); strace -f -y on the agent. Goal (issue 13): ≤ ${KIB_GOAL} KiB and ≤ ${FSYNC_GOAL} fsyncs into stateDir per boot.`);
  console.log('fsyncs = fsync + fdatasync calls + writes to files opened O_DSYNC (the lease journal: durable before the ACK).');
  console.log(table(['boot', 'result', 'stateDir KiB', 'writes', 'fsyncs', 'renames', 'cache dir KiB', 'cache fsyncs'], rows));
  console.log(table(['stateDir file', 'KiB per boot', 'fsyncs per boot'], [...perFile].sort((a, b) => b[1].bytes - a[1].bytes).map(([f, v]) => [f, fx(v.bytes / 1024 / n, 1), fx(v.fsyncs / n, 1)])));
  console.log(`per boot: ${fx(total.bytes / 1024 / n, 1)} KiB (${fx(total.bytes / 1024 / n / KIB_GOAL, 2)}× of ${KIB_GOAL}), ${fx(total.fsyncs / n, 1)} fsyncs (${fx(total.fsyncs / n / FSYNC_GOAL, 2)}× of ${FSYNC_GOAL}); cache dir ${fx(cacheTotal.bytes / 1024 / n, 1)} KiB, ${fx(cacheTotal.fsyncs / n, 1)} fsyncs; ${ok}/${BOOTS} boots ok`);
}

if (process.argv[2] === '--boot') void bootOne(process.argv[3]!);
else void runMain(main);
