/**
 * The uplink as the agent sees it off OpenWrt: the interface that routes to the
 * upstream (not the default route), read with the real `ip` in a namespace.
 */
import { it, expect, beforeAll, afterAll } from 'vitest';
import { NetLab, skipReason } from '../helpers/netns';
import { defaultExec, readUplinkStatus, type Exec } from '../../agent/uplink/status';
import { describeSkipIf } from '../helpers/skip';

const reason = skipReason('ip');

describeSkipIf(reason)('uplink status from ip in a namespace', () => {
  const lab = new NetLab(`bru${process.pid % 10000}`);
  let ns: string;
  let exec: Exec;

  beforeAll(() => {
    ns = lab.addNs('relay');
    const up = lab.addNs('up');
    lab.veth(ns, 'wan', up, 'eth0');
    lab.addr(ns, 'wan', '10.99.2.2/24');
    lab.addr(up, 'eth0', '10.99.2.1/24');
    exec = (cmd, args) => defaultExec('ip', ['netns', 'exec', ns, cmd, ...args]);
  });
  afterAll(() => lab.cleanup());

  it('is up through the interface that routes to the upstream, with no default route at all', async () => {
    expect(await readUplinkStatus(exec, { prefer: 'ip', target: '10.99.2.1' })).toMatchObject({
      up: true,
      interface: 'wan',
      address: '10.99.2.2',
      prefix: 24,
      source: 'ip',
    });
    // the default-route view would call this relay cut off
    expect(await readUplinkStatus(exec, { prefer: 'ip' })).toMatchObject({ up: false, reason: 'no default route' });
  });

  it('is down when nothing routes to the upstream', async () => {
    expect(await readUplinkStatus(exec, { prefer: 'ip', target: '10.99.9.1' })).toMatchObject({ up: false, reason: 'no route to 10.99.9.1' });
  });

  it('is down when the uplink interface loses its link', async () => {
    lab.ip(ns, 'link', 'set', 'wan', 'down');
    try {
      const st = await readUplinkStatus(exec, { prefer: 'ip', target: '10.99.2.1' });
      expect(st.up).toBe(false);
    } finally {
      lab.ip(ns, 'link', 'set', 'wan', 'up');
    }
  });
});
