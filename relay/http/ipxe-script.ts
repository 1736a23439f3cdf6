/**
 * The iPXE script a client gets from `/boot.ipxe`, rendered from its profile (pure).
 *
 * Every file is a `/files/…` URL on the relay (read through the cache). The kernel
 * line names each initrd with `initrd=<image name>`: the Linux EFI stub loads its
 * initrds by the names iPXE gave the images (the URL's basename); BIOS iPXE passes
 * them regardless. On a failed download or boot the script does not drop into the
 * iPXE shell (nobody is at the console of a lab machine): it says what failed,
 * waits 10 s so the message can be read, and `exit`s so the firmware tries its
 * next boot device.
 *
 * iPXE's command lexer (core/exec.c): a line is split at whitespace into tokens (no quoting);
 * a token starting with `#` ends the command (a comment), the tokens `||`, `&&` and `;` end
 * it too; only then is each token expanded (`${name}`, re-scanned until none is left). So a
 * token that would end the command is written behind an empty expansion (`${}#x` is the
 * argument `#x`), and `${…}` cannot be written literally at all (config validation refuses it
 * in a cmdline; text that is only shown gets `$ {`).
 */
import { posix } from 'node:path';
import type { ProfileConfig } from '../boot/config';
import { encodePath } from '../cache/fetch';

export interface BootScriptInput {
  profileName: string;
  profile: ProfileConfig;
  /** e.g. `http://10.99.0.1` or `http://10.99.0.1:8080` (no trailing slash) */
  baseUrl: string;
  mac?: string;
}

/** One line of iPXE text: no newlines may sneak in from the config. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').trim();
}

/** One argument token as iPXE must see it: never a comment or a command separator. */
export function ipxeToken(t: string): string {
  return t.startsWith('#') || t === '||' || t === '&&' || t === ';' ? '${}' + t : t;
}

/** Text as a run of argument tokens (kernel command line): each token made safe. */
export function ipxeArgs(text: string): string {
  return oneLine(text)
    .split(/\s+/)
    .filter(Boolean)
    .map(ipxeToken)
    .join(' ');
}

/** Text that is only shown (echo): safe tokens, and no `${` left to expand. */
function shown(text: string): string {
  return ipxeArgs(text.replace(/\$\{/g, '$ {'));
}

/**
 * Image names for the initrds: the basename when it is plain and unique (the Linux EFI stub
 * and wimboot find initrds by these names), else made of safe characters and numbered.
 */
export function initrdNames(paths: string[]): string[] {
  const used = new Set<string>();
  return paths.map((p) => {
    let base = posix.basename(p).replace(/[^A-Za-z0-9._+-]/g, '_');
    if (!base || base === '.' || base === '..') base = 'initrd';
    let name = base;
    for (let n = 2; used.has(name); n++) {
      const dot = base.indexOf('.', 1);
      name = dot > 0 ? `${base.slice(0, dot)}-${n}${base.slice(dot)}` : `${base}-${n}`;
    }
    used.add(name);
    return name;
  });
}

export function fileUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/files/${encodePath(path.replace(/^\/+/, ''))}`;
}

export function renderBootScript({ profileName, profile, baseUrl, mac }: BootScriptInput): string {
  const name = shown(profileName);
  const who = mac ? ` for ${shown(mac)}` : '';
  if (!profile.kernel) return renderFailScript(`profile ${profileName} names no kernel`);
  const initrds = profile.initrd ?? [];
  const names = initrdNames(initrds);
  const args = [...names.map((n) => `initrd=${n}`), ipxeArgs(profile.cmdline ?? '')].filter(Boolean).join(' ');
  const lines = [
    '#!ipxe',
    `echo bootrelay: booting profile ${name}${who}`,
    `kernel ${fileUrl(baseUrl, profile.kernel)}${args ? ' ' + args : ''} || goto failed`,
    // --name only where iPXE's own name (the URL's basename) would not be the one in initrd=
    ...initrds.map((p, i) => `initrd ${names[i] !== posix.basename(p) ? `--name ${names[i]} ` : ''}${fileUrl(baseUrl, p)} || goto failed`),
    'boot || goto failed',
    ':failed',
    `echo bootrelay: boot of profile ${name} failed`,
    'sleep 10',
    'exit 1',
  ];
  return lines.join('\n') + '\n';
}

/** A script that explains why there is nothing to boot, then returns to the firmware. */
export function renderFailScript(message: string): string {
  return ['#!ipxe', `echo bootrelay: ${shown(message)}`, 'sleep 10', 'exit 1'].join('\n') + '\n';
}
