/**
 * bench/mqtt (issue 5): the agent (dist/bootrelay.js, DHCP server mode) publishing to a
 * real Mosquitto, measured from the outside:
 *   1. latency: a DHCP DISCOVER leaving a client until its `dhcp.discover` event reaches
 *      an MQTT subscriber (p50/p99/max), split at the event's own `ts`; DISCOVERs paced
 *      one every PROBE_GAP_MS (idle relay) — same machine clock in every process
 *   2. a 20-client boot: 20 clients at once do PXE DORA, the loader over TFTP, iPXE DORA,
 *      /boot.ipxe, kernel and initrd over HTTP, /booted; the subscriber counts every
 *      message the agent publishes (events + retained client states + status) per second
 *
 *   <p>-up    upstream files (this bundle --upstream)
 *      | netemu uplink, 10 ms each way, 20 Mbit/s (env BENCH_MQTT_UPLINK_US / _KBIT)
 *   <p>-mon   mosquitto :1883 and the subscriber (this bundle --sub), a plain veth to the relay
 *   <p>-relay the agent, lan 10.99.90.1, wan 10.99.91.2
 *      | veth
 *   <p>-cli   the DHCP clients (this bundle --probe / --boot), curl for TFTP/HTTP bound to
 *             each client's leased address (so the agent can tell them apart)
 * Namespaces `brmq<pid>-*`, 10.99.90-91.x; bounded in count and time.
 * Run: node scripts/run-ts.mjs bench/mqtt.ts
 */
import dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { MessageType, Opt } from '../proto/dhcp/options';
import { decodeDhcp, messageType, type DhcpMessage } from '../proto/dhcp/packet';
import { curlIn, encodePxe } from './_lib/pxe-client';
import { BenchLab, MB, fx, has, helperMode, isRoot, machineLine, makeFile, pct, runMain, startAgent, startUpstream, table, waitFor, wallMs } from './_lib/common';
import { onJsonLines } from '../test/helpers/jsonl';

const LAN = '10.99.90.1';
const UP = '10.99.91.1';
/** the broker and the subscriber: a clean link beside the uplink */
const MON = '10.99.92.1';
const UP_DELAY_US = Number(process.env.BENCH_MQTT_UPLINK_US ?? 10_000);
const UP_KBIT = Number(process.env.BENCH_MQTT_UPLINK_KBIT ?? 20_000);
const PROBES = 200;
const PROBE_MACS = 40;
const PROBE_GAP_MS = 20;
const BOOT_CLIENTS = 20;
const KERNEL_MB = 8;
const INITRD_MB = 32;
const LOADER_BYTES = 70_000;
const BOOT_LIMIT_MS = 180_000;

// ------------------------------------------------------------ helper: subscriber

async function subscriber(url: string): Promise<void> {
  const c = await mqtt.connectAsync(url, { clientId: `bench-sub-${process.pid}`, clean: true, reconnectPeriod: 200 });
  c.on('message', (topic, payload) => {
    const t = wallMs();
    let type: string | undefined;
    let xid: string | undefined;
    let ts: string | undefined;
    if (topic.endsWith('/events')) {
      try {
        const e = JSON.parse(payload.toString()) as { type?: string; xid?: string; ts?: string };
        type = e.type;
        xid = e.xid;
        ts = e.ts;
      } catch {
        /* not JSON */
      }
    }
    process.stdout.write(JSON.stringify({ t, topic, type, xid, ts }) + '\n');
  });
  await c.subscribeAsync('bootrelay/#', { qos: 1 });
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void c.endAsync(true).then(() => process.exit(0)));
}

// ------------------------------------------------------------ helper: DHCP clients

function macOf(i: number, tag: number): Buffer {
  return Buffer.from([0x02, 0xbe, tag, 0, (i >> 8) & 255, i & 255]);
}

