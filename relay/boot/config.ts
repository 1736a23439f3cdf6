import type { DhcpOptionsConfig } from '../dhcp/config';
import type { ChainLoader } from './chain';
/** What to boot (config section `boot`): read through relay/boot/plan.ts, never field by field. */
export interface ProfileConfig {
  kernel?: string;
  initrd?: string[];
  cmdline?: string;
  /** An upstream iPXE script served through the relay instead of a generated one. */
  script?: string;
  /** optional sha256 per path (hex) for integrity checks */
  sha256?: Record<string, string>;
  /** extra DHCP options for clients booting this profile (over dhcp.options) */
  dhcpOptions?: DhcpOptionsConfig;
  /** a PXE boot menu for BIOS PXE ROMs (option 43 sub-options 6, 8, 9, 10) */
  pxeMenu?: PxeMenuConfig;
}

export interface PxeMenuConfig {
  prompt: string;
  /** seconds (0–255; 255 waits for a key) */
  timeout: number;
  /** in order; `loader` boots that path over TFTP, `"local"` hands back to the BIOS */
  items: Array<{ label: string; loader: string | 'local' }>;
}

/** A rule choosing a profile (the first whose every given field matches wins; before defaultProfile). */
export interface MatchRuleConfig {
  profile: string;
  /** MAC pattern: hex digits with `*` for any byte or `?` for a digit (52:54:00:*:*:*) */
  mac?: string;
  /** option 60 glob (PXEClient:Arch:00007*) */
  vendorClass?: string;
  /** option 77 glob (iPXE) */
  userClass?: string;
  /** option 93 code */
  arch?: number;
  /** option 97 GUID (case-insensitive) */
  uuid?: string;
}

export interface BootConfig {
  /** arch key (bios, uefi-x64, uefi-arm64, uefi-ia32, …) → loader path(s) relative to upstream.url; first is preferred. */
  loaders: Record<string, string[]>;
  defaultProfile: string;
  profiles: Record<string, ProfileConfig>;
  /** mac → profile */
  assign: Record<string, string>;
  /** rules tried in order after assign, before defaultProfile */
  match?: MatchRuleConfig[];
  /**
   * Secure Boot chains among the loaders, by shim path (the path listed in `loaders`):
   * the firmware gets the shim, the relay serves the GRUB and a generated grub.cfg (relay/boot/chain.ts).
   */
  chains?: Record<string, ChainLoader>;
}
