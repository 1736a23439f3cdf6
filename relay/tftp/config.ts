/** The TFTP service's options (config section `tftp`). */
export interface TftpConfig {
  port: number;
  /** Largest blksize we accept (RFC 2348); default 1468 (Ethernet MTU minus headers). */
  maxBlksize: number;
  maxWindowsize: number;
  /** seconds (RFC 2349) when the client names none */
  timeout: number;
  retries: number;
  maxTransfers: number;
  maxTransfersPerClient: number;
}
