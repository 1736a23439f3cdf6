import { describe, expect, it } from 'vitest';
import { parseRange } from '../../../../relay/http/service';

describe('parseRange', () => {
  it.each([
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=100-', { start: 100, end: undefined }],
    ['bytes=-500', { suffix: 500 }],
    ['bytes=5-1', undefined],
    ['bytes=0-1,5-6', undefined],
    ['items=0-1', undefined],
    ['bytes=-', undefined],
    [undefined, undefined],
  ])('%s → %j', (h, want) => {
    expect(parseRange(h)).toEqual(want);
  });
});
