/**
 * The child side of test/helpers/runner.ts, for the service runners in test/integration/fixtures
 * (bundled with esbuild, started with `ip netns exec`): one JSON object per stdout line.
 */

/** Writes one JSON line on stdout. */
export const out = (o: unknown): void => {
  process.stdout.write(JSON.stringify(o) + '\n');
};

/**
 * Starts `svc` and prints `{ready: true, ...ready()}` (exit 3 with the error on stderr when it
 * cannot start); answers each stdin line that names one of `commands` with what it returns;
 * on SIGTERM stops `svc` and exits 0.
 */
export function runService(svc: { start(): Promise<void>; stop(): Promise<void> }, ready: () => Record<string, unknown>, commands: Record<string, () => Record<string, unknown>>): void {
  void (async () => {
    try {
      await svc.start();
    } catch (e) {
      process.stderr.write(`start failed: ${(e as Error).message}\n`);
      process.exit(3);
    }
    out({ ready: true, ...ready() });
  })();

  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const cmd = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (Object.hasOwn(commands, cmd)) out(commands[cmd]!());
    }
  });

  process.on('SIGTERM', () => {
    void svc.stop().then(() => process.exit(0));
  });
}
