/**
 * `spa-knockd add-client`, `remove-client`, `list-clients` (docs/phones.md): onboarding users and phones.
 *
 *   add-client NAME [--open tcp/22 ...] [--sources CIDR ...] [--expires DATE] [--host H[:PORT]] [--key-file PATH]
 *              [--no-qr] [--json] [--reload]
 *     a new key; a [[client]] block appended to the config (comments and layout kept; checked by the config parser;
 *     written atomically, mode and owner kept: server/config-edit.ts, shared/atomic-file.ts); prints the key line, a
 *     spa-knock:// URI (shared/uri.ts) and that URI as a QR code. The output is a secret: a warning says so on
 *     stderr; nothing is logged.
 *   remove-client NAME [--reload]     that client's block removed the same way
 *   list-clients [--json]             name, accesses, sources, expiry, expired?
 *
 * A running daemon applies an edit on SIGHUP (server/reload.ts); `--reload` sends it, to the pid the daemon's
 * control socket reports (server/control.ts).
 * @module
 */
import { hostname } from 'node:os';
import { realpathSync, rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { renderUnicodeCompact } from 'uqr';
import { type Access, formatAccess, parseAccess } from '../shared/access.js';
import { type Cidr, isStrictIp, parseIp } from '../shared/address.js';
import { replaceFileAtomic } from '../shared/atomic-file.js';
import { usageError } from '../shared/cli.js';
import { SpaError, errnoText } from '../shared/errors.js';
import { writeKeyFile } from '../shared/keyfile.js';
import { formatKey, generateKey } from '../shared/keys.js';
import { CLIENT_NAME_RE, type KnockUri, formatUri, parseUri } from '../shared/uri.js';
import type { Config } from './config.js';
import { loadConfigText } from './config-file.js';
import { addClientText, removeClientText } from './config-edit.js';
import { controlPath, controlRequest } from './control.js';

export interface AddClientArgs {
  readonly config: string;
  readonly name: string;
  readonly open: readonly string[];
  readonly sources: readonly string[];
  readonly expires: string | undefined;
  readonly host: string | undefined;
  /** Write the key to this new 0600 file and name it in `key_file` (the config then holds no key). */
  readonly keyFile?: string | undefined;
  readonly qr: boolean;
  readonly json: boolean;
  readonly reload: boolean;
}

/** What the commands write to; tests pass their own. */
export interface Io {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
  readonly now: () => number;
  /** Default host of the URI when --host is not given. */
  readonly hostname: () => string;
  /** --reload: signal the daemon (default: process.kill). */
  readonly kill?: (pid: number, signal: 'SIGHUP') => void;
}

export const realIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  now: Date.now,
  hostname,
};

/** The file to edit: a symbolic link is followed (the link stays, its target is edited). */
function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch (e) {
    throw new SpaError('ERR_SPA_CONFIG', `cannot read config ${path}: ${errnoText(e)}`);
  }
}

/**
 * `--expires`: `YYYY-MM-DD` (00:00 UTC that day) or an RFC 3339 date-time with `Z` or an offset; returned as the
 * TOML literal to write and its instant. A time already past is refused.
 */
export function parseExpires(text: string, now: number): { literal: string; at: number } {
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const dt = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i.test(text);
  let at = Number.NaN;
  if (date) {
    const [y, m, d] = [Number(date[1]), Number(date[2]), Number(date[3])];
    at = Date.UTC(y, m - 1, d);
    if (new Date(at).getUTCDate() !== d || new Date(at).getUTCMonth() !== m - 1) at = Number.NaN;
  } else if (dt) at = Date.parse(text.replace(' ', 'T'));
  if (!Number.isFinite(at))
    throw usageError(`--expires "${text}" is not a date like 2027-01-31 or a date-time like 2027-01-31T18:00:00Z`);
  if (at <= now) throw usageError(`--expires ${text} is already past`);
  const literal = date ? text : text.replace(' ', 'T').toUpperCase();
  return { literal, at };
}

