/**
 * BootPlan: the one answer to "should this client boot, and with what"
 * (pixiecore's Booter is the model). Built from the config's `boot` section and
 * `dhcp.netbootOnce` plus the runtime state (relayctl assign, who booted once);
 * DHCP, HTTP, TFTP, the cache and the client tracker all ask it, live, so a
 * reload or an assignment is seen the same way by every one of them.
 *
 *   profileFor(mac)        which profile (runtime assignment → boot.assign → default)
 *   fileRole(path, prof)   what a file is: loader (and for which arch), script, kernel, initrd
 *   expectedSha256(path)   the sha256 a profile pins for a file
 *   shouldBoot(mac)        netboot-once: false once the client reported booted, until re-armed
 *
 * 'change' fires after a reload (mac undefined) or an assignment (its mac): who boots what may
 * have changed. 'runtime' fires when the state worth saving changed (assignments, booted once).
 *   chainRequest(path)     a Secure Boot chain's names (shim's grubx64.efi, GRUB's grub.cfg, probes)
 * A Secure Boot chain (`boot.loaders[arch] = { shim, grub }`) is listed in `loaders` by its
 * shim; its other files are loaders too (fileRole). Family-aware (DHCPv6) URLs belong
 * with the DHCP side that builds them, not here.
 */
import { EventEmitter } from 'node:events';
import type { ArchKey, FileRole } from '../../proto/events';
import { normalizeMac } from '../../proto/mac';
import { normalizeBootPath } from '../../proto/path';
import { mapChainRequest, type ChainLoader, type ChainRequest } from './chain';
import type { BootConfig, ProfileConfig } from './config';

/** MACs remembered as booted once (dhcp.netbootOnce); the oldest are forgotten first. */
export const BOOTED_MAX = 1024;
/** Clients whose boot.match result is remembered. */
export const MATCHED_MAX = 4096;

export interface BootPlanOptions {
  boot: BootConfig;
  /** dhcp.netbootOnce: a client that reported booted is not offered a loader again until re-armed */
  netbootOnce?: boolean;
}

/** The runtime part of the plan, as saved in the state directory. */
export interface BootRuntime {
  /** relayctl assign: mac → profile */
  assign: Record<string, string>;
  /** relayctl assign UUID: SMBIOS UUID (DHCP option 97) → profile */
  assignUuid?: Record<string, string>;
  /** netboot-once: MACs that reported booted */
  booted: string[];
}

export interface ResolvedProfile {
  name: string;
  profile: ProfileConfig;
}

export class BootPlan extends EventEmitter<{ change: [mac: string | undefined]; runtime: [part: keyof BootRuntime] }> {
  private cfg: BootConfig;
  private netbootOnce: boolean;
  private readonly assigned = new Map<string, string>();
  /** what a boot.match rule chose for a client at its last DHCP exchange (DHCP decides, the plan remembers) */
  private readonly matched = new Map<string, string>();
  private readonly booted = new Set<string>();
  private readonly assignedUuid = new Map<string, string>();
  /** the UUID each MAC last sent (bounded): a UUID assignment follows the machine, whatever NIC it boots from */
  private readonly macUuid = new Map<string, string>();
  /** loader path → the arch keys it is configured for */
  private loaderArch = new Map<string, ArchKey[]>();
  /** normalised path → sha256 (hex, lower case) */
  private sha = new Map<string, string>();

  constructor(opts: BootPlanOptions) {
    super();
    this.cfg = opts.boot;
    this.netbootOnce = opts.netbootOnce ?? false;
    this.index();
  }

  get boot(): BootConfig {
    return this.cfg;
  }

  /** boot.loaders: arch key → loader paths, first preferred (DHCP picks from these). */
  get loaders(): Record<string, string[]> {
    return this.cfg.loaders;
  }

  /**
   * A reloaded config. Runtime assignments naming a profile that is gone are dropped
   * (returned), so DHCP, HTTP and the tracker all fall back to the default alike.
   */
  setConfig(opts: BootPlanOptions): string[] {
    this.cfg = opts.boot;
    this.netbootOnce = opts.netbootOnce ?? false;
    this.index();
    const dropped: string[] = [];
    for (const [mac, p] of this.assigned) {
      if (!this.cfg.profiles[p]) {
        this.assigned.delete(mac);
        dropped.push(mac);
      }
    }
    for (const [uuid, p] of this.assignedUuid) {
      if (!this.cfg.profiles[p]) {
        this.assignedUuid.delete(uuid);
        dropped.push(uuid);
      }
    }
    this.emit('change', undefined);
    if (dropped.length) this.emit('runtime', 'assign');
    return dropped;
  }