async function dhcpSocket(): Promise<{ s: dgram.Socket; wait: (xid: number, type: number, ms: number) => Promise<DhcpMessage | undefined>; send: (b: Buffer) => void }> {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((r) => s.bind(68, '0.0.0.0', () => r()));
  s.setBroadcast(true);
  const waiting = new Map<string, (m: DhcpMessage) => void>();
  s.on('message', (b) => {
    let m: DhcpMessage;
    try {
      m = decodeDhcp(b);
    } catch {
      return;
    }
    waiting.get(`${m.xid}:${messageType(m)}`)?.(m);
  });
  return {
    s,
    send: (b) => s.send(b, 67, '255.255.255.255'),
    wait: (xid, type, ms) =>
      new Promise((resolve) => {
        const k = `${xid}:${type}`;
        const t = setTimeout(() => (waiting.delete(k), resolve(undefined)), ms);
        waiting.set(k, (m) => (clearTimeout(t), waiting.delete(k), resolve(m)));
      }),
  };
}

/** --probe: paced DISCOVERs; prints {xid, t} per send. */
async function probe(): Promise<void> {
  const { s, send } = await dhcpSocket();
  const uuids = Array.from({ length: PROBE_MACS }, () => randomBytes(16));
  for (let k = 0; k < PROBES; k++) {
    const xid = 0x50000000 + k;
    const buf = encodePxe({ type: MessageType.DISCOVER, xid, mac: macOf(k % PROBE_MACS, 1), uuid: uuids[k % PROBE_MACS]! });
    const t = wallMs();
    send(buf);
    process.stdout.write(JSON.stringify({ xid: `0x${xid.toString(16).padStart(8, '0')}`, t }) + '\n');
    await new Promise((r) => setTimeout(r, PROBE_GAP_MS));
  }
  s.close();
}

async function dora(sock: Awaited<ReturnType<typeof dhcpSocket>>, mac: Buffer, uuid: Buffer, xid: number, ipxe: boolean): Promise<DhcpMessage | undefined> {
  for (let attempt = 0; attempt < 4; attempt++) {
    const buf = encodePxe({ type: MessageType.DISCOVER, xid, mac, uuid, ipxe });
    const t = wallMs();
    sock.send(buf);
    process.stdout.write(JSON.stringify({ xid: `0x${xid.toString(16).padStart(8, '0')}`, t }) + '\n');
    const offer = await sock.wait(xid, MessageType.OFFER, 2000);
    if (!offer) continue;
    sock.send(encodePxe({ type: MessageType.REQUEST, xid, mac, uuid, ipxe, sid: offer.options.ip(Opt.ServerIdentifier) ?? LAN, ip: offer.yiaddr }));
    const ack = await sock.wait(xid, MessageType.ACK, 2000);
    if (ack) return ack;
  }
  return undefined;
}

/** --boot: BOOT_CLIENTS clients boot at once; prints {start, end, ok, failed: [...]} */
async function boot(): Promise<void> {
  const sock = await dhcpSocket();
  const start = wallMs();
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: BOOT_CLIENTS }, async (_, i) => {
      const mac = macOf(i, 2);
      const uuid = randomBytes(16);
      const macStr = [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
      const fail = (why: string) => void failures.push(`${macStr}: ${why}`);
      const ack = await dora(sock, mac, uuid, 0x60000000 + i, false);
      if (!ack) return fail('no PXE ACK');
      const ip = ack.yiaddr;
      spawnSync('ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      const loader = ack.file || ack.options.str(Opt.BootFileName) || '';
      const t = await curlIn(['--interface', ip, '--tftp-blksize', '1468', '-o', '/dev/null', `tftp://${ack.siaddr !== '0.0.0.0' ? ack.siaddr : LAN}/${loader}`]);
      if (t.code !== 0) return fail(`tftp ${loader} curl exit ${t.code}`);
      const ack2 = await dora(sock, mac, uuid, 0x61000000 + i, true);
      if (!ack2) return fail('no iPXE ACK');
      const scriptUrl = ack2.file || ack2.options.str(Opt.BootFileName) || `http://${LAN}/boot.ipxe`;
      const sc = await curlIn(['--interface', ip, scriptUrl]);
      if (sc.code !== 0) return fail(`script ${scriptUrl} curl exit ${sc.code}`);
      const urls = [...sc.out.matchAll(/^(?:kernel|initrd)\s+(\S+)/gm)].map((m) => m[1]!);
      if (urls.length < 2) return fail(`script names ${urls.length} files`);
      for (const u of urls) {
        const r = await curlIn(['--interface', ip, '-f', '-o', '/dev/null', u]);
        if (r.code !== 0) return fail(`${u} curl exit ${r.code}`);
      }
      await curlIn(['--interface', ip, '-f', '-o', '/dev/null', `http://${LAN}/booted?mac=${macStr}`]);
    }),
  );
  sock.s.close();
  process.stdout.write(JSON.stringify({ start, end: wallMs(), ok: BOOT_CLIENTS - failures.length, failures }) + '\n');
}

