import { describe, expect, it } from 'vitest';
import { grubConfig, grubFilePath, grubWord, kernelWords } from '../../../../relay/boot/grub-cfg';

/**
 * A reference model of the three readers a command line goes through, written from their
 * documented rules (not from our generator): GRUB's lexer (manual, "Shell-like scripting"),
 * GRUB's loader command line (grub-core/lib/cmdline.c) and the kernel's parameter parser
 * (kernel/params.c next_arg). The generated text must survive all three.
 */
function grubLex(input: string): string[] {
  // the config's own structure: `if CMD; then`, and its one variable; user data must never expand anything
  const line = input.trim().replace(/^if /, '').replace(/; then$/, '').replace(/\$\{?bootrelay_failed\}?/g, 'VAR');
  if (['then', 'else', 'fi'].includes(line)) return [];
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const meta = ' \t\n{}|&$;<>';
  while (i < line.length) {
    const c = line[i]!;
    if (c === '\\') {
      cur += line[i + 1] ?? '';
      inWord = true;
      i += 2;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error('unterminated single quote');
      cur += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      while (line[i] !== '"') {
        if (i >= line.length) throw new Error('unterminated double quote');
        if (line[i] === '$') throw new Error('variable expansion inside double quotes');
        if (line[i] === '\\' && '$"\\\n'.includes(line[i + 1] ?? '')) i++;
        cur += line[i];
        i++;
      }
      i++;
      inWord = true;
    } else if (c === '#' && !inWord) {
      break;
    } else if (meta.includes(c)) {
      if (c !== ' ' && c !== '\t') throw new Error(`unquoted metacharacter ${JSON.stringify(c)}`);
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** grub_create_loader_cmdline: a word with a space in double quotes; \ ' " get a backslash */
function grubLoaderCmdline(args: string[]): string {
  return args.map((a) => (a.includes(' ') ? `"${a.replace(/[\\'"]/g, '\\$&')}"` : a.replace(/[\\'"]/g, '\\$&'))).join(' ');
}

/** kernel next_arg: [param, value] pairs as the kernel sees them */
function kernelParams(cmdline: string): Array<[string, string | null]> {
  const out: Array<[string, string | null]> = [];
  let s = cmdline.trimStart();
  while (s.length) {
    let quoted = false;
    let inQuote = false;
    let i = 0;
    if (s[0] === '"') {
      s = s.slice(1);
      inQuote = true;
      quoted = true;
    }
    let eq = -1;
    for (i = 0; i < s.length; i++) {
      if (s[i] === ' ' && !inQuote) break;
      if (eq < 0 && s[i] === '=') eq = i;
      if (s[i] === '"') inQuote = !inQuote;
    }
    let word = s.slice(0, i);
    s = s.slice(i).trimStart();
    let param: string;
    let val: string | null;
    if (eq < 0) {
      param = word;
      val = null;
    } else {
      param = word.slice(0, eq);
      val = word.slice(eq + 1);
      if (val.startsWith('"')) {
        val = val.slice(1);
        if (val.endsWith('"')) val = val.slice(0, -1);
      }
    }
    if (quoted && (val ?? param).endsWith('"')) {
      if (val === null) param = param.slice(0, -1);
      else val = val.slice(0, -1);
    }
    word = '';
    out.push([param, val]);
  }
  return out;
}

function linuxLine(text: string): string {
  const l = text.split('\n').find((x) => /^(if )?linux /.test(x.trim()));
  if (!l) throw new Error('no linux line');
  return l;
}

const base = { name: 'debian', server: '10.99.1.1', fetch: 'tftp' as const, httpPort: 80 };

describe('grubWord: one word for GRUB\'s lexer', () => {
  it.each([
    ['console=ttyS0,115200n8', 'console=ttyS0,115200n8'],
    ['a b', "'a b'"],
    ['$x', "'$x'"],
    ['a;b', "'a;b'"],
    ["it's", `'it'\\''s'`],
    ['#x', "'#x'"],
    ['', "''"],
    ['{}|&<>', "'{}|&<>'"],
  ])('%j → %s', (w, q) => {
    expect(grubWord(w)).toBe(q);
    expect(grubLex(`cmd ${q}`)).toEqual(['cmd', w]);
  });
});

describe('kernelWords: the kernel\'s own word split', () => {
  it('groups double-quoted spaces and drops the quotes', () => {
    expect(kernelWords('  a=1   b="x y"  "c=d e" f ')).toEqual(['a=1', 'b=x y', 'c=d e', 'f']);
    expect(kernelWords('')).toEqual([]);
    expect(kernelWords('e=""')).toEqual(['e=']);
  });
});

describe('grubConfig', () => {
  it('loads kernel and several initrds over TFTP from the relay, then boots', () => {
    const { text, error, warnings } = grubConfig({
      ...base,
      mac: '52:54:00:12:34:56',
      profile: { kernel: 'debian/vmlinuz', initrd: ['debian/initrd.gz', 'extra/fw.cpio', 'my dir/x.img'], cmdline: 'console=ttyS0 quiet' },
    });
    expect(error).toBeUndefined();
    expect(warnings).toEqual([]);
    const lines = text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.trim());
    expect(lines[0]).toBe('set timeout=0');
    expect(grubLex(linuxLine(text))).toEqual(['linux', '(tftp,10.99.1.1)/debian/vmlinuz', 'console=ttyS0', 'quiet']);
    const initrd = lines.find((l) => l.startsWith('if initrd '))!;
    expect(grubLex(initrd)).toEqual(['initrd', '(tftp,10.99.1.1)/debian/initrd.gz', '(tftp,10.99.1.1)/extra/fw.cpio', '(tftp,10.99.1.1)/my dir/x.img']);
    // linux, then initrd, then boot, each only when the step before worked; a failure is told to the relay
    expect(lines.indexOf('boot')).toBeGreaterThan(lines.indexOf(initrd));
    expect(lines).toContain('set bootrelay_failed=kernel');
    expect(lines).toContain('set bootrelay_failed=initrd');
    expect(lines.find((l) => l.startsWith('source '))).toBe('source (tftp,10.99.1.1)/grub/bootrelay-failed/${bootrelay_failed}');
    // every line lexes (no stray metacharacter, no unterminated quote)
    for (const l of text.split('\n')) grubLex(l);
  });

  it('over HTTP: the relay\'s /files/ URL on its port', () => {
    const { text } = grubConfig({ ...base, fetch: 'http', httpPort: 8080, profile: { kernel: 'd/vmlinuz', initrd: ['d/i.gz'] } });
    expect(grubLex(linuxLine(text))).toEqual(['linux', '(http,10.99.1.1:8080)/files/d/vmlinuz']);
    expect(grubFilePath('/a b/k', '10.0.0.1', 'http', 80)).toBe('(http,10.0.0.1)/files/a%20b/k');
  });

  it.each([
    ['spaces in a quoted value', 'console=ttyS0 root=/dev/nfs nfsroot="10.0.0.1:/srv/a b" ip=dhcp'],
    ['dollar signs (no GRUB variable expansion)', 'pw=$6$salt$hash home=$HOME'],
    ['semicolons and pipes', 'cmd=a;b|c&d init=/bin/sh'],
    ['braces, angle brackets, hash', 'x={y} z=<w> #notacomment a#b'],
    ['a whole parameter in quotes', '"opt=with space" last'],
    ['double quotes around a value', 'label="Debian 12" quiet'],
  ])('%s: the kernel sees the same parameters', (_what, cmdline) => {
    const { text, warnings } = grubConfig({ ...base, profile: { kernel: 'k', cmdline } });
    expect(warnings).toEqual([]);
    const args = grubLex(linuxLine(text)).slice(2);
    expect(kernelParams(grubLoaderCmdline(args))).toEqual(kernelParams(cmdline));
  });

  it("warns when ' or \\ would reach the kernel with a backslash (GRUB's escaping)", () => {
    const { text, warnings } = grubConfig({ ...base, profile: { kernel: 'k', cmdline: "msg='hi' path=a\\b" } });
    expect(warnings).toHaveLength(1);
    expect(grubLex(linuxLine(text)).slice(2)).toEqual(["msg='hi'", 'path=a\\b']);
  });

  it('an iPXE script profile: a config that says it needs iPXE, and the error', () => {
    const { text, error } = grubConfig({ ...base, name: 'menu', profile: { script: 'menus/main.ipxe' } });
    expect(error).toMatch(/iPXE script .*needs iPXE/);
    expect(text).not.toMatch(/linux /m);
    expect(text).not.toMatch(/^\s*boot$/m);
    const echo = text.split('\n').find((l) => l.startsWith('echo '))!;
    expect(grubLex(echo)[1]).toMatch(/needs iPXE/);
  });

  it('a profile without a kernel fails in words', () => {
    expect(grubConfig({ ...base, profile: {} }).error).toMatch(/no kernel/);
  });

  it('a profile name or path with quotes and dollars cannot break out of its word', () => {
    const { text } = grubConfig({ ...base, name: "x'; reboot; echo '$y", profile: { kernel: "k'$(x);", initrd: ["i'; boot"] } });
    for (const l of text.split('\n')) {
      const w = grubLex(l);
      if (w[0] === 'echo' && !/VAR/.test(w[1] ?? '')) expect(w).toHaveLength(2);
      if (w[0] === 'linux') expect(w).toEqual(['linux', "(tftp,10.99.1.1)/k'$(x);"]);
      if (w[0] === 'initrd') expect(w).toEqual(['initrd', "(tftp,10.99.1.1)/i'; boot"]);
    }
    expect(text.split('\n').filter((l) => grubLex(l)[0] === 'reboot')).toEqual([]);
  });
});
