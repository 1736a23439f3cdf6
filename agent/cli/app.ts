/**
 * relayctl: drives the agent over its control socket (agent/control/server.ts).
 * Exit status: 0 done, 1 failed (including an unreachable agent), 2 usage.
 * `runRelayctl(argv, io)` is the whole program; agent/cli/relayctl.ts only
 * binds it to the process, so tests run it in-process.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { normalizeMac } from '../../proto/mac';
import { normalizeUuid } from '../../proto/uuid';
import { VERSION } from '../../proto/version';
import { loadConfig } from '../config/load';
import { ControlClient, ControlRequestError, type StreamMessage } from '../control/client';
import { ago, cell, fmtBytes, fmtSeconds, nicCell, progressText, table, watchLine, type ClientView } from './format';

export interface CliIo {
  stdout: { write(s: string): unknown; isTTY?: boolean; columns?: number; rows?: number };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
  /** resolves when the user interrupts (SIGINT/SIGTERM); watch stops then */
  interrupted?: Promise<void>;
  cwd?: string;
}

export const DEFAULT_SOCKET = '/run/bootrelay.sock';
const REQUEST_TIMEOUT_MS = 20_000;

export const USAGE = `usage: relayctl [--socket PATH] [--json] COMMAND [ARGS]

commands:
  status                         the agent: version, uptime, uplink, cache, clients
  clients                        every client seen, with its boot phase and progress
  leases                         DHCP leases
  watch [--until booted] [--mac MAC] [--timeout S]
                                 live progress (bars on a terminal, lines otherwise);
                                 with --until booted: exit 0 once the client(s) booted,
                                 1 on failure or timeout
  cache ls                       cached files
  cache prefetch PATH|PROFILE    fetch a file (or a profile's kernel, initrds, script) and pin it
  cache purge [PATH]             drop one cached file, or everything (pinned too)
  cache verify                   re-hash cached files against their recorded sha256
  profiles                       boot profiles and who is assigned to them
  assign MAC|UUID PROFILE        boot MAC (or the machine with this SMBIOS UUID) with PROFILE from now on
  rearm MAC                      let a client that already booted netboot once more
  trace MAC -o FILE.pcap         the client's DHCP/TFTP exchange as a capture
  explain MAC                    where the client is and, if stuck, the likely cause
  config check FILE              validate a config file (no agent needed)

options:
  --socket PATH   control socket (default $BOOTRELAY_SOCKET or ${DEFAULT_SOCKET})
  --json          machine-readable output (one JSON document; watch: one per line)
  -h, --help      this text
  --version       relayctl's version
`;

class UsageError extends Error {}

interface Parsed {
  words: string[];
  socket: string;
  json: boolean;
  help: boolean;
  version: boolean;
  until?: string;
  mac?: string;
  timeout?: number;
  output?: string;
}

const VALUE_FLAGS = new Set(['--socket', '--until', '--mac', '--timeout', '-o', '--output']);

