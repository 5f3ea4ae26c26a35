/**
 * The daemon's logger: pino, NDJSON on stdout (journald picks it up under systemd), no transport thread.
 * Keys and raw packets are never passed to it; the redact list is a second line of defence.
 * @module
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export function createLogger(level: string, dest?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { svc: 'spa-knockd' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['key', '*.key', 'keys', '*.keys', 'raw', '*.raw', 'packet', '*.packet'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    dest ?? pino.destination({ dest: 1, sync: true }),
  );
}
