/**
 * The daemon's configuration: TOML (smol-toml), validated by a zod schema, resolved into a typed `Config` with every
 * key loaded. The only module of the daemon that reads the config file or key files. Errors are `ConfigError`s whose
 * message is one line naming the file, the line (when it can be found) and the key. docs/config.md lists every key.
 * @module
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve, dirname } from 'node:path';
import ipaddr from 'ipaddr.js';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { type Access, formatAccess, parseAccess, sameAccess } from '../shared/access.js';
import {
  DEFAULT_GRANT_DURATION_S,
  DEFAULT_MAX_DURATION_S,
  DEFAULT_PORT,
  DEFAULT_REPLAY_WINDOW_S,
} from '../shared/constants.js';
import { KeyFileError, readKeyFile } from '../shared/keyfile.js';
import { parseKey } from '../shared/keys.js';
import { isStrictIp } from '../shared/address.js';
import { lineOf } from './toml-lines.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'ERR_SPA_CONFIG';
}

/** A CIDR block, parsed. IPv4-mapped IPv6 prefixes are refused (write the IPv4 form). */
export interface Cidr {
  readonly text: string;
  readonly kind: 'ipv4' | 'ipv6';
  readonly range: [ipaddr.IPv4 | ipaddr.IPv6, number];
}

export interface ClientConfig {
  readonly name: string;
  readonly format: 'spak1';
  readonly key: Uint8Array;
  readonly open: readonly Access[];
  readonly sources: readonly Cidr[];
  readonly maxDuration: number;
}

export interface Config {
  readonly path: string;
  readonly stateDir: string;
  readonly listen: { readonly port: number; readonly address: string };
  readonly firewall: { readonly backend: 'nftables' | 'iptables'; readonly protect: readonly Access[]; readonly table: string };
  readonly grant: { readonly duration: number; readonly maxDuration: number };
  readonly replay: { readonly window: number };
  readonly log: { readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace'; readonly rejectSummaryInterval: number };
  readonly clients: readonly ClientConfig[];
}

const accessSchema = z.string().transform((s, ctx) => {
  const a = parseAccess(s);
  if (!a) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an access like "tcp/22" or "udp/53"` });
    return z.NEVER;
  }
  return a;
});

const cidrSchema = z.string().transform((s, ctx): Cidr => {
  try {
    const addrPart = s.includes('/') ? s.slice(0, s.indexOf('/')) : s;
    if (!isStrictIp(addrPart) || (s.includes('/') && !/^\/\d{1,3}$/.test(s.slice(s.indexOf('/'))))) throw new Error('syntax');
    const text = s.includes('/') ? s : s + (s.includes(':') ? '/128' : '/32');
    const range = ipaddr.parseCIDR(text);
    const addr = range[0];
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) throw new Error('mapped');
    return { text: `${addr.toString()}/${range[1]}`, kind: addr.kind(), range };
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an address or CIDR block like "203.0.113.0/24" or "2001:db8::/32"` });
    return z.NEVER;
  }
});

const seconds = (max: number) => z.number().int('must be a whole number of seconds').min(1).max(max);

const clientSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ @ -'),
  format: z.literal('spak1', { error: 'only "spak1" is supported by this version' }).default('spak1'),
  key: z.string().optional(),
  key_file: z.string().optional(),
  open: z.array(accessSchema).min(1, 'must list at least one access'),
  sources: z.array(cidrSchema).min(1).prefault(['0.0.0.0/0', '::/0']),
  max_duration: seconds(65535).optional(),
});

const schema = z.strictObject({
  state_dir: z.string().min(1).default('/var/lib/spa-knockd'),
  listen: z
    .strictObject({
      port: z.number().int().min(1).max(65535).default(DEFAULT_PORT),
      address: z
        .string()
        .refine((s) => isStrictIp(s), 'must be an IPv4 or IPv6 address such as "::" or "0.0.0.0"')
        .default('::'),
    })
    .default({ port: DEFAULT_PORT, address: '::' }),
  firewall: z.strictObject({
    backend: z.enum(['nftables', 'iptables']).default('nftables'),
    protect: z.array(accessSchema).min(1, 'must list at least one access, e.g. ["tcp/22"]'),
    table: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9_]{0,27}$/, 'must be a letter then up to 27 letters, digits or _')
      .optional(),
  }),
  grant: z
    .strictObject({
      duration: seconds(65535).default(DEFAULT_GRANT_DURATION_S),
      max_duration: seconds(65535).default(DEFAULT_MAX_DURATION_S),
    })
    .default({ duration: DEFAULT_GRANT_DURATION_S, max_duration: DEFAULT_MAX_DURATION_S }),
  replay: z
    .strictObject({ window: seconds(3600).default(DEFAULT_REPLAY_WINDOW_S) })
    .default({ window: DEFAULT_REPLAY_WINDOW_S }),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      reject_summary_interval: seconds(86400).default(60),
    })
    .default({ level: 'info', reject_summary_interval: 60 }),
  client: z.array(clientSchema).min(1, 'at least one [[client]] is needed'),
});