/** `--host H[:PORT]` (`[v6]:PORT`, or a bare IPv6 address): host and port for the URI; the port defaults to listen.port. */
export function parseHostOption(text: string, defaultPort: number): { host: string; port: number } {
  let host = text;
  let port = defaultPort;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) {
    host = v6[1] ?? '';
    if (v6[2] !== undefined) port = Number(v6[2]);
  } else if (!text.includes(':') || isStrictIp(text)) {
    host = text;
  } else {
    const i = text.lastIndexOf(':');
    host = text.slice(0, i);
    port = /^\d{1,5}$/.test(text.slice(i + 1)) ? Number(text.slice(i + 1)) : Number.NaN;
  }
  try {
    // the URI's own rules decide what a host is
    const u = parseUri(
      `spa-knock://${host.includes(':') ? `[${host}]` : host}:${port}?key=${formatKey(new Uint8Array(32))}`,
    );
    return { host: u.host, port: u.port };
  } catch (e) {
    throw usageError(`--host ${text}: ${(e as Error).message.replace(/^spa-knock:\/\/ URI: /, '')}`);
  }
}

/** Both families in `sources`: no `families` in the URI; one family only: that one. */
function familyOf(sources: readonly Cidr[]): 4 | 6 | undefined {
  const fams = new Set(sources.map((c) => c.family));
  return fams.size === 1 ? (fams.has(4) ? 4 : 6) : undefined;
}

/** `--reload`: SIGHUP to the daemon whose control socket is in this config's state_dir. */
async function sendReload(config: Config, io: Io): Promise<string> {
  const status = (await controlRequest(controlPath(config.stateDir), 'status')) as { pid?: unknown };
  const pid = typeof status?.pid === 'number' ? status.pid : undefined;
  if (pid === undefined) throw new SpaError('ERR_SPA_CONTROL', 'the daemon did not say its pid; send SIGHUP by hand');
  (io.kill ?? ((p, s) => process.kill(p, s)))(pid, 'SIGHUP');
  return `sent SIGHUP to spa-knockd (pid ${pid}); its log says whether the new config is in force ("reload" or "reload-refused")`;
}

const reloadHint =
  'a running spa-knockd applies this on SIGHUP: systemctl reload spa-knockd, or kill -HUP PID (or add --reload)';

export async function addClient(a: AddClientArgs, io: Io = realIo): Promise<void> {
  if (!CLIENT_NAME_RE.test(a.name)) throw usageError(`NAME "${a.name}" must be 1-64 characters of A-Z a-z 0-9 . _ @ -`);
  const open = a.open.flatMap((o) => o.split(',')).filter((o) => o !== '');
  for (const o of open) if (!parseAccess(o)) throw usageError(`--open "${o}" is not an access like tcp/22 or udp/53`);
  const sources = a.sources.flatMap((s) => s.split(',')).filter((s) => s !== '');
  const expires = a.expires === undefined ? undefined : parseExpires(a.expires, io.now());
  const path = realPath(a.config);
  const { text, mode, config: old } = loadConfigText(path);
  const key = generateKey();
  const keyLine = formatKey(key);
  const protect = old.firewall.protect.map(formatAccess);
  for (const o of open)
    if (!protect.includes(formatAccess(parseAccess(o) as Access)))
      throw usageError(`--open ${o} is not in firewall.protect of ${path} (${protect.join(' ')})`);
  const accesses = open.length > 0 ? open : protect;
  const day = new Date(io.now()).toISOString().slice(0, 10);
  let hostText = a.host;
  if (hostText === undefined) {
    const addr = parseIp(old.listen.address);
    hostText = addr && addr.ip.range() !== 'unspecified' ? addr.text : io.hostname();
    io.err(
      `spa-knockd: note: the URI names the server as "${hostText}"; give --host NAME[:PORT] for the name clients use\n`,
    );
  }
  const { host, port } = parseHostOption(hostText, old.listen.port);
  // --key-file: the key file first (never over an existing one), so the config parser can read it; gone on failure
  const keyFile = a.keyFile === undefined ? undefined : resolve(a.keyFile);
  if (keyFile !== undefined) {
    try {
      writeKeyFile(keyFile, key);
    } catch (e) {
      if ((e as SpaError).code === 'ERR_SPA_KEYFILE_EXISTS')
        throw new SpaError('ERR_SPA_KEYFILE_EXISTS', `--key-file ${keyFile} already exists; name a new file`);
      throw e;
    }
  }
  let edit: ReturnType<typeof addClientText>;
  try {
    edit = addClientText(text, path, mode, {
      name: a.name,
      ...(keyFile !== undefined ? { keyFile } : { key: keyLine }),
      open: accesses,
      ...(sources.length > 0 ? { sources } : {}),
      ...(expires ? { expires: expires.literal } : {}),
      comment: `${a.name}: added by spa-knockd add-client on ${day}`,
    });
    replaceFileAtomic(path, edit.text, { code: 'ERR_SPA_CONFIG', what: 'config', original: text });
  } catch (e) {
    if (keyFile !== undefined) rmSync(keyFile, { force: true });
    throw e;
  }
  const client = edit.config.clients.find((c) => c.name === a.name);
  if (!client) throw new SpaError('ERR_SPA_INTERNAL', 'the new client is not in the checked config');
  const family = familyOf(client.sources);
  const uri: KnockUri = {
    host,
    port,
    key,
    name: a.name,
    open: client.open,
    ...(family !== undefined ? { family } : {}),
    format: 'spak1',
  };
  const uriText = formatUri(uri);
  const reloaded = a.reload ? await sendReload(edit.config, io) : undefined;
  io.err(
    'spa-knockd: warning: the output holds the new secret key (the key line, the URI, the QR code): give it to the ' +
      'user over a safe channel, do not paste it into tickets or logs\n',
  );
  const expiresIso = client.expiresAt !== undefined ? new Date(client.expiresAt).toISOString() : null;
  if (a.json) {
    io.out(
      `${JSON.stringify({
        name: a.name,
        config: path,
        key: keyLine,
        uri: uriText,
        open: client.open.map(formatAccess),
        sources: sourcesText(client.sources),
        expires: expiresIso,
        reloaded: reloaded !== undefined,
      })}\n`,
    );
    return;
  }
  const lines = [
    `added client "${a.name}" to ${path}: opens ${client.open.map(formatAccess).join(' ')}; from ${sourcesText(client.sources).join(' ')}` +
      (expiresIso ? `; expires ${expiresIso}` : ''),
    '',
    'key line (save it as ~/.knock.key, mode 0600, on the client):',
    `  ${keyLine}`,
    '',
    'URI (spa-knock import URI, or a phone app that scans the QR code; docs/phones.md):',
    `  ${uriText}`,
    '',
    ...(a.qr ? [renderUnicodeCompact(uriText, { border: 2 }), ''] : []),
    reloaded ?? reloadHint,
  ];
  io.out(`${lines.join('\n')}\n`);
}