  private index(): void {
    this.loaderArch = new Map();
    for (const [arch, paths] of Object.entries(this.cfg.loaders)) {
      for (const p of paths) {
        const list = this.loaderArch.get(p) ?? [];
        list.push(arch as ArchKey);
        this.loaderArch.set(p, list);
      }
    }
    this.sha = new Map();
    for (const p of Object.values(this.cfg.profiles)) {
      for (const [path, hex] of Object.entries(p.sha256 ?? {})) {
        try {
          this.sha.set(normalizeBootPath(path), hex.toLowerCase());
        } catch {
          /* a bad path in the config is the config checker's to report */
        }
      }
    }
  }

  // ------------------------------------------------------------ profiles

  /** A runtime assignment (relayctl assign) over boot.assign. The profile must exist. */
  assign(mac: string, profile: string): void {
    if (!this.cfg.profiles[profile]) throw new Error(`no profile "${profile}"`);
    const m = normalizeMac(mac) ?? mac;
    this.assigned.set(m, profile);
    this.emit('change', m);
    this.emit('runtime', 'assign');
  }

  /** relayctl assign UUID PROFILE: the machine with this SMBIOS UUID boots PROFILE, over its MAC's assignment. */
  assignUuid(uuid: string, profile: string): void {
    if (!this.cfg.profiles[profile]) throw new Error(`no profile "${profile}"`);
    const u = uuid.toLowerCase();
    this.assignedUuid.set(u, profile);
    for (const [mac, x] of this.macUuid) if (x === u) this.emit('change', mac);
    this.emit('runtime', 'assignUuid');
  }

  /** A client named its UUID (DHCP option 97, not all zero). */
  noteUuid(mac: string, uuid: string): void {
    const m = normalizeMac(mac) ?? mac;
    const u = uuid.toLowerCase();
    if (this.macUuid.get(m) === u) return;
    this.macUuid.delete(m);
    this.macUuid.set(m, u);
    if (this.macUuid.size > 4096) this.macUuid.delete(this.macUuid.keys().next().value!);
    if (this.assignedUuid.has(u)) this.emit('change', m);
  }

  /** The runtime assignments (each names a current profile). */
  assignments(): Record<string, string> {
    return Object.fromEntries(this.assigned);
  }

  /** The runtime assignment of one client (relayctl assign), if any. */
  assignedTo(mac: string): string | undefined {
    return this.assigned.get(normalizeMac(mac) ?? mac);
  }

  /**
   * DHCP's word on which boot.match rule's profile this client got (undefined: none matched, or
   * assign/default decided). Kept for at most MATCHED_MAX clients, the oldest forgotten first.
   */
  noteMatch(mac: string, profile: string | undefined): void {
    const m = normalizeMac(mac) ?? mac;
    if (this.matched.get(m) === profile) return;
    this.matched.delete(m);
    if (profile === undefined) return;
    this.matched.set(m, profile);
    if (this.matched.size > MATCHED_MAX) this.matched.delete(this.matched.keys().next().value!);
  }

  /**
   * The profile this client boots: its runtime assignment, else boot.assign, else the boot.match
   * rule DHCP matched, else the default; a name that is gone counts as none.
   */
  profileFor(mac: string | undefined): ResolvedProfile | undefined {
    const b = this.cfg;
    const m = mac ? (normalizeMac(mac) ?? mac) : undefined;
    const uuid = m ? this.macUuid.get(m) : undefined;
    const wanted = m && ((uuid && this.assignedUuid.get(uuid)) || this.assigned.get(m) || b.assign[m] || this.matched.get(m));
    const name = wanted && b.profiles[wanted] ? wanted : b.defaultProfile;
    const profile = b.profiles[name];
    return profile ? { name, profile } : undefined;
  }

  profileName(mac: string | undefined): string | undefined {
    return this.profileFor(mac)?.name;
  }

  profile(name: string | null | undefined): ProfileConfig | undefined {
    return name ? this.cfg.profiles[name] : undefined;
  }

  // ------------------------------------------------------------ files

  /** The arch keys a loader path is configured for (undefined: not a loader). */
  loaderArchs(path: string): ArchKey[] | undefined {
    return this.loaderArch.get(path.replace(/^\/+/, ''));
  }

