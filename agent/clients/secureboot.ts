/**
 * Secure Boot, seen from the relay: the words for a UEFI client whose firmware
 * fetched its loader completely and then did not run it, and the fields a booted
 * system reports on /booted. Pure.
 *
 * What a refusal looks like on the wire (shared/lab README, OVMF with Secure Boot
 * enforced, unsigned ipxe.efi): the firmware downloads the whole file, prints
 * "Access Denied" and goes on to its next boot option at once: a DHCPv6 SOLICIT
 * (PXEv6) 0.05 s later, a UEFI HTTP Boot DISCOVER (HTTPClient, arch 16) about 64 s
 * later. No further request for this boot ever reaches the relay. A loader that
 * runs asks for something within seconds (iPXE: its own DHCP; shim: its optional
 * files and grubx64.efi), so silence after a complete loader, or a fresh firmware
 * DISCOVER, is the refusal's signature.
 */

/** How long after a complete loader transfer silence means "refused" (iPXE's own DHCP comes within ~10 s under TCG). */
export const REFUSED_LOADER_SILENCE_MS = 30_000;

export interface RefusedLoader {
  /** the loader path the firmware fetched */
  file: string;
  /** the client's arch key (uefi-x64 …) */
  arch: string | null;
  /** the loader is a Secure Boot chain's shim */
  signedChain: boolean;
  /** what showed it: the firmware started over, or nothing came */
  how: 'restart' | 'silence';
  /** seconds between the loader transfer and the sign */
  seconds: number;
  /** the loader after it in boot.loaders[arch], which the relay offers this client from now on */
  next?: string;
}

/** The diagnosis in words (client state error, explain, MQTT, dashboard). */
export function refusedLoaderMessage(r: RefusedLoader): string {
  const after = r.how === 'restart' ? `started over ${r.seconds} s later` : `asked for nothing more in ${r.seconds} s`;
  const next = r.next ? `; from its next network boot on it is offered ${r.next}` : '';
  if (r.signedChain) {
    return `the firmware fetched all of the shim ${r.file} and then ${after} without running it: with Secure Boot on it most likely refused the shim (its signature is not in this firmware's db, or it is revoked by dbx/SBAT)${next}`;
  }
  return `the firmware fetched all of ${r.file} and then ${after} without running it: Secure Boot is most likely on and refused this unsigned loader${next}`;
}

/** What to configure, for `explain` and the dashboard. */
export function refusedLoaderHint(r: Pick<RefusedLoader, 'arch' | 'signedChain'>): string {
  const arch = r.arch ?? 'uefi-x64';
  if (r.signedChain) {
    return `Use a current Microsoft-signed shim with its vendor's signed GRUB (e.g. Debian's shim-signed and grub-efi-amd64-signed) in boot.loaders["${arch}"], enroll the vendor's key (MOK), or turn Secure Boot off in the firmware setup.`;
  }
  return `Give this architecture the signed chain instead (it boots with Secure Boot on and off): boot.loaders["${arch}"] = {"shim": "sb/shimx64.efi", "grub": "sb/grubx64.efi"} with a Microsoft-signed shim and its vendor's signed GRUB and kernel; or turn Secure Boot off in the firmware setup.`;
}

/** `secureboot=1|0|true|false|on|off` from /booted; undefined for anything else. */
export function parseSecureBootFlag(v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v;
  if (typeof v !== 'string' && typeof v !== 'number') return undefined;
  const s = String(v).trim().toLowerCase();
  if (['1', 'true', 'on', 'yes', 'enabled'].includes(s)) return true;
  if (['0', 'false', 'off', 'no', 'disabled'].includes(s)) return false;
  return undefined;
}

/** The generated grub.cfg told the relay that a step failed (grub/bootrelay-failed/<step>). */
export function grubFailure(step: 'kernel' | 'initrd' | 'boot', profile: { kernel?: string; initrd?: string[] } | undefined): string {
  if (step === 'kernel') {
    return `GRUB refused the kernel ${profile?.kernel ?? ''}: under Secure Boot it must be signed by a key the shim trusts (a kernel of the same vendor as the shim and GRUB), or it did not load`.replace('  ', ' ');
  }
  if (step === 'initrd') return `GRUB could not load the initrd ${(profile?.initrd ?? []).join(', ')}`.trim();
  return 'GRUB could not start the kernel it loaded (boot failed)';
}
