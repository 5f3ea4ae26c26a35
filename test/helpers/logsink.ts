/** Collect a pino logger's NDJSON lines as objects (as pino's own test/helper.js sink() does). */
import { createLogger, type Logger } from '../../server/log.js';

export interface LogSink {
  readonly log: Logger;
  readonly lines: Record<string, unknown>[];
  readonly raw: string[];
  events(name: string): Record<string, unknown>[];
}

export function logSink(level = 'debug'): LogSink {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(level, {
    write(s: string) {
      raw.push(s);
      lines.push(JSON.parse(s) as Record<string, unknown>);
    },
  });
  return { log, lines, raw, events: (name) => lines.filter((l) => l.event === name) };
}