// ------------------------------------------------------------ the bench

interface SubLine {
  t: number;
  topic: string;
  type?: string;
  xid?: string;
  ts?: string;
}

async function main(): Promise<void> {
  console.log(machineLine());
  const missing = ['curl', 'mosquitto'].filter((c) => !has(c) && !has(`/usr/sbin/${c}`));
  if (!isRoot() || missing.length) {
    console.log(`bench mqtt skipped: ${!isRoot() ? 'needs root' : `missing ${missing.join(', ')}`}`);
    return;
  }
  const self = process.argv[1]!;
  const lab = new BenchLab(`brmq${process.pid}`);
  const lines: SubLine[] = [];
  let lat: { total: number[]; toTs: number[]; fromTs: number[]; sent: number } | undefined;
  let bootRes: { start: number; end: number; ok: number; failures: string[] } | undefined;
  let bootMsgs: SubLine[] = [];
  let rssNote = '';
  let bootSent: Array<{ xid: string; t: number }> = [];
  try {
    const up = lab.net.addNs('up');
    const mon = lab.net.addNs('mon');
    const relay = lab.net.addNs('relay');
    const cli = lab.net.addNs('cli');
    await lab.netemuLink({ ns: up, dev: 'upl', cidr: `${UP}/24` }, { ns: relay, dev: 'wan', cidr: '10.99.91.2/24' }, UP_DELAY_US, UP_KBIT);
    lab.veth({ ns: mon, dev: 'mon', cidr: `${MON}/24` }, { ns: relay, dev: 'mon', cidr: '10.99.92.2/24' });
    lab.veth({ ns: relay, dev: 'lan', cidr: `${LAN}/24` }, { ns: cli, dev: 'eth0', cidr: '10.99.90.2/24' });
    lab.net.ip(cli, 'route', 'add', 'default', 'dev', 'eth0');

    const www = join(lab.tmp, 'www');
    mkdirSync(join(www, 'ipxe'), { recursive: true });
    mkdirSync(join(www, 'k'), { recursive: true });
    makeFile(join(www, 'ipxe/undionly.kpxe'), LOADER_BYTES);
    makeFile(join(www, 'k/vmlinuz'), KERNEL_MB * MB);
    makeFile(join(www, 'k/initrd'), INITRD_MB * MB);
    await startUpstream(lab, up, www, UP, 8080);

    const mconf = join(lab.tmp, 'mosquitto.conf');
    writeFileSync(mconf, `listener 1883 ${MON}\nallow_anonymous true\npersistence false\nlog_dest none\n`);
    const broker = lab.net.spawn(mon, '/usr/sbin/mosquitto', ['-c', mconf]);
    await waitFor(async () => {
      if (broker.exitCode !== null) throw new Error('mosquitto exited');
      return (await lab.net.exec(mon, 'bash', ['-c', `exec 3<>/dev/tcp/${MON}/1883`])).code === 0;
    }, 10_000, 'mosquitto');

    const sub = lab.net.spawn(mon, process.execPath, [self, '--sub', `mqtt://${MON}:1883`]);
    let ready = false;
    onJsonLines(sub.stdout!, (obj, raw) => {
      if (raw === 'ready') ready = true;
      else if (obj) lines.push(obj as unknown as SubLine);
    });
    sub.stderr!.on('data', (d) => process.stderr.write(d));
    await waitFor(() => {
      if (sub.exitCode !== null) throw new Error('subscriber exited');
      return ready;
    }, 10_000, 'subscriber');

    const agent = await startAgent(lab, {
      ns: relay,
      dir: join(lab.tmp, 'agent'),
      lanIf: 'lan',
      lanIp: LAN,
      upstreamUrl: `http://${UP}:8080/`,
      mqttUrl: `mqtt://${MON}:1883`,
      dhcp: { mode: 'server', range: ['10.99.90.100', '10.99.90.220'], leaseSeconds: 600, router: LAN, dns: [] },
      boot: { loaders: { bios: 'ipxe/undionly.kpxe' }, defaultProfile: 'b', profiles: { b: { kernel: 'k/vmlinuz', initrd: ['k/initrd'], cmdline: 'quiet' } } },
    });
    // the agent's connect-time messages (status, discovery) are not part of either measurement
    await waitFor(() => lines.some((l) => l.topic.endsWith('/status')), 15_000, 'agent online on MQTT');
    await new Promise((r) => setTimeout(r, 500));

    // 1. DHCP → MQTT latency
    const p = await lab.net.exec(cli, process.execPath, [self, '--probe'], { timeoutMs: PROBES * PROBE_GAP_MS * 3 + 20_000 });
    const sent = p.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { xid: string; t: number });
    const want = new Set(sent.map((s) => s.xid));
    const seen = () => lines.filter((l) => l.type === 'dhcp.discover' && l.xid && want.has(l.xid));
    await waitFor(() => seen().length >= sent.length, 10_000, 'probe events').catch(() => undefined);
    const recv = new Map(seen().map((l) => [l.xid!, l]));
    lat = { total: [], toTs: [], fromTs: [], sent: sent.length };
    for (const s of sent) {
      const r = recv.get(s.xid);
      if (!r) continue;
      lat.total.push(r.t - s.t);
      if (r.ts) {
        const ts = Date.parse(r.ts);
        lat.toTs.push(ts - s.t);
        lat.fromTs.push(r.t - ts);
      }
    }

    // 2. a 20-client boot
    const before = lines.length;
    const b = await lab.net.exec(cli, process.execPath, [self, '--boot'], { timeoutMs: BOOT_LIMIT_MS });
    const bl = b.stdout.trim().split('\n').filter(Boolean);
    const last = bl.find((l) => l.includes('"start"'));
    bootSent = bl.filter((l) => l.includes('"xid"')).map((l) => JSON.parse(l) as { xid: string; t: number });
    if (last) bootRes = JSON.parse(last) as typeof bootRes;
    else console.log(`boot client failed: ${b.stderr.slice(0, 1000)}`);
    // trailing messages: wait until nothing new arrived for 1 s (at most 10 s)
    let n = lines.length;
    let quietSince = Date.now();
    await waitFor(() => {
      if (lines.length !== n) (n = lines.length), (quietSince = Date.now());
      return Date.now() - quietSince > 1000;
    }, 10_000, 'quiet').catch(() => undefined);
    bootMsgs = lines.slice(before);
    rssNote = `agent peak RSS after the boot: ${fx(Number(/VmHWM:\s+(\d+)/.exec(spawnSync('cat', [`/proc/${agent.pid}/status`], { encoding: 'utf8' }).stdout)?.[1]) / 1024, 0)} MiB`;
  } finally {
    await lab.cleanup();
  }

  // DISCOVERs of the 20-client boot (first send per xid; retries would be re-sends)
  function bootLatencyRow(): string[][] {
    const first = new Map<string, number>();
    for (const s of bootSent) if (!first.has(s.xid)) first.set(s.xid, s.t);
    const got = new Map<string, number>();
    for (const l of bootMsgs) if (l.type === 'dhcp.discover' && l.xid && first.has(l.xid) && !got.has(l.xid)) got.set(l.xid, l.t - first.get(l.xid)!);
    const d = [...got.values()];
    if (!d.length) return [];
    return [[`packet sent → subscriber, during the ${BOOT_CLIENTS}-client boot`, `${d.length}/${first.size}`, fx(pct(d, 50), 2), fx(pct(d, 99), 2), fx(Math.max(...d), 2)]];
  }
  console.log('');
  if (lat) {
    console.log(`DHCP DISCOVER sent by a client → its dhcp.discover event at an MQTT subscriber (QoS 1, broker one clean veth hop from the relay), ${lat.sent} DISCOVERs one every ${PROBE_GAP_MS} ms:`);
    console.log(
      table(
        ['segment', 'n', 'p50 ms', 'p99 ms', 'max ms'],
        [
          ['packet sent → subscriber has the event', `${lat.total.length}/${lat.sent}`, fx(pct(lat.total, 50), 2), fx(pct(lat.total, 99), 2), fx(Math.max(...lat.total), 2)],
          ['packet sent → event ts (agent; ts has 1 ms resolution)', String(lat.toTs.length), fx(pct(lat.toTs, 50), 1), fx(pct(lat.toTs, 99), 1), fx(Math.max(...lat.toTs), 1)],
          ['event ts → subscriber (publish path)', String(lat.fromTs.length), fx(pct(lat.fromTs, 50), 1), fx(pct(lat.fromTs, 99), 1), fx(Math.max(...lat.fromTs), 1)],
          ...bootLatencyRow(),
        ],
      ),
    );
  }
  if (bootRes) {
    const dur = (bootRes.end - bootRes.start) / 1000;
    const inBoot = bootMsgs.filter((l) => l.t >= bootRes!.start && l.t <= bootRes!.end + 100);
    const lastMsg = bootMsgs.length ? bootMsgs[bootMsgs.length - 1]!.t : bootRes.end;
    const perSec = new Map<number, number>();
    for (const l of bootMsgs) perSec.set(Math.floor((l.t - bootRes.start) / 1000), (perSec.get(Math.floor((l.t - bootRes.start) / 1000)) ?? 0) + 1);
    const byKind = new Map<string, number>();
    for (const l of bootMsgs) {
      const k = l.type ? `event ${l.type}` : l.topic.replace(/^bootrelay\/[^/]+\//, '').replace(/\/[0-9a-f:]{17}$/, '/<mac>');
      byKind.set(k, (byKind.get(k) ?? 0) + 1);
    }
    console.log('');
    console.log(`${BOOT_CLIENTS}-client boot (each: PXE DORA, TFTP loader ${LOADER_BYTES / 1000} kB, iPXE DORA, /boot.ipxe, kernel ${KERNEL_MB} MiB + initrd ${INITRD_MB} MiB over HTTP, /booted; cold cache, files through a ${UP_KBIT / 1000} Mbit/s ${UP_DELAY_US / 1000} ms uplink):`);
    console.log(
      table(
        ['clients ok', 'boot s', 'messages', 'during the boot', 'avg msgs/s', 'peak msgs/s (1 s buckets)', 'last message after the boot ms'],
        [[`${bootRes.ok}/${BOOT_CLIENTS}`, fx(dur, 2), String(bootMsgs.length), String(inBoot.length), fx(inBoot.length / dur, 0), String(Math.max(0, ...perSec.values())), fx(lastMsg - bootRes.end, 0)]],
      ),
    );
    if (bootRes.failures.length) console.log(`failures: ${bootRes.failures.slice(0, 5).join('; ')}`);
    console.log('messages by kind: ' + [...byKind.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', '));
    console.log(rssNote);
  }
}

if (process.argv[2] === '--sub') void subscriber(process.argv[3]!);
else if (process.argv[2] === '--probe') void probe();
else if (process.argv[2] === '--boot') void boot();
else if (!helperMode()) void runMain(main);
