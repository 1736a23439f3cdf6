/**
 * The boot lab: network namespaces that stand in for the product's world,
 * built and torn down by the e2e test and by `make demo`.
 *
 *   <p>-up     br0 10.99.2.1/24   upstream boot server (python3 http.server :8080, access log)
 *                |  \__ <p>-wanc  a DHCP client on the uplink segment (must get no answer)
 *   <p>-relay  wan 10.99.2.2/24   the router: bootrelay (DHCP, TFTP :69, HTTP :80)
 *              lan 10.99.1.1/24   + dnsmasq sending IPv6 RAs only (what OpenWrt's odhcpd does)
 *                |
 *   <p>-sw     br0: uplink + one tap per QEMU VM
 *
 * Everything is named with the prefix; cleanup() removes the namespaces and
 * kills the processes it started, by PID.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, createWriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { NetLab, waitFor, skipReason } from '../helpers/netns';
import { onJsonLines } from '../helpers/jsonl';

export const UP_IP = '10.99.2.1';
export const RELAY_WAN_IP = '10.99.2.2';
export const RELAY_LAN_IP = '10.99.1.1';
export const UP_PORT = 8080;
/** proxy mode: the LAN's own, PXE-unaware DHCP server */
export const DHCP_IP = '10.99.1.2';

export interface AgentLine {
  level?: string;
  msg?: string;
  type?: string;
  mac?: string;
  file?: string;
  time?: string;
  [k: string]: unknown;
}

export interface LabOptions {
  prefix: string;
  /** Work dir: kernel download, www, agent state. Reused between runs (the kernel is cached). */
  work: string;
  /** The agent bundle to run (dist/bootrelay.js, or the one unpacked from the .ipk). */
  agentJs: string;
  dhcpMode?: 'server' | 'proxy';
  /** mqtt url for the agent (optional) */
  mqttUrl?: string;
  /** runs after the namespaces exist, before the agent starts (e.g. a broker on the uplink side) */
  beforeAgent?: (lab: BootLab) => Promise<void>;
  /** adjust the agent's config (JSON object) before it is written */
  configure?: (cfg: Record<string, any>) => void;
  /** print agent events as they happen */
  onLine?: (l: AgentLine) => void;
  /**
   * Who sends the LAN's IPv6 RAs: dnsmasq ra-only (default: SLAAC, no flags), or radvd
   * with the M flag ('managed': addresses by DHCPv6) or the O flag ('other': stateless
   * DHCPv6), as OpenWrt's odhcpd does when bootrelay serves DHCPv6.
   */
  ra?: 'dnsmasq' | 'managed' | 'other';
  /** extra QEMU arguments for every VM (e.g. OVMF's fw_cfg switches) */
  qemuArgs?: string[];
  /** proxy mode: the LAN's own dnsmasq also hands out IPv6 addresses (DHCPv6, fd99:1::2000–2fff) from fd99:1::2 */
  dhcp6Neighbour?: boolean;
}

export interface BootResult {
  mac: string;
  ok: boolean;
  seconds: number;
  reason?: string;
  serialTail: string;
}

// firmware dead ends that never exit by themselves (PXELINUX sits at its boot: prompt after a failed load)
const FAIL_RE = /No bootable device|No more network devices|Kernel panic|LAB: FAILED|Shell> |Loading \S+ failed|Could not find kernel image/;

export class BootLab {
  readonly net: NetLab;
  readonly nsUp: string;
  readonly nsRelay: string;
  readonly nsSw: string;
  readonly nsWanc: string;
  readonly lines: AgentLine[] = [];
  agent?: ChildProcess;
  private stderr = '';
  private vmCount = 0;
  readonly configPath: string;
  readonly socketPath: string;

  constructor(readonly opts: LabOptions) {
    this.net = new NetLab(opts.prefix);
    this.nsUp = this.net.ns('up');
    this.nsRelay = this.net.ns('relay');
    this.nsSw = this.net.ns('sw');
    this.nsWanc = this.net.ns('wanc');
    this.configPath = join(opts.work, 'relay.json');
    this.socketPath = join(opts.work, 'bootrelay.sock');
  }

