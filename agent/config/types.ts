/**
 * The agent's configuration after validation and defaults (shared/CONTRACT.md).
 * agent/config/load.ts turns a JSON file into this, or into a list of issues.
 */
import type { Dhcp6Config } from '../../relay/dhcp6/config';

export interface LanConfig {
  interface: string;
  address: string;
  prefix: number;
  /** the LAN's own IPv6 address (global or ULA; not link-local): DHCPv6 boot URLs point here */
  address6?: string;
  /** its prefix length (default 64) */
  prefix6?: number;
}

export interface DhcpConfig {
  mode: 'server' | 'proxy' | 'off';
  port: number;
  /** proxy mode: the PXE boot-server port (RFC 4578 / PXE spec). Default 4011. */
  proxyPort: number;
  range: [string, string];
  leaseSeconds: number;
  router?: string;
  dns: string[];
  /** mac → address */
  static: Record<string, string>;
  /** Send iPXE "no-pxedhcp" (175.176 = 1) in server mode. Default true. */
  ipxeNoProxyDhcp: boolean;
  /** After a client reported booted, offer it no loader again until re-armed. Default false. */
  netbootOnce: boolean;
}

export interface TftpConfig {
  port: number;
  /** Largest blksize we accept (RFC 2348); default 1468 (Ethernet MTU minus headers). */
  maxBlksize: number;
  maxWindowsize: number;
  /** seconds (RFC 2349) when the client names none */
  timeout: number;
  retries: number;
  maxTransfers: number;
  maxTransfersPerClient: number;
}

export interface HttpConfig {
  port: number;
}

export interface UpstreamConfig {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** CA bundle file for https upstreams (optional). */
  caFile?: string;
}

export interface CacheConfig {
  dir: string;
  maxBytes: number;
  /** Seconds a cached file is trusted before it is revalidated with the upstream. */
  ttlSeconds: number;
  /** Seconds an upstream 404 is remembered. */
  negativeTtlSeconds: number;
}

export interface ProfileConfig {
  kernel?: string;
  initrd?: string[];
  cmdline?: string;
  /** An upstream iPXE script served through the relay instead of a generated one. */
  script?: string;
  /** optional sha256 per path (hex) for integrity checks */
  sha256?: Record<string, string>;
}

export interface BootConfig {
  /** arch key (bios, uefi-x64, uefi-arm64, uefi-ia32, …) → loader path(s) relative to upstream.url; first is preferred. */
  loaders: Record<string, string[]>;
  defaultProfile: string;
  profiles: Record<string, ProfileConfig>;
  /** mac → profile */
  assign: Record<string, string>;
}

export interface MqttConfig {
  url: string;
  username: string;
  password: string;
  prefix: string;
  caFile?: string;
  /** Bound of the on-disk journal of unsent events. */
  journalMaxEvents: number;
  homeAssistant: boolean;
  /** Accept remote commands on `<prefix>/<agentId>/cmd/#`. Default false. */
  commands: boolean;
}

export interface Config {
  agentId: string;
  stateDir: string;
  lan: LanConfig;
  dhcp: DhcpConfig;
  dhcp6: Dhcp6Config;
  tftp: TftpConfig | false;
  http: HttpConfig;
  upstream: UpstreamConfig;
  cache: CacheConfig;
  boot: BootConfig;
  mqtt?: MqttConfig;
  control: { socket: string };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'; levels: Record<string, string> };
}
