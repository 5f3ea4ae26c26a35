/**
 * The plain knock's command line without yargs (client cold start, docs/benchmarks.md): `spa-knock HOST` with the
 * knock options only, parsed by node:util `parseArgs`. Anything this does not recognise exactly — a command word
 * (`keygen`, `import`, `proxy`, `sequence`, `codes`, `completion`), `--help`/`--version`, an unknown or camelCase option, a scalar option
 * given twice, a value that starts with `-`, `--`, no HOST or two — returns undefined, and client/cli.ts hands the
 * whole command line to the yargs parser, which accepts it or reports the mistake exactly as before. So this path
 * only ever accepts command lines that yargs accepts too, with the same meaning (test/client/fast-args.test.ts).
 * @module
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { GivenArgs } from './profile.js';

const STRINGS = ['key', 'open', 'port', 'duration', 'allow-ip', 'format', 'sequence', 'delay', 'wait', 'timeout'];
const BOOLEANS = ['close', 'dry-run', 'json'];
/** Every command word of client/cli.ts (test/client/fast-args.test.ts checks the list against it). */
export const COMMANDS: ReadonlySet<string> = new Set(['keygen', 'import', 'proxy', 'sequence', 'codes', 'completion']);

const options: NonNullable<ParseArgsConfig['options']> = {
  ...Object.fromEntries(STRINGS.map((n) => [n, { type: 'string' as const, multiple: true }])),
  ...Object.fromEntries(BOOLEANS.map((n) => [n, { type: 'boolean' as const, multiple: true }])),
  ipv4: { type: 'boolean', short: '4', multiple: true },
  ipv6: { type: 'boolean', short: '6', multiple: true },
};

interface Parsed {
  readonly values: Record<string, (string | boolean)[] | undefined>;
  readonly positionals: string[];
  readonly tokens: readonly { kind: string; value?: string | undefined; inlineValue?: boolean | undefined }[];
}

/** The knock arguments of a plain `spa-knock HOST [options]`, or undefined: let yargs parse it. */
export function fastKnockArgs(argv: readonly string[]): GivenArgs | undefined {
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true, tokens: true }) as Parsed;
  } catch {
    return undefined; // unknown option, missing value, a value that looks like an option, …
  }
  const { values, positionals, tokens } = parsed;
  if (tokens.some((t) => t.kind === 'option-terminator')) return undefined;
  const host = positionals[0];
  if (positionals.length !== 1 || host === undefined || host === '' || COMMANDS.has(host)) return undefined;
  const v = values;
  for (const [name, list] of Object.entries(v))
    if (name !== 'open' && list !== undefined && list.length > 1) return undefined;
  // an option value must not be empty or start with '-' (yargs reads those differently); booleans are never negated
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (t.value !== undefined && (t.value === '' || t.value.startsWith('-'))) return undefined;
  }
  const str = (n: string): string | undefined => {
    const x = v[n]?.[0];
    return typeof x === 'string' ? x : undefined;
  };
  const flag = (n: string): boolean => v[n]?.[0] === true;
  return {
    host,
    key: str('key'),
    open: (v['open'] ?? []).map(String),
    port: str('port'),
    duration: str('duration') ?? '0',
    allowIp: str('allow-ip'),
    close: flag('close'),
    dryRun: flag('dry-run'),
    json: flag('json'),
    ipv4: flag('ipv4'),
    ipv6: flag('ipv6'),
    sequence: str('sequence'),
    delay: str('delay'),
    format: str('format'),
    wait: str('wait'),
    timeout: str('timeout'),
  };
}
