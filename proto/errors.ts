/** Every error the relay raises on purpose carries a stable `code`. */
export class RelayError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A packet that cannot be decoded: `offset` is where the decoder gave up. */
export class DecodeError extends RelayError {
  constructor(
    readonly reason: string,
    message: string,
    readonly offset = -1,
  ) {
    super('EDECODE', message);
  }
}

/** One problem in a config file, named by its path (`dhcp.range[1]`). */
export class ConfigError extends RelayError {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly got: unknown,
  ) {
    super('ECONFIG', `${path}: expected ${expected}, got ${formatGot(got)}`);
  }
}

export class UpstreamError extends RelayError {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly url: string,
    /** the transport failure behind it (ECONNREFUSED, ENETUNREACH, ETIMEDOUT, ECONNRESET …), when there was one */
    readonly transportCode?: string,
  ) {
    super(status === 404 ? 'ENOENT' : 'EUPSTREAM', message);
  }
}

/** A boot-file name that is refused (escape, absolute path, NUL …). */
export class PathError extends RelayError {
  constructor(message: string) {
    super('EPATH', message);
  }
}

/** A TFTP transfer that failed; `tftpCode` is the RFC 1350 error code to send. */
export class TransferError extends RelayError {
  constructor(
    readonly tftpCode: number,
    message: string,
  ) {
    super('ETRANSFER', message);
  }
}

export function formatGot(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? s.slice(0, 77) + '...' : s;
  } catch {
    return String(v);
  }
}
