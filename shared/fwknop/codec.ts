/**
 * fwknop SPA packets (FKO protocol 3.0.0, Rijndael + HMAC): decode in the order docs/fwknop.md gives, cheapest
 * first, and encode packets the real `fwknopd` accepts.
 *
 *     packet  = body ‖ b64(HMAC(hmacKey, "U2FsdGVkX1" ‖ body))          (text, unpadded standard base64)
 *     body    = b64("Salted__" ‖ salt[8] ‖ AES-256-CBC(plaintext)) without its first 10 characters
 *     plain   = rand:b64(user):ts:version:type:b64(message)[:b64(nat)][:b64(server_auth)][:timeout]:digest
 *
 * Only access requests become a {@link FwknopAccess}; NAT and command types are returned as such so the server can
 * refuse them with their own reason. Nothing here throws on hostile input.
 * @module
 */
import { type Access, formatAccess, parseAccess } from '../access.js';
import { parseIp } from '../address.js';
import { concat, utf8 } from '../bytes.js';
import {
  type HmacDigest,
  SALTED,
  SALT_PREFIX_B64,
  b64,
  decryptCbc,
  encryptCbc,
  hmacText,
  hmacTextLen,
  innerDigestMatches,
  sha256Of,
  textEquals,
  unb64,
} from './crypto.js';

/** fwknopd drops packets shorter than this or longer than {@link FWKNOP_MAX_LEN} (bytes of text). */
export const FWKNOP_MIN_LEN = 140;
export const FWKNOP_MAX_LEN = 1500;
/** At 400 characters or more fwknopd takes a packet for GPG: a packet meant for fwknopd must stay below. */
export const FWKNOP_RIJNDAEL_LIMIT = 400;
export const FKO_VERSION = '3.0.0';
/** fwknop's cap on the base64 message field, the user name and the allow-IP text. */
const MAX_MESSAGE_B64 = 256;
const MAX_USER = 64;

export const MSG_COMMAND = 0;
export const MSG_ACCESS = 1;
export const MSG_NAT = 2;
export const MSG_CLIENT_TIMEOUT = 3;
export const MSG_NAT_TIMEOUT = 4;
export const MSG_LOCAL_NAT = 5;
export const MSG_LOCAL_NAT_TIMEOUT = 6;

export interface FwknopKeys {
  /** Rijndael passphrase bytes (KEY_BASE64 decoded), 1-32 bytes. */
  readonly enc: Uint8Array;
  /** HMAC key bytes (HMAC_KEY_BASE64 decoded). */
  readonly hmac: Uint8Array;
  readonly digest: HmacDigest;
}

/** An access request (types 1 and 3), parsed. */
export interface FwknopAccess {
  readonly kind: 'access';
  readonly user: string;
  /** Client clock, seconds since the Unix epoch. */
  readonly timestamp: number;
  /** The address to open; undefined for `0.0.0.0` (`-s`: the packet's source). */
  readonly allowIp: string | undefined;
  readonly accesses: readonly Access[];
  /** Type 3's client timeout (seconds); 0 for type 1. */
  readonly timeout: number;
}

export type FwknopDecoded = FwknopAccess | { readonly kind: 'command' } | { readonly kind: 'nat' };

export type FwknopResult =
  | { readonly ok: true; readonly value: FwknopDecoded }
  | { readonly ok: false; readonly code: 'size' | 'version' | 'mac' | 'malformed' };

const fail = (code: 'size' | 'version' | 'mac' | 'malformed') => ({ ok: false, code }) as const;

const B64_CHAR = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64_CHAR[c.charCodeAt(0)] = 1;

/** Cheap test, no crypto: fwknop packet text is base64 characters only, and its first one can follow `Salted__`. */
export function looksLikeFwknop(buf: Uint8Array): boolean {
  if (buf.length < FWKNOP_MIN_LEN || buf.length > FWKNOP_MAX_LEN) return false;
  for (const c of buf) if (B64_CHAR[c] !== 1) return false;
  return true;
}

/** The replay key: base64nopad(SHA-256(the packet text)), as fwknopd's digest cache has it. */
export function replayKeyOf(text: string): string {
  return b64(sha256Of(utf8(text)));
}