export function parseArgs(argv: string[], env: Record<string, string | undefined>): Parsed {
  const p: Parsed = { words: [], socket: env.BOOTRELAY_SOCKET || DEFAULT_SOCKET, json: false, help: false, version: false };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let val: string | undefined;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    if (eq > 0) {
      val = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (VALUE_FLAGS.has(a)) {
      if (val === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`);
        val = argv[++i]!;
      }
      if (a === '--socket') {
        if (!val) throw new UsageError('--socket needs a path');
        p.socket = val;
      } else if (a === '--until') {
        if (val !== 'booted') throw new UsageError(`--until takes "booted", not ${JSON.stringify(val)}`);
        p.until = val;
      } else if (a === '--mac') {
        const m = normalizeMac(val);
        if (!m) throw new UsageError(`--mac: not a MAC address: ${JSON.stringify(val)}`);
        p.mac = m;
      } else if (a === '--timeout') {
        const n = Number(val);
        if (!/^\d+(\.\d+)?$/.test(val) || !(n > 0)) throw new UsageError(`--timeout takes a number of seconds, not ${JSON.stringify(val)}`);
        p.timeout = n;
      } else p.output = val;
    } else if (val !== undefined) throw new UsageError(`${a} takes no value`);
    else if (a === '--json') p.json = true;
    else if (a === '-h' || a === '--help') p.help = true;
    else if (a === '--version' || a === '-V') p.version = true;
    else if (a === '--') p.words.push(...argv.slice(i + 1)), (i = argv.length);
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else p.words.push(a);
  }
  return p;
}

function needMac(s: string | undefined, what = 'MAC'): string {
  if (!s) throw new UsageError(`${what} is missing`);
  const m = normalizeMac(s);
  if (!m) throw new UsageError(`not a MAC address: ${JSON.stringify(s)} (e.g. 52:54:00:12:34:56)`);
  return m;
}

function arity(words: string[], min: number, max: number, form: string): void {
  if (words.length < min || words.length > max) throw new UsageError(`usage: relayctl ${form}`);
}

export async function runRelayctl(argv: string[], io: CliIo): Promise<number> {
  const out = (s: string) => io.stdout.write(s);
  const err = (s: string) => io.stderr.write(s);
  let p: Parsed;
  try {
    p = parseArgs(argv, io.env);
  } catch (e) {
    err(`relayctl: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (p.help) {
    out(USAGE);
    return 0;
  }
  if (p.version) {
    out(`relayctl ${VERSION}\n`);
    return 0;
  }
  const [cmd, ...rest] = p.words;
  if (!cmd) {
    err(`relayctl: no command given\n\n${USAGE}`);
    return 2;
  }

  // the request to send, decided (and validated) before connecting
  let request: { cmd: string; args: Record<string, unknown> } | undefined;
  let render: (r: unknown) => number = (r) => {
    out(JSON.stringify(r, null, 2) + '\n');
    return 0;
  };
  try {
    const sub = rest[0];
    switch (cmd) {
      case 'status':
        arity(rest, 0, 0, 'status');
        request = { cmd: 'status', args: {} };
        render = (r) => (out(renderStatus(r)), 0);
        break;
      case 'clients':
        arity(rest, 0, 0, 'clients');
        request = { cmd: 'clients', args: p.mac ? { mac: p.mac } : {} };
        render = (r) => (out(renderClients(r as ClientView[])), 0);
        break;
      case 'leases':
        arity(rest, 0, 0, 'leases');
        request = { cmd: 'leases', args: {} };
        render = (r) => (out(renderLeases(r as Array<Record<string, unknown>>)), 0);
        break;
      case 'watch':
        arity(rest, 0, 0, 'watch [--until booted] [--mac MAC] [--timeout S]');
        return await watch(p, io);
      case 'profiles':
        arity(rest, 0, 0, 'profiles');
        request = { cmd: 'profiles', args: {} };
        render = (r) => (out(renderProfiles(r as Array<Record<string, unknown>>)), 0);
        break;
      case 'assign': {
        arity(rest, 2, 2, 'assign MAC|UUID PROFILE');
        // a UUID (SMBIOS, DHCP option 97) follows the machine when a USB NIC moves between laptops
        const uuid = normalizeUuid(rest[0] ?? '');
        request = uuid ? { cmd: 'assign', args: { uuid, profile: rest[1] } } : { cmd: 'assign', args: { mac: needMac(rest[0], 'MAC or UUID'), profile: rest[1] } };
        render = (r) => {
          const x = r as { mac?: string; uuid?: string; profile: string };
          out(`${x.uuid ? `UUID ${x.uuid}` : x.mac} → profile ${x.profile}\n`);
          return 0;
        };
        break;
      }
      case 'rearm':
        arity(rest, 1, 1, 'rearm MAC');
        request = { cmd: 'rearm', args: { mac: needMac(rest[0]) } };
        render = (r) => (out(`${(r as { mac: string }).mac} re-armed: it will be offered its loader again\n`), 0);
        break;
      case 'explain':
        arity(rest, 1, 1, 'explain MAC');
        request = { cmd: 'explain', args: { mac: needMac(rest[0]) } };
        render = (r) => (out((r as { lines: string[] }).lines.join('\n') + '\n'), 0);
        break;
      case 'trace': {
        arity(rest, 1, 1, 'trace MAC -o FILE.pcap');
        const mac = needMac(rest[0]);
        if (!p.output) throw new UsageError('trace needs -o FILE.pcap');
        const file = p.output;
        request = { cmd: 'trace', args: { mac } };
        render = (r) => {
          const x = r as { packets: number; pcap: string };
          const buf = Buffer.from(x.pcap, 'base64');
          if (file === '-') io.stdout.write(buf as unknown as string);
          else writeFileSync(resolve(io.cwd ?? process.cwd(), file), buf);
          if (p.json && file !== '-') out(JSON.stringify({ mac, packets: x.packets, file, bytes: buf.length }) + '\n');
          else if (file !== '-') out(`wrote ${x.packets} packets (${fmtBytes(buf.length)}) for ${mac} to ${file}\n`);
          if (x.packets === 0) err(`relayctl: no packets recorded for ${mac}\n`);
          return 0;
        };
        break;
      }
      case 'cache':
        if (sub === 'ls') {
          arity(rest, 1, 1, 'cache ls');
          request = { cmd: 'cache.ls', args: {} };
          render = (r) => (out(renderCache(r as Array<Record<string, unknown>>)), 0);
        } else if (sub === 'prefetch') {
          arity(rest, 2, 2, 'cache prefetch PATH|PROFILE');
          request = { cmd: 'cache.prefetch', args: { target: rest[1] } };
          render = (r) => {
            const x = r as { profile?: string; entries: Array<Record<string, unknown>> };
            for (const e of x.entries) out(`${cell(e.path)}  ${fmtBytes(e.size)}${e.pinned ? '  pinned' : ''}\n`);
            return 0;
          };
        } else if (sub === 'purge') {
          arity(rest, 1, 2, 'cache purge [PATH]');
          request = { cmd: 'cache.purge', args: rest[1] ? { path: rest[1] } : {} };
          render = (r) => (out(`removed ${(r as { removed: number }).removed} entries\n`), 0);
        } else if (sub === 'verify') {
          arity(rest, 1, 1, 'cache verify');
          request = { cmd: 'cache.verify', args: {} };
          render = (r) => {
            const x = r as { ok: boolean; results: Array<{ path: string; ok: boolean; reason?: string }> };
            out(table(['PATH', 'OK', 'REASON'], x.results.map((e) => [e.path, e.ok, e.reason])));
            return x.ok ? 0 : 1;
          };
        } else throw new UsageError(sub ? `unknown cache command "${sub}"` : 'usage: relayctl cache ls|prefetch|purge|verify');
        break;
      case 'config':
        if (sub !== 'check') throw new UsageError(sub ? `unknown config command "${sub}"` : 'usage: relayctl config check FILE');
        arity(rest, 2, 2, 'config check FILE');
        return configCheck(resolve(io.cwd ?? process.cwd(), rest[1]!), p.json, io);
      default:
        throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`relayctl: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }

  const client = await connect(p.socket, io);
  if (!client) return 1;
  try {
    // fetching from the upstream may take long; everything else answers at once
    const slow = request.cmd === 'cache.prefetch' || request.cmd === 'cache.verify';
    const result = await client.request(request.cmd, request.args, undefined, slow ? 0 : REQUEST_TIMEOUT_MS);
    if (p.json && cmd !== 'trace') {
      out(JSON.stringify(result, null, 2) + '\n');
      if (cmd === 'cache' && rest[0] === 'verify') return (result as { ok: boolean }).ok ? 0 : 1;
      return 0;
    }
    return render(result);
  } catch (e) {
    return requestFailed(e, io);
  } finally {
    client.end();
  }
}

function requestFailed(e: unknown, io: CliIo): number {
  if (e instanceof ControlRequestError) {
    io.stderr.write(`relayctl: ${e.message}\n`);
    return e.code === 'EUSAGE' ? 2 : 1;
  }
  io.stderr.write(`relayctl: ${(e as Error).message}\n`);
  return 1;
}

async function connect(socket: string, io: CliIo): Promise<ControlClient | undefined> {
  try {
    return await ControlClient.connect(socket);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    io.stderr.write(`relayctl: cannot reach the agent at ${socket}: ${code} (is bootrelay running?)\n`);
    return undefined;
  }
}

function configCheck(file: string, json: boolean, io: CliIo): number {
  const r = loadConfig(file);
  if (json) {
    io.stdout.write(JSON.stringify({ ok: r.ok, file, issues: r.ok ? [] : r.issues.map((i) => i.message), warnings: r.warnings }, null, 2) + '\n');
    return r.ok ? 0 : 1;
  }
  for (const w of r.warnings) io.stderr.write(`${file}: warning: ${w}\n`);
  if (r.ok) {
    io.stdout.write(`${file}: ok\n`);
    return 0;
  }
  for (const i of r.issues) io.stderr.write(`${file}: ${i.message}\n`);
  return 1;
}

// ------------------------------------------------------------------ renderers

function renderStatus(r: unknown): string {
  if (typeof r !== 'object' || r === null) return cell(r) + '\n';
  const s = r as Record<string, any>;
  const lines: string[] = [];
  const kv = (k: string, v: unknown) => lines.push(`${(k + ':').padEnd(10)} ${v}`);
  kv('agent', `${cell(s.agentId)} ${s.online === false ? 'offline' : 'online'}, version ${cell(s.version)}`);
  if (s.startedAt) kv('up since', `${s.startedAt} (${ago(s.startedAt).replace(' ago', '')})`);
  if (s.uplink !== undefined) {
    const u = s.uplink;
    kv('uplink', typeof u === 'object' && u ? `${u.up ? 'up' : 'down'}${u.interface ? ' ' + u.interface : ''}${u.ssid ? ` (${u.ssid})` : ''}${u.address ? ' ' + u.address : ''}${u.reason ? ` — ${u.reason}` : ''}` : cell(u));
  }
  if (s.lan) kv('lan', `${cell(s.lan.interface)} ${cell(s.lan.address)}/${cell(s.lan.prefix)}`);
  if (s.services && typeof s.services === 'object') {
    kv('services', Object.entries(s.services as Record<string, unknown>).map(([k, v]) => `${k} ${typeof v === 'object' && v ? Object.entries(v).map(([a, b]) => `${a}=${cell(b)}`).join(' ') : cell(v)}`).join(', '));
  }
  if (s.clients !== undefined) {
    const c = s.clients;
    if (typeof c === 'object' && c && !Array.isArray(c)) {
      const by = c.byPhase && typeof c.byPhase === 'object' ? Object.entries(c.byPhase).map(([k, v]) => `${k} ${v}`).join(', ') : '';
      kv('clients', `${cell(c.total)}${by ? ` (${by})` : ''}`);
    } else kv('clients', Array.isArray(c) ? c.length : cell(c));
  }
  if (s.cache && typeof s.cache === 'object') {
    const c = s.cache;
    kv('cache', `${cell(c.entries)} files, ${fmtBytes(c.bytes)} of ${fmtBytes(c.maxBytes)}; ${cell(c.hits)} hits, ${cell(c.misses)} misses; ${fmtBytes(c.upstreamBytes)} from upstream`);
  }
  if (s.mqtt && typeof s.mqtt === 'object') kv('mqtt', `${s.mqtt.connected ? 'connected' : 'not connected'} ${cell(s.mqtt.url)}`);
  for (const [k, v] of Object.entries(s)) {
    if (['agentId', 'online', 'version', 'startedAt', 'uplink', 'lan', 'services', 'clients', 'cache', 'mqtt', 'uptimeSeconds'].includes(k)) continue;
    kv(k, cell(v));
  }
  return lines.join('\n') + '\n';
}

function renderClients(list: ClientView[]): string {
  if (!list.length) return 'no clients seen yet\n';
  return table(
    ['MAC', 'IP', 'ARCH', 'FIRMWARE', 'PROFILE', 'PHASE', 'NIC', 'SB', 'FILE', 'PROGRESS', 'UPDATED', 'ERROR'],
    // a dual-stack client shows both addresses; an IPv6-only one its IPv6 address
    list.map((c) => [c.mac, [c.ip, c.ip6].filter(Boolean).join(' ') || null, c.arch, c.firmware, c.profile, c.phase, nicCell(c), c.secureBoot === undefined ? '-' : c.secureBoot ? 'on' : 'off', c.file, progressText(c), ago(c.updatedAt), c.error]),
  );
}

function renderLeases(list: Array<Record<string, unknown>>): string {
  if (!list.length) return 'no leases\n';
  return table(
    ['MAC', 'IP', 'EXPIRES', 'STATIC', 'ACTIVE', 'HOSTNAME', 'FQDN', 'CLIENT-ID'],
    // option 12, option 81's name, and the option 61 the lease is keyed by (RFC 6842)
    list.map((l) => [l.mac, l.ip, l.static ? 'never' : l.expiresAt, l.static, l.active, l.hostname, l.fqdn, l.clientId]),
  );
}

function renderProfiles(list: Array<Record<string, unknown>>): string {
  return table(
    ['NAME', 'DEFAULT', 'KERNEL/SCRIPT', 'INITRD', 'CMDLINE', 'ASSIGNED'],
    list.map((p) => [p.name, p.default, p.kernel ?? (p.script ? `script ${p.script}` : undefined), p.initrd, p.cmdline, p.assigned]),
  );
}

function renderCache(list: Array<Record<string, unknown>>): string {
  if (!list.length) return 'the cache is empty\n';
  return table(
    ['PATH', 'SIZE', 'COMPLETE', 'PINNED', 'HITS', 'LAST USED', 'SHA256'],
    list.map((e) => [e.path, fmtBytes(e.size), e.complete, e.pinned, e.hits, ago(e.lastUsedAt), typeof e.sha256 === 'string' ? e.sha256.slice(0, 16) : undefined]),
  );
}

// ------------------------------------------------------------------ watch

async function watch(p: Parsed, io: CliIo): Promise<number> {
  const client = await connect(p.socket, io);
  if (!client) return 1;
  const tty = !p.json && !!io.stdout.isTTY;
  const states = new Map<string, ClientView>();
  const startedAt = Date.now();
  /** clients --until waits for */
  const watched = new Set<string>();
  if (p.mac) watched.add(p.mac);
  let drawn = 0;
  let finish!: (code: number, why?: string) => void;
  const done = new Promise<{ code: number; why?: string }>((res) => (finish = (code, why) => res({ code, why })));

  const draw = () => {
    const cols = io.stdout.columns ?? 120;
    const list = [...states.values()].filter((c) => !p.mac || c.mac === p.mac);
    let s = drawn > 0 ? `\x1b[${drawn}A` : '';
    // never more lines than the screen has: cursor-up cannot reach what scrolled away
    const room = Math.max(3, (io.stdout.rows ?? 40) - 1);
    const shown = list.length > room ? list.sort((a, b) => String(b.updatedAt).localeCompare(String(a.updatedAt))).slice(0, room - 1) : list;
    const lines = list.length ? shown.map((c) => watchLine(c, cols)) : [`waiting for ${p.mac ?? 'clients'}…`];
    if (shown.length < list.length) lines.push(`… and ${list.length - shown.length} more (relayctl clients)`);
    for (const l of lines) s += `\x1b[2K${l}\n`;
    for (let i = lines.length; i < drawn; i++) s += '\x1b[2K\n';
    const total = Math.max(lines.length, drawn);
    if (total > lines.length) s += `\x1b[${total - lines.length}A`;
    drawn = lines.length;
    io.stdout.write(s);
  };
  let drawTimer: NodeJS.Timeout | undefined;
  const scheduleDraw = () => {
    if (!tty || drawTimer) return;
    drawTimer = setTimeout(() => {
      drawTimer = undefined;
      draw();
    }, 100);
  };

  const lineFor = (c: ClientView, prev: ClientView | undefined): string | undefined => {
    if (prev && prev.phase === c.phase && prev.error === c.error && prev.file === c.file) return undefined;
    const t = new Date().toISOString().slice(11, 19);
    let extra = '';
    if (c.phase === 'failed') extra = `: ${c.error ?? ''}`;
    else if (c.file) extra = ` ${c.file}${c.totalBytes ? ` (${fmtBytes(c.totalBytes)})` : ''}`;
    return `${t} ${c.mac} ${c.ip ?? '-'} ${c.phase}${extra}\n`;
  };

  const check = () => {
    if (!p.until) return;
    const targets = [...watched].map((m) => states.get(m)).filter((c): c is ClientView => !!c);
    const failed = targets.find((c) => c.phase === 'failed');
    if (failed) return finish(1, `${failed.mac} failed: ${failed.error ?? 'unknown error'}`);
    if (watched.size > 0 && targets.length === watched.size && targets.every((c) => c.phase === 'booted')) finish(0);
  };

  const onState = (c: ClientView, initial: boolean) => {
    const prev = states.get(c.mac);
    states.set(c.mac, c);
    if (p.mac && c.mac !== p.mac) return;
    const terminal = c.phase === 'booted' || c.phase === 'failed';
    // a booted/failed state from before the watch began only counts when it is fresh (10 s)
    const fresh = !initial || !terminal || Date.now() - Date.parse(c.updatedAt ?? '') < 10_000;
    if (!p.mac && (!initial || !terminal || fresh)) watched.add(c.mac);
    if (initial && terminal && !fresh) {
      if (p.mac) states.set(c.mac, { ...c, phase: 'waiting' as string });
    }
    if (p.json) io.stdout.write(JSON.stringify({ event: 'client', data: c }) + '\n');
    else if (tty) scheduleDraw();
    else {
      const l = lineFor(c, prev);
      if (l) io.stdout.write(l);
    }
  };

  let timer: NodeJS.Timeout | undefined;
  try {
    client.onClose = () => finish(1, 'the agent closed the connection');
    const initial = await client.watch<{ clients: ClientView[] }>(p.mac ? { mac: p.mac } : {}, (m: StreamMessage) => {
      if (m.event === 'client') {
        onState(m.data as ClientView, false);
        check();
      } else if (m.event === 'relay' && p.json) io.stdout.write(JSON.stringify({ event: 'relay', data: m.data }) + '\n');
    });
    for (const c of initial?.clients ?? []) onState(c, true);
    if (tty) draw();
    check();
    if (p.timeout) timer = setTimeout(() => finish(p.until ? 1 : 0, p.until ? `timed out after ${p.timeout} s waiting for ${p.mac ?? 'the clients'} to boot` : undefined), p.timeout * 1000);
    io.interrupted?.then(() => finish(p.until ? 1 : 0, p.until ? 'interrupted' : undefined));
    const r = await done;
    if (tty) {
      if (drawTimer) clearTimeout(drawTimer);
      draw();
    }
    if (r.why) io.stderr.write(`relayctl: ${r.why}\n`);
    else if (p.until && !p.json) io.stderr.write(`relayctl: ${[...watched].join(', ')} booted in ${fmtSeconds((Date.now() - startedAt) / 1000)}\n`);
    return r.code;
  } catch (e) {
    return requestFailed(e, io);
  } finally {
    if (timer) clearTimeout(timer);
    if (drawTimer) clearTimeout(drawTimer);
    client.onClose = undefined;
    client.end();
  }
}
