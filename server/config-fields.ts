/**
 * zod field schemas that more than one part of the config uses (server/config.ts, server/config-client.ts,
 * server/sequence-config.ts), and the `[[client]]` fields of one-time codes (kept here so the client schema,
 * server/config-client.ts, only registers them).
 * @module
 */
import { z } from 'zod';
import { parseAccess } from '../shared/access.js';

/** Whole seconds, 1 to `max`; a whole count of grants, 1 to 65535 (`grant.max_grants`, `[[client]] max_grants`). */
export const seconds = (max: number) => z.number().int('must be a whole number of seconds').min(1).max(max);
export const maxGrants = z.number().int('must be a whole number').min(1).max(65535);

/** `"tcp/22"` → `{ proto: 'tcp', port: 22 }`, or an issue naming the value. */
export const accessSchema = z.string().transform((s, ctx) => {
  const a = parseAccess(s);
  if (!a) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an access like "tcp/22" or "udp/53"` });
    return z.NEVER;
  }
  return a;
});

/** Default and largest `codes_window`: how far ahead of its floor a one-time code is still accepted (docs/codes.md). */
export const DEFAULT_CODES_WINDOW = 20;
export const MAX_CODES_WINDOW = 1000;

/** `[[client]]` keys of one-time codes (docs/codes.md, docs/config.md). */
export const codesClientFields = {
  codes: z.boolean().default(false),
  codes_window: z.number().int('must be a whole number').min(1).max(MAX_CODES_WINDOW).optional(),
};

/**
 * The look-ahead window of a client that takes codes, undefined for one that does not; `fail` names the key that
 * conflicts: codes are spak1 keys' (the client prints them from its key file), and open the datagram's source, which
 * a client with `require_source_address` refuses.
 */
export function codesWindowOf(
  cl: { codes: boolean; codes_window?: number | undefined; format: string; require_source_address: boolean },
  fail: (key: string, msg: string) => never,
): number | undefined {
  if (!cl.codes) {
    if (cl.codes_window !== undefined) fail('codes_window', 'needs codes = true');
    return undefined;
  }
  if (cl.format !== 'spak1') fail('codes', 'one-time codes need a spak1 key (format = "spak1")');
  if (cl.require_source_address)
    fail('codes', "a code opens for its datagram's source address, which require_source_address = true refuses");
  return cl.codes_window ?? DEFAULT_CODES_WINDOW;
}