/** Stage 1-2: shape and HMAC (constant time, over the text with the salt prefix put back). */
export function checkHmac(text: string, keys: FwknopKeys): { ok: true; body: string } | { ok: false; code: 'mac' } {
  const n = hmacTextLen(keys.digest);
  if (text.length <= n) return { ok: false, code: 'mac' };
  const body = text.slice(0, text.length - n);
  const expected = hmacText(keys.digest, keys.hmac, utf8(SALT_PREFIX_B64 + body));
  return textEquals(expected, text.slice(text.length - n)) ? { ok: true, body } : { ok: false, code: 'mac' };
}

const PRINTABLE = /^[\x20-\x7e]*$/;

function b64Text(field: string | undefined, max: number): string | undefined {
  if (field === undefined || field.length === 0 || field.length > max) return undefined;
  const raw = unb64(field);
  if (!raw) return undefined;
  const s = Buffer.from(raw).toString('latin1');
  return PRINTABLE.test(s) ? s : undefined;
}

/** Parse `allowip,proto/port[,proto/port...]`. */
function parseMessage(m: string): { allowIp: string | undefined; accesses: Access[] } | undefined {
  const parts = m.split(',');
  const ipText = parts.shift() ?? '';
  if (ipText.length < 7 || ipText.length > 15) return undefined;
  const ip = parseIp(ipText, { zone: 'refuse' });
  if (ip?.family !== 4 || ip.text !== ipText) return undefined;
  if (parts.length === 0) return undefined;
  const accesses: Access[] = [];
  for (const p of parts) {
    const a = parseAccess(p);
    if (!a || formatAccess(a) !== p) return undefined;
    accesses.push(a);
  }
  return { allowIp: ipText === '0.0.0.0' ? undefined : ipText, accesses };
}

/** Parse a decrypted plaintext. */
export function parsePlaintext(pt: Uint8Array): FwknopResult {
  const s = Buffer.from(pt).toString('latin1');
  if (!PRINTABLE.test(s)) return fail('malformed');
  const cut = s.lastIndexOf(':');
  if (cut < 0 || !innerDigestMatches(pt.subarray(0, cut), s.slice(cut + 1))) return fail('malformed');
  const f = s.slice(0, cut).split(':');
  if (f.length < 6 || f.length > 9) return fail('malformed');
  const [rand, userB64, ts, version, typeText, msgB64, ...rest] = f;
  if (!/^\d{16}$/.test(rand ?? '')) return fail('malformed');
  if (!/^\d{1,12}$/.test(ts ?? '') || !/^\d{1,2}$/.test(typeText ?? '')) return fail('malformed');
  if (version === undefined || version.length === 0 || version.length > 8) return fail('malformed');
  const type = Number(typeText);
  if (type === MSG_COMMAND) return { ok: true, value: { kind: 'command' } };
  if (type === MSG_NAT || type === MSG_NAT_TIMEOUT || type === MSG_LOCAL_NAT || type === MSG_LOCAL_NAT_TIMEOUT)
    return { ok: true, value: { kind: 'nat' } };
  if (type !== MSG_ACCESS && type !== MSG_CLIENT_TIMEOUT) return fail('malformed');
  const user = b64Text(userB64, Math.ceil((MAX_USER * 4) / 3));
  const message = b64Text(msgB64, MAX_MESSAGE_B64);
  if (user === undefined || message === undefined) return fail('malformed');
  // trailing fields: [server_auth] for type 1, [server_auth] timeout for type 3 (server_auth is not used here)
  let timeout = 0;
  if (type === MSG_CLIENT_TIMEOUT) {
    const t = rest.pop();
    if (t === undefined || !/^\d{1,10}$/.test(t)) return fail('malformed');
    timeout = Number(t);
    if (timeout < 1) return fail('malformed');
  }
  if (rest.length > 1 || (rest.length === 1 && unb64(rest[0] ?? '') === undefined)) return fail('malformed');
  const msg = parseMessage(message);
  if (!msg) return fail('malformed');
  return {
    ok: true,
    value: { kind: 'access', user, timestamp: Number(ts), allowIp: msg.allowIp, accesses: msg.accesses, timeout },
  };
}

