import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { Bus } from '../../../agent/bus';
import { makeEvent, type RelayEvent } from '../../../proto/events';
import { scripted } from '../../helpers/events';

function memLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)));
      cb();
    },
  });
  return { log: pino({ level: 'info' }, dest), lines };
}

describe('Bus', () => {
  it('delivers to every listener even when one throws, and logs the failure', async () => {
    const { log, lines } = memLogger();
    const bus = new Bus(log);
    const got: string[] = [];
    bus.on('relay', (e) => got.push('a:' + e.type));
    bus.on('relay', () => {
      throw new Error('subscriber broke');
    });
    bus.on('relay', (e) => got.push('c:' + e.type));
    expect(() => bus.emit('relay', makeEvent({ type: 'dhcp.discover', mac: '52:54:00:00:00:01' }))).not.toThrow();
    expect(got).toEqual(['a:dhcp.discover', 'c:dhcp.discover']);
    expect(bus.failures).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(lines.some((l) => l.msg === 'bus listener failed' && (l.err as { message: string }).message === 'subscriber broke')).toBe(true);
  });

  it('catches rejected promises of async listeners', async () => {
    const bus = new Bus();
    bus.on('relay', async () => {
      throw new Error('async broke');
    });
    bus.emit('relay', makeEvent({ type: 'uplink.up' }));
    await new Promise((r) => setImmediate(r));
    expect(bus.failures).toBe(1);
  });

  it('honours once() and subscribe()/unsubscribe', () => {
    const bus = new Bus();
    const seen: RelayEvent[] = [];
    bus.once('relay', (e) => seen.push(e));
    const off = bus.subscribe('relay', (e) => seen.push(e));
    bus.emit('relay', makeEvent({ type: 'uplink.up' }));
    off();
    bus.emit('relay', makeEvent({ type: 'uplink.down' }));
    expect(seen.map((e) => e.type)).toEqual(['uplink.up', 'uplink.up']);
    expect(bus.listenerCount('relay')).toBe(0);
  });

  it('delivers an event emitted by a listener after the current one reached everybody', () => {
    const bus = new Bus();
    const seen: string[] = [];
    bus.on('relay', (e) => seen.push(`log ${e.type}`));
    bus.on('relay', (e) => {
      if (e.type === 'tftp.error') bus.emit('relay', scripted('client.failed', { mac: e.mac }));
    });
    bus.on('relay', (e) => seen.push(`ws ${e.type}`));
    bus.emit('relay', scripted('tftp.error', { mac: '52:54:00:00:00:01' }));
    expect(seen).toEqual(['log tftp.error', 'ws tftp.error', 'log client.failed', 'ws client.failed']);
    // and the bus is usable afterwards
    bus.emit('relay', makeEvent({ type: 'uplink.up' }));
    expect(seen.at(-1)).toBe('ws uplink.up');
  });
});
