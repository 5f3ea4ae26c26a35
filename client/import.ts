/**
 * `spa-knock import URI [--key-file PATH] [--name PROFILE] [--force]` (docs/phones.md): take what
 * `spa-knockd add-client` printed — a `spa-knock://` URI (shared/uri.ts) — and set the client up with it:
 *
 * - the key goes to a key file, mode 0600 (shared/keyfile.ts): `--key-file`, else `PROFILE.key` next to the profile
 *   file. The same key already there is fine; a different one is kept unless `--force`.
 * - a `[host."PROFILE"]` table goes into the profile file (client/profile.ts: `SPA_KNOCK_CONFIG`, else
 *   `~/.config/spa-knock/config.toml`), appended as text so the file's comments stay (shared/toml-edit.ts), checked
 *   by the profile parser, written atomically (shared/atomic-file.ts). An existing profile of that name is kept
 *   unless `--force` (then its block is replaced).
 *
 * After that `spa-knock PROFILE` alone knocks. PROFILE defaults to the URI's host. The key is never printed.
 * @module
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { formatAccess } from '../shared/access.js';
import { replaceFileAtomic } from '../shared/atomic-file.js';
import { usageError } from '../shared/cli.js';
import { SpaError, errnoText } from '../shared/errors.js';
import { readKeyFile, writeKeyFile } from '../shared/keyfile.js';
import { appendBlock, removeBlock, tableBlocks, tomlString, tomlStringArray } from '../shared/toml-edit.js';
import { type KnockUri, parseUri } from '../shared/uri.js';
import { type Profile, parseProfiles, profilePath } from './profile.js';

export interface ImportArgs {
  readonly uri: string;
  readonly keyFile: string | undefined;
  readonly name: string | undefined;
  readonly force: boolean;
}

export interface ImportResult {
  readonly profile: string;
  readonly profileFile: string;
  readonly keyFile: string;
  /** The key file already held this key. */
  readonly keyKept: boolean;
  /** A profile of that name was replaced (--force). */
  readonly replaced: boolean;
  /** The same profile was there already: the file was left as it was. */
  readonly unchanged: boolean;
}

/** What may name a profile: what a user types as HOST (a host name or address, or a short name). */
const PROFILE_RE = /^[A-Za-z0-9._@:-]{1,64}$/;

/** The `[host."NAME"]` table for a URI, as text. */
export function profileBlock(name: string, u: KnockUri, keyFile: string, day: string): string {
  return [
    `# ${name}: imported from a spa-knock:// URI on ${day}${u.name !== undefined ? ` (client "${u.name}" on the server)` : ''}`,
    `[host.${tomlString(name)}]`,
    `address = ${tomlString(u.host)}`,
    `key = ${tomlString(keyFile)}`,
    `port = ${u.port}`,
    ...(u.open.length > 0 ? [`open = ${tomlStringArray(u.open.map(formatAccess))}`] : []),
    ...(u.family !== undefined ? [`families = [${u.family}]`] : []),
    `format = ${tomlString(u.format)}`,
    ...(u.wait !== undefined ? [`wait = ${tomlString(formatAccess(u.wait))}`] : []),
    '',
  ].join('\n');
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SpaError('ERR_SPA_CONFIG', `client config ${path}: cannot read it: ${errnoText(e)}`);
  }
}

const same = (a: Profile | undefined, b: Profile | undefined) => JSON.stringify(a) === JSON.stringify(b);

/** The profile file's new text with the profile for `u` (old one replaced only with `force`), checked. */
export function profileText(
  old: string,
  file: string,
  name: string,
  u: KnockUri,
  keyFile: string,
  opts: { force: boolean; day: string; home?: string },
): { text: string; replaced: boolean; unchanged: boolean } {
  const before = parseProfiles(old, file, opts.home);
  const want = parseProfiles(profileBlock(name, u, keyFile, opts.day), file, opts.home).get(name);
  if (before.has(name) && same(before.get(name), want)) return { text: old, replaced: false, unchanged: true };
  let base = old;
  const replaced = before.has(name);
  if (replaced) {
    if (!opts.force)
      throw new SpaError(
        'ERR_SPA_CONFIG',
        `client config ${file}: a profile "${name}" is already there (use --force to replace it, or --name OTHER)`,
      );
    const block = tableBlocks(old).find(
      (b) => !b.array && b.path.length === 2 && b.path[0] === 'host' && b.path[1] === name,
    );
    if (!block)
      throw new SpaError(
        'ERR_SPA_CONFIG',
        `client config ${file}: cannot find the [host."${name}"] table to replace; edit it by hand`,
      );
    base = removeBlock(old, block);
  }
  const text = appendBlock(base, profileBlock(name, u, keyFile, opts.day));
  // the text edit must have changed exactly this profile, to what the URI says
  const after = parseProfiles(text, file, opts.home);
  const others = (m: Map<string, Profile>) => JSON.stringify([...m].filter(([k]) => k !== name));
  if (!same(after.get(name), want) || others(after) !== others(before))
    throw new SpaError('ERR_SPA_CONFIG', `client config ${file}: cannot edit it safely as text; edit it by hand`);
  return { text, replaced, unchanged: false };
}

export function importUri(a: ImportArgs, env: NodeJS.ProcessEnv = process.env, now = Date.now()): ImportResult {
  const u = parseUri(a.uri);
  const name = a.name ?? u.host;
  if (!PROFILE_RE.test(name)) throw usageError(`--name "${name}" must be 1-64 characters of A-Z a-z 0-9 . _ @ : -`);
  const file = resolve(profilePath(env));
  const keyFile = resolve(a.keyFile ?? join(dirname(file), `${name.replaceAll(':', '_')}.key`));
  const old = readText(file);
  const day = new Date(now).toISOString().slice(0, 10);
  const { text, replaced, unchanged } = profileText(old ?? '', file, name, u, keyFile, { force: a.force, day });
  // the key first: a profile never names a key file that is not there
  let keyKept = false;
  let existing: Uint8Array | undefined;
  try {
    existing = readKeyFile(keyFile);
  } catch (e) {
    const code = (e as SpaError).code;
    if (code !== 'ERR_SPA_KEYFILE_READ' || !/no such file/.test((e as Error).message)) {
      if (!a.force) throw e;
    }
  }
  if (existing !== undefined && Buffer.from(existing).equals(Buffer.from(u.key))) keyKept = true;
  else {
    if (existing !== undefined && !a.force)
      throw new SpaError(
        'ERR_SPA_KEYFILE_EXISTS',
        `key file ${keyFile} holds a different key (use --force to replace it, or --key-file OTHER)`,
      );
    for (const d of new Set([dirname(keyFile), dirname(file)])) mkdirSync(d, { recursive: true, mode: 0o700 });
    writeKeyFile(keyFile, u.key, { force: a.force });
  }
  if (!unchanged) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    replaceFileAtomic(file, text, { code: 'ERR_SPA_CONFIG', what: 'client config', original: old, mode: 0o600 });
  }
  return { profile: name, profileFile: file, keyFile, keyKept, replaced, unchanged };
}

/** The command: import, then one line on what was written (never the key). */
export function runImport(a: ImportArgs): void {
  const r = importUri(a);
  process.stdout.write(
    `${r.keyKept ? 'key already in' : 'wrote the key to'} ${r.keyFile} (mode 0600); ` +
      `${r.unchanged ? 'kept the same' : r.replaced ? 'replaced' : 'added'} profile "${r.profile}" in ${r.profileFile}: now \`spa-knock ${r.profile}\` knocks\n`,
  );
}
