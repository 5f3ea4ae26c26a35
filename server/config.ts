/**
 * The daemon's configuration: TOML (smol-toml), validated by a zod schema, resolved into a typed `Config` with every
 * key loaded. Reading the file and its permission rules: server/config-file.ts (loadConfig). Errors are
 * `SpaError('ERR_SPA_CONFIG' | 'ERR_SPA_CONFIG_PERMS')` whose message is one line naming the file, the line (when it
 * can be found) and the key. docs/config.md lists every key. The `[[client]]` schema and `ClientConfig`:
 * server/config-client.ts.
 * @module
 */
import { isAbsolute, resolve, dirname } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { type Access, dedupeAccesses, formatAccess, isPort, sameAccess } from '../shared/access.js';
import { isStrictIp } from '../shared/address.js';
import {
  DEFAULT_GRANT_DURATION_S,
  DEFAULT_MAX_DURATION_S,
  DEFAULT_PORT,
  DEFAULT_REPLAY_WINDOW_S,
} from '../shared/constants.js';
import { SpaError } from '../shared/errors.js';
import { readKeyFile } from '../shared/keyfile.js';
import { parseKey } from '../shared/keys.js';
import { type ClientConfig, clientConfig, clientSchema } from './config-client.js';
import { accessSchema, codesWindowOf, maxGrants, seconds } from './config-fields.js';
import { fwknopKeysOf } from './config-fwknop.js';
import { tableNameProblem } from './firewall/names.js';
import { DEFAULT_FAST_PATH_PORT } from './firewall/nft-fastpath.js';
import { DEFAULT_HEAL_INTERVAL_S, MAX_HEAL_INTERVAL_S } from './heal.js';
import type { KnockSequence } from './firewall/backend.js';
import { type RotatingSequence, resolveSequences, sequencesSchema } from './sequence-config.js';
import { lineOf } from './toml-lines.js';

export type { Cidr } from '../shared/address.js';
export { type ClientConfig, MIN_PREFIX4, MIN_PREFIX6 } from './config-client.js';

/** Default `listen.receive_buffer`: SO_RCVBUF asked for the knock socket, bytes (the kernel may give less). */
export const DEFAULT_RECEIVE_BUFFER = 4 * 1024 * 1024;
/** Default `grant.max_grants`: distinct addresses one client may hold live grants for at once. */
export const DEFAULT_MAX_GRANTS = 16;
/** Defaults of `[limit]` (server/ratelimit.ts, server/grants.ts; docs/config.md). */
export const DEFAULT_LIMIT = {
  source_rate: 20,
  source_burst: 40,
  source_table: 16384,
  client_rate: 5,
  client_burst: 20,
  firewall_queue: 1024,
  kernel_prefilter: true,
} as const;
/** Largest config file the daemon reads, bytes. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export interface Config {
  readonly path: string;
  readonly stateDir: string;
  readonly listen: { readonly port: number; readonly address: string; readonly receiveBuffer: number };
  readonly firewall: {
    readonly backend: 'nftables' | 'iptables';
    readonly protect: readonly Access[];
    readonly table: string;
    readonly silencePortUnreachable: boolean;
    /** Seconds between two checks that the gate is still installed (server/heal.ts); 0 = never. */
    readonly healInterval: number;
    /**
     * nftables: the kernel adds one-address grants from a trigger datagram (server/firewall/nft-fastpath.ts). `auto`
     * (the default): on where it can be (nftables, the trigger ports free), otherwise off with one warning; `true`: a
     * daemon that cannot set it up does not start; `false`: off.
     */
    readonly fastPath: boolean | 'auto';
    /** The first trigger source port of the fast path (one per protocol and default duration). */
    readonly fastPathPort: number;
  };
  readonly grant: { readonly duration: number; readonly maxDuration: number; readonly maxGrants: number };
  readonly replay: { readonly window: number };
  /** Flood limits (`[limit]`): per-source and per-client token buckets, the firewall queue bound. */
  readonly limit: {
    /** Datagrams per second per source (IPv6: /64) that reach the MAC check; burst; most sources tracked. */
    readonly sourceRate: number;
    readonly sourceBurst: number;
    readonly sourceTable: number;
    /** Accepted knocks per second per client; burst. */
    readonly clientRate: number;
    readonly clientBurst: number;
    /** Most knocks waiting for the firewall; more are shed (`busy`). */
    readonly firewallQueue: number;
    /** Drop a source's datagrams to the knock port in the kernel past twice its source_rate (firewall/prefilter.ts). */
    readonly kernelPrefilter: boolean;
  };
  readonly log: {
    readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
    readonly rejectSummaryInterval: number;
  };
  readonly clients: readonly ClientConfig[];
  /** Classic knock sequences (`[[sequence]]`, docs/classic.md), recognised in the kernel. */
  readonly sequences: readonly KnockSequence[];
  /** `rotating = true` sequences (their steps change every 30 s: shared/rotating.ts). */
  readonly rotatingSequences: readonly RotatingSequence[];
  /** Names of the clients whose key is written in the config itself (`key =`): the file then holds secrets. */
  readonly inlineKeys: readonly string[];
}

