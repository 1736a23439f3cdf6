/** `relayctl trace` over IPv6: DHCPv6 datagrams framed as Ethernet + IPv6 + UDP, checksummed, read back. */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePcap, udpFrame } from '../../../../proto/pcap';
import { encodeDhcp6 } from '../../../../proto/dhcp6/packet';
import { encodeDuidLlt, Msg6, Opt6, Options6 } from '../../../../proto/dhcp6/options';
import { PacketTrace } from '../../../../relay/trace';
import { itSkipIf, missingCmds } from '../../../helpers/skip';
import { udp6Datagrams } from '../../../helpers/udp-frames';

const MAC = '52:54:00:6a:00:01';
const sol = encodeDhcp6({ type: Msg6.SOLICIT, xid: 0x123456, options: new Options6().add(Opt6.ClientId, encodeDuidLlt(MAC, 1)).add(Opt6.ElapsedTime, Buffer.from([0, 0])) });

describe('IPv6 frames in traces', () => {
  it('frames a datagram (zone dropped, multicast MAC) and reads it back', () => {
    const f = udpFrame({ srcMac: MAC, dstMac: '02:00:00:00:00:01', srcIp: 'fe80::5054:ff:fe6a:1%lan', dstIp: 'ff02::1:2', srcPort: 546, dstPort: 547, payload: sol });
    expect(f.subarray(0, 6).toString('hex')).toBe('333300010002');
    expect(f.readUInt16BE(12)).toBe(0x86dd);
    const dir = mkdtempSync(join(tmpdir(), 'br6-pcap-'));
    try {
      const file = join(dir, 't.pcap');
      writeFileSync(file, encodePcap([{ ts: 1, data: f }]));
      const [d] = udp6Datagrams(file);
      expect(d).toMatchObject({ srcIp: 'fe80::5054:ff:fe6a:1', dstIp: 'ff02::1:2', srcPort: 546, dstPort: 547 });
      expect(d!.payload.equals(sol)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  itSkipIf(missingCmds('tshark'))('a PacketTrace of a DHCPv6 exchange is a pcap tshark reads with good UDP checksums and no expert warnings', () => {
    const t = new PacketTrace();
    t.record({ mac: MAC, dir: 'in', clientIp: 'fe80::5054:ff:fe6a:1%lan', clientPort: 546, serverIp: 'fd99::1', serverPort: 547, payload: sol });
    t.record({ mac: MAC, dir: 'out', clientIp: 'fe80::5054:ff:fe6a:1%lan', clientPort: 546, serverIp: 'fd99::1', serverPort: 547, payload: sol });
    const dir = mkdtempSync(join(tmpdir(), 'br6-pcap-'));
    try {
      const file = join(dir, 'trace.pcap');
      writeFileSync(file, t.toPcap(MAC));
      const r = spawnSync('tshark', ['-r', file, '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-e', 'dhcpv6.msgtype', '-e', 'udp.checksum.status'], { encoding: 'utf8' });
      expect(r.stdout.trim().split('\n')).toEqual(['1\t1', '1\t1']); // checksum status 1 = Good (0 Bad, 2 Unverified)
      const x = spawnSync('tshark', ['-r', file, '-o', 'udp.check_checksum:TRUE', '-q', '-z', 'expert,warn'], { encoding: 'utf8' });
      expect(x.stdout.trim()).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
