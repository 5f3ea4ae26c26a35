/**
 * fwknop keys: the two base64 lines `fwknop --key-gen` prints (`KEY_BASE64: …`, `HMAC_KEY_BASE64: …`), read from a
 * key file or a `~/.fwknoprc` stanza (`KEY_BASE64  …`, `HMAC_KEY_BASE64  …`, optional `HMAC_DIGEST_TYPE  sha512`).
 * Pure: parsing returns a reason instead of throwing.
 * @module
 */
import { randomBytes } from '@noble/ciphers/utils.js';
import type { FwknopKeys } from './codec.js';
import { type HmacDigest, isHmacDigest } from './crypto.js';

export const FWKNOP_KEY_LEN = 32;
export const FWKNOP_HMAC_KEY_LEN = 64;
/** fwknop's MAX_DIGEST_BLOCK_LEN: the longest HMAC key it takes. */
export const FWKNOP_MAX_HMAC_KEY_LEN = 136;

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

/** Decode a KEY_BASE64 / HMAC_KEY_BASE64 value (standard base64, padding optional) of `min`..`max` bytes. */
export function parseKeyBase64(text: string, what: string, min: number, max: number): Parsed<Uint8Array> {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t) || t.replace(/=+$/, '').length % 4 === 1)
    return { ok: false, reason: `${what} is not base64` };
  const bytes = new Uint8Array(Buffer.from(t, 'base64'));
  if (bytes.length < min || bytes.length > max)
    return { ok: false, reason: `${what} must decode to ${min}-${max} bytes (got ${bytes.length})` };
  return { ok: true, value: bytes };
}

export const parseEncKey = (t: string) => parseKeyBase64(t, 'KEY_BASE64', 1, FWKNOP_KEY_LEN);
export const parseHmacKey = (t: string) => parseKeyBase64(t, 'HMAC_KEY_BASE64', 1, FWKNOP_MAX_HMAC_KEY_LEN);

/** Parse `HMAC_DIGEST_TYPE` text (`SHA256`, `sha3_512`…; case-insensitive). */
export function parseDigest(text: string): HmacDigest | undefined {
  const d = text.trim().toLowerCase().replace('-', '_');
  return isHmacDigest(d) ? d : undefined;
}

/**
 * Parse a key file: `fwknop --key-gen` output or one `~/.fwknoprc` stanza. Lines are `NAME[:] value`; `#` starts a
 * comment; `[stanza]` headers are allowed, but the keys must be given once (copy one stanza when there are several).
 */
export function parseFwknopKeyText(text: string): Parsed<FwknopKeys> {
  const seen = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || /^\[.*\]$/.test(line)) continue;
    const m = /^([A-Z0-9_]+):?\s+(\S+)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    const name = m[1];
    if (name !== 'KEY_BASE64' && name !== 'HMAC_KEY_BASE64' && name !== 'HMAC_DIGEST_TYPE') continue;
    const prev = seen.get(name);
    if (prev !== undefined && prev !== m[2])
      return { ok: false, reason: `${name} is given twice with different values (keep one stanza in the key file)` };
    seen.set(name, m[2]);
  }
  const k = seen.get('KEY_BASE64');
  const h = seen.get('HMAC_KEY_BASE64');
  if (k === undefined || h === undefined)
    return { ok: false, reason: 'needs a KEY_BASE64 and an HMAC_KEY_BASE64 line (as fwknop --key-gen prints them)' };
  const enc = parseEncKey(k);
  if (!enc.ok) return enc;
  const hmac = parseHmacKey(h);
  if (!hmac.ok) return hmac;
  const dt = seen.get('HMAC_DIGEST_TYPE');
  const digest = dt === undefined ? 'sha256' : parseDigest(dt);
  if (digest === undefined) return { ok: false, reason: `HMAC_DIGEST_TYPE "${dt}" is not one fwknop knows` };
  return { ok: true, value: { enc: enc.value, hmac: hmac.value, digest } };
}

/** A fresh key pair, in the text form `fwknop --key-gen` prints (so either program reads the other's). */
export function generateFwknopKeyText(): string {
  const b = (n: number) => Buffer.from(randomBytes(n)).toString('base64');
  return `KEY_BASE64: ${b(FWKNOP_KEY_LEN)}\nHMAC_KEY_BASE64: ${b(FWKNOP_HMAC_KEY_LEN)}\n`;
}
