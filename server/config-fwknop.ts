/**
 * The fwknop part of a `[[client]]` (docs/fwknop.md): `format = "fwknop"` with the two keys exactly as
 * `fwknop --key-gen` prints them and an HMAC digest. Kept apart from config.ts so the native path stays as it was.
 * @module
 */
import { z } from 'zod';
import type { FwknopKeys } from '../shared/fwknop/codec.js';
import { HMAC_DIGESTS } from '../shared/fwknop/crypto.js';
import { parseEncKey, parseHmacKey } from '../shared/fwknop/keys.js';

/** Keys a client table may hold for fwknop (zod shape, merged into the client schema). */
export const fwknopClientFields = {
  key_base64: z.string().optional(),
  hmac_key_base64: z.string().optional(),
  hmac_digest: z.enum(HMAC_DIGESTS).optional(),
};

interface FwknopFields {
  readonly format: 'spak1' | 'fwknop';
  readonly key?: string | undefined;
  readonly key_file?: string | undefined;
  readonly key_base64?: string | undefined;
  readonly hmac_key_base64?: string | undefined;
  readonly hmac_digest?: (typeof HMAC_DIGESTS)[number] | undefined;
}

/**
 * Resolve the fwknop keys of a client; `fail(key, message)` throws the config error. undefined for a spak1 client
 * (which must then not carry fwknop keys).
 */
export function fwknopKeysOf(cl: FwknopFields, fail: (key: string, msg: string) => never): FwknopKeys | undefined {
  if (cl.format !== 'fwknop') {
    for (const k of ['key_base64', 'hmac_key_base64', 'hmac_digest'] as const)
      if (cl[k] !== undefined) fail(k, 'only for format = "fwknop" clients');
    return undefined;
  }
  if (cl.key !== undefined) fail('key', 'a format = "fwknop" client takes key_base64 and hmac_key_base64');
  if (cl.key_file !== undefined) fail('key_file', 'a format = "fwknop" client takes key_base64 and hmac_key_base64');
  if (cl.key_base64 === undefined) return fail('key_base64', 'is required (KEY_BASE64 from fwknop --key-gen)');
  if (cl.hmac_key_base64 === undefined)
    return fail('hmac_key_base64', 'is required (HMAC_KEY_BASE64 from fwknop --key-gen)');
  const enc = parseEncKey(cl.key_base64);
  if (!enc.ok) return fail('key_base64', enc.reason);
  const hmac = parseHmacKey(cl.hmac_key_base64);
  if (!hmac.ok) return fail('hmac_key_base64', hmac.reason);
  return { enc: enc.value, hmac: hmac.value, digest: cl.hmac_digest ?? 'sha256' };
}
