/**
 * Client profiles: per-host defaults in `~/.config/spa-knock/config.toml` (or `$XDG_CONFIG_HOME/spa-knock/…`, or the
 * file named by `SPA_KNOCK_CONFIG`), so `spa-knock myserver` alone knocks with the right key, port, accesses,
 * families and format. Options on the command line override the profile; the profile overrides the built-in
 * defaults. A missing file is no profile; a file that is there but wrong is ERR_SPA_CONFIG, naming file and key.
 *
 * ```toml
 * [host.myserver]
 * address = "server.example.org"   # what to knock (default: the table's name)
 * key = "~/.config/spa-knock/myserver.key"
 * port = 62201
 * open = ["tcp/22"]
 * families = [4]                   # [4], [6] or [4, 6] (default: every family the name has)
 * format = "spak1"                 # or "fwknop"
 * wait = "tcp/22"                  # confirm and retry (client/wait.ts) by default
 * prefix4 = 24                     # ask for the /24 of my IPv4 address (issue 10; also when closing)
 * prefix6 = 64
 * ```
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parseAccess } from '../shared/access.js';
import { isPort } from '../shared/access.js';
import { DEFAULT_PORT } from '../shared/constants.js';
import { SpaError, errnoText } from '../shared/errors.js';
import type { KnockArgs } from './knock.js';

export interface Profile {
  readonly address?: string;
  readonly key?: string;
  readonly port?: number;
  readonly open?: readonly string[];
  readonly family?: 4 | 6;
  readonly format?: 'spak1' | 'fwknop';
  readonly wait?: string;
  readonly prefix4?: number;
  readonly prefix6?: number;
}

const KEYS = new Set(['address', 'key', 'port', 'open', 'families', 'format', 'wait', 'prefix4', 'prefix6']);
/** A profile file is a few lines; anything bigger is a mistake. */
const MAX_BYTES = 256 * 1024;

/**
 * The home directory: $HOME when set, as `os.homedir()` itself answers (libuv uv_os_homedir), without loading
 * `node:os` for it (client cold start); else `os.homedir()` (the password database).
 */
export function homedir(): string {
  return process.env['HOME'] ?? (process.getBuiltinModule('node:os') as typeof import('node:os')).homedir();
}

/** Where the profiles are: SPA_KNOCK_CONFIG, else $XDG_CONFIG_HOME/spa-knock/config.toml, else ~/.config/…. */
export function profilePath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const named = env['SPA_KNOCK_CONFIG'];
  if (named !== undefined && named !== '') return named;
  const xdg = env['XDG_CONFIG_HOME'];
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(home, '.config');
  return join(base, 'spa-knock', 'config.toml');
}

/** `~/x` from home, a relative path from the config file's directory. */
function expandPath(p: string, configDir: string, home: string): string {
  if (p === '~' || p.startsWith('~/')) return join(home, p.slice(1));
  return resolve(configDir, p);
}

