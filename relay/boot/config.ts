/** What to boot (config section `boot`): read through relay/boot/plan.ts, never field by field. */
export interface ProfileConfig {
  kernel?: string;
  initrd?: string[];
  cmdline?: string;
  /** An upstream iPXE script served through the relay instead of a generated one. */
  script?: string;
  /** optional sha256 per path (hex) for integrity checks */
  sha256?: Record<string, string>;
}

export interface BootConfig {
  /** arch key (bios, uefi-x64, uefi-arm64, uefi-ia32, …) → loader path(s) relative to upstream.url; first is preferred. */
  loaders: Record<string, string[]>;
  defaultProfile: string;
  profiles: Record<string, ProfileConfig>;
  /** mac → profile */
  assign: Record<string, string>;
}
