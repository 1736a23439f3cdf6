import { describe, expect, it } from 'vitest';
import { decodePcap } from '../../../proto/pcap';
import { PacketTrace } from '../../../relay/trace';

const dg = (mac: string, n: number) => ({ mac, dir: 'in' as const, clientIp: '10.99.0.100', clientPort: 68, serverIp: '10.99.0.1', serverPort: 67, payload: Buffer.alloc(n, 7) });

describe('PacketTrace', () => {
  it('bounds its memory under a flood of full-size datagrams from many MACs', () => {
    const t = new PacketTrace(); // defaults: what the agent runs with
    for (let c = 0; c < 256; c++) {
      const mac = `52:54:00:00:${(c >> 8).toString(16).padStart(2, '0')}:${(c & 255).toString(16).padStart(2, '0')}`;
      for (let i = 0; i < 2000; i++) t.record(dg(mac, 1500));
    }
    expect(t.bytes).toBeLessThanOrEqual(8 * 1024 * 1024);
    // the most recent client's recent datagrams are there
    expect(t.count('52:54:00:00:00:ff')).toBeGreaterThan(1000);
  });

  it('keeps the last perClient datagrams of a client and renders them', () => {
    const t = new PacketTrace(10);
    for (let i = 0; i < 25; i++) t.record({ ...dg('52:54:00:00:00:01', 300), ts: 1000 + i });
    expect(t.count('52:54:00:00:00:01')).toBe(10);
    const { records } = decodePcap(t.toPcap('52:54:00:00:00:01'));
    expect(records.map((r) => r.ts)).toEqual([...Array(10).keys()].map((i) => 1015 + i));
  });

  it('evicts the least recently active client, not the first one seen', () => {
    const t = new PacketTrace(2000, 2);
    t.record(dg('52:54:00:00:00:01', 10));
    t.record(dg('52:54:00:00:00:02', 10));
    t.record(dg('52:54:00:00:00:01', 10));
    t.record(dg('52:54:00:00:00:03', 10));
    expect(t.count('52:54:00:00:00:01')).toBe(2);
    expect(t.count('52:54:00:00:00:02')).toBe(0);
  });
});