  /** The Secure Boot chains (boot.loaders entries {shim, grub}). */
  chains(): ChainLoader[] {
    return Object.values(this.cfg.chains ?? {});
  }

  /** The chain whose shim this loader path is, if any. */
  chainFor(path: string): ChainLoader | undefined {
    return this.cfg.chains?.[path.replace(/^\/+/, '')];
  }

  /** What the relay answers for a chain's name (GRUB, the generated config, a probe refused at once); undefined: not a chain name. */
  chainRequest(path: string): ChainRequest | undefined {
    return this.cfg.chains ? mapChainRequest(this.chains(), path.replace(/^\/+/, '')) : undefined;
  }

  /**
   * What a file is in the boot: /boot.ipxe and profile scripts are scripts, boot.loaders
   * entries loaders (a chain's GRUB and grub.cfg too); kernel and initrd are looked up in the
   * named profile first, then in any.
   */
  fileRole(path: string, profile?: string | null): FileRole {
    if (path === '/boot.ipxe') return 'script';
    const file = path.replace(/^\/+/, '');
    if (this.loaderArch.has(file)) return 'loader';
    const chain = this.chainRequest(file);
    if (chain && (chain.kind === 'grub' || chain.kind === 'config')) return 'loader';
    const inProfile = (p: ProfileConfig | undefined): FileRole | undefined => {
      if (!p) return undefined;
      if (p.kernel === file) return 'kernel';
      if (p.initrd?.includes(file)) return 'initrd';
      if (p.script === file) return 'script';
      return undefined;
    };
    const own = inProfile(this.profile(profile));
    if (own) return own;
    for (const p of Object.values(this.cfg.profiles)) {
      const r = inProfile(p);
      if (r) return r;
    }
    return 'other';
  }

  /** A profile's sha256 for a normalised path (hex, lower case), checked by the cache before a commit. */
  expectedSha256(path: string): string | undefined {
    return this.sha.get(path);
  }

  // ------------------------------------------------------------ netboot once

  /** Should DHCP offer this client something to boot? (netboot-once says no after a reported boot) */
  shouldBoot(mac: string): boolean {
    return !(this.netbootOnce && this.booted.has(normalizeMac(mac) ?? mac));
  }

  /**
   * A client reported booted. Remembered only under netbootOnce (/booted is open to the whole LAN:
   * each made-up MAC would be one more entry kept). True when the runtime state changed.
   */
  noteBooted(mac: string): boolean {
    const m = normalizeMac(mac) ?? mac;
    if (!this.netbootOnce || this.booted.has(m)) return false;
    this.booted.add(m);
    if (this.booted.size > BOOTED_MAX) this.booted.delete(this.booted.values().next().value!);
    this.emit('runtime', 'booted');
    return true;
  }

  /** relayctl rearm: boot this client once more. True when the runtime state changed. */
  rearm(mac: string): boolean {
    if (!this.booted.delete(normalizeMac(mac) ?? mac)) return false;
    this.emit('runtime', 'booted');
    return true;
  }

  // ------------------------------------------------------------ runtime state

  runtime(): BootRuntime {
    return { assign: this.assignments(), ...(this.assignedUuid.size ? { assignUuid: Object.fromEntries(this.assignedUuid) } : {}), booted: [...this.booted] };
  }

  /** Runtime state saved by an earlier run; returns the assignments dropped because their profile is gone. */
  restore(saved: { assign?: unknown; assignUuid?: unknown; booted?: unknown }): Array<{ mac: string; profile: unknown }> {
    const dropped: Array<{ mac: string; profile: unknown }> = [];
    const u = saved.assignUuid;
    if (u && typeof u === 'object' && !Array.isArray(u)) {
      for (const [uuid, profile] of Object.entries(u as Record<string, unknown>)) {
        if (typeof profile !== 'string' || !this.cfg.profiles[profile]) dropped.push({ mac: uuid, profile });
        else this.assignedUuid.set(uuid.toLowerCase(), profile);
      }
    }
    const a = saved.assign;
    if (a && typeof a === 'object' && !Array.isArray(a)) {
      for (const [mac, profile] of Object.entries(a as Record<string, unknown>)) {
        if (typeof profile !== 'string' || !this.cfg.profiles[profile]) dropped.push({ mac, profile });
        else this.assigned.set(normalizeMac(mac) ?? mac, profile);
      }
    }
    if (Array.isArray(saved.booted)) for (const m of saved.booted) if (typeof m === 'string' && this.booted.size < BOOTED_MAX) this.booted.add(m);
    return dropped;
  }
}
