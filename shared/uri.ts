/**
 * `spa-knock://` URIs: a client's key and knock defaults in one line, for a QR code or a copy-paste (docs/phones.md).
 *
 *     spa-knock://HOST:PORT?key=spak1_…&name=alice&open=tcp/22,tcp/443&families=4,6&format=spak1&wait=tcp/22
 *
 * Syntax of RFC 3986 §3 (scheme, authority, query; no userinfo, path or fragment). HOST is a DNS name, an IPv4
 * address or an IPv6 address in brackets (RFC 3986 §3.2.2, no zone); PORT is the daemon's UDP port (default 62201
 * when left out). Query parameters, each at most once, percent-decoded (RFC 3986 §2.1), unknown ones refused:
 *
 *   key       required: the key line (shared/keys.ts, with its checksum)
 *   name      the client's name on the server (a profile name suggestion), 1-64 of A-Z a-z 0-9 . _ @ -
 *   open      accesses to ask for, comma-separated (at most 32); absent: everything the server's policy allows
 *   families  4, 6 or 4,6; absent: every family the name has
 *   format    spak1 (the only one a URI can carry: an fwknop client has two keys)
 *   wait      a TCP access: confirm the knock and retry until it connects (client/wait.ts)
 *
 * Pure: parsing throws a one-line SpaError('ERR_SPA_URI') naming what is wrong, never echoing the key.
 * @module
 */
import { type Access, dedupeAccesses, formatAccess, isPort, parseAccess } from './access.js';
import { isStrictIp, parseIp } from './address.js';
import { DEFAULT_PORT, MAX_ACCESSES } from './constants.js';
import { SpaError } from './errors.js';
import { formatKey, parseKey } from './keys.js';

export const URI_SCHEME = 'spa-knock';

export interface KnockUri {
  /** DNS name or IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  readonly key: Uint8Array;
  readonly name?: string;
  /** Empty: everything the server's policy allows. */
  readonly open: readonly Access[];
  /** Undefined: every family the name has. */
  readonly family?: 4 | 6;
  readonly format: 'spak1';
  readonly wait?: Access;
}

/** The client-name rule of the daemon's config (server/config.ts). */
export const CLIENT_NAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const PARAMS = ['key', 'name', 'open', 'families', 'format', 'wait'] as const;
type Param = (typeof PARAMS)[number];
/** Longer than any URI this module writes (a key, a name, 32 accesses, a long host name). */
const MAX_URI_LEN = 2048;

const bad = (what: string) => new SpaError('ERR_SPA_URI', `${URI_SCHEME}:// URI: ${what}`);

/** A DNS host name (RFC 1123 §2.1 labels: letters, digits, hyphens; 253 characters at most). */
function isHostName(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  const labels = (s.endsWith('.') ? s.slice(0, -1) : s).split('.');
  return labels.every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l)) && !/^[0-9.]+$/.test(s);
}

function decode(v: string, name: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    throw bad(`parameter "${name}" has a malformed percent-encoding`);
  }
}

function accessList(text: string, param: string): Access[] {
  const parts = text.split(',');
  if (parts.length > MAX_ACCESSES) throw bad(`"${param}" lists more than ${MAX_ACCESSES} accesses`);
  return dedupeAccesses(
    parts.map((p) => {
      const a = parseAccess(p);
      if (!a) throw bad(`"${param}": "${p}" is not an access like tcp/22 or udp/53`);
      return a;
    }),
  );
}

