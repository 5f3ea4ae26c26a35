/**
 * `spa-knock codes --key FILE [--count 20] [--start 0] [--nc HOST] [--port 62201] [--json]`: print numbered one-time
 * codes of a key (shared/codes.ts, docs/codes.md) for apps that can only send fixed bytes. The client keeps no state:
 * the user keeps the list, sends the codes in order, and asks for the next ones with `--start` (the server accepts
 * a code up to its `codes_window` ahead of the last one used, and never one at or below it).
 * @module
 */
import { usageError, intOption } from '../shared/cli.js';
import { CODE_COUNTER_LIMIT, codeKeyOf, codeText } from '../shared/codes.js';
import { DEFAULT_PORT } from '../shared/constants.js';
import { readKeyFile } from '../shared/keyfile.js';

/** Most codes one call prints. */
export const MAX_CODES_PRINTED = 1000;
export const DEFAULT_CODES_PRINTED = 20;

export interface CodesArgs {
  readonly key: string;
  readonly count: string | undefined;
  readonly start: string | undefined;
  /** Show the `nc` line for this server (printed as given: never resolved). */
  readonly nc: string | undefined;
  readonly port: string | undefined;
  readonly json: boolean;
}

/** A host name or address literal, printed into a shell line: letters, digits and `. : - _` only. */
const HOST_RE = /^[A-Za-z0-9._:-]{1,253}$/;

export interface CodeList {
  readonly start: number;
  readonly codes: readonly { readonly counter: number; readonly code: string }[];
  /** How to send one with netcat (the first code's). */
  readonly send: string;
}

export function codeList(a: CodesArgs): CodeList {
  const count =
    a.count === undefined ? DEFAULT_CODES_PRINTED : intOption('--count', a.count, 1, MAX_CODES_PRINTED, ' codes');
  // intOption reads at most 10 digits; counters go further, and must stay below the limit with the whole list
  const last = CODE_COUNTER_LIMIT - count;
  const start = a.start === undefined ? 0 : /^[0-9]{1,15}$/.test(a.start) ? Number(a.start) : Number.NaN;
  if (!Number.isSafeInteger(start) || start > last)
    throw usageError(`--start must be a whole number 0-${last} (with --count ${count}), not "${a.start}"`);
  const port = a.port === undefined ? DEFAULT_PORT : intOption('--port', a.port, 1, 65535);
  if (a.nc !== undefined && !HOST_RE.test(a.nc))
    throw usageError(`--nc "${a.nc.slice(0, 40)}" is not a host name or address (letters, digits, . : - _)`);
  const key = codeKeyOf(readKeyFile(a.key));
  const codes = Array.from({ length: count }, (_, i) => ({ counter: start + i, code: codeText(key, start + i) }));
  const first = codes[0]?.code ?? '';
  return { start, codes, send: `printf %s ${first} | nc -u -w1 ${a.nc ?? 'SERVER'} ${port}` };
}

/** Print the list: numbered lines after `#` comments (how to send one, what to keep), or one JSON object. */
export function printCodes(a: CodesArgs): void {
  const l = codeList(a);
  if (a.json) {
    process.stdout.write(`${JSON.stringify({ start: l.start, codes: l.codes, send: l.send })}\n`);
    return;
  }
  const end = l.start + l.codes.length - 1;
  const width = String(end).length;
  const out = [
    `# one-time codes ${l.start}-${end} of ${a.key}: each opens your accesses once, for the address it is sent from.`,
    '# Use them in order and keep this list: the server takes a code only if it is above the last one used (and at',
    `# most codes_window ahead); for more, run again with --start ${end + 1}. Anyone who reads an unused code can use it.`,
    `# send one: ${l.send}`,
    ...l.codes.map((c) => `${String(c.counter).padStart(width)}  ${c.code}`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}
