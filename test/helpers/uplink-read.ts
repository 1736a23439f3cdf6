/**
 * Bundled and run inside a namespace by test/integration/uplink-proc.test.ts (and by hand):
 * `node uplink-read.js [target…]` prints one JSON line per target with what the kernel reader
 * (agent/uplink/kernel.ts) and the monitor's UplinkReader (no ubus here: the kernel's view)
 * read from this namespace's /proc and /sys. An empty target means "no target" (default route).
 */
import { readKernelUplink } from '../../agent/uplink/kernel';
import { UplinkReader } from '../../agent/uplink/status';

async function main(): Promise<void> {
  for (const t of process.argv.slice(2)) {
    const target = t || undefined;
    const kernel = await readKernelUplink(target);
    const reader = await new UplinkReader({ target }).read();
    process.stdout.write(JSON.stringify({ target: t, kernel, reader }) + '\n');
  }
}

void main();