/** Stage 3-6, after {@link checkHmac}: re-add the prefix, decode, check `Salted__`, decrypt, parse. */
export function decryptBody(body: string, keys: FwknopKeys): FwknopResult {
  const text = SALT_PREFIX_B64 + body;
  if (text.length % 4 === 1) return fail('malformed'); // no byte string has a base64 text of this length
  const raw = new Uint8Array(Buffer.from(text, 'base64'));
  if (raw.length < 16 + 16 || !SALTED.every((b, i) => raw[i] === b)) return fail('malformed');
  const pt = decryptCbc(keys.enc, raw.subarray(8, 16), raw.subarray(16));
  return pt ? parsePlaintext(pt) : fail('malformed');
}

/** Every stage against one client's keys. */
export function decodePacket(text: string, keys: FwknopKeys): FwknopResult {
  if (text.length < FWKNOP_MIN_LEN || text.length > FWKNOP_MAX_LEN) return fail('size');
  if (!looksLikeFwknop(utf8(text)) || text.startsWith(SALT_PREFIX_B64)) return fail('version');
  const h = checkHmac(text, keys);
  if (!h.ok) return h;
  return decryptBody(h.body, keys);
}

export interface EncodeRequest {
  readonly user: string;
  /** Seconds since the Unix epoch. */
  readonly timestamp: number;
  /** IPv4 address to open, or undefined for `0.0.0.0` (the packet's source). */
  readonly allowIp: string | undefined;
  readonly accesses: readonly Access[];
  /** Seconds; 0 = the server's FW_ACCESS_TIMEOUT (message type 1), else type 3. */
  readonly timeout: number;
}

/**
 * Build a packet. `salt` (8 bytes) and `rand` (16 decimal digits) must be fresh random values (the caller supplies
 * them so tests are reproducible). Throws RangeError on what fwknopd would refuse, including a packet of 400
 * characters or more.
 */
export function encodePacket(req: EncodeRequest, keys: FwknopKeys, salt: Uint8Array, rand: string): string {
  if (salt.length !== 8) throw new RangeError('salt must be 8 bytes');
  if (!/^\d{16}$/.test(rand)) throw new RangeError('rand must be 16 decimal digits');
  if (keys.enc.length < 1 || keys.enc.length > 32) throw new RangeError('fwknop key must be 1-32 bytes');
  if (!Number.isSafeInteger(req.timestamp) || req.timestamp < 0) throw new RangeError('timestamp out of range');
  if (!Number.isInteger(req.timeout) || req.timeout < 0 || req.timeout > 0xffff)
    throw new RangeError('timeout must be 0..65535 seconds');
  if (req.accesses.length === 0) throw new RangeError('fwknop needs at least one access (e.g. tcp/22)');
  if (!/^[\x21-\x7e]{1,64}$/.test(req.user) || req.user.includes(':')) throw new RangeError('bad user name');
  const ip = req.allowIp ?? '0.0.0.0';
  const a = parseIp(ip);
  if (a?.family !== 4) throw new RangeError('fwknop carries an IPv4 allow address only');
  const message = b64(utf8([a.text, ...req.accesses.map(formatAccess)].join(',')));
  if (message.length > MAX_MESSAGE_B64) throw new RangeError('too many accesses for one fwknop packet');
  const type = req.timeout > 0 ? MSG_CLIENT_TIMEOUT : MSG_ACCESS;
  const fields = [rand, b64(utf8(req.user)), String(req.timestamp), FKO_VERSION, String(type), message];
  if (req.timeout > 0) fields.push(String(req.timeout));
  const data = fields.join(':');
  const plain = utf8(`${data}:${b64(sha256Of(utf8(data)))}`);
  const ct = b64(concat(SALTED, salt, encryptCbc(keys.enc, salt, plain)));
  const body = ct.slice(SALT_PREFIX_B64.length);
  const text = body + hmacText(keys.digest, keys.hmac, utf8(SALT_PREFIX_B64 + body));
  if (text.length >= FWKNOP_RIJNDAEL_LIMIT)
    throw new RangeError(`fwknop packet would be ${text.length} characters; fwknopd needs fewer than 400`);
  return text;
}
