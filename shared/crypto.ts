/**
 * The cryptography of packet v1, all from @noble (audited, pure JS):
 * - HKDF-SHA256 (RFC 5869) derives three independent sub-keys from the 32-byte client key;
 * - the rotating key id is HMAC-SHA256(idKey, epoch) truncated to 8 bytes (RFC 2104; truncation as RFC 4868 §2.3);
 * - the payload is encrypted with the XChaCha20 stream cipher (draft-irtf-cfrg-xchacha-03 §2.3) under a random
 *   24-byte nonce;
 * - the tag is HMAC-SHA256(macKey, everything before the tag): encrypt-then-MAC, so a forged packet is rejected
 *   before any decryption. Tags are compared in constant time.
 * @module
 */
import { xchacha20 } from '@noble/ciphers/chacha.js';
import { equalBytes } from '@noble/ciphers/utils.js';
import { expand, extract } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { u64be, utf8 } from './bytes.js';
import {
  KDF_LABEL_ENC,
  KDF_LABEL_ID,
  KDF_LABEL_MAC,
  KDF_SALT,
  KEY_ID_EPOCH_MS,
  KEY_ID_LEN,
  KEY_LEN,
  NONCE_LEN,
  TAG_LEN,
} from './constants.js';

/** The three sub-keys of one client key. Never logged, never sent. */
export interface SubKeys {
  readonly id: Uint8Array;
  readonly enc: Uint8Array;
  readonly mac: Uint8Array;
}

/**
 * RFC 5869 HKDF-SHA256 with a fixed salt and one `info` label per purpose. The three share salt and key, so the
 * extract step (§2.2) is done once and only the expand step (§2.3) per label: the same sub-keys as three whole HKDF
 * calls, with a third of the HMACs fewer (the client derives them on every start: client cold start).
 * @example const k = deriveKeys(masterKey); k.enc.length === 32
 */
export function deriveKeys(master: Uint8Array): SubKeys {
  if (master.length !== KEY_LEN) throw new RangeError(`key must be ${KEY_LEN} bytes`);
  const prk = extract(sha256, master, utf8(KDF_SALT));
  return {
    id: expand(sha256, prk, utf8(KDF_LABEL_ID), 32),
    enc: expand(sha256, prk, utf8(KDF_LABEL_ENC), 32),
    mac: expand(sha256, prk, utf8(KDF_LABEL_MAC), 32),
  };
}

/** The key-id epoch that a timestamp (ms) falls in. */
export function epochOf(tsMs: number): number {
  return Math.floor(tsMs / KEY_ID_EPOCH_MS);
}

/** Rotating key id: HMAC-SHA256(idKey, u64be(epoch))[0..8]. */
export function keyIdFor(idKey: Uint8Array, epoch: number): Uint8Array {
  return hmac(sha256, idKey, u64be(epoch)).subarray(0, KEY_ID_LEN);
}

/** XChaCha20 keystream XOR (encrypt and decrypt are the same operation), block counter starting at 0. */
export function xorStream(encKey: Uint8Array, nonce: Uint8Array, data: Uint8Array): Uint8Array {
  if (nonce.length !== NONCE_LEN) throw new RangeError(`nonce must be ${NONCE_LEN} bytes`);
  return xchacha20(encKey, nonce, data);
}

/** HMAC-SHA256 over the authenticated bytes. */
export function macOf(macKey: Uint8Array, authenticated: Uint8Array): Uint8Array {
  return hmac(sha256, macKey, authenticated);
}

/** Constant-time tag comparison (lengths are public). */
export function tagMatches(macKey: Uint8Array, authenticated: Uint8Array, tag: Uint8Array): boolean {
  if (tag.length !== TAG_LEN) return false;
  return equalBytes(macOf(macKey, authenticated), tag);
}

/** SHA-256, exported for key checksums. */
export function sha256Of(data: Uint8Array): Uint8Array {
  return sha256(data);
}
