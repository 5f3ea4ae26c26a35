/**
 * Packet v1: the byte layout, its encoder and its staged decoder. Layout (docs/protocol.md has the full table):
 *
 *     off  len  field
 *     0    1    version = 0x01
 *     1    8    key id  = HMAC-SHA256(idKey, u64be(epoch))[0..8], epoch = floor(ts / 60 s)
 *     9    24   nonce   (random)
 *     33   n    ciphertext = XChaCha20(encKey, nonce) ⊕ payload
 *     33+n 32   tag     = HMAC-SHA256(macKey, bytes[0 .. 33+n])
 *
 * Payload (plaintext):
 *
 *     0    8    timestamp, ms since the Unix epoch, u64 big-endian
 *     8    1    type: 1 = open, 2 = close
 *     9    2    duration in seconds, u16 BE (0 = server default)
 *     11   1    access count c (0 = everything the policy allows), at most 32
 *     12   3c   accesses: proto (6 tcp, 17 udp), port u16 BE
 *     ..   1    allow-address family: 0 none (use the packet's source), 4, 6
 *     ..   0/4/16 the address
 *     ..   *    extensions: TLV (type u8, length u8, value); type 0 is padding; other types < 0x80 are skipped
 *               when unknown; an unknown type >= 0x80 is "critical" and makes the packet malformed.
 *               Type 1 = prefix request (value: IPv4 length u8, IPv6 length u8; 0 = not asked), at most once.
 *
 * Decoding is staged so a verifier can reject cheapest-first: {@link splitPacket} (size, version) →
 * key-id lookup (caller) → {@link authenticate} (HMAC) → {@link decryptPayload} (XChaCha20 + parse).
 * No stage throws on hostile input: each returns a reason code.
 * @module
 */
import { type Access, PROTO_NUMBER, isPort, protoFromNumber } from './access.js';
import { ipFromBytes, ipToBytes, parseIp } from './address.js';
import { concat, readU64, writeU64 } from './bytes.js';
import { type SubKeys, epochOf, keyIdFor, macOf, tagMatches, xorStream } from './crypto.js';
import {
  ADDR_NONE,
  ADDR_V4,
  ADDR_V6,
  EXT_PADDING,
  EXT_PREFIX,
  EXT_PREFIX_LEN,
  HEADER_LEN,
  KEY_ID_LEN,
  MAX_ACCESSES,
  MAX_PACKET_LEN,
  MIN_PACKET_LEN,
  MSG_CLOSE,
  MSG_OPEN,
  NONCE_LEN,
  PROTOCOL_VERSION,
  TAG_LEN,
} from './constants.js';

export type MessageType = 'open' | 'close';

/** What a knock asks for: the decrypted, parsed payload. */
export interface KnockRequest {
  readonly type: MessageType;
  /** Client's clock, ms since the Unix epoch. */
  readonly timestamp: number;
  /** Requested accesses; empty = everything the client's policy allows. */
  readonly accesses: readonly Access[];
  /** Requested duration in seconds; 0 = the server's default. */
  readonly duration: number;
  /** Explicit address to open for (canonical text); absent = the packet's source address. */
  readonly allowAddress?: string | undefined;
  /**
   * Grant to the source's (or allow-address's) IPv4 network of this length instead of the one address (1..32; 32 =
   * one host; absent = not asked). The server's policy caps it (`max_prefix4`). Carried in the EXT_PREFIX TLV.
   */
  readonly prefix4?: number | undefined;
  /** The same for IPv6 (1..128; `max_prefix6`). */
  readonly prefix6?: number | undefined;
}

/** The clear parts of a packet, as views into the received buffer. */
export interface PacketParts {
  readonly keyId: Uint8Array;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  /** Everything the tag covers. */
  readonly authenticated: Uint8Array;
  readonly tag: Uint8Array;
}

export type WireReject = 'size' | 'version' | 'mac' | 'malformed';

export type Result<T, E extends string> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: E };

