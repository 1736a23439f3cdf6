/** The DHCP service's options (config section `dhcp`). agent/config composes them into Config. */
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
  /** option 3 for this subnet (none unless given: the relay agent's network decides) */
  router?: string;
  /** option 6 for this subnet (default: dhcp.dns) */
  dns?: string[];
}
