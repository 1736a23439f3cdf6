/**
 * The agent's state directory: what survives a restart (or a crash), as small JSON files
 * written tmp + rename, so a crash leaves the old or the new file.
 *
 *   assign.json   relayctl assign (mac → profile)        the boot plan's runtime part
 *   booted.json   netboot-once: MACs that reported booted
 *   clients.json  the tracker's client states: retained MQTT state and the dashboard stay right
 *
 * A file that cannot be written is logged; the value holds in memory until the next change.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { BootPlan } from '../relay/boot/plan';
import type { ClientState, ClientUpdate } from './clients/record';

export interface AgentStateOptions {
  /** the state directory (it may change on reload) */
  dir: () => string;
  log: Logger;
  /** what clients.json holds */
  clients: () => ClientState[];
  /** clients.json at most this often for byte progress and for new clients (default 2000 ms) */
  clientsMs?: number;
}

export class AgentState {
  private clientsTimer?: NodeJS.Timeout;

  constructor(private readonly o: AgentStateOptions) {}

  read(name: string): unknown {
    const file = join(this.o.dir(), name);
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.o.log.warn({ err, file }, 'state file unreadable: ignored');
      return undefined;
    }
  }

  /** Atomic small-file write (tmp + rename); a failure is logged, the value holds in memory. */
  save(name: string, value: unknown): void {
    const dir = this.o.dir();
    const file = join(dir, name);
    const tmp = `${file}.tmp`;
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
      renameSync(tmp, file);
    } catch (err) {
      this.o.log.warn({ err, file }, 'state not saved (it holds until restart)');
    }
  }

  /** The plan's runtime part as saved by an earlier run. */
  restorePlan(plan: BootPlan): void {
    const dropped = plan.restore({ assign: this.read('assign.json'), assignUuid: this.read('assign-uuid.json'), booted: this.read('booted.json') });
    for (const d of dropped) this.o.log.warn(d, 'runtime assignment names no current profile: dropped');
  }

  /** Saves the plan's runtime part whenever it changes. */
  watchPlan(plan: BootPlan): void {
    plan.on('runtime', (part) => {
      const rt = plan.runtime();
      if (part === 'assign') this.save('assign.json', rt.assign);
      else if (part === 'assignUuid') this.save('assign-uuid.json', rt.assignUuid ?? {});
      else this.save('booted.json', rt.booted);
    });
  }

  /**
   * clients.json after a client update: at once for a `phase` update (a few per boot), and at
   * most every clientsMs for byte progress and for a client that has only just appeared (one
   * DISCOVER): anyone on the LAN can make up MACs, and each would otherwise rewrite the file on flash.
   */
  clientChanged(u: ClientUpdate): void {
    const s = u.state;
    const fresh = s.phase === 'dhcp' && !s.error && s.startedAt === s.updatedAt;
    if (u.kind === 'phase' && !fresh) return this.saveClients();
    if (!this.clientsTimer) {
      this.clientsTimer = setTimeout(() => this.saveClients(), this.o.clientsMs ?? 2000);
      this.clientsTimer.unref();
    }
  }

  saveClients(): void {
    if (this.clientsTimer) clearTimeout(this.clientsTimer);
    this.clientsTimer = undefined;
    this.save('clients.json', this.o.clients());
  }

  /** Writes what waits (at stop). */
  flush(): void {
    if (this.clientsTimer) this.saveClients();
  }
}
