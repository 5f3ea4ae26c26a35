/**
 * One-time codes (format `spc1`, docs/codes.md): printable single-use codes for apps that can only send fixed bytes.
 *
 *     code(c) = "spc1-" ‖ base32lower(HMAC-SHA256(codeKey, u64be(c))[0..15])     29 characters
 *     codeKey = HKDF-SHA256(key, salt "spa-knock/v1", info "spa-knock/v1 one-time codes", 32)   (RFC 5869)
 *
 * HOTP's idea (RFC 4226: an HMAC over a counter, a look-ahead window on the server) with 120 bits of MAC instead of
 * a 6-digit truncation. Pure: no I/O, no clock.
 * @module
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { toHex, u64be, utf8 } from './bytes.js';
import { KDF_SALT, KEY_LEN } from './constants.js';

/** The format marker every code starts with. */
export const CODE_PREFIX = 'spc1-';
/** Bytes of MAC in a code: 120 bits, exactly 24 base32 characters. */
export const CODE_MAC_LEN = 15;
export const CODE_BODY_LEN = 24;
/** Length of a code's text: prefix and body. */
export const CODE_LEN = CODE_PREFIX.length + CODE_BODY_LEN;
/** Counters are below this (2^48): far more codes than anyone prints, and safe integers throughout. */
export const CODE_COUNTER_LIMIT = 2 ** 48;
/** HKDF `info` of the code sub-key (docs/protocol.md §3 has the others). */
export const KDF_LABEL_CODES = 'spa-knock/v1 one-time codes';

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** RFC 4648 §6 base32, lower case, no padding. */
export function base32(b: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of b) {
    acc = ((acc << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += B32[(acc >>> bits) & 31];
    }
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
  return out;
}

/** The code sub-key of a client key. Never logged, never sent. */
export function codeKeyOf(key: Uint8Array): Uint8Array {
  if (key.length !== KEY_LEN) throw new RangeError(`key must be ${KEY_LEN} bytes`);
  return hkdf(sha256, key, utf8(KDF_SALT), utf8(KDF_LABEL_CODES), 32);
}

/** The 24-character body (lower case) of the code with this counter. */
export function codeBody(codeKey: Uint8Array, counter: number): string {
  if (!Number.isSafeInteger(counter) || counter < 0 || counter >= CODE_COUNTER_LIMIT)
    throw new RangeError(`code counter must be 0 … ${CODE_COUNTER_LIMIT - 1}`);
  return base32(hmac(sha256, codeKey, u64be(counter)).subarray(0, CODE_MAC_LEN));
}

/**
 * The code with this counter, as printed and sent.
 * @example codeText(codeKeyOf(key), 0) // 'spc1-…' (29 characters)
 */
export function codeText(codeKey: Uint8Array, counter: number): string {
  return CODE_PREFIX + codeBody(codeKey, counter);
}

/** The floor-store id of a code key: HMAC-SHA256(codeKey, "floor id")[0..8] in hex (follows the key, not a name). */
export function codeFloorId(codeKey: Uint8Array): string {
  return toHex(hmac(sha256, codeKey, utf8('floor id')).subarray(0, 8));
}

const PREFIX_BYTES = utf8(CODE_PREFIX);
/** ASCII A-Z → a-z; every other byte as it is. */
const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/** Cheap test (no crypto): could these bytes be a code? Length 29–31 and the prefix, in either case. */
export function looksLikeCode(buf: Uint8Array): boolean {
  if (buf.length < CODE_LEN || buf.length > CODE_LEN + 2) return false;
  for (let i = 0; i < PREFIX_BYTES.length; i++) if (lower(buf[i] ?? 0) !== PREFIX_BYTES[i]) return false;
  return true;
}

/**
 * The body of a code datagram, lower-cased, or undefined when it is not exactly prefix + 24 base32 characters,
 * optionally followed by `\n` or `\r\n`. Never throws.
 */
export function codeBodyOf(buf: Uint8Array): string | undefined {
  if (!looksLikeCode(buf)) return undefined;
  const tail = buf.length - CODE_LEN;
  if (tail === 1 && buf[CODE_LEN] !== 0x0a) return undefined;
  if (tail === 2 && (buf[CODE_LEN] !== 0x0d || buf[CODE_LEN + 1] !== 0x0a)) return undefined;
  let body = '';
  for (let i = CODE_PREFIX.length; i < CODE_LEN; i++) {
    const c = lower(buf[i] ?? 0);
    if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x32 && c <= 0x37))) return undefined;
    body += String.fromCharCode(c);
  }
  return body;
}
