/**
 * The Secure Boot chain as a loader: `boot.loaders["uefi-x64"] = { shim, grub }`.
 * The firmware is handed `shim`; shim asks for its second stage and a few optional
 * files by fixed names, in its own directory; GRUB asks for its config and module
 * lists below its prefix `/grub`. mapChainRequest says, for a requested path, what
 * the relay answers. Pure.
 *
 * Seen on the wire (shared/lab README "Secure Boot chain", Debian 12 binaries):
 *   shim:  <dir>/revocations_sku.efi, <dir>/revocations_sbat.efi, <dir>/shim_certificate_0.efi
 *          (missing is fine), then <dir>/grubx64.efi (relative to the boot file's directory;
 *          at the root when the DHCP `file` field was empty)
 *   GRUB:  /grub/x86_64-efi/{command,fs,crypto,terminal}.lst (missing is fine), /grub/grub.cfg,
 *          then what the config names
 * A missing file is refused at once: GRUB retries an unanswered request for ~32 s, and the
 * upstream's 404 would cost a round trip (or its timeout) per probe.
 */

export interface ChainLoader {
  /** path of the signed shim relative to upstream.url: the boot file */
  shim: string;
  /** path of the signed GRUB (Debian: grubnetx64.efi.signed) relative to upstream.url */
  grub: string;
  /** how GRUB fetches the kernel and initrds: tftp (default; Debian's signed GRUB has no http module) or http */
  fetch: 'tftp' | 'http';
}

export type ChainRequest =
  /** serve this chain's GRUB */
  | { kind: 'grub'; chain: ChainLoader }
  /** the generated grub.cfg for the asking client */
  | { kind: 'config'; chain: ChainLoader }
  /** a probe for a file the chain does without: not found, at once */
  | { kind: 'missing'; why: string }
  /** the generated grub.cfg telling that a step failed (grub/bootrelay-failed/<step>): not found, at once */
  | { kind: 'failed'; step: 'kernel' | 'initrd' | 'boot' };

/** shim's second stage, per architecture (shim's DEFAULT_LOADER) */
const SECOND_STAGE = /^grub(x64|ia32|aa64|arm|riscv64)\.efi$/i;
/** optional files shim looks for next to itself (shim 15.7+: revocations_*.efi, shim_certificate*.efi) */
const SHIM_OPTIONAL = /^(revocations(_[a-z0-9]+)?\.efi|shim_certificate(_\d+)?\.efi)$/i;
/** MokManager and the fallback loader: never part of a network boot */
const SHIM_TOOLS = /^(mm|fb)(x64|ia32|aa64|arm|riscv64)\.efi$/i;

function dirOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

function split(p: string): { dir: string; base: string } {
  const i = p.lastIndexOf('/');
  return i < 0 ? { dir: '', base: p } : { dir: p.slice(0, i), base: p.slice(i + 1) };
}

/**
 * What a requested path (normalised: relative, `/` separators) is for the configured
 * chains; undefined when it is none of theirs (served from the upstream as usual).
 */
export function mapChainRequest(chains: readonly ChainLoader[], path: string): ChainRequest | undefined {
  if (chains.length === 0) return undefined;
  const { dir, base } = split(path);
  for (const c of chains) {
    if (path === c.shim || path === c.grub) return undefined; // the files themselves
  }
  // shim's names, in the shim's own directory (or at the root: shim without the DHCP `file` field)
  const inShimDir = chains.find((c) => dirOf(c.shim) === dir) ?? (dir === '' ? chains[0] : undefined);
  if (inShimDir) {
    if (SECOND_STAGE.test(base)) return { kind: 'grub', chain: inShimDir };
    if (SHIM_OPTIONAL.test(base)) return { kind: 'missing', why: 'optional shim file (revocations, certificate)' };
    if (SHIM_TOOLS.test(base)) return { kind: 'missing', why: 'MokManager/fallback: not part of a network boot' };
    if (base.toLowerCase() === 'grub.cfg') return { kind: 'config', chain: inShimDir }; // a GRUB whose prefix is its own directory
  }
  // GRUB's prefix: /grub (Debian, Ubuntu), or <shim dir>/grub
  const grubDirOf = chains.find((c) => path.startsWith(`${dirOf(c.shim) ? dirOf(c.shim) + '/' : ''}grub/`));
  const failed = /^grub\/bootrelay-failed\/(kernel|initrd|boot)$/.exec(path);
  if (failed) return { kind: 'failed', step: failed[1] as 'kernel' | 'initrd' | 'boot' };
  if (path.startsWith('grub/') || grubDirOf) {
    const chain = grubDirOf ?? chains[0]!;
    if (base === 'grub.cfg' && (dir === 'grub' || dir === `${dirOf(chain.shim)}/grub`)) return { kind: 'config', chain };
    return { kind: 'missing', why: 'GRUB module list, per-client config or other optional GRUB file' };
  }
  return undefined;
}

/** Every file name a client may ask for under a chain (for docs and the tracker): shim, grub, the config. */
export function isChainFile(chains: readonly ChainLoader[], path: string): 'loader' | undefined {
  const p = path.replace(/^\/+/, '');
  if (chains.some((c) => c.shim === p || c.grub === p)) return 'loader';
  const m = mapChainRequest(chains, p);
  return m && (m.kind === 'grub' || m.kind === 'config') ? 'loader' : undefined;
}
