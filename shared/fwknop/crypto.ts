/**
 * fwknop (FKO protocol 3.0.0) primitives, written from the wire facts in docs/fwknop.md — no fwknop code:
 * base64 as fwknop writes it (standard alphabet, `=` stripped), the OpenSSL `EVP_BytesToKey` key/IV derivation
 * (MD5, one iteration: key = D1‖D2, IV = D3, so always AES-256), AES-256-CBC with PKCS#7, the inner digest chosen
 * by its length, and the outer HMAC. Pure; nothing throws on hostile input.
 * @module
 */
import { cbc } from '@noble/ciphers/aes.js';
import { equalBytes } from '@noble/ciphers/utils.js';
import { hmac } from '@noble/hashes/hmac.js';
import { md5, sha1 } from '@noble/hashes/legacy.js';
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { sha3_256, sha3_512 } from '@noble/hashes/sha3.js';
import type { CHash } from '@noble/hashes/utils.js';
import { concat } from '../bytes.js';

/** HMAC digests fwknop offers (`--hmac-digest-type`, access.conf `HMAC_DIGEST_TYPE`). */
export const HMAC_DIGESTS = ['md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const;
export type HmacDigest = (typeof HMAC_DIGESTS)[number];

const HASHES: Readonly<Record<HmacDigest, CHash>> = {
  md5,
  sha1,
  sha256,
  sha384,
  sha512,
  sha3_256,
  sha3_512,
};

export function isHmacDigest(s: unknown): s is HmacDigest {
  return typeof s === 'string' && (HMAC_DIGESTS as readonly string[]).includes(s);
}

/** Unpadded base64 length of a digest of `n` bytes. */
export const b64Len = (n: number): number => Math.ceil((n * 4) / 3);

/** Characters the HMAC takes at the end of a packet. */
export function hmacTextLen(d: HmacDigest): number {
  return b64Len(HASHES[d].outputLen);
}

/** The base64 of `Salted__`'s first 7.5 bytes: fwknop strips it from every Rijndael packet. */
export const SALT_PREFIX_B64 = 'U2FsdGVkX1';
export const SALTED = new Uint8Array([0x53, 0x61, 0x6c, 0x74, 0x65, 0x64, 0x5f, 0x5f]); // "Salted__"

const B64_RE = /^[A-Za-z0-9+/]*$/;

/** Standard base64 without `=` padding, as fwknop writes every field. */
export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64').replace(/=+$/, '');
}

/**
 * Strict decode of unpadded standard base64: only the alphabet, a length that base64 can have, and a canonical
 * last character (unused bits zero), so one byte string has exactly one text. undefined otherwise.
 */
export function unb64(text: string): Uint8Array | undefined {
  if (!B64_RE.test(text) || text.length % 4 === 1) return undefined;
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  return b64(bytes) === text ? bytes : undefined;
}

/** The key (32 bytes) and IV (16 bytes) for a passphrase and an 8-byte salt: `EVP_BytesToKey(MD5, 1 round)`. */
export function deriveKeyIv(pass: Uint8Array, salt: Uint8Array): { key: Uint8Array; iv: Uint8Array } {
  const d1 = md5(concat(pass, salt));
  const d2 = md5(concat(d1, pass, salt));
  const d3 = md5(concat(d2, pass, salt));
  return { key: concat(d1, d2), iv: d3 };
}

/** AES-256-CBC with PKCS#7 padding. */
export function encryptCbc(pass: Uint8Array, salt: Uint8Array, plain: Uint8Array): Uint8Array {
  const { key, iv } = deriveKeyIv(pass, salt);
  return cbc(key, iv).encrypt(plain);
}

/** AES-256-CBC decrypt; undefined when the length or the PKCS#7 padding is wrong. Never throws. */
export function decryptCbc(pass: Uint8Array, salt: Uint8Array, ct: Uint8Array): Uint8Array | undefined {
  if (ct.length === 0 || ct.length % 16 !== 0) return undefined;
  const { key, iv } = deriveKeyIv(pass, salt);
  const pt = cbc(key, iv, { disablePadding: true }).decrypt(ct);
  const pad = pt[pt.length - 1] ?? 0;
  if (pad < 1 || pad > 16) return undefined;
  for (let i = pt.length - pad; i < pt.length; i++) if (pt[i] !== pad) return undefined;
  return pt.subarray(0, pt.length - pad);
}

/** The HMAC text fwknop appends: base64nopad(HMAC-d(key, ascii)). */
export function hmacText(d: HmacDigest, key: Uint8Array, ascii: Uint8Array): string {
  return b64(hmac(HASHES[d], key, ascii));
}

/** Constant-time comparison of two ASCII texts of the same length (false at once when lengths differ). */
export function textEquals(a: string, b: string): boolean {
  return a.length === b.length && equalBytes(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1'));
}

/**
 * The inner digest (inside the encryption): fwknop picks its hash by the digest's length. For 43 and 86
 * characters SHA-2 is tried first, then SHA-3 (as fwknopd does).
 */
export function innerDigestMatches(data: Uint8Array, digestText: string): boolean {
  const candidates = (Object.keys(HASHES) as HmacDigest[]).filter((d) => hmacTextLen(d) === digestText.length);
  return candidates.some((d) => textEquals(b64(HASHES[d](data)), digestText));
}

/** SHA-256 (inner digest of the packets spa-knock builds, and fwknop's replay key). */
export function sha256Of(data: Uint8Array): Uint8Array {
  return sha256(data);
}
