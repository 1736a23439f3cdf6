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

export function fileUrl(baseUrl: string, path: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/files/${encodePath(path.replace(/^\/+/, ''))}`;
}

export function renderBootScript({ profileName, profile, baseUrl, mac }: BootScriptInput): string {
  const name = oneLine(profileName);
  const who = mac ? ` for ${mac}` : '';
  if (!profile.kernel) return renderFailScript(`profile ${name} names no kernel`);
  const initrds = profile.initrd ?? [];
  const args = [...initrds.map((p) => `initrd=${posix.basename(p)}`), oneLine(profile.cmdline ?? '')].filter(Boolean).join(' ');
  const lines = [
    '#!ipxe',
    `echo bootrelay: booting profile ${name}${who}`,
    `kernel ${fileUrl(baseUrl, profile.kernel)}${args ? ' ' + args : ''} || goto failed`,
    ...initrds.map((p) => `initrd ${fileUrl(baseUrl, p)} || goto failed`),
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
  return ['#!ipxe', `echo bootrelay: ${oneLine(message)}`, 'sleep 10', 'exit 1'].join('\n') + '\n';
}