/** Parse and check a URI. Throws SpaError('ERR_SPA_URI') with a one-line reason. */
export function parseUri(text: string): KnockUri {
  const t = text.trim();
  if (t.length > MAX_URI_LEN) throw bad(`longer than ${MAX_URI_LEN} characters`);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(\/?)(?:\?([^#]*))?(#.*)?$/.exec(t);
  if (!m) throw bad(`not a URI of the form ${URI_SCHEME}://HOST:PORT?key=…`);
  const [, scheme = '', authority = '', , query, fragment] = m;
  if (scheme.toLowerCase() !== URI_SCHEME) throw bad(`the scheme must be "${URI_SCHEME}", not "${scheme}"`);
  if (fragment !== undefined) throw bad('a fragment (#…) is not allowed');
  if (authority.includes('@')) throw bad('user information (…@) is not allowed');
  // authority: host, [v6], optional :port
  const am = /^(\[[^\]]*\]|[^:[\]]*)(?::([0-9]*))?$/.exec(authority);
  if (!am) throw bad(`"${authority}" is not HOST, HOST:PORT or [IPv6]:PORT`);
  const [, rawHost = '', rawPort] = am;
  let host: string;
  if (rawHost.startsWith('[')) {
    host = rawHost.slice(1, -1);
    if (!isStrictIp(host) || parseIp(host)?.family !== 6 || host.includes('%'))
      throw bad(`"${rawHost}" is not an IPv6 address in brackets`);
  } else {
    host = rawHost;
    if (host === '') throw bad('the host is missing');
    if (!isStrictIp(host) && !isHostName(host)) throw bad(`"${host}" is not a host name or an IPv4 address`);
    if (isStrictIp(host) && parseIp(host)?.family !== 4) throw bad(`an IPv6 address must be in brackets`);
  }
  let port = DEFAULT_PORT;
  if (rawPort !== undefined) {
    const n = /^[0-9]{1,5}$/.test(rawPort) ? Number(rawPort) : Number.NaN;
    if (!isPort(n)) throw bad(`port "${rawPort}" is not 1-65535`);
    port = n;
  }
  const params = new Map<Param, string>();
  for (const pair of query === undefined || query === '' ? [] : query.split('&')) {
    const eq = pair.indexOf('=');
    const name = decode(eq < 0 ? pair : pair.slice(0, eq), 'name');
    if (!(PARAMS as readonly string[]).includes(name))
      throw bad(`unknown parameter "${name.slice(0, 32)}" (known: ${PARAMS.join(', ')})`);
    const p = name as Param;
    if (eq < 0) throw bad(`parameter "${p}" has no value`);
    if (params.has(p)) throw bad(`parameter "${p}" is given twice`);
    params.set(p, decode(pair.slice(eq + 1), p));
  }
  const keyText = params.get('key');
  if (keyText === undefined) throw bad('the "key" parameter is missing');
  const k = parseKey(keyText);
  if (!k.ok) throw bad(`"key": ${k.reason}`);
  const out: { -readonly [K in keyof KnockUri]: KnockUri[K] } = { host, port, key: k.key, open: [], format: 'spak1' };
  const name = params.get('name');
  if (name !== undefined) {
    if (!CLIENT_NAME_RE.test(name)) throw bad('"name" must be 1-64 characters of A-Z a-z 0-9 . _ @ -');
    out.name = name;
  }
  const open = params.get('open');
  if (open !== undefined) out.open = accessList(open, 'open');
  const families = params.get('families');
  if (families !== undefined) {
    if (families === '4') out.family = 4;
    else if (families === '6') out.family = 6;
    else if (families !== '4,6' && families !== '6,4') throw bad('"families" must be 4, 6 or 4,6');
  }
  const format = params.get('format');
  if (format !== undefined && format !== 'spak1') throw bad(`"format" must be spak1, not "${format.slice(0, 32)}"`);
  const wait = params.get('wait');
  if (wait !== undefined) {
    const a = parseAccess(wait);
    if (a?.proto !== 'tcp') throw bad('"wait" must be a TCP access like tcp/22');
    out.wait = a;
  }
  return out;
}

/** The URI text of `u`; `parseUri(formatUri(u))` gives `u` back. */
export function formatUri(u: KnockUri): string {
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  const q: string[] = [`key=${formatKey(u.key)}`];
  if (u.name !== undefined) q.push(`name=${encodeURIComponent(u.name)}`);
  if (u.open.length > 0) q.push(`open=${u.open.map(formatAccess).join(',')}`);
  if (u.family !== undefined) q.push(`families=${u.family}`);
  q.push(`format=${u.format}`);
  if (u.wait !== undefined) q.push(`wait=${formatAccess(u.wait)}`);
  return `${URI_SCHEME}://${host}:${u.port}?${q.join('&')}`;
}
