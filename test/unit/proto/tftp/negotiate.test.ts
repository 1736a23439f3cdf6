import { describe, expect, it } from 'vitest';
import { negotiate } from '../../../../proto/tftp/negotiate';

describe('proto/tftp/negotiate', () => {
  it.each([
    // [requested, limits, expected oack, blksize, windowsize]
    [{}, {}, {}, 512, 1],
    [{ blksize: '1468' }, {}, { blksize: '1468' }, 1468, 1],
    [{ blksize: '65464' }, {}, { blksize: '1468' }, 1468, 1],
    [{ blksize: '65464' }, { maxBlksize: 8192 }, { blksize: '8192' }, 8192, 1],
    [{ blksize: '99999' }, { maxBlksize: 70000 }, { blksize: '65464' }, 65464, 1],
    [{ blksize: '8' }, {}, { blksize: '8' }, 8, 1],
    [{ blksize: '7' }, {}, {}, 512, 1],
    [{ blksize: 'abc' }, {}, {}, 512, 1],
    [{ blksize: '-5' }, {}, {}, 512, 1],
    [{ tsize: '0' }, { size: 1234 }, { tsize: '1234' }, 512, 1],
    [{ tsize: '0' }, {}, {}, 512, 1],
    [{ tsize: '0' }, { size: 0 }, { tsize: '0' }, 512, 1],
    [{ windowsize: '16' }, {}, { windowsize: '16' }, 512, 16],
    [{ windowsize: '65535' }, { maxWindowsize: 32 }, { windowsize: '32' }, 512, 32],
    [{ windowsize: '0' }, {}, {}, 512, 1],
    [{ windowsize: '70000' }, {}, {}, 512, 1],
    [{ timeout: '0' }, {}, {}, 512, 1],
    [{ timeout: '256' }, {}, {}, 512, 1],
    [{ rollover: '2' }, {}, {}, 512, 1],
    [{ rollover: '1' }, {}, { rollover: '1' }, 512, 1],
    [{ multicast: '', 'x-foo': 'bar' }, {}, {}, 512, 1],
    [{ BLKSIZE: '1024' }, {}, { blksize: '1024' }, 1024, 1],
  ] as const)('negotiates %j within %j', (req, limits, oack, blksize, windowsize) => {
    const n = negotiate({ ...req }, { ...limits });
    expect(n.oack).toEqual(oack);
    expect(n.blksize).toBe(blksize);
    expect(n.windowsize).toBe(windowsize);
  });

  it("honours the client's timeout as is (RFC 2349 §2)", () => {
    for (const t of [1, 3, 255]) {
      const n = negotiate({ timeout: String(t) });
      expect(n.timeout).toBe(t);
      expect(n.oack.timeout).toBe(String(t));
    }
    expect(negotiate({}).timeout).toBeUndefined();
  });

  it('defaults rollover to 0 and accepts 1', () => {
    expect(negotiate({}).rolloverTo).toBe(0);
    expect(negotiate({ rollover: '0' }).rolloverTo).toBe(0);
    expect(negotiate({ rollover: '1' }).rolloverTo).toBe(1);
  });
});
