/**
 * relayctl entry point (esbuild → dist/relayctl.js). The program is
 * agent/cli/app.ts; this file binds it to the process.
 */
import { runRelayctl } from './app';

const interrupted = new Promise<void>((resolve) => {
  const on = () => resolve();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
});

// a closed pipe (relayctl clients | head) is not an error
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
});

runRelayctl(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, interrupted }).then(
  (code) => {
    process.exitCode = code;
    // watch's timers and the socket are closed; exit promptly even if a handle lingers
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`relayctl: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