export async function removeClient(
  a: { config: string; name: string; reload: boolean },
  io: Io = realIo,
): Promise<void> {
  const path = realPath(a.config);
  const { text, mode, config: old } = loadConfigText(path);
  const edit = removeClientText(text, path, mode, a.name);
  const gone = old.clients.find((c) => c.name === a.name);
  replaceFileAtomic(path, edit.text, { code: 'ERR_SPA_CONFIG', what: 'config', original: text });
  const reloaded = a.reload ? await sendReload(edit.config, io) : undefined;
  const keyFile = gone && !old.inlineKeys.includes(a.name) ? ' (its key_file is left in place)' : '';
  io.out(
    `removed client "${a.name}" from ${path}${keyFile}\n${reloaded ?? `${reloadHint}; its live grants end then`}\n`,
  );
}

const sourcesText = (cs: readonly Cidr[]) => cs.map((c) => c.text);

export interface ClientRow {
  readonly name: string;
  readonly format: string;
  readonly open: string[];
  readonly sources: string[];
  readonly expires: string | null;
  readonly expired: boolean;
}

/** The clients of a config, as `list-clients` shows them. */
export function clientRows(config: Config, now: number): ClientRow[] {
  return config.clients.map((c) => ({
    name: c.name,
    format: c.format,
    open: c.open.map(formatAccess),
    sources: sourcesText(c.sources),
    expires: c.expiresAt !== undefined ? new Date(c.expiresAt).toISOString() : null,
    expired: c.expiresAt !== undefined && now >= c.expiresAt,
  }));
}

export function listClients(a: { config: string; json: boolean }, io: Io = realIo): void {
  const rows = clientRows(loadConfigText(a.config).config, io.now());
  if (a.json) {
    io.out(`${JSON.stringify(rows)}\n`);
    return;
  }
  const table = [
    ['NAME', 'OPEN', 'SOURCES', 'EXPIRES', 'STATE'],
    ...rows.map((r) => [
      r.name,
      r.open.join(','),
      r.sources.join(','),
      r.expires ?? 'never',
      r.expired ? 'EXPIRED' : 'active',
    ]),
  ];
  const widths = table[0]?.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length))) ?? [];
  for (const row of table)
    io.out(
      `${row
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
}
