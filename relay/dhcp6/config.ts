/** The DHCPv6 service's options (the `dhcp6` config section, validated by agent/config/schema.ts). */
export interface Dhcp6Config {
  /** server: addresses (IA_NA) from `range` + boot options; stateless: INFORMATION-REQUEST and boot options only; off */
  mode: 'server' | 'stateless' | 'off';
  /** UDP port we listen on (547; 0 in tests) */
  port: number;
  /** [first, last], inside lan.address6/prefix6 */
  range: [string, string];
  /** valid lifetime of a lease; preferred = valid, T1 = ½, T2 = ⅘ (RFC 8415 §21.4) */
  leaseSeconds: number;
  /** RFC 8415 §21.8 preference sent in ADVERTISE (255: "choose me at once") */
  preference: number;
}

export const DHCP6_DEFAULTS = { mode: 'off', port: 547, leaseSeconds: 3600, preference: 255 } as const;
