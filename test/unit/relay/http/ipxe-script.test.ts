import { describe, expect, it } from 'vitest';
import { fileUrl, initrdNames, ipxeToken, renderBootScript, renderFailScript } from '../../../../relay/http/ipxe-script';

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

/**
 * iPXE's lexer as its source has it (src/core/exec.c system(), split_command(),
 * command_terminator(); src/core/settings.c expand_settings()): tokens split at whitespace,
 * the command ends at a token starting with '#' or equal to '||', '&&', ';'; then each
 * token of the command is expanded, innermost `${…}` first, re-scanned until none is left
 * (unknown settings are empty). Returns the commands of a line as argv lists.
 */
function ipxeCommands(line: string, settings: Record<string, string> = {}): string[][] {
  const tokens = line.split(/[ \t\n\v\f\r]+/).filter(Boolean);
  const out: string[][] = [];
  let cur: string[] = [];
  let comment = false;
  for (const t of tokens) {
    if (comment) continue;
    if (t.startsWith('#')) {
      comment = true;
      continue;
    }
    if (t === '||' || t === '&&' || t === ';') {
      out.push(cur);
      cur = [];
      continue;
    }
    cur.push(t);
  }
  out.push(cur);
  const expand = (s: string): string => {
    for (;;) {
      let start = -1;
      let end = -1;
      for (let i = 0; i < s.length; i++) {
        if (s[i] === '$' && s[i + 1] === '{') start = i;
        if (start >= 0 && s[i] === '}') {
          end = i;
          break;
        }
      }
      if (end < 0) return s;
      s = s.slice(0, start) + (settings[s.slice(start + 2, end)] ?? '') + s.slice(end + 1);
    }
  };
  return out.map((argv) => argv.map(expand));
}

describe('renderBootScript escaping for iPXE (issue 12 item 4)', () => {
  const nasty = 'console=ttyS0 #comment || ; && root=/dev/sda1 ##x a=b;c last=1';

  it('passes every cmdline token to the kernel command unchanged, and the line still ends in || goto failed', () => {
    const s = renderBootScript({ profileName: 'p', profile: { kernel: 'k/vmlinuz', cmdline: nasty }, baseUrl: 'http://h' });
    const line = s.split('\n').find((l) => l.startsWith('kernel '))!;
    const cmds = ipxeCommands(line, { ip: '10.0.0.9' });
    expect(cmds[0]).toEqual(['kernel', 'http://h/files/k/vmlinuz', ...nasty.split(' ')]);
    expect(cmds[1]).toEqual(['goto', 'failed']);
    expect(cmds).toHaveLength(2);
  });

  it('fails the model before the fix: the raw cmdline lost everything after #comment', () => {
    // what the old renderer wrote: the raw text
    const cmds = ipxeCommands(`kernel http://h/files/k ${nasty} || goto failed`);
    expect(cmds[0]).toEqual(['kernel', 'http://h/files/k', 'console=ttyS0']);
    expect(cmds).toHaveLength(1); // `|| goto failed` commented out
  });

  it('gives initrds unique, space-free names that the kernel line and --name agree on', () => {
    const s = renderBootScript({
      profileName: 'two',
      profile: { kernel: 'k', initrd: ['a/initrd.img', 'b/initrd.img', 'c/my firmware.cpio', 'd/#x'], cmdline: '' },
      baseUrl: 'http://h',
    });
    expect(initrdNames(['a/initrd.img', 'b/initrd.img', 'c/my firmware.cpio', 'd/#x'])).toEqual(['initrd.img', 'initrd-2.img', 'my_firmware.cpio', '_x']);
    const lines = s.split('\n');
    const kernel = ipxeCommands(lines.find((l) => l.startsWith('kernel '))!)[0]!;
    expect(kernel.filter((a) => a.startsWith('initrd='))).toEqual(['initrd=initrd.img', 'initrd=initrd-2.img', 'initrd=my_firmware.cpio', 'initrd=_x']);
    const initrds = lines.filter((l) => l.startsWith('initrd ')).map((l) => ipxeCommands(l));
    expect(initrds.map((c) => c[0])).toEqual([
      ['initrd', 'http://h/files/a/initrd.img'],
      ['initrd', '--name', 'initrd-2.img', 'http://h/files/b/initrd.img'],
      ['initrd', '--name', 'my_firmware.cpio', 'http://h/files/c/my%20firmware.cpio'],
      ['initrd', '--name', '_x', 'http://h/files/d/%23x'],
    ]);
    for (const c of initrds) expect(c[1]).toEqual(['goto', 'failed']);
  });

  it('keeps profile names shown by echo from expanding or cutting the line', () => {
    const s = renderBootScript({ profileName: '#x ${ip} ||', profile: { kernel: 'k' }, baseUrl: 'http://h', mac: '52:54:00:00:00:01' });
    const echo = ipxeCommands(s.split('\n')[1]!, { ip: 'EXPANDED' });
    expect(echo).toHaveLength(1);
    expect(echo[0]!.join(' ')).toBe('echo bootrelay: booting profile #x $ {ip} || for 52:54:00:00:00:01');
    expect(ipxeToken(';')).toBe('${};');
    expect(ipxeToken('plain')).toBe('plain');
  });
});
