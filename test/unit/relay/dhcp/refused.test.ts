/**
 * A loader refused under Secure Boot (the tracker's diagnosis, agent wiring → DhcpService.noteLoaderRefused):
 * the client's next DISCOVERs, however late (the next power-on, its UEFI HTTP Boot option), get the
 * next loader of its list, e.g. `["ipxe/ipxe.efi", <the signed chain's shim>]`.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import type { DhcpConfig, LanConfig } from '../../../../agent/config/types';
import { MessageType, Opt, OptionMap } from '../../../../proto/dhcp/options';
import type { DhcpMessage } from '../../../../proto/dhcp/packet';
import { classifyClient } from '../../../../proto/dhcp/pxe';
import { LeaseStore } from '../../../../relay/dhcp/leases';
import { BootHistory, decide, type Decision, type PolicyContext } from '../../../../relay/dhcp/policy';

const lan: LanConfig = { interface: 'lan0', address: '10.99.0.1', prefix: 24 };
const dhcp: DhcpConfig = { mode: 'server', port: 67, proxyPort: 4011, range: ['10.99.0.100', '10.99.0.110'], leaseSeconds: 3600, dns: [], static: {}, ipxeNoProxyDhcp: true, netbootOnce: false };
const loaders = { 'uefi-x64': ['ipxe/ipxe.efi', 'sb/shimx64.efi'] };
const UEFI: Array<[number, Buffer | string]> = [[60, 'PXEClient:Arch:00007:UNDI:003000'], [93, Buffer.from([0, 7])]];
const HTTP: Array<[number, Buffer | string]> = [[60, 'HTTPClient:Arch:00016:UNDI:003001'], [93, Buffer.from([0, 16])]];
const MAC = '52:54:00:99:5b:11';

function msg(type: number, opts: Array<[number, Buffer | string]>, xid: number, extra: Array<[number, Buffer]> = []): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, type);
  for (const [c, v] of [...opts, ...extra]) options.set(c, typeof v === 'string' ? Buffer.from(v) : v);
  const chaddr = Buffer.alloc(16);
  Buffer.from(MAC.replace(/:/g, ''), 'hex').copy(chaddr);
  return { op: 1, htype: 1, hlen: 6, hops: 0, xid, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac: MAC, sname: '', file: '', options };
}

let t: number;
let leases: LeaseStore;
let history: BootHistory;
const ctx = (): PolicyContext => ({ mode: 'server', via: 'dhcp', src: { address: '0.0.0.0', port: 68 }, lan, dhcp, loaders, httpPort: 80, tftpEnabled: true, leases, history, now: t });
const reply = (d: Decision) => {
  if (d.kind !== 'reply') throw new Error(`expected a reply, got ${JSON.stringify(d)}`);
  return d;
};
async function dora(opts: Array<[number, Buffer | string]>, xid: number) {
  const o = reply(decide(msg(MessageType.DISCOVER, opts, xid), classifyClient(msg(MessageType.DISCOVER, opts, xid)), ctx()));
  const req = msg(MessageType.REQUEST, opts, xid, [[54, Buffer.from([10, 99, 0, 1])], [50, Buffer.from(o.ip!.split('.').map(Number))]]);
  const a = reply(decide(req, classifyClient(req), ctx()));
  if (a.commit) await leases.commit(MAC, a.commit.ip);
  return { o, a };
}

beforeEach(() => {
  t = 1_000_000;
  leases = new LeaseStore({ range: dhcp.range, static: {}, leaseSeconds: 3600, now: () => t });
  history = new BootHistory();
});

describe('a loader refused under Secure Boot', () => {
  it('the next DISCOVER, minutes later, gets the next loader; so do the ones after', async () => {
    const first = await dora(UEFI, 1);
    expect(first.a.boot?.path).toBe('ipxe/ipxe.efi');
    history.noteLoaderFetched(MAC, t + 8_000);
    expect(history.noteRefused(MAC)).toBe(true);
    expect(history.noteRefused(MAC)).toBe(false); // once is enough
    t += 5 * 60_000; // the next power-on, well outside the 60 s fallback window
    const second = await dora(UEFI, 2);
    expect(second.o.boot?.path).toBe('sb/shimx64.efi');
    expect(second.o.side).toMatchObject([{ type: 'dhcp.loader-fallback', file: 'sb/shimx64.efi', from: 'ipxe/ipxe.efi' }]);
    expect(second.a.boot?.path).toBe('sb/shimx64.efi');
    t += 60 * 60_000;
    expect((await dora(UEFI, 3)).a.boot?.path).toBe('sb/shimx64.efi');
  });

  it('UEFI HTTP Boot after the refusal (same arch family) gets the next loader by URL', async () => {
    await dora(UEFI, 1);
    history.noteRefused(MAC);
    t += 64_000;
    const http = await dora(HTTP, 2);
    expect(http.a.boot?.file).toBe('http://10.99.0.1/files/sb/shimx64.efi');
  });

  it('without a refusal a late DISCOVER starts at the first loader again; a list of one stays put', async () => {
    await dora(UEFI, 1);
    t += 5 * 60_000;
    expect((await dora(UEFI, 2)).a.boot?.path).toBe('ipxe/ipxe.efi');
    history.noteRefused(MAC);
    const one = { 'uefi-x64': ['ipxe/ipxe.efi'] };
    const d = reply(decide(msg(MessageType.DISCOVER, UEFI, 3), classifyClient(msg(MessageType.DISCOVER, UEFI, 3)), { ...ctx(), loaders: one }));
    expect(d.boot?.path).toBe('ipxe/ipxe.efi');
  });
});
