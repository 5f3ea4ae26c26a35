/**
 * Edits of the daemon's config text for `spa-knockd add-client` / `remove-client` (server/clients-command.ts): a
 * `[[client]]` block appended, or exactly one client's block removed, as text (shared/toml-edit.ts), so every other
 * line — comments, layout — stays as it was. Each result is checked twice before anyone writes it: its TOML must
 * differ from the old one by exactly that client (nothing else moved, whatever the text scan saw), and it must pass
 * the daemon's own config parser (server/config.ts) and mode rules. Pure but for the key files the parser reads.
 * @module
 */
import { parse as parseToml, TomlDate } from 'smol-toml';
import { SpaError } from '../shared/errors.js';
import { appendBlock, removeBlock, tableBlocks, tomlString, tomlStringArray } from '../shared/toml-edit.js';
import { type Config, parseConfig } from './config.js';
import { checkConfigMode } from './config-file.js';

export interface NewClient {
  readonly name: string;
  /** Key line (`spak1_…`), inline; or */
  readonly key?: string;
  /** the key file that holds it (absolute path). Exactly one of the two. */
  readonly keyFile?: string;
  readonly open: readonly string[];
  /** Omitted: the config's default (any address). */
  readonly sources?: readonly string[];
  /** A TOML date or offset date-time literal, already checked (`2027-01-31`, `2027-01-31T18:00:00Z`). */
  readonly expires?: string;
  /** One comment line put above the block (without `# `). */
  readonly comment?: string;
}

const configError = (msg: string) => new SpaError('ERR_SPA_CONFIG', msg);

/** The `[[client]]` block of a new client, as text. */
export function clientBlock(c: NewClient): string {
  return [
    ...(c.comment !== undefined ? [`# ${c.comment.replace(/[\r\n]/g, ' ')}`] : []),
    '[[client]]',
    `name = ${tomlString(c.name)}`,
    c.keyFile !== undefined ? `key_file = ${tomlString(c.keyFile)}` : `key = ${tomlString(c.key ?? '')}`,
    `open = ${tomlStringArray(c.open)}`,
    ...(c.sources !== undefined ? [`sources = ${tomlStringArray(c.sources)}`] : []),
    ...(c.expires !== undefined ? [`expires = ${c.expires}`] : []),
    '',
  ].join('\n');
}

/** A value with TOML dates as text, for comparing two parsed documents. */
function plain(v: unknown): unknown {
  if (v instanceof TomlDate) return `date:${v.toISOString()}`;
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)] as const));
  return typeof v === 'bigint' ? `n:${v}` : v;
}

const json = (v: unknown) => JSON.stringify(plain(v));

const cannotEdit = (path: string) =>
  configError(
    `config ${path}: cannot edit it safely as text (a [[client]] header inside a multi-line string?); edit it by hand`,
  );

/** The parsed TOML of a text the config parser has accepted, or of an edit of it (unparsable: the edit is wrong). */
function tomlOf(text: string, path: string): Record<string, unknown> {
  try {
    return parseToml(text) as Record<string, unknown>;
  } catch {
    throw cannotEdit(path);
  }
}

const clientsOf = (doc: Record<string, unknown>): unknown[] =>
  Array.isArray(doc['client']) ? (doc['client'] as unknown[]) : [];

/**
 * The new text must be the old one with the client list changed as `expect` says, and nothing else; then a config
 * the daemon accepts (same parser, and the mode rules for a file of mode `mode`). Returns the parsed config.
 */
function checkEdit(
  oldText: string,
  newText: string,
  path: string,
  mode: number,
  expect: (clients: unknown[]) => unknown[],
): Config {
  const before = tomlOf(oldText, path);
  const after = tomlOf(newText, path);
  const { client: _a, ...restBefore } = before;
  const { client: _b, ...restAfter } = after;
  if (json(restAfter) !== json(restBefore) || json(clientsOf(after)) !== json(expect(clientsOf(before))))
    throw cannotEdit(path);
  const config = parseConfig(newText, path);
  checkConfigMode(path, mode, config);
  return config;
}

/** The config text with `c` appended as a `[[client]]` block, checked (see {@link checkEdit}). */
export function addClientText(
  text: string,
  path: string,
  mode: number,
  c: NewClient,
): { text: string; config: Config } {
  const old = parseConfig(text, path);
  if (old.clients.some((cl) => cl.name === c.name))
    throw configError(`config ${path}: a client "${c.name}" is already there (remove-client ${c.name} first)`);
  const next = appendBlock(text, clientBlock(c));
  const { comment: _, ...bare } = c;
  const added = tomlOf(clientBlock(bare), path)['client'] as unknown[];
  const config = checkEdit(text, next, path, mode, (cl) => [...cl, ...added]);
  return { text: next, config };
}

/** The config text without the `[[client]]` block of `name` (and its comment lines), checked. */
export function removeClientText(
  text: string,
  path: string,
  mode: number,
  name: string,
): { text: string; config: Config } {
  const old = parseConfig(text, path);
  const index = old.clients.findIndex((cl) => cl.name === name);
  if (index < 0)
    throw configError(`config ${path}: no client "${name}" (clients: ${old.clients.map((cl) => cl.name).join(', ')})`);
  if (old.clients.length === 1)
    throw configError(`config ${path}: "${name}" is its only client, and a config needs at least one`);
  const block = tableBlocks(text).filter((b) => b.array && b.path.length === 1 && b.path[0] === 'client')[index];
  if (block === undefined) throw configError(`config ${path}: cannot find the [[client]] block of "${name}"`);
  const next = removeBlock(text, block);
  const config = checkEdit(text, next, path, mode, (cl) => cl.filter((_, i) => i !== index));
  return { text: next, config };
}
