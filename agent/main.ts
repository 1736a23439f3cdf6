/**
 * bootrelay: the process entry (esbuild → dist/bootrelay.js).
 *
 *   bootrelay --config FILE [--check]     run (or only validate the config)
 *   bootrelay --version | --help
 *
 * Reads and validates the config, starts the Agent (agent.ts), and turns signals into
 * its calls: SIGTERM/SIGINT stop everything and exit 0; SIGHUP reloads the config.
 * A bad config at start is one line per issue on stderr and exit 2; a port that
 * cannot be bound is one line and exit 1.
 */
import './v8-flags'; // first: V8 tiering before any other module runs
import { resolve } from 'node:path';
import type { RelayEvent } from '../proto/events';
import { VERSION } from '../proto/version';
import { Agent, FatalError } from './agent';
import type { ClientState } from './clients/record';
import { loadConfig } from './config/load';
import { createLogger, type Logger } from './log';

export { Agent, FatalError } from './agent';

const USAGE = `usage: bootrelay --config FILE [--check]
       bootrelay --version

  --config FILE   the agent's config (JSON, or OpenWrt UCI text)
  --check         validate the config and exit (0 ok, 2 bad)
  --version       print the version
`;

interface Args {
  config?: string;
  check: boolean;
  version: boolean;
  help: boolean;
}

function parseArgv(argv: string[]): Args {
  const a: Args = { check: false, version: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--config' || x === '-c') {
      const v = argv[++i];
      if (!v) throw new FatalError('--config needs a file', 2);
      a.config = v;
    } else if (x.startsWith('--config=')) a.config = x.slice(9);
    else if (x === '--check') a.check = true;
    else if (x === '--version' || x === '-V') a.version = true;
    else if (x === '--help' || x === '-h') a.help = true;
    else throw new FatalError(`unknown argument ${JSON.stringify(x)}`, 2);
  }
  return a;
}

function flushAndExit(log: Logger | undefined, code: number): void {
  const exit = () => process.exit(code);
  if (!log) return exit();
  try {
    log.flush((err) => {
      void err;
      exit();
    });
    setTimeout(exit, 1000).unref();
  } catch {
    exit();
  }
}

export async function main(argv: string[]): Promise<void> {
  let args: Args;
  try {
    args = parseArgv(argv);
  } catch (e) {
    process.stderr.write(`bootrelay: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.version) {
    process.stdout.write(`bootrelay ${VERSION}\n`);
    return;
  }
  if (!args.config) {
    process.stderr.write(`bootrelay: --config FILE is required\n${USAGE}`);
    process.exit(2);
  }
  args.config = resolve(args.config);
  const r = loadConfig(args.config);
  if (!r.ok) {
    for (const i of r.issues) process.stderr.write(`bootrelay: config: ${i.message}\n`);
    process.exit(2);
  }
  if (args.check) {
    for (const w of r.warnings) process.stderr.write(`bootrelay: config: warning: ${w}\n`);
    process.stdout.write(`bootrelay: config ${args.config} ok\n`);
    return;
  }

  const log = createLogger({ level: r.config.log.level, agentId: r.config.agentId });
  for (const w of r.warnings) log.warn(`config: ${w}`);
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception (survived)'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection (survived)'));

  const agent = new Agent(r.config, args.config, log);
  try {
    await agent.start();
  } catch (e) {
    const msg = e instanceof FatalError ? e.message : `startup failed: ${(e as Error).stack ?? e}`;
    log.fatal(msg);
    process.stderr.write(`bootrelay: ${msg}\n`);
    flushAndExit(log, e instanceof FatalError ? e.exitCode : 1);
    return;
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => {
      log.warn('services did not stop within 5 s: exiting anyway');
      flushAndExit(log, 0);
    }, 5000);
    force.unref();
    agent.stop().then(
      () => {
        log.info('stopped');
        flushAndExit(log, 0);
      },
      (err) => {
        log.error({ err }, 'stop failed');
        flushAndExit(log, 0);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading config');
    void agent.reload();
  });
}

export type { ClientState, RelayEvent };

const isEntry = typeof require !== 'undefined' && typeof module !== 'undefined' && require.main === module;
if (isEntry) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`bootrelay: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  });
}
