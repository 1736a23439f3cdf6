/**
 * The agent's configuration after validation and defaults (shared/CONTRACT.md).
 * agent/config/load.ts turns a JSON file into this, or into a list of issues.
 */
export interface LanConfig {
  interface: string;
  address: string;
  prefix: number;
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
  /** Extra options for every client (dnsmasq's dhcp-option). Default none. */
  options?: DhcpOptionsConfig;
  /** Only MACs named in dhcp.static, boot.assign or a boot.match mac rule get a boot file. Default false. */
  knownClientsOnly?: boolean;
  /** Subnets behind DHCP relay agents (giaddr inside `network`), each with its own range. */
  relaySubnets?: RelaySubnetConfig[];
}

/** dnsmasq-style extra options (each sent when the client's parameter request list asks for it, or when it sends none). */
export interface DhcpOptionsConfig {
  /** option 42 (RFC 2132 §8.3) */
  ntp?: string[];
  /** option 15 (RFC 2132 §3.17) */
  domain?: string;
  /** option 26 (RFC 2132 §5.1) */
  mtu?: number;
  /** option 119 (RFC 3397) */
  searchList?: string[];
  /** option 121 (RFC 3442): destination CIDR → gateway */
  classlessRoutes?: Array<{ network: string; gateway: string }>;
  /** option 43 (RFC 2132 §8.4) as hex; PXE boot replies set their own 43 instead */
  vendorEncapsulated?: string;
}

export interface RelaySubnetConfig {
  /** CIDR, e.g. 10.99.60.0/24: requests with a giaddr inside it are served from `range` */
  network: string;
  range: [string, string];
  /** option 3 for this subnet (default: the giaddr) */
  router?: string;
  /** option 6 for this subnet (default: dhcp.dns) */
  dns?: string[];
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
  /** extra DHCP options for clients booting this profile (over dhcp.options) */
  dhcpOptions?: DhcpOptionsConfig;
  /** a PXE boot menu for BIOS PXE ROMs (option 43 sub-options 6, 8, 9, 10) */
  pxeMenu?: PxeMenuConfig;
}

export interface PxeMenuConfig {
  prompt: string;
  /** seconds (0–255; 255 waits for a key) */
  timeout: number;
  /** in order; `loader` boots that path over TFTP, `"local"` hands back to the BIOS */
  items: Array<{ label: string; loader: string | 'local' }>;
}

/** A rule choosing a profile (the first whose every given field matches wins; before defaultProfile). */
export interface MatchRuleConfig {
  profile: string;
  /** MAC pattern: hex digits with `*` for any byte or `?` for a digit (52:54:00:*:*:*) */
  mac?: string;
  /** option 60 glob (PXEClient:Arch:00007*) */
  vendorClass?: string;
  /** option 77 glob (iPXE) */
  userClass?: string;
  /** option 93 code */
  arch?: number;
  /** option 97 GUID (case-insensitive) */
  uuid?: string;
}

export interface BootConfig {
  /** arch key (bios, uefi-x64, uefi-arm64, uefi-ia32, …) → loader path(s) relative to upstream.url; first is preferred. */
  loaders: Record<string, string[]>;
  defaultProfile: string;
  profiles: Record<string, ProfileConfig>;
  /** mac → profile */
  assign: Record<string, string>;
  /** rules tried in order after assign, before defaultProfile */
  match?: MatchRuleConfig[];
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
  tftp: TftpConfig | false;
  http: HttpConfig;
  upstream: UpstreamConfig;
  cache: CacheConfig;
  boot: BootConfig;
  mqtt?: MqttConfig;
  control: { socket: string };
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'; levels: Record<string, string> };
}