const count = (max: number) => z.number().int('must be a whole number').min(1).max(max);

const listenDefaults = { port: DEFAULT_PORT, address: '::', receive_buffer: DEFAULT_RECEIVE_BUFFER };
const grantDefaults = {
  duration: DEFAULT_GRANT_DURATION_S,
  max_duration: DEFAULT_MAX_DURATION_S,
  max_grants: DEFAULT_MAX_GRANTS,
};

const schema = z.strictObject({
  state_dir: z.string().min(1).default('/var/lib/spa-knockd'),
  listen: z
    .strictObject({
      port: z.number().refine(isPort, 'must be a port number 1-65535').default(DEFAULT_PORT),
      address: z
        .string()
        .refine((s) => isStrictIp(s), 'must be an IPv4 or IPv6 address such as "::" or "0.0.0.0"')
        .default('::'),
      receive_buffer: z
        .number()
        .int('must be a whole number of bytes')
        .min(65536)
        .max(1 << 30)
        .default(DEFAULT_RECEIVE_BUFFER),
    })
    .default(listenDefaults),
  firewall: z.strictObject({
    backend: z.enum(['nftables', 'iptables']).default('nftables'),
    protect: z.array(accessSchema).min(1, 'must list at least one access, e.g. ["tcp/22"]'),
    table: z.string().optional(),
    silence_port_unreachable: z.boolean().default(false),
    heal_interval: z
      .number()
      .int('must be a whole number of seconds')
      .min(0)
      .max(MAX_HEAL_INTERVAL_S)
      .default(DEFAULT_HEAL_INTERVAL_S),
    fast_path: z.union([z.boolean(), z.literal('auto')], { error: 'must be true, false or "auto"' }).default('auto'),
    fast_path_port: z.number().int('must be a whole port number').min(1024).max(65000).default(DEFAULT_FAST_PATH_PORT),
  }),
  grant: z
    .strictObject({
      duration: seconds(65535).default(DEFAULT_GRANT_DURATION_S),
      max_duration: seconds(65535).default(DEFAULT_MAX_DURATION_S),
      max_grants: maxGrants.default(DEFAULT_MAX_GRANTS),
    })
    .default(grantDefaults),
  replay: z
    .strictObject({ window: seconds(3600).default(DEFAULT_REPLAY_WINDOW_S) })
    .default({ window: DEFAULT_REPLAY_WINDOW_S }),
  limit: z
    .strictObject({
      source_rate: count(1_000_000).default(DEFAULT_LIMIT.source_rate),
      source_burst: count(1_000_000).default(DEFAULT_LIMIT.source_burst),
      source_table: count(1 << 22).default(DEFAULT_LIMIT.source_table),
      client_rate: count(1_000_000).default(DEFAULT_LIMIT.client_rate),
      client_burst: count(1_000_000).default(DEFAULT_LIMIT.client_burst),
      firewall_queue: count(1 << 20).default(DEFAULT_LIMIT.firewall_queue),
      kernel_prefilter: z.boolean().default(DEFAULT_LIMIT.kernel_prefilter),
    })
    .default(DEFAULT_LIMIT),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
      reject_summary_interval: seconds(86400).default(60),
    })
    .default({ level: 'info', reject_summary_interval: 60 }),
  client: z.array(clientSchema).min(1, 'at least one [[client]] is needed'),
  sequence: sequencesSchema,
});

/** The zod schema of the whole file; test/server/config-docs.test.ts checks docs/config.md against it. */
export const configSchema = schema;

function pathText(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : (s ? '.' : '') + String(p);
  return s || '(top level)';
}

const configError = (msg: string) => new SpaError('ERR_SPA_CONFIG', msg);