const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
const fail = <E extends string>(code: E): { ok: false; code: E } => ({ ok: false, code });

/** Encode the payload. Throws RangeError on a request the protocol cannot carry (caller bug or bad CLI input). */
export function encodePayload(req: KnockRequest): Uint8Array {
  if (!Number.isSafeInteger(req.timestamp) || req.timestamp < 0) throw new RangeError('timestamp out of range');
  if (!Number.isInteger(req.duration) || req.duration < 0 || req.duration > 0xffff)
    throw new RangeError('duration must be 0..65535 seconds');
  if (req.accesses.length > MAX_ACCESSES) throw new RangeError(`at most ${MAX_ACCESSES} accesses per packet`);
  let addr: Uint8Array = new Uint8Array([ADDR_NONE]);
  if (req.allowAddress !== undefined) {
    const a = parseIp(req.allowAddress);
    if (!a) throw new RangeError(`not an IP address: ${req.allowAddress}`);
    addr = concat(new Uint8Array([a.family === 4 ? ADDR_V4 : ADDR_V6]), ipToBytes(a));
  }
  const out = new Uint8Array(12 + 3 * req.accesses.length);
  writeU64(out, 0, req.timestamp);
  out[8] = req.type === 'open' ? MSG_OPEN : MSG_CLOSE;
  out[9] = req.duration >>> 8;
  out[10] = req.duration & 0xff;
  out[11] = req.accesses.length;
  req.accesses.forEach((a, i) => {
    if (!isPort(a.port)) throw new RangeError(`bad port ${a.port}`);
    out[12 + 3 * i] = PROTO_NUMBER[a.proto];
    out[13 + 3 * i] = a.port >>> 8;
    out[14 + 3 * i] = a.port & 0xff;
  });
  const ext: Uint8Array[] = [];
  if (req.prefix4 !== undefined || req.prefix6 !== undefined) {
    const len = (v: number | undefined, max: number, name: string): number => {
      if (v === undefined) return 0;
      if (!Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be 1..${max}`);
      return v;
    };
    ext.push(
      new Uint8Array([EXT_PREFIX, EXT_PREFIX_LEN, len(req.prefix4, 32, 'prefix4'), len(req.prefix6, 128, 'prefix6')]),
    );
  }
  return concat(out, addr, ...ext);
}

/** Parse a decrypted payload. Never throws. */
export function decodePayload(pt: Uint8Array): Result<KnockRequest, 'malformed'> {
  if (pt.length < 13) return fail('malformed');
  const timestamp = readU64(pt, 0);
  if (timestamp === undefined) return fail('malformed');
  const t = pt[8];
  const type: MessageType | undefined = t === MSG_OPEN ? 'open' : t === MSG_CLOSE ? 'close' : undefined;
  if (type === undefined) return fail('malformed');
  const duration = ((pt[9] ?? 0) << 8) | (pt[10] ?? 0);
  const count = pt[11] ?? 0;
  if (count > MAX_ACCESSES) return fail('malformed');
  let o = 12;
  if (pt.length < o + 3 * count + 1) return fail('malformed');
  const accesses: Access[] = [];
  for (let i = 0; i < count; i++) {
    const proto = protoFromNumber(pt[o] ?? 0);
    const port = ((pt[o + 1] ?? 0) << 8) | (pt[o + 2] ?? 0);
    if (proto === undefined || port === 0) return fail('malformed');
    accesses.push({ proto, port });
    o += 3;
  }
  const fam = pt[o++];
  let allowAddress: string | undefined;
  if (fam === ADDR_V4 || fam === ADDR_V6) {
    const n = fam === ADDR_V4 ? 4 : 16;
    if (pt.length < o + n) return fail('malformed');
    allowAddress = ipFromBytes(pt.subarray(o, o + n))?.text;
    o += n;
  } else if (fam !== ADDR_NONE) {
    return fail('malformed');
  }
  // extensions (TLV)
  let prefix: { prefix4?: number; prefix6?: number } | undefined;
  while (o < pt.length) {
    if (o + 2 > pt.length) return fail('malformed');
    const ext = pt[o] ?? 0;
    const len = pt[o + 1] ?? 0;
    if (o + 2 + len > pt.length) return fail('malformed');
    if (ext === EXT_PREFIX) {
      const p4 = pt[o + 2] ?? 0;
      const p6 = pt[o + 3] ?? 0;
      // once, exactly 2 bytes, lengths in range (0 = not asked)
      if (prefix !== undefined || len !== EXT_PREFIX_LEN || p4 > 32 || p6 > 128) return fail('malformed');
      prefix = { ...(p4 > 0 ? { prefix4: p4 } : {}), ...(p6 > 0 ? { prefix6: p6 } : {}) };
    } else if (ext !== EXT_PADDING && ext >= 0x80) {
      return fail('malformed'); // unknown critical extension
    }
    o += 2 + len;
  }
  return ok({ type, timestamp, accesses, duration, allowAddress, ...prefix });
}

/**
 * Build a packet. `nonce` must be 24 fresh random bytes (the caller supplies them so known-answer vectors are
 * reproducible). The key id is derived from the payload's own timestamp.
 */
export function sealPacket(keys: SubKeys, req: KnockRequest, nonce: Uint8Array): Uint8Array {
  if (nonce.length !== NONCE_LEN) throw new RangeError(`nonce must be ${NONCE_LEN} bytes`);
  const header = new Uint8Array(HEADER_LEN);
  header[0] = PROTOCOL_VERSION;
  header.set(keyIdFor(keys.id, epochOf(req.timestamp)), 1);
  header.set(nonce, 1 + KEY_ID_LEN);
  const ct = xorStream(keys.enc, nonce, encodePayload(req));
  const authenticated = concat(header, ct);
  const pkt = concat(authenticated, macOf(keys.mac, authenticated));
  if (pkt.length > MAX_PACKET_LEN) throw new RangeError('packet too large');
  return pkt;
}

/** Stage 1 (no crypto): size and version. */
export function splitPacket(buf: Uint8Array): Result<PacketParts, 'size' | 'version'> {
  if (buf.length < MIN_PACKET_LEN || buf.length > MAX_PACKET_LEN) return fail('size');
  if (buf[0] !== PROTOCOL_VERSION) return fail('version');
  const tagAt = buf.length - TAG_LEN;
  return ok({
    keyId: buf.subarray(1, 1 + KEY_ID_LEN),
    nonce: buf.subarray(1 + KEY_ID_LEN, HEADER_LEN),
    ciphertext: buf.subarray(HEADER_LEN, tagAt),
    authenticated: buf.subarray(0, tagAt),
    tag: buf.subarray(tagAt),
  });
}

/** Stage 3: the HMAC, in constant time. */
export function authenticate(keys: SubKeys, parts: PacketParts): boolean {
  return tagMatches(keys.mac, parts.authenticated, parts.tag);
}

/** Stage 4: decrypt and parse. Call only after {@link authenticate}. */
export function decryptPayload(keys: SubKeys, parts: PacketParts): Result<KnockRequest, 'malformed'> {
  return decodePayload(xorStream(keys.enc, parts.nonce, parts.ciphertext));
}

/**
 * Convenience for clients, tests and other tools: every stage against one known key (no key-id lookup, no time
 * window, no replay check — those are the server's). The key id must be the one of the timestamp inside.
 */
export function openPacket(keys: SubKeys, buf: Uint8Array): Result<KnockRequest, WireReject> {
  const s = splitPacket(buf);
  if (!s.ok) return s;
  const parts = s.value;
  if (!authenticate(keys, parts)) return fail('mac');
  const d = decryptPayload(keys, parts);
  if (!d.ok) return d;
  const expected = keyIdFor(keys.id, epochOf(d.value.timestamp));
  if (Buffer.compare(expected, parts.keyId) !== 0) return fail('malformed');
  return d;
}
