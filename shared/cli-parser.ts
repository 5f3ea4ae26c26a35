/**
 * The yargs set-up both command lines share (strict parsing, `-h`/`--help`, `-V`/`--version`, `completion`, scalar
 * options that refuse repetition); every mistake ends in one ERR_SPA_USAGE line, exit 2 (shared/cli.ts `die`). Its
 * own module so that importing shared/cli.ts does not load yargs (the client imports this one only when the fast
 * path of client/fast-args.ts does not apply).
 * @module
 */
import yargs, { type Argv } from 'yargs';
import { SpaError } from './errors.js';
import { die, packageVersion, usageError } from './cli.js';

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
