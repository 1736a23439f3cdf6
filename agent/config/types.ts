/**
 * The agent's configuration after validation and defaults (shared/CONTRACT.md).
 * agent/config/load.ts turns a JSON file into this, or into a list of issues.
 * Each service owns its section's type (relay/…/config.ts); Config composes them.
 */
import type { BootConfig } from '../../relay/boot/config';
import type { CacheConfig, UpstreamConfig } from '../../relay/cache/config';
import type { DhcpConfig } from '../../relay/dhcp/config';
import type { Dhcp6Config } from '../../relay/dhcp6/config';
import type { HttpConfig } from '../../relay/http/config';
import type { LanConfig } from '../../relay/net/lan';
import type { TftpConfig } from '../../relay/tftp/config';

export type { BootConfig, MatchRuleConfig, ProfileConfig, PxeMenuConfig } from '../../relay/boot/config';
export type { CacheConfig, UpstreamConfig } from '../../relay/cache/config';
export type { DhcpConfig, DhcpOptionsConfig, RelaySubnetConfig } from '../../relay/dhcp/config';
export type { Dhcp6Config } from '../../relay/dhcp6/config';
export type { HttpConfig } from '../../relay/http/config';
export type { LanConfig } from '../../relay/net/lan';
export type { TftpConfig } from '../../relay/tftp/config';

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
