/**
 * restartPlan(old, next): what a reload has to restart, from which config sections changed
 * (RESTARTS beside the schema). Pure; the agent applies it in SERVICES order.
 */
import { RESTARTS, SERVICES, type Service } from './config/schema';
import type { Config } from './config/types';

export type Section = keyof Config;

export interface RestartPlan {
  /** the sections whose value differs, in the config's key order */
  changed: Section[];
  /** the services to stop and start again, in SERVICES order */
  restart: Service[];
}

export function restartPlan(old: Config, next: Config): RestartPlan {
  const changed = (Object.keys({ ...old, ...next }) as Section[]).filter((k) => JSON.stringify(old[k]) !== JSON.stringify(next[k]));
  const wanted = new Set<Service>(changed.flatMap((k) => RESTARTS[k] ?? []));
  // DHCPv6 off before and after: nothing of it runs, nothing to restart
  if (old.dhcp6.mode === 'off' && next.dhcp6.mode === 'off') wanted.delete('dhcp6');
  return { changed, restart: SERVICES.filter((s) => wanted.has(s)) };
}