/** Parse and validate config text. `path` is used in messages and to resolve relative key_file paths. */
export function parseConfig(text: string, path: string): Config {
  const where = (segs: readonly PropertyKey[]) => {
    const line = lineOf(
      text,
      segs.filter((s): s is string | number => typeof s !== 'symbol'),
    );
    return `config ${path}${line ? ` line ${line}` : ''}`;
  };
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    if (e instanceof TomlError) {
      const msg = (e.message.split('\n')[0] ?? 'invalid TOML').replace(/^Invalid TOML document: /, '');
      throw configError(`config ${path} line ${e.line}: invalid TOML: ${msg}`);
    }
    throw configError(`config ${path}: invalid TOML`);
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
    const more =
      res.error.issues.length > 1
        ? ` (and ${res.error.issues.length - 1} more problem${res.error.issues.length > 2 ? 's' : ''})`
        : '';
    throw configError(`${where(at)}: ${pathText(p)}: ${message}${more}`);
  }
  const c = res.data;
  const fail = (segs: readonly (string | number)[], msg: string): never => {
    throw configError(`${where(segs)}: ${pathText(segs)}: ${msg}`);
  };
  if (c.firewall.table !== undefined) {
    const problem = tableNameProblem(c.firewall.backend, c.firewall.table);
    if (problem !== undefined) fail(['firewall', 'table'], problem);
  }
  if (c.grant.duration > c.grant.max_duration)
    fail(['grant', 'duration'], `must not exceed grant.max_duration (${c.grant.max_duration})`);
  if (c.firewall.fast_path === true && c.firewall.backend !== 'nftables')
    fail(['firewall', 'fast_path'], 'works with backend "nftables" only');

  const readKey = (kf: string, segs: readonly (string | number)[]): Uint8Array => {
    const abs = isAbsolute(kf) ? kf : resolve(dirname(path), kf);
    try {
      return readKeyFile(abs);
    } catch (e) {
      // key file errors carry an ERR_SPA_KEYFILE_* code and a one-line message
      const code = (e as { code?: unknown }).code;
      if (typeof code === 'string' && code.startsWith('ERR_SPA_KEYFILE')) fail(segs, (e as Error).message);
      throw e;
    }
  };
  const names = new Set<string>();
  const keys = new Map<string, string>();
  const inlineKeys: string[] = [];
  const clients: ClientConfig[] = c.client.map((cl, i) => {
    if (names.has(cl.name)) fail(['client', i, 'name'], `duplicate client name "${cl.name}"`);
    names.add(cl.name);
    let key: Uint8Array = new Uint8Array(0);
    const fwknop = fwknopKeysOf(cl, (k, msg) => fail(['client', i, k], msg));
    if (fwknop) {
      key = fwknop.enc;
      inlineKeys.push(cl.name);
    } else if ((cl.key === undefined) === (cl.key_file === undefined)) {
      fail(['client', i], 'set exactly one of "key" or "key_file"');
    } else if (cl.key !== undefined) {
      const k = parseKey(cl.key);
      if (!k.ok) fail(['client', i, 'key'], k.reason);
      key = (k as { key: Uint8Array }).key;
      inlineKeys.push(cl.name);
    } else {
      key = readKey(cl.key_file as string, ['client', i, 'key_file']);
    }
    const hex = (fwknop ? 'fwknop:' : '') + Buffer.from(key).toString('hex');
    const dup = keys.get(hex);
    if (dup !== undefined) fail(['client', i, 'key'], `same key as client "${dup}" (every client needs its own key)`);
    keys.set(hex, cl.name);
    cl.open.forEach((a, j) => {
      if (!c.firewall.protect.some((p) => sameAccess(p, a))) {
        fail(
          ['client', i, 'open', j],
          `${formatAccess(a)} is not in firewall.protect (it would already be open to everyone)`,
        );
      }
    });
    const codesWindow = codesWindowOf(cl, (k, msg) => fail(['client', i, k], msg));
    const maxDuration = Math.min(cl.max_duration ?? c.grant.max_duration, c.grant.max_duration);
    return clientConfig({
      name: cl.name,
      format: cl.format,
      key,
      open: dedupeAccesses(cl.open),
      sources: cl.sources,
      maxDuration,
      maxGrants: cl.max_grants ?? c.grant.max_grants,
      requireSourceAddress: cl.require_source_address,
      maxPrefix4: cl.max_prefix4,
      maxPrefix6: cl.max_prefix6,
      ...(cl.expires !== undefined ? { expiresAt: cl.expires } : {}),
      ...(fwknop ? { fwknop } : {}),
      ...(codesWindow !== undefined ? { codesWindow } : {}),
    });
  });

  const seqs = resolveSequences(
    c.sequence,
    {
      protect: c.firewall.protect,
      duration: c.grant.duration,
      maxDuration: c.grant.max_duration,
      readKey,
    },
    fail,
  );
  return {
    path,
    stateDir: c.state_dir,
    listen: { port: c.listen.port, address: c.listen.address, receiveBuffer: c.listen.receive_buffer },
    firewall: {
      backend: c.firewall.backend,
      protect: dedupeAccesses(c.firewall.protect),
      table: c.firewall.table ?? (c.firewall.backend === 'nftables' ? 'spa_knock' : 'SPA_KNOCK'),
      silencePortUnreachable: c.firewall.silence_port_unreachable,
      healInterval: c.firewall.heal_interval,
      fastPath: c.firewall.fast_path,
      fastPathPort: c.firewall.fast_path_port,
    },
    grant: { duration: c.grant.duration, maxDuration: c.grant.max_duration, maxGrants: c.grant.max_grants },
    replay: { window: c.replay.window },
    limit: {
      sourceRate: c.limit.source_rate,
      sourceBurst: c.limit.source_burst,
      sourceTable: c.limit.source_table,
      clientRate: c.limit.client_rate,
      clientBurst: c.limit.client_burst,
      firewallQueue: c.limit.firewall_queue,
      kernelPrefilter: c.limit.kernel_prefilter,
    },
    log: { level: c.log.level, rejectSummaryInterval: c.log.reject_summary_interval },
    clients,
    sequences: seqs.fixed,
    rotatingSequences: seqs.rotating,
    inlineKeys,
  };
}
