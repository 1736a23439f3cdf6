/** Issue 12 item 7: replies within option 57 / 576 bytes (RFC 2131 §2, RFC 2132 §9.3, §9.8, §9.10). */
import { describe, expect, it } from 'vitest';
import { MessageType, Opt, OptionMap } from '../../../../proto/dhcp/options';
import { decodeDhcp, encodeDhcp, encodeDhcpFit, type DhcpMessage } from '../../../../proto/dhcp/packet';
import { buildAck, buildOffer, encodeReply, maxReplySize, type ServerParams } from '../../../../proto/dhcp/reply';

function req(opts: Array<[number, Buffer]>, f: Partial<DhcpMessage> = {}): DhcpMessage {
  const options = new OptionMap().setU8(Opt.MessageType, MessageType.DISCOVER);
  for (const [c, v] of opts) options.set(c, v);
  const chaddr = Buffer.from('525400123456' + '00'.repeat(10), 'hex');
  return decodeDhcp(encodeDhcp({ op: 1, htype: 1, hlen: 6, hops: 0, xid: 7, secs: 0, flags: 0, ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0', chaddr, mac: '52:54:00:12:34:56', sname: '', file: '', options, ...f }));
}
const u16 = (n: number) => Buffer.from([n >> 8, n & 255]);
const server = (extra: Array<[number, number]>): ServerParams => ({
  serverIp: '10.99.0.1',
  subnetMask: '255.255.255.0',
  router: '10.99.0.1',
  dns: ['10.99.0.1'],
  leaseSeconds: 600,
  extra: extra.map(([code, len]) => ({ code, value: Buffer.alloc(len, code) })),
});

describe('maxReplySize (option 57, never under 576; IP and UDP headers counted)', () => {
  it.each([
    [undefined, 548],
    [300, 548],
    [576, 548],
    [1024, 996],
    [1500, 1472],
    [65535, 1472],
  ])('option 57 = %s → %i bytes of DHCP', (mms, want) => {
    expect(maxReplySize(req(mms === undefined ? [] : [[Opt.MaxMessageSize, u16(mms)]]))).toBe(want);
  });
});

describe('encodeReply', () => {
  it('leaves a reply that fits alone (no option 52, byte for byte what encodeDhcp makes)', () => {
    const r = req([]);
    const o = buildOffer(r, { yiaddr: '10.99.0.100', server: server([]) });
    const fit = encodeReply(o, r);
    expect(fit.overload).toBe(0);
    expect(decodeDhcp(fit.buf).options.has(Opt.OptionOverload)).toBe(false);
  });

  it('spills into file and sname (option 52 = 3) to keep every option within 548 bytes, and decodes whole', () => {
    const prl = Buffer.from([1, 3, 6, 200, 201, 202]);
    const r = req([[Opt.ParameterRequestList, prl]]);
    const o = buildOffer(r, { yiaddr: '10.99.0.100', server: server([[200, 250], [201, 100], [202, 50]]) });
    const plain = encodeDhcp(o);
    expect(plain.length).toBeGreaterThan(548); // the old encoder: over the client's limit
    const fit = encodeReply(o, r);
    expect(fit.buf.length).toBeLessThanOrEqual(548);
    expect(fit.dropped).toEqual([]);
    expect(fit.overload).toBe(3);
    const back = decodeDhcp(fit.buf);
    for (const c of [200, 201, 202, 1, 3, 6, 51, 54]) expect(back.options.get(c), `option ${c}`).toEqual(o.options.get(c));
    expect(back.options.u8(Opt.OptionOverload)).toBe(3);
    expect(back.file).toBe('');
    expect(back.sname).toBe('');
  });

  it('keeps a BIOS boot file in the file field and overloads sname only', () => {
    const r = req([[Opt.ParameterRequestList, Buffer.from([1, 3, 200, 201])]]);
    const o = buildOffer(r, { yiaddr: '10.99.0.100', server: server([[200, 160], [201, 58]]), boot: { file: 'ipxe/undionly.kpxe', path: 'ipxe/undionly.kpxe', role: 'loader', via: 'tftp', vendorClass: 'PXEClient', discoveryControl: 8 } });
    const fit = encodeReply(o, r);
    expect(fit.overload).toBe(2);
    const back = decodeDhcp(fit.buf);
    expect(back.file).toBe('ipxe/undionly.kpxe');
    expect(back.options.get(201)).toEqual(Buffer.alloc(58, 201));
    expect(back.options.get(200)).toEqual(Buffer.alloc(160, 200));
  });

  it('trims what the client did not ask for first, then the end of its request list (RFC 2132 §9.8 order)', () => {
    const r = req([[Opt.ParameterRequestList, Buffer.from([1, 3, 6, 210, 211])]]);
    const o = buildOffer(r, { yiaddr: '10.99.0.100', server: server([[210, 200], [211, 200], [212, 250], [213, 250]]) });
    // no PRL entry for 212/213: applyExtra leaves them out already; force them in to see the order
    o.options.set(212, Buffer.alloc(120, 1)).set(213, Buffer.alloc(120, 2));
    const fit = encodeReply(o, r);
    expect(fit.buf.length).toBeLessThanOrEqual(548);
    expect(fit.dropped).toContain(213);
    const back = decodeDhcp(fit.buf);
    expect(back.options.has(210)).toBe(true);
    for (const c of [53, 54, 51, 1, 3, 6]) expect(back.options.has(c), `option ${c}`).toBe(true);
  });

  it('takes a larger option 57 at its word (no overload at 1500)', () => {
    const r = req([[Opt.ParameterRequestList, Buffer.from([200, 201])], [Opt.MaxMessageSize, u16(1500)]]);
    const o = buildAck(r, { yiaddr: '10.99.0.100', server: server([[200, 250], [201, 200]]) });
    const fit = encodeReply(o, r);
    expect(fit.overload).toBe(0);
    expect(fit.buf.length).toBeGreaterThan(548);
  });

  it('echoes option 61 unchanged and puts option 82 last (RFC 6842 §3, RFC 3046 §2.2)', () => {
    const id = Buffer.from('00abcdef', 'hex');
    const rai = Buffer.from('010170', 'hex');
    const r = req([[Opt.ClientIdentifier, id], [Opt.RelayAgentInformation, rai]], { giaddr: '10.99.0.254' });
    const o = buildOffer(r, { yiaddr: '10.99.0.100', server: server([[200, 250], [201, 200]]) });
    const back = decodeDhcp(encodeReply(o, r).buf);
    expect(back.options.get(Opt.ClientIdentifier)).toEqual(id);
    expect(back.options.codes().at(-1)).toBe(Opt.RelayAgentInformation);
    expect(back.options.get(Opt.RelayAgentInformation)).toEqual(rai);
  });

  it('round-trips random option sets: within the limit, nothing lost that was not reported dropped', () => {
    let seed = 12;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let k = 0; k < 300; k++) {
      const m = req([]);
      m.op = 2;
      m.options = new OptionMap().setU8(Opt.MessageType, MessageType.OFFER);
      for (let i = 0; i < 1 + rnd(12); i++) m.options.set(100 + rnd(100), Buffer.alloc(rnd(300), rnd(256)));
      if (rnd(2)) m.file = 'boot/file.0';
      const max = 300 + rnd(400);
      const fit = encodeDhcpFit(m, { maxSize: max });
      expect(fit.buf.length).toBeLessThanOrEqual(Math.max(max, 300));
      const back = decodeDhcp(fit.buf);
      for (const [c, v] of m.options) if (!fit.dropped.includes(c)) expect(back.options.get(c), `option ${c} (case ${k})`).toEqual(v);
      if (!(fit.overload & 1)) expect(back.file).toBe(m.file);
    }
  });

  it('never leaves out the message type: a huge option 82 from the relay sends the reply over the limit instead', () => {
    const rai = Buffer.alloc(255, 1);
    const id = Buffer.alloc(255, 2);
    const r = req([[Opt.ClientIdentifier, id], [Opt.RelayAgentInformation, rai]], { giaddr: '10.99.0.254' });
    const back = decodeDhcp(encodeReply(buildOffer(r, { yiaddr: '10.99.0.100', server: server([]) }), r).buf);
    expect(back.options.u8(Opt.MessageType)).toBe(MessageType.OFFER);
    expect(back.options.get(Opt.RelayAgentInformation)).toEqual(rai);
  });

  it('a boot file name of 128 bytes or more: option 67 carries it whole, even at 576 bytes with overload', () => {
    const url = 'http://10.99.0.1/boot.ipxe?mac=52:54:00:12:34:56&' + 'x'.repeat(150);
    const r = req([[Opt.ParameterRequestList, Buffer.from([1, 3, 6, 67, 200, 201])]]);
    const o = buildOffer(r, { yiaddr: '10.99.0.100', server: server([[200, 120], [201, 100]]), boot: { file: url, path: '/boot.ipxe', role: 'script', via: 'http' } });
    const fit = encodeReply(o, r);
    expect(fit.buf.length).toBeLessThanOrEqual(548);
    const back = decodeDhcp(fit.buf);
    expect(back.options.str(Opt.BootFileName)).toBe(url);
    // the 128-byte field cannot hold it (RFC 2131 §2: NUL-terminated); config validation keeps
    // BIOS PXE loader paths (what a ROM reads from the field) within 127 bytes
    expect(fit.overload & 1).toBe(1);
  });
});
