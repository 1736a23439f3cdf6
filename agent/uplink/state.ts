/**
 * UplinkState: the agent's one view of the uplink, from its two witnesses — the monitor's reading
 * of the router's link (the kernel's files; netifd through ubus on OpenWrt) and the cache's contact with the upstream. It is the only source
 * of uplink.up / uplink.down on the bus and of status().uplink.state: down while either witness
 * says down, up once one says up and none says down, unknown before anyone said anything.
 * Starting with a working uplink is not news.
 */
import type { EmitFn } from '../../proto/events';
import type { UplinkStatus } from './status';

export type UplinkWord = 'up' | 'down' | 'unknown';

export interface UplinkStateOptions {
  /** the monitor's latest reading (none when no monitor runs) */
  link: () => UplinkStatus | undefined;
  /** the cache's word on the upstream */
  upstream: () => UplinkWord;
  emit: EmitFn;
}

export class UplinkState {
  private announced: UplinkWord = 'unknown';

  constructor(private readonly o: UplinkStateOptions) {}

  get state(): UplinkWord {
    const link = this.o.link();
    const upstream = this.o.upstream();
    if ((link && !link.up) || upstream === 'down') return 'down';
    if (link?.up || upstream === 'up') return 'up';
    return 'unknown';
  }

  /** A witness changed its word (`reason`: the upstream's, when it is the one that failed). */
  changed(reason?: string): void {
    const now = this.state;
    if (now === this.announced || now === 'unknown') return;
    const was = this.announced;
    this.announced = now;
    if (was === 'unknown' && now === 'up') return;
    const link = this.o.link();
    const why = link && !link.up ? link.reason : reason;
    const where = {
      ...(link?.interface ? { interface: link.interface } : {}),
      ...(link?.ssid ? { ssid: link.ssid } : {}),
      ...(link?.address ? { address: link.address } : {}),
    };
    if (now === 'up') this.o.emit({ type: 'uplink.up', ...where });
    else this.o.emit({ type: 'uplink.down', ...where, ...(why ? { reason: why } : {}) });
  }
}