function pathText(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : (s ? '.' : '') + String(p);
  return s || '(top level)';
}

/** Parse and validate config text. `path` is used in messages and to resolve relative key_file paths. */
export function parseConfig(text: string, path: string): Config {
  const where = (segs: readonly PropertyKey[]) => {
    const line = lineOf(text, segs.filter((s): s is string | number => typeof s !== 'symbol'));
    return `config ${path}${line ? ` line ${line}` : ''}`;
  };
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    if (e instanceof TomlError) {
      const msg = (e.message.split('\n')[0] ?? 'invalid TOML').replace(/^Invalid TOML document: /, '');
      throw new ConfigError(`config ${path} line ${e.line}: invalid TOML: ${msg}`);
    }
    throw new ConfigError(`config ${path}: invalid TOML`);
  }
  const res = schema.safeParse(raw);
  if (!res.success) {
    const issue = res.error.issues[0];
    const p = issue?.path ?? [];
    let message = issue?.message ?? 'invalid';
    if (issue?.code === 'invalid_type' && /received undefined$/.test(message)) {
      message = p.length === 1 && p[0] === 'client' ? 'at least one [[client]] section is required' : 'is required';
    }
    let at: readonly PropertyKey[] = p;
    if (issue?.code === 'unrecognized_keys') {
      message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
      at = [...p, issue.keys[0] ?? ''];
    }
    const more = res.error.issues.length > 1 ? ` (and ${res.error.issues.length - 1} more problem${res.error.issues.length > 2 ? 's' : ''})` : '';
    throw new ConfigError(`${where(at)}: ${pathText(p)}: ${message}${more}`);
  }
  const c = res.data;
  const fail = (segs: readonly (string | number)[], msg: string): never => {
    throw new ConfigError(`${where(segs)}: ${pathText(segs)}: ${msg}`);
  };
  if (c.firewall.table !== undefined) {
    if (c.firewall.backend === 'nftables' && !/^[a-z][a-z0-9_]{0,27}$/.test(c.firewall.table)) {
      fail(['firewall', 'table'], 'an nftables table name must be lower case: a letter, then letters, digits or _');
    }
    if (c.firewall.backend === 'iptables' && ['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING'].includes(c.firewall.table.toUpperCase())) {
      fail(['firewall', 'table'], `"${c.firewall.table}" is a built-in iptables chain; name a chain of spa-knock's own`);
    }
  }
  if (c.grant.duration > c.grant.max_duration) fail(['grant', 'duration'], `must not exceed grant.max_duration (${c.grant.max_duration})`);

  const names = new Set<string>();
  const keys = new Map<string, string>();
  const clients: ClientConfig[] = c.client.map((cl, i) => {
    if (names.has(cl.name)) fail(['client', i, 'name'], `duplicate client name "${cl.name}"`);
    names.add(cl.name);
    let key: Uint8Array;
    if ((cl.key === undefined) === (cl.key_file === undefined)) fail(['client', i], 'set exactly one of "key" or "key_file"');
    if (cl.key !== undefined) {
      const k = parseKey(cl.key);
      if (!k.ok) fail(['client', i, 'key'], k.reason);
      key = (k as { key: Uint8Array }).key;
    } else {
      const kf = cl.key_file as string;
      const abs = isAbsolute(kf) ? kf : resolve(dirname(path), kf);
      try {
        key = readKeyFile(abs);
      } catch (e) {
        if (e instanceof KeyFileError) fail(['client', i, 'key_file'], e.message);
        throw e;
      }
    }
    const hex = Buffer.from(key).toString('hex');
    const dup = keys.get(hex);
    if (dup !== undefined) fail(['client', i, 'key'], `same key as client "${dup}" (every client needs its own key)`);
    keys.set(hex, cl.name);
    cl.open.forEach((a, j) => {
      if (!c.firewall.protect.some((p) => sameAccess(p, a))) {
        fail(['client', i, 'open', j], `${formatAccess(a)} is not in firewall.protect (it would already be open to everyone)`);
      }
    });
    const maxDuration = Math.min(cl.max_duration ?? c.grant.max_duration, c.grant.max_duration);
    return { name: cl.name, format: cl.format, key, open: dedupe(cl.open), sources: cl.sources, maxDuration };
  });

  return {
    path,
    stateDir: c.state_dir,
    listen: { port: c.listen.port, address: c.listen.address },
    firewall: {
      backend: c.firewall.backend,
      protect: dedupe(c.firewall.protect),
      table: c.firewall.table ?? (c.firewall.backend === 'nftables' ? 'spa_knock' : 'SPA_KNOCK'),
    },
    grant: { duration: c.grant.duration, maxDuration: c.grant.max_duration },
    replay: { window: c.replay.window },
    log: { level: c.log.level, rejectSummaryInterval: c.log.reject_summary_interval },
    clients,
  };
}

function dedupe(list: readonly Access[]): Access[] {
  const out: Access[] = [];
  for (const a of list) if (!out.some((b) => sameAccess(a, b))) out.push(a);
  return out;
}

/** Read and parse a config file. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read config ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'error')}`);
  }
  return parseConfig(text, path);
}