  get www(): string {
    return join(this.opts.work, 'www');
  }

  /** Kernel + initrd (Debian kernel .deb, busybox initrd) and the iPXE loaders. */
  preparePayload(): void {
    const base = labBaseDir();
    const shared = join(base, 'www', 'debian');
    if (!existsSync(join(shared, 'vmlinuz')) || !existsSync(join(shared, 'initrd.gz'))) {
      const r = spawnSync('bash', [mkinitrdScript(), base], { stdio: ['ignore', 'inherit', 'inherit'] });
      if (r.status !== 0) throw new Error('mkinitrd.sh failed');
    }
    const deb = join(this.www, 'debian');
    mkdirSync(deb, { recursive: true });
    for (const f of ['vmlinuz', 'initrd.gz']) copyFileSync(join(shared, f), join(deb, f));
    mkdirSync(join(this.www, 'ipxe'), { recursive: true });
    for (const f of ['undionly.kpxe', 'ipxe.efi', 'snponly.efi']) copyFileSync(`/usr/lib/ipxe/${f}`, join(this.www, 'ipxe', f));
    // the upstream publishes checksums: the relay verifies before it commits
    for (const dir of ['debian', 'ipxe']) {
      const files = dir === 'debian' ? ['vmlinuz', 'initrd.gz'] : ['undionly.kpxe', 'ipxe.efi', 'snponly.efi'];
      const sums = files.map((f) => `${createHash('sha256').update(readFileSync(join(this.www, dir, f))).digest('hex')}  ${f}`).join('\n') + '\n';
      writeFileSync(join(this.www, dir, 'SHA256SUMS'), sums);
    }
  }

  writeConfig(): void {
    const state = join(this.opts.work, 'state');
    rmSync(state, { recursive: true, force: true });
    rmSync(join(this.opts.work, 'cache'), { recursive: true, force: true });
    const cfg = {
      agentId: 'lab-relay',
      stateDir: state,
      lan: { interface: 'lan', address: RELAY_LAN_IP, prefix: 24 },
      dhcp:
        this.opts.dhcpMode === 'proxy'
          ? { mode: 'proxy' }
          : { mode: 'server', range: ['10.99.1.100', '10.99.1.199'], leaseSeconds: 600, router: RELAY_LAN_IP, dns: [] },
      tftp: { port: 69 },
      http: { port: 80 },
      upstream: { url: `http://${UP_IP}:${UP_PORT}/`, timeoutMs: 15000 },
      cache: { dir: join(this.opts.work, 'cache'), maxBytes: 1_000_000_000 },
      boot: {
        loaders: { bios: 'ipxe/undionly.kpxe', 'uefi-x64': ['ipxe/snponly.efi', 'ipxe/ipxe.efi'] },
        defaultProfile: 'lab',
        profiles: {
          lab: {
            kernel: 'debian/vmlinuz',
            initrd: ['debian/initrd.gz'],
            cmdline: `console=ttyS0 quiet panic=1 lab.report=http://${RELAY_LAN_IP}/booted`,
          },
        },
      },
      ...(this.opts.mqttUrl ? { mqtt: { url: this.opts.mqttUrl, prefix: 'bootrelay' } } : {}),
      control: { socket: this.socketPath },
      log: { level: 'info' },
    };
    this.opts.configure?.(cfg);
    writeFileSync(this.configPath, JSON.stringify(cfg, null, 2));
  }

