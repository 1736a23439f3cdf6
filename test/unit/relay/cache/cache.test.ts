import { describe, expect, it } from 'vitest';
import { profileSha256Lookup } from '../../../../relay/cache/cache';

describe('profileSha256Lookup', () => {
  it('finds a profile sha256 by normalised path, lower-cased', () => {
    const look = profileSha256Lookup({
      profiles: {
        a: { kernel: 'd/vmlinuz', sha256: { '/d/vmlinuz': 'AB'.repeat(32) } },
        b: { script: 'm.ipxe', sha256: { '../bad': '00' } },
        c: {},
      },
    });
    expect(look('d/vmlinuz')).toBe('ab'.repeat(32));
    expect(look('m.ipxe')).toBeUndefined();
  });
});
