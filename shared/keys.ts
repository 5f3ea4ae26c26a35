/**
 * Client keys: 32 random bytes, and their one-line text form
 *
 *     spak1_<base64url(key ‖ checksum)>      checksum = SHA-256("spak1" ‖ key)[0..4]
 *
 * The prefix lets secret scanners find a leaked key; the checksum catches a copy-paste typo before it becomes a
 * silently wrong key. Pure code: parsing returns a reason instead of throwing.
 * @module
 */
import { randomBytes, equalBytes } from '@noble/ciphers/utils.js';
import { concat, utf8 } from './bytes.js';
import { sha256Of } from './crypto.js';
import { KEY_CHECKSUM_LEN, KEY_LEN, KEY_TEXT_PREFIX } from './constants.js';

const BODY_LEN = Math.ceil(((KEY_LEN + KEY_CHECKSUM_LEN) * 4) / 3); // 48 base64url characters, no padding
const BODY_RE = /^[A-Za-z0-9_-]+$/;

export type KeyParse =
  | { readonly ok: true; readonly key: Uint8Array }
  | { readonly ok: false; readonly reason: string };

function checksum(key: Uint8Array): Uint8Array {
  return sha256Of(concat(utf8(KEY_TEXT_PREFIX.slice(0, -1)), key)).subarray(0, KEY_CHECKSUM_LEN);
}

/** A fresh random key (CSPRNG: crypto.getRandomValues). */
export function generateKey(): Uint8Array {
  return randomBytes(KEY_LEN);
}

/** @example formatKey(key) // 'spak1_…' (54 characters) */
export function formatKey(key: Uint8Array): string {
  if (key.length !== KEY_LEN) throw new RangeError(`key must be ${KEY_LEN} bytes`);
  return KEY_TEXT_PREFIX + Buffer.from(concat(key, checksum(key))).toString('base64url');
}

/** Parse one key line (surrounding white space ignored). Never throws. */
export function parseKey(text: string): KeyParse {
  const t = text.trim();
  if (!t.startsWith(KEY_TEXT_PREFIX))
    return { ok: false, reason: `not a spa-knock key (expected it to start with "${KEY_TEXT_PREFIX}")` };
  const body = t.slice(KEY_TEXT_PREFIX.length);
  if (body.length !== BODY_LEN || !BODY_RE.test(body)) {
    return {
      ok: false,
      reason: `malformed key (expected ${BODY_LEN} base64url characters after "${KEY_TEXT_PREFIX}")`,
    };
  }
  const raw = new Uint8Array(Buffer.from(body, 'base64url'));
  if (raw.length !== KEY_LEN + KEY_CHECKSUM_LEN) return { ok: false, reason: 'malformed key (bad length)' };
  const key = raw.slice(0, KEY_LEN);
  if (!equalBytes(checksum(key), raw.subarray(KEY_LEN)))
    return { ok: false, reason: 'key checksum mismatch (typo or truncated copy?)' };
  return { ok: true, key };
}
