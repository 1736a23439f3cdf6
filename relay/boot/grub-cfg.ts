/**
 * grub.cfg for the Secure Boot chain (shim → signed GRUB → kernel), generated
 * from a client's profile the way relay/http/ipxe-script.ts writes /boot.ipxe.
 * Pure: text in, text out.
 *
 * Two layers of quoting meet here:
 *  1. GRUB's lexer (grub-core/script/yylex.l; manual, "Shell-like scripting"):
 *     words are split at space, tab, newline and the metacharacters { } | & $ ; < >;
 *     `#` at the start of a word opens a comment; a backslash escapes the next
 *     character; single quotes keep everything literally (no quote inside them);
 *     parts of one word join (`a'b c'"d"` is one word). Every word we write that
 *     is not plainly safe goes in single quotes, a `'` in it as `'\''`.
 *  2. GRUB's `linux` command joins its arguments into the kernel command line
 *     (grub-core/lib/cmdline.c, grub_create_loader_cmdline): an argument with a
 *     space is put in double quotes, and `"`, `'` and `\` get a backslash.
 *     The kernel (kernel/params.c next_arg) reads `"a=b c"` like `a="b c"`, so a
 *     profile cmdline is split into the kernel's own words first (double quotes
 *     group, and are dropped), each word one GRUB argument. A `'` or `\` in a
 *     cmdline reaches the kernel with a backslash before it: `warnings` says so.
 */

export interface GrubProfile {
  kernel?: string;
  initrd?: string[];
  cmdline?: string;
  script?: string;
}

export interface GrubCfgInput {
  /** profile name (shown on the console) */
  name: string;
  profile: GrubProfile;
  /** the relay's LAN address (the TFTP server GRUB already talks to) */
  server: string;
  /** how GRUB fetches kernel and initrds: tftp (any signed netboot GRUB) or http (needs GRUB's http module) */
  fetch: 'tftp' | 'http';
  httpPort: number;
  /** the client, for the comment line */
  mac?: string;
}

export interface GrubCfg {
  text: string;
  /** the profile cannot boot through GRUB (an iPXE script, no kernel): why, in words */
  error?: string;
  warnings: string[];
}

/** The path GRUB asks for (then `/kernel`, `/initrd`, `/boot`) when a step of the generated config failed. */
export const GRUB_FAILED = 'grub/bootrelay-failed';

const SAFE_WORD = /^[A-Za-z0-9_./,:=@%+()-]+$/;

/** One word for GRUB's lexer: as it is when plainly safe, else single-quoted. */
export function grubWord(s: string): string {
  if (s !== '' && SAFE_WORD.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A kernel command line split the way the kernel reads it (kernel/params.c next_arg):
 * words end at spaces outside double quotes; the double quotes themselves are dropped
 * (GRUB re-adds quotes around a word with a space).
 */
export function kernelWords(cmdline: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (const ch of cmdline) {
    if (ch === '"') {
      quoted = !quoted;
      inWord = true;
      continue;
    }
    if (!quoted && /\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    cur += ch;
    inWord = true;
  }
  if (inWord) out.push(cur);
  return out;
}

/** `(tftp,10.99.1.1)/debian/vmlinuz` or `(http,10.99.1.1:8080)/files/debian/vmlinuz` */
export function grubFilePath(path: string, server: string, fetch: 'tftp' | 'http', httpPort: number): string {
  const rel = path.replace(/^\/+/, '');
  if (fetch === 'http') return `(http,${httpPort === 80 ? server : `${server}:${httpPort}`})/files/${rel.split('/').map(encodeURIComponent).join('/')}`;
  return `(tftp,${server})/${rel}`;
}

/** The grub.cfg for one client. A profile GRUB cannot boot gives a config that says why on the console. */
export function grubConfig(i: GrubCfgInput): GrubCfg {
  const warnings: string[] = [];
  const head = [`# bootrelay: profile ${i.name}${i.mac ? ` for ${i.mac}` : ''}`, 'set timeout=0'];
  const p = i.profile;
  const stop = (error: string): GrubCfg => ({
    text: [...head, `echo ${grubWord(`bootrelay: ${error}`)}`, 'sleep 30', ''].join('\n'),
    error,
    warnings,
  });
  if (p.script !== undefined && !p.kernel) return stop(`profile "${i.name}" is an iPXE script (${p.script}): it needs iPXE, not the Secure Boot chain (shim and GRUB)`);
  if (!p.kernel) return stop(`profile "${i.name}" names no kernel`);
  const words = kernelWords(p.cmdline ?? '');
  if (words.some((w) => /['\\]/.test(w))) warnings.push(`the command line of profile "${i.name}" has ' or \\: GRUB passes them to the kernel with a backslash before each`);
  const file = (f: string) => grubWord(grubFilePath(f, i.server, i.fetch, i.httpPort));
  const initrds = p.initrd ?? [];
  // GRUB goes on after a failed command: each step runs only when the one before worked, and a
  // failure is told to the relay by asking for GRUB_FAILED/<step> (refused, but seen: the
  // tracker names the step; under Secure Boot a kernel not signed for this shim fails `linux`)
  const lines = [
    ...head,
    `echo ${grubWord(`bootrelay: profile ${i.name}: loading ${p.kernel}`)}`,
    `if ${['linux', file(p.kernel), ...words.map(grubWord)].join(' ')}; then`,
    ...(initrds.length ? [`  if ${['initrd', ...initrds.map(file)].join(' ')}; then`, '    boot', '    set bootrelay_failed=boot', '  else', '    set bootrelay_failed=initrd', '  fi'] : ['  boot', '  set bootrelay_failed=boot']),
    'else',
    '  set bootrelay_failed=kernel',
    'fi',
    `echo "bootrelay: GRUB could not load the $bootrelay_failed"`,
    `source ${grubWord(grubFilePath(GRUB_FAILED, i.server, i.fetch, i.httpPort) + '/')}\${bootrelay_failed}`,
    'sleep 30',
    '',
  ];
  return { text: lines.join('\n'), warnings };
}
