/**
 * ChainSource: a FileSource in front of the cache that answers the Secure Boot
 * chain's names (relay/boot/chain.ts) for TFTP and HTTP alike:
 *   shim's `grubx64.efi` (any directory shim asks in) → the configured GRUB,
 *   GRUB's `/grub/grub.cfg` → generated from the asking client's profile,
 *   optional probes → not found at once (never an upstream round trip).
 * A profile GRUB cannot boot (an iPXE script) still gets a config, one that says so on
 * the client's console; the tracker says it in the client's state.
 * Everything else goes to the inner source unchanged.
 */
import { Readable } from 'node:stream';
import { UpstreamError } from '../../proto/errors';
import type { FileSource, OpenedFile, OpenOptions } from '../source';
import { mapChainRequest, type ChainLoader } from './chain';
import { grubConfig, type GrubProfile } from './grub-cfg';

export interface ChainContext {
  chains: readonly ChainLoader[];
  /** the relay's LAN address: GRUB's TFTP (or HTTP) server */
  server: string;
  httpPort: number;
  resolveProfile: (mac: string | undefined) => { name: string; profile: GrubProfile } | undefined;
}

export class ChainSource implements FileSource {
  constructor(
    readonly inner: FileSource,
    private readonly ctx: () => ChainContext,
  ) {}

  async open(path: string, opts: OpenOptions = {}): Promise<OpenedFile> {
    const ctx = this.ctx();
    const m = mapChainRequest(ctx.chains, path);
    if (!m) return this.inner.open(path, opts);
    switch (m.kind) {
      case 'missing':
        throw new UpstreamError(`${path}: ${m.why} (not provided by the Secure Boot chain)`, 404, path);
      case 'failed':
        throw new UpstreamError(`${path}: GRUB could not load the ${m.step}`, 404, path);
      case 'grub': {
        const f = await this.inner.open(m.chain.grub, opts);
        return { ...f, path };
      }
      case 'config':
        return this.config(path, m.chain, ctx, opts);
    }
  }

  private config(path: string, chain: ChainLoader, ctx: ChainContext, opts: OpenOptions): OpenedFile {
    const r = ctx.resolveProfile(opts.mac);
    const cfg = r
      ? grubConfig({ name: r.name, profile: r.profile, server: ctx.server, fetch: chain.fetch, httpPort: ctx.httpPort, mac: opts.mac })
      : grubConfig({ name: '(none)', profile: {}, server: ctx.server, fetch: chain.fetch, httpPort: ctx.httpPort, mac: opts.mac });
    const body = Buffer.from(cfg.text);
    const start = opts.start ?? 0;
    const end = Math.min(opts.end ?? body.length - 1, body.length - 1);
    return { path, size: body.length, stream: Readable.from([body.subarray(start, end + 1)]), cache: 'bypass' };
  }
}
