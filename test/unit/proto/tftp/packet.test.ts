import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../../../proto/errors';
import { decodeTftp, encodeData, encodeTftp, type TftpPacket } from '../../../../proto/tftp/packet';

const samples: TftpPacket[] = [
  { op: 'rrq', file: 'ipxe/undionly.kpxe', mode: 'octet', options: {} },
  { op: 'rrq', file: '/boot/x.efi', mode: 'octet', options: { blksize: '1468', tsize: '0', windowsize: '4', timeout: '3' } },
  { op: 'wrq', file: 'up.bin', mode: 'netascii', options: {} },
  { op: 'data', block: 1, data: Buffer.from('hello') },
  { op: 'data', block: 65535, data: Buffer.alloc(0) },
  { op: 'ack', block: 0 },
  { op: 'ack', block: 65535 },
  { op: 'error', code: 1, message: 'file not found' },
  { op: 'error', code: 8, message: '' },
  { op: 'oack', options: { blksize: '1468', tsize: '12345' } },
  { op: 'oack', options: {} },
];

describe('proto/tftp/packet', () => {
  it.each(samples.map((s) => [s.op, s] as const))('round-trips %s', (_op, pkt) => {
    const back = decodeTftp(encodeTftp(pkt));
    expect(back).toEqual(pkt);
  });

  it('encodes an RRQ byte for byte (RFC 1350 §5, RFC 2347 §2)', () => {
    const b = encodeTftp({ op: 'rrq', file: 'a.bin', mode: 'octet', options: { blksize: '1468' } });
    expect(b.toString('latin1')).toBe('\x00\x01a.bin\x00octet\x00blksize\x001468\x00');
  });

  it('lower-cases option names and mode, keeps the first of a repeated option', () => {
    const raw = Buffer.from('\x00\x01F\x00OCTET\x00BlkSize\x001024\x00TSIZE\x000\x00blksize\x00512\x00', 'latin1');
    const p = decodeTftp(raw);
    expect(p).toEqual({ op: 'rrq', file: 'F', mode: 'octet', options: { blksize: '1024', tsize: '0' } });
  });

  it('encodes DATA with the block number wrapped to 16 bits', () => {
    expect(encodeData(65536, Buffer.from('x'))).toEqual(Buffer.from([0, 3, 0, 0, 0x78]));
  });

  it('tolerates an ERROR message without its NUL and an ACK with padding', () => {
    expect(decodeTftp(Buffer.from('\x00\x05\x00\x08abort', 'latin1'))).toEqual({ op: 'error', code: 8, message: 'abort' });
    expect(decodeTftp(Buffer.from([0, 4, 0, 7, 0, 0]))).toEqual({ op: 'ack', block: 7 });
  });

  it.each([
    ['empty', []],
    ['one byte', [0]],
    ['bad opcode 0', [0, 0, 0, 0]],
    ['bad opcode 7', [0, 7, 0, 0]],
    ['short ACK', [0, 4, 0]],
    ['short DATA', [0, 3, 1]],
    ['short ERROR', [0, 5, 0]],
    ['RRQ without mode', [0, 1, 0x61, 0]],
    ['RRQ without NUL', [0, 1, 0x61]],
    ['RRQ with an option without value', [...Buffer.from('\x00\x01a\x00octet\x00blksize\x00', 'latin1')]],
    ['OACK with an unterminated value', [...Buffer.from('\x00\x06tsize\x0012', 'latin1')]],
  ])('throws DecodeError on %s', (_name, bytes) => {
    expect(() => decodeTftp(Buffer.from(bytes as number[]))).toThrow(DecodeError);
  });

  it('throws only DecodeError (or decodes) for every truncation of every sample', () => {
    for (const s of samples) {
      const full = encodeTftp(s);
      for (let n = 0; n < full.length; n++) {
        try {
          decodeTftp(full.subarray(0, n));
        } catch (err) {
          expect(err).toBeInstanceOf(DecodeError);
        }
      }
    }
    // requests cut inside a string never decode
    const rrq = encodeTftp(samples[1]);
    const nulls = [...rrq.keys()].filter((i) => i >= 2 && rrq[i] === 0);
    for (let n = 0; n < rrq.length; n++) {
      const atPairEnd = nulls.slice(1).filter((_, i) => i % 2 === 0).includes(n - 1);
      if (!atPairEnd) expect(() => decodeTftp(rrq.subarray(0, n)), `length ${n}`).toThrow(DecodeError);
    }
  });

  it('never throws anything but DecodeError on random bytes', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(rnd() * 40);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = rnd() < 0.3 ? 0 : Math.floor(rnd() * 256);
      if (len >= 2 && rnd() < 0.8) b[1] = 1 + Math.floor(rnd() * 6), (b[0] = 0);
      try {
        decodeTftp(b);
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeError);
      }
    }
  });
});
