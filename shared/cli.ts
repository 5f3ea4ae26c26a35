/**
 * What the two command lines (`spa-knock`, `spa-knockd`) share: the yargs set-up (strict parsing, `-h`/`--help`,
 * `-V`/`--version`, `completion`, scalar options that refuse repetition), the one way to fail (one line on stderr
 * carrying the error's code, exit status from the code) and a quiet exit when stdout is closed early.
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
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

/** yargs' own messages, rewritten to name the option as it is typed. */
function usageText(msg: string, needs: string | undefined): string {
  if (needs !== undefined && msg.startsWith('Not enough non-option arguments')) return `${needs} is missing`;
  const following = /^Not enough arguments following: (.+)$/.exec(msg);
  if (following) return `${optionName(following[1] ?? '')} needs a value`;
  const missing = /^Missing required arguments?: (.+)$/.exec(msg);
  if (missing) return `${(missing[1] ?? '').split(', ').map(optionName).join(', ')} is required`;
  return msg;
}

function optionName(key: string): string {
  return key.length === 1 ? `-${key}` : `--${key}`;
}

/**
 * Options given twice, when they may be given once. yargs collects a repeated option into an array; only the
 * names in `repeatable` may be arrays. Checked on the kebab-case keys (yargs adds camelCase copies).
 */
function repeatedScalars(argv: Record<string, unknown>, repeatable: ReadonlySet<string>): string[] {
  return Object.keys(argv).filter(
    (k) => k !== '_' && k !== '$0' && !/[A-Z]/.test(k) && !repeatable.has(k) && Array.isArray(argv[k]),
  );
}

/**
 * A yargs parser with the shared behaviour. Every mistake ends in `die(prog, SpaError('ERR_SPA_USAGE', …))`,
 * exit 2, one line; a SpaError thrown by a command handler keeps its own code; anything else is an internal error.
 * `repeatable` names the options that may be given more than once (e.g. `open`); `needs` names the positional
 * argument a command cannot do without (e.g. `HOST`).
 */
export function cliParser(
  prog: string,
  argv: readonly string[],
  opts: { usage: string; repeatable?: readonly string[]; needs?: string },
): Argv {
  const repeatable = new Set(opts.repeatable ?? []);
  return yargs([...argv])
    .scriptName(prog)
    .locale('en')
    .usage(opts.usage)
    .strict()
    .help()
    .alias('help', 'h')
    .version(packageVersion())
    .alias('version', 'V')
    .completion('completion', 'print a bash/zsh completion script (e.g. >> ~/.bashrc)')
    .check((a) => {
      const twice = repeatedScalars(a as Record<string, unknown>, repeatable);
      if (twice.length > 0) throw usageError(`${twice.map(optionName).join(', ')} may be given only once`);
      return true;
    }, true)
    .fail((msg: string | undefined, err: Error | undefined) => {
      if (err instanceof SpaError) die(prog, err);
      // yargs' own parse errors (YError) are command-line mistakes, like the messages it passes without an error
      if (err && err.name !== 'YError') die(prog, err);
      die(prog, usageError(`${usageText(msg || err?.message || 'bad command line', opts.needs)} (see ${prog} --help)`));
    });
}

/** A whole number in [min, max] written in decimal digits only (`--port 0x16`, `22.0`, `1e3` are refused). */
export function intOption(name: string, text: string, min: number, max: number, what = ''): number {
  const n = /^[0-9]{1,10}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw usageError(`${name} must be a whole number ${min}-${max}${what}, not "${text}"`);
  return n;
}
