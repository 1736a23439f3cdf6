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
}