  async up(): Promise<void> {
    mkdirSync(this.opts.work, { recursive: true });
    this.preparePayload();
    const n = this.net;
    for (const ns of ['up', 'relay', 'sw', 'wanc']) n.addNs(ns);
    if (this.opts.dhcpMode === 'proxy') n.addNs('dhcp');
    // uplink segment: a bridge in the upstream namespace, relay wan + a stray client on it
    n.veth(this.nsUp, 'relayport', this.nsRelay, 'wan');
    n.veth(this.nsUp, 'wancport', this.nsWanc, 'eth0');
    n.bridge(this.nsUp, 'br0', 'relayport', 'wancport');
    n.addr(this.nsUp, 'br0', `${UP_IP}/24`);
    n.ip(this.nsUp, 'route', 'add', '10.99.1.0/24', 'via', RELAY_WAN_IP);
    // LAN segment: relay lan <-> switch
    n.veth(this.nsRelay, 'lan', this.nsSw, 'uplink');
    n.bridge(this.nsSw, 'br0', 'uplink');
    if (this.opts.dhcpMode === 'proxy') {
      // the LAN's own DHCP server: addresses only, knows nothing about PXE (a hotel LAN, an office)
      const nsDhcp = this.net.ns('dhcp');
      n.veth(nsDhcp, 'eth0', this.nsSw, 'dhcpport');
      n.ip(this.nsSw, 'link', 'set', 'dhcpport', 'master', 'br0');
      n.addr(nsDhcp, 'eth0', `${DHCP_IP}/24`);
      if (this.opts.dhcp6Neighbour) {
        spawnSync('ip', ['netns', 'exec', nsDhcp, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.eth0.disable_ipv6=0']);
        n.ip(nsDhcp, 'addr', 'add', 'fd99:1::2/64', 'dev', 'eth0', 'nodad');
      }
      const conf = join(this.opts.work, 'dnsmasq-stock.conf');
      writeFileSync(
        conf,
        [
          'interface=eth0', 'bind-interfaces', 'port=0', 'no-resolv', 'no-hosts', 'user=root', 'no-ping', 'dhcp-authoritative',
          `dhcp-leasefile=${join(this.opts.work, 'dnsmasq-stock.leases')}`,
          'dhcp-range=10.99.1.100,10.99.1.199,255.255.255.0,10m', `dhcp-option=option:router,${RELAY_LAN_IP}`,
          ...(this.opts.dhcp6Neighbour ? ['dhcp-range=fd99:1::2000,fd99:1::2fff,64,10m'] : []),
        ].join('\n') + '\n',
      );
      n.spawn(nsDhcp, 'dnsmasq', ['--keep-in-foreground', `--conf-file=${conf}`]);
    }
    n.addr(this.nsRelay, 'wan', `${RELAY_WAN_IP}/24`);
    n.addr(this.nsRelay, 'lan', `${RELAY_LAN_IP}/24`);
    // IPv6 RAs on the LAN (OpenWrt's odhcpd does this on a real router; without it every iPXE DHCP waits ~13 s)
    spawnSync('ip', ['netns', 'exec', this.nsRelay, 'sysctl', '-qw', 'net.ipv6.conf.lan.disable_ipv6=0']);
    n.ip(this.nsRelay, 'addr', 'add', 'fd99:1::1/64', 'dev', 'lan', 'nodad');

    // upstream boot server with an access log
    const upLog = createWriteStream(join(this.opts.work, 'upstream.log'));
    const up = n.spawn(this.nsUp, 'python3', ['-u', '-m', 'http.server', String(UP_PORT), '--bind', UP_IP, '--directory', this.www]);
    up.stdout?.pipe(upLog);
    up.stderr?.pipe(upLog);

    const ra = join(this.opts.work, 'ra.conf');
    if (this.opts.ra === 'managed' || this.opts.ra === 'other') {
      const m = this.opts.ra === 'managed' ? 'on' : 'off';
      writeFileSync(
        ra,
        `interface lan {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n  AdvManagedFlag ${m};\n  AdvOtherConfigFlag on;\n  prefix fd99:1::/64 { AdvOnLink on; AdvAutonomous on; };\n};\n`,
      );
      // radvd wants a router: forwarding on (inside the relay namespace only)
      spawnSync('ip', ['netns', 'exec', this.nsRelay, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
      n.spawn(this.nsRelay, 'radvd', ['-n', '-C', ra, '-p', join(this.opts.work, 'radvd.pid'), '-m', 'stderr']);
    } else {
      writeFileSync(
        ra,
        ['interface=lan', 'bind-interfaces', 'port=0', 'no-resolv', 'no-hosts', 'user=root', 'enable-ra', 'dhcp-range=::,constructor:lan,ra-only', `pid-file=${join(this.opts.work, 'ra.pid')}`].join('\n') + '\n',
      );
      n.spawn(this.nsRelay, 'dnsmasq', ['--keep-in-foreground', `--conf-file=${ra}`]);
    }

    // keep the LAN's DHCP/TFTP exchange for post-mortems (work/lan.pcap; TFTP data cut short)
    if (spawnSync('sh', ['-c', 'command -v tcpdump'], { stdio: 'ignore' }).status === 0) {
      n.spawn(this.nsRelay, 'tcpdump', ['-i', 'lan', '-n', '-s', '200', '-U', '-w', join(this.opts.work, 'lan.pcap'), 'udp and not port 547']);
    }
    await this.opts.beforeAgent?.(this);
    this.writeConfig();
    await this.startAgent();
    await waitFor(async () => (await n.exec(this.nsRelay, 'curl', ['-sf', '-o', '/dev/null', `http://${UP_IP}:${UP_PORT}/debian/SHA256SUMS`])).code === 0, 10_000, 'upstream http');
  }

  async startAgent(): Promise<void> {
    const agent = this.net.spawn(this.nsRelay, process.execPath, [this.opts.agentJs, '--config', this.configPath]);
    this.agent = agent;
    const log = createWriteStream(join(this.opts.work, 'agent.log'), { flags: 'a' });
    agent.stdout!.on('data', (d: Buffer) => log.write(d));
    onJsonLines(agent.stdout!, (obj) => {
      if (!obj) return;
      this.lines.push(obj as AgentLine);
      this.opts.onLine?.(obj as AgentLine);
    });
    agent.stderr!.on('data', (d: Buffer) => {
      log.write(d);
      this.stderr += d.toString();
    });
    await waitFor(
      async () => {
        if (agent.exitCode !== null) throw new Error(`agent exited ${agent.exitCode}: ${this.stderr.slice(0, 2000)}`);
        return (await this.net.exec(this.nsRelay, 'curl', ['-sf', '-o', '/dev/null', `http://${RELAY_LAN_IP}/api/status`])).code === 0;
      },
      15_000,
      'agent http',
    );
  }

  events(mac?: string): AgentLine[] {
    return this.lines.filter((l) => typeof l.type === 'string' && (!mac || l.mac === mac));
  }

  upstreamLog(): string[] {
    const f = join(this.opts.work, 'upstream.log');
    return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l.includes('"GET ') || l.includes('"HEAD ')) : [];
  }

  /** Boots one QEMU VM on the LAN segment and waits for it to report booted. */
  async boot(kind: 'bios' | 'uefi', mac: string, timeoutMs = 180_000, qemuArgs: string[] = this.opts.qemuArgs ?? [], until?: () => boolean): Promise<BootResult> {
    const tap = `tap${this.vmCount++}`;
    const n = this.net;
    n.ip(this.nsSw, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    n.ip(this.nsSw, 'link', 'set', tap, 'master', 'br0');
    n.ip(this.nsSw, 'link', 'set', tap, 'up');
    const serial = join(this.opts.work, `serial-${kind}-${mac.replace(/:/g, '')}.log`);
    writeFileSync(serial, '');
    const common = ['-accel', 'tcg', '-m', '512', '-smp', '1', '-display', 'none', '-monitor', 'none', '-serial', `file:${serial}`, '-no-reboot', '-nodefaults'];
    const netdev = ['-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`];
    const fw =
      kind === 'bios'
        ? ['-machine', 'pc,graphics=off', '-boot', 'n', ...netdev, '-device', `e1000,netdev=n0,mac=${mac},bootindex=1`]
        : ['-machine', 'q35,graphics=off', '-bios', '/usr/share/ovmf/OVMF.fd', ...netdev, '-device', `virtio-net-pci,netdev=n0,mac=${mac},bootindex=1,romfile=`];
    const t0 = Date.now();
    const qemu = n.spawn(this.nsSw, 'qemu-system-x86_64', [...common, ...fw, ...qemuArgs]);
    let qerr = '';
    qemu.stderr?.on('data', (d) => (qerr += d));
    const serialText = () => readFileSync(serial, 'latin1').replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '').replace(/\r/g, '');
    let reason: string | undefined;
    try {
      await waitFor(
        () => {
          if (this.events(mac).some((e) => e.type === 'client.booted')) return true;
          if (until?.()) return true;
          if (qemu.exitCode !== null && !this.events(mac).some((e) => e.type === 'client.booted')) {
            // the guest powers off right after reporting; give the log a moment
            if (Date.now() - t0 > 1000 && qemu.exitCode !== null) {
              const txt = serialText();
              if (!txt.includes('LAB: BOOTED')) throw new Error(`qemu exited (${qemu.exitCode}) before booted: ${qerr.slice(-500)}`);
            }
          }
          const m = FAIL_RE.exec(serialText());
          if (m) throw new Error(`guest says: ${m[0]}`);
          return false;
        },
        timeoutMs,
        `${kind} VM ${mac} to report booted`,
      );
    } catch (e) {
      reason = (e as Error).message;
    }
    const seconds = (Date.now() - t0) / 1000;
    await n.kill(qemu, 'SIGTERM', 3000);
    spawnSync('ip', ['-n', this.nsSw, 'link', 'del', tap]);
    const tail = serialText().split('\n').filter(Boolean).slice(-25).join('\n');
    return { mac, ok: !reason, seconds, reason, serialTail: tail };
  }

  /** A DHCP client on the uplink side: must get no lease from the relay. */
  async uplinkDhcpProbe(): Promise<{ gotLease: boolean; output: string }> {
    const script = join(this.opts.work, 'udhcpc-noop.sh');
    writeFileSync(script, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const r = await this.net.exec(this.nsWanc, 'udhcpc', ['-i', 'eth0', '-f', '-q', '-n', '-t', '3', '-T', '1', '-s', script, '-V', 'PXEClient:Arch:00000:UNDI:002001'], { timeoutMs: 20_000 });
    return { gotLease: r.code === 0, output: r.stdout + r.stderr };
  }

  /** up(), and on failure everything torn down again; returns the seconds it took. */
  async upOrCleanup(): Promise<number> {
    const t0 = Date.now();
    try {
      await this.up();
    } catch (e) {
      await this.cleanup();
      throw e;
    }
    return (Date.now() - t0) / 1000;
  }

  /** Stops the agent with SIGTERM and prints the test's timings with its exit code. */
  async stopAndReport(tag: string, timings: Record<string, unknown>): Promise<void> {
    const code = await this.stopAgent('SIGTERM');
    console.log(`[${tag}] timings ${JSON.stringify(timings)}; agent exit ${code}`);
  }

  async stopAgent(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const a = this.agent;
    if (!a) return null;
    await this.net.kill(a, signal, 5000);
    return a.exitCode;
  }

  async cleanup(): Promise<void> {
    await this.net.cleanup();
  }
}

function mkinitrdScript(): string {
  // beside this file when run by vitest; from the repository root when bundled (make demo)
  const own = join(__dirname, 'lab', 'mkinitrd.sh');
  return existsSync(own) ? own : join(process.cwd(), 'test', 'e2e', 'lab', 'mkinitrd.sh');
}

export function labBaseDir(): string {
  return process.env.BOOTRELAY_LAB_DIR ?? '/tmp/bootrelay-lab';
}

/** A lab's own work dir under the base dir (the kernel payload in the base dir is shared and cached). */
export function labWorkDir(name: string): string {
  const d = join(labBaseDir(), name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
}

/** Why the QEMU lab cannot run here, or undefined. */
export function labSkipReason(): string | undefined {
  const r =
    skipReason('qemu-system-x86_64', 'dnsmasq', 'python3', 'curl', 'udhcpc', 'busybox', 'cpio', 'apt-get') ??
    (!existsSync('/usr/share/ovmf/OVMF.fd') ? 'no /usr/share/ovmf/OVMF.fd (apt-get install ovmf)' : undefined) ??
    (!existsSync('/usr/lib/ipxe/snponly.efi') ? 'no /usr/lib/ipxe (apt-get install ipxe)' : undefined);
  if (r) console.warn(`[e2e] skipped: ${r}`);
  return r;
}
