import pino, { type Logger } from 'pino';

export type { Logger };

/** Root logger: JSON lines on stdout (no transports: they do not bundle and cost a thread on the router). */
export function createLogger(opts: { level?: string; agentId?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: opts.agentId ? { agentId: opts.agentId } : {},
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous: lines stay in order and nothing is left in a buffer at process.exit
    // (an async SonicBoom lost or reordered the last lines on a loaded machine). The
    // agent logs per boot step, not per packet, so a blocking write costs nothing measurable.
    opts.destination ?? pino.destination({ fd: 1, sync: true }),
  );
}

/** A logger that drops everything (unit tests). */
export const silentLogger: Logger = pino({ level: 'silent' });
