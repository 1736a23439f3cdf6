import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { LanSocketPair } from '../../../../relay/net/lan';
import { waitFor } from '../../../helpers/netns';

const open: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c();
});

describe('LanSocketPair', () => {
  it('receives on the wildcard socket, sends from lan.address on the same port', async () => {
    const got: Array<{ data: string; from: string }> = [];
    const pair = new LanSocketPair({ lanAddress: '127.0.0.1', port: 0, listenAddress: '0.0.0.0', onMessage: (b, r) => got.push({ data: b.toString(), from: `${r.address}:${r.port}` }) });
    await pair.start();
    open.push(() => pair.stop());
    expect(pair.port).toBeGreaterThan(0);
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    open.push(() => void peer.close());
    const replies: string[] = [];
    peer.on('message', (_b, r) => replies.push(`${r.address}:${r.port}`));
    peer.send('hello', pair.port, '127.0.0.1');
    await waitFor(() => got.length === 1, 3000, 'datagram');
    pair.send(Buffer.from('back'), peer.address().port, '127.0.0.1');
    await waitFor(() => replies.length === 1, 3000, 'reply');
    expect(replies[0]).toBe(`127.0.0.1:${pair.port}`);
    // handled once, not once per socket
    expect(got).toHaveLength(1);
  });

  it('fails to start when lan.address is not ours, and leaves nothing bound', async () => {
    const pair = new LanSocketPair({ lanAddress: '10.99.254.254', port: 0, onMessage: () => {} });
    await expect(pair.start()).rejects.toThrow(/EADDRNOTAVAIL/);
    await pair.stop();
  });
});
