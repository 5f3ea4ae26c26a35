/**
 * What the two command lines (`spa-knock`, `spa-knockd`) share: the one way to fail (one line on stderr carrying
 * the error's code, exit status from the code), whole-number options, the package version, and a quiet exit when
 * stdout is closed early. The yargs set-up is in shared/cli-parser.ts, kept apart so that a plain knock, which
 * never needs yargs, does not load it (client cold start: client/fast-args.ts, docs/benchmarks.md).
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpaError, errorLine, exitCodeOf } from './errors.js';

/** A command-line mistake: exit 2 (ERR_SPA_USAGE). */
export function usageError(message: string): SpaError {
  return new SpaError('ERR_SPA_USAGE', message);
}

/** Print the one-line form of `e` (`prog: [CODE] message`) and exit with the status its code gives. */
export function die(prog: string, e: unknown): never {
  process.stderr.write(`${errorLine(prog, e)}\n`);
  process.exit(exitCodeOf(e));
}

/**
 * The log line of an internal error (a bug) in the daemon: the error goes under pino's `err` key, which pino
 * serialises with its type, message and stack (a message alone would lose where it happened).
 */
export function logInternalError(log: { fatal(obj: object, msg: string): void }, event: string, e: unknown): void {
  log.fatal({ event, err: e }, 'internal error; exiting (protected ports stay closed)');
}

/**
 * The version in package.json, found from this module's own location, so it is right both from the source
 * checkout (shared/cli.ts) and from the installed package (dist/shared/cli.js).
 */
export function packageVersion(from: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(from));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'spa-knock' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not here: one level up
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

/**
 * A closed stdout (`spa-knock … --dry-run | head -c1`) is not an error of ours: whatever had to happen has
 * happened (a knock was sent, or nothing was), so exit 0 quietly instead of an EPIPE stack trace.
 */
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

/** A whole number in [min, max] written in decimal digits only (`--port 0x16`, `22.0`, `1e3` are refused). */
export function intOption(name: string, text: string, min: number, max: number, what = ''): number {
  const n = /^[0-9]{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw usageError(`${name} must be a whole number ${min}-${max}${what}, not "${text}"`);
  return n;
}
