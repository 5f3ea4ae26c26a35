/**
 * The `[[client]]` table of the config (docs/config.md): its zod schema, with the fields of one-time codes
 * (server/config-fields.ts) and of fwknop (server/config-fwknop.ts) merged in, and `ClientConfig`, a client as the
 * daemon holds it once server/config.ts has resolved its key and checked it against the rest of the file.
 * @module
 */
import { TomlDate } from 'smol-toml';
import { z } from 'zod';
import type { Access } from '../shared/access.js';
import { type Cidr, parseCidr } from '../shared/address.js';
import type { FwknopKeys } from '../shared/fwknop/codec.js';
import { accessSchema, codesClientFields, maxGrants, seconds } from './config-fields.js';
import { fwknopClientFields } from './config-fwknop.js';

/** Widest `max_prefix4` / `max_prefix6` a config may set: a /16 (65536 addresses) / a /32 (a whole ISP site). */
export const MIN_PREFIX4 = 16;
export const MIN_PREFIX6 = 32;

export interface ClientConfig {
  readonly name: string;
  readonly format: 'spak1' | 'fwknop';
  /** spak1: the key; fwknop: the Rijndael key (KEY_BASE64 decoded). */
  readonly key: Uint8Array;
  /** format "fwknop" only: both keys and the HMAC digest (docs/fwknop.md). */
  readonly fwknop?: FwknopKeys;
  readonly open: readonly Access[];
  readonly sources: readonly Cidr[];
  readonly maxDuration: number;
  /** Most distinct addresses this client may hold grants for at once. */
  readonly maxGrants: number;
  /** fwknop's REQUIRE_SOURCE_ADDRESS: a knock must name the address to open (no "use the packet's source"). */
  readonly requireSourceAddress: boolean;
  /**
   * Widest IPv4 / IPv6 prefix a knock may ask to be granted to (issue 10: carrier-grade NAT, IPv6 privacy
   * addresses). 32 / 128, the defaults (absent means the same): one address only, no prefix grants.
   */
  readonly maxPrefix4?: number;
  readonly maxPrefix6?: number;
  /** `codes = true`: the look-ahead window of this client's one-time codes (docs/codes.md); absent: no codes. */
  readonly codesWindow?: number;
  /** `expires`: from this instant (ms since the epoch) the client's knocks are refused (`expired`), its grants end. */
  readonly expiresAt?: number;
}

/**
 * A client as the daemon holds it, made in one place: the config (server/config.ts) and the JIT warm-up
 * (server/warmup.ts) build theirs here, so that V8 gives both the same shape and the code warmed on the one runs on
 * the others without being thrown away.
 */
export function clientConfig(
  c: ClientConfig & { readonly maxPrefix4: number; readonly maxPrefix6: number },
): ClientConfig {
  return {
    name: c.name,
    format: c.format,
    key: c.key,
    open: c.open,
    sources: c.sources,
    maxDuration: c.maxDuration,
    maxGrants: c.maxGrants,
    requireSourceAddress: c.requireSourceAddress,
    maxPrefix4: c.maxPrefix4,
    maxPrefix6: c.maxPrefix6,
    ...(c.expiresAt !== undefined ? { expiresAt: c.expiresAt } : {}),
    ...(c.fwknop ? { fwknop: c.fwknop } : {}),
    ...(c.codesWindow !== undefined ? { codesWindow: c.codesWindow } : {}),
  };
}

const cidrSchema = z.string().transform((s, ctx): Cidr => {
  const r = parseCidr(s);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.reason });
    return z.NEVER;
  }
  return r.cidr;
});

/**
 * `expires = 2027-01-31` (TOML date: 00:00 UTC that day) or a date-time (`2027-01-31T18:00:00Z`; without an offset
 * it is read as UTC), never quoted: a TOML time alone or a string is refused.
 */
const expiresSchema = z
  .custom<TomlDate>(
    (v) => v instanceof TomlDate && !v.isTime() && Number.isFinite(v.getTime()),
    'must be a TOML date or date-time such as 2027-01-31 or 2027-01-31T18:00:00Z (not quoted)',
  )
  .transform((d) => d.getTime());

/** One `[[client]]` table, as written. */
export const clientSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ @ -'),
  format: z.enum(['spak1', 'fwknop'], { error: 'must be "spak1" or "fwknop"' }).default('spak1'),
  key: z.string().optional(),
  key_file: z.string().optional(),
  open: z.array(accessSchema).min(1, 'must list at least one access'),
  sources: z.array(cidrSchema).min(1).prefault(['0.0.0.0/0', '::/0']),
  max_duration: seconds(65535).optional(),
  max_grants: maxGrants.optional(),
  require_source_address: z.boolean().default(false),
  max_prefix4: z.number().int('must be a whole number').min(MIN_PREFIX4).max(32).default(32),
  max_prefix6: z.number().int('must be a whole number').min(MIN_PREFIX6).max(128).default(128),
  ...codesClientFields,
  expires: expiresSchema.optional(),
  ...fwknopClientFields,
});
