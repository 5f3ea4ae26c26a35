/**
 * The daemon's logger: pino, no transport thread. NDJSON on stdout when stdout is not a terminal (journald picks it
 * up under systemd: docs/systemd.md), one human-readable line per record through pino-pretty when it is a terminal;
 * `--log-format json|pretty` overrides the guess. pino-pretty runs in-process and synchronously (its prettyFactory
 * turns each NDJSON line into text), so a line logged just before exit is never lost.
 * Keys and raw packets are never passed to the logger; the redact list is a second line of defence (it applies
 * before either format is written).
 * @module
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger };

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

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

/** The format asked for, else pretty for a terminal and NDJSON for anything else (a pipe, a file, journald). */
export function logFormatFor(given: LogFormat | undefined, isTTY: boolean): LogFormat {
  return given ?? (isTTY ? 'pretty' : 'json');
}

/**
 * Where the logger writes: `out` (default: stdout, synchronously) as NDJSON, or through pino-pretty as one line per
 * record (`[time] LEVEL: event: message {fields}`), coloured when `colorize`.
 */
export function logDestination(
  format: LogFormat,
  opts: { out?: DestinationStream; colorize?: boolean } = {},
): DestinationStream {
  const out = opts.out ?? pino.destination({ dest: 1, sync: true });
  if (format === 'json') return out;
  const pretty = prettyFactory({
    colorize: opts.colorize ?? false,
    singleLine: true,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
    ignore: 'pid,hostname,svc,event',
    messageFormat: '{if event}{event}: {end}{msg}',
  });
  return { write: (line: string) => out.write(pretty(line)) };
}
