import { describe, expect, it } from 'vitest';
import { fileUrl, renderBootScript, renderFailScript } from '../../../../relay/http/ipxe-script';

describe('renderBootScript', () => {
  it('names kernel and initrds as /files URLs and passes initrd=<name> for the EFI stub', () => {
    const s = renderBootScript({
      profileName: 'debian',
      profile: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.img', 'extra/fw.cpio'], cmdline: 'console=ttyS0' },
      baseUrl: 'http://10.99.0.1:8080/',
      mac: '52:54:00:12:34:56',
    });
    expect(s).toBe(
      [
        '#!ipxe',
        'echo bootrelay: booting profile debian for 52:54:00:12:34:56',
        'kernel http://10.99.0.1:8080/files/debian/vmlinuz initrd=initrd.img initrd=fw.cpio console=ttyS0 || goto failed',
        'initrd http://10.99.0.1:8080/files/debian/initrd.img || goto failed',
        'initrd http://10.99.0.1:8080/files/extra/fw.cpio || goto failed',
        'boot || goto failed',
        ':failed',
        'echo bootrelay: boot of profile debian failed',
        'sleep 10',
        'exit 1',
        '',
      ].join('\n'),
    );
  });

  it('keeps config newlines out of the script and encodes odd path characters', () => {
    const s = renderBootScript({ profileName: 'x\nshell', profile: { kernel: 'a b/k#1', cmdline: 'a\nshell' }, baseUrl: 'http://h' });
    expect(s.split('\n').filter((l) => l === 'shell')).toEqual([]);
    expect(s).toContain('kernel http://h/files/a%20b/k%231 a shell || goto failed');
    expect(fileUrl('http://h', '/x/y')).toBe('http://h/files/x/y');
  });

  it('fails kindly when the profile has no kernel', () => {
    const s = renderBootScript({ profileName: 'empty', profile: {}, baseUrl: 'http://h' });
    expect(s).toBe(renderFailScript('profile empty names no kernel'));
    expect(s).toMatch(/^#!ipxe\necho bootrelay: profile empty names no kernel\nsleep 10\nexit 1\n$/);
  });
});
