import { describe, expect, it } from 'vitest';
import { parseRange, splitTarget } from '../../../../relay/http/service';

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

describe('splitTarget', () => {
  it.each([
    ['/files/a/b?x=1', { path: '/files/a/b', query: 'x=1' }],
    ['/files//a///b', { path: '/files/a/b', query: '' }],
    ['//evil.example/files/a', { path: '/evil.example/files/a', query: '' }],
    ['http://10.0.0.1/files/a?mac=1', { path: '/files/a', query: 'mac=1', authority: '10.0.0.1' }],
    ['HTTP://10.0.0.1:8080', { path: '/', query: '', authority: '10.0.0.1:8080' }],
    ['http://user@host/x#frag', { path: '/x', query: '', authority: 'host' }],
    ['http://h?q', { path: '/', query: 'q', authority: 'h' }],
  ])('%s', (url, want) => {
    expect(splitTarget(url)).toEqual(want);
  });
});