/** Parse and check a profile file's text; `file` names it in errors. */
export function parseProfiles(text: string, file: string, home: string = homedir()): Map<string, Profile> {
  const bad = (what: string): SpaError => new SpaError('ERR_SPA_CONFIG', `client config ${file}: ${what}`);
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (e) {
    throw bad(`not TOML (${(e as Error).message.split('\n')[0]})`);
  }
  for (const k of Object.keys(doc))
    if (k !== 'host') throw bad(`unknown table or key "${k}" (profiles are [host.NAME])`);
  const hosts = doc['host'] ?? {};
  if (typeof hosts !== 'object' || hosts === null || Array.isArray(hosts))
    throw bad('"host" must be a table of [host.NAME]');
  const out = new Map<string, Profile>();
  for (const [name, raw] of Object.entries(hosts as Record<string, unknown>)) {
    const at = `[host.${name}]`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(`${at} must be a table`);
    const t = raw as Record<string, unknown>;
    for (const k of Object.keys(t))
      if (!KEYS.has(k)) throw bad(`${at}: unknown key "${k}" (known: ${[...KEYS].join(', ')})`);
    const p: { -readonly [K in keyof Profile]: Profile[K] } = {};
    const str = (k: string): string | undefined => {
      const v = t[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || v === '') throw bad(`${at} ${k} must be a non-empty string`);
      return v;
    };
    const address = str('address');
    if (address !== undefined) p.address = address;
    const key = str('key');
    if (key !== undefined) p.key = expandPath(key, dirname(resolve(file)), home);
    if (t['port'] !== undefined) {
      if (typeof t['port'] !== 'bigint' && typeof t['port'] !== 'number') throw bad(`${at} port must be 1-65535`);
      const n = Number(t['port']);
      if (!isPort(n)) throw bad(`${at} port must be 1-65535`);
      p.port = n;
    }
    if (t['open'] !== undefined) {
      const list = t['open'];
      if (!Array.isArray(list) || list.some((a) => typeof a !== 'string' || parseAccess(a) === undefined))
        throw bad(`${at} open must be a list of accesses like ["tcp/22", "udp/53"]`);
      p.open = list as string[];
    }
    if (t['families'] !== undefined) {
      const f = t['families'];
      const list = Array.isArray(f) ? f.map(Number).sort() : [];
      const text = list.join(',');
      if (text === '4') p.family = 4;
      else if (text === '6') p.family = 6;
      else if (text !== '4,6') throw bad(`${at} families must be [4], [6] or [4, 6]`);
    }
    const format = str('format');
    if (format !== undefined) {
      if (format !== 'spak1' && format !== 'fwknop') throw bad(`${at} format must be "spak1" or "fwknop"`);
      p.format = format;
    }
    const wait = str('wait');
    if (wait !== undefined) {
      if (parseAccess(wait)?.proto !== 'tcp') throw bad(`${at} wait must be a TCP access like "tcp/22"`);
      p.wait = wait;
    }
    for (const [k, max] of [
      ['prefix4', 32],
      ['prefix6', 128],
    ] as const) {
      const v = t[k];
      if (v === undefined) continue;
      const n = typeof v === 'number' || typeof v === 'bigint' ? Number(v) : Number.NaN;
      if (!Number.isInteger(n) || n < 1 || n > max) throw bad(`${at} ${k} must be a whole number 1-${max}`);
      p[k] = n;
    }
    out.set(name, p);
  }
  return out;
}

/** The profile for HOST (as typed), or undefined; reads the file (a missing one is no profile). */
export function profileFor(host: string, path: string = profilePath()): Profile | undefined {
  let text: string;
  try {
    const buf = readFileSync(path);
    if (buf.length > MAX_BYTES)
      throw new SpaError('ERR_SPA_CONFIG', `client config ${path}: larger than ${MAX_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof SpaError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SpaError('ERR_SPA_CONFIG', `client config ${path}: cannot read it: ${errnoText(e)}`);
  }
  return parseProfiles(text, path).get(host);
}

/** What the command line gave: key, port and format are undefined when not given (so a profile can fill them). */
export type GivenArgs = Omit<KnockArgs, 'key' | 'port' | 'format'> & {
  key: string | undefined;
  port: string | undefined;
  format: string | undefined;
};

/**
 * The knock options after the profile of HOST (if any) and then the built-in defaults filled what the command line
 * left out. A profile's open/format/wait do not apply to a classic `--sequence`; its wait not to --close/--dry-run.
 */
export function withProfile(a: GivenArgs, path: string = profilePath()): KnockArgs {
  const p = profileFor(a.host, path) ?? {};
  const classic = a.sequence !== undefined;
  const restricted = a.ipv4 || a.ipv6;
  return {
    ...a,
    host: p.address ?? a.host,
    key: a.key ?? p.key ?? join(homedir(), '.knock.key'),
    port: a.port ?? String(p.port ?? DEFAULT_PORT),
    open: a.open.length > 0 || classic ? a.open : [...(p.open ?? [])],
    ipv4: restricted ? a.ipv4 : p.family === 4,
    ipv6: restricted ? a.ipv6 : p.family === 6,
    format: a.format ?? (classic ? undefined : p.format) ?? 'spak1',
    wait: a.wait ?? (classic || a.close || a.dryRun ? undefined : p.wait),
    // a close names the same prefix as the open did, so the profile's prefix applies to it too
    prefix4: a.prefix4 ?? (classic || p.prefix4 === undefined ? undefined : String(p.prefix4)),
    prefix6: a.prefix6 ?? (classic || p.prefix6 === undefined ? undefined : String(p.prefix6)),
  };
}
