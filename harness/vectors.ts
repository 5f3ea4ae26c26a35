/**
 * Known-answer vectors for packet v1, for other implementations (a phone app, a router firmware, …).
 *
 *     node --import tsx scripts/gen-vectors.ts        # rewrites test/vectors/knock-v1.json (scripts/ is the CLI)
 *
 * Deterministic: fixed keys, fixed nonces (SHA-256 of a label, see {@link nonceFor}), a fixed server clock; no
 * randomness and no clock is read. test/shared/vectors.test.ts re-derives every case and checks that the file equals
 * {@link renderVectors}() byte for byte, so the file cannot drift from the code. test/vectors/README.md explains the
 * fields and how a verifier must process each case.
 * @module
 */
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { concat, toHex, utf8 } from '../shared/bytes.js';
import {
  KDF_LABEL_ENC,
  KDF_LABEL_ID,
  KDF_LABEL_MAC,
  KDF_SALT,
  KEY_ID_EPOCH_MS,
  MAX_PACKET_LEN,
  MIN_PACKET_LEN,
  PROTOCOL_VERSION,
} from '../shared/constants.js';
import { type SubKeys, deriveKeys, epochOf, keyIdFor, macOf, sha256Of, xorStream } from '../shared/crypto.js';
import { formatKey } from '../shared/keys.js';
import { type KnockRequest, decodePayload, encodePayload, sealPacket } from '../shared/wire.js';
import { NOW_MS, SPECS, type Spec, WINDOW_S } from './vector-cases.js';

/* ---------- the file's shape ---------- */

export interface VectorRequest {
  readonly type: 'open' | 'close';
  readonly timestamp_ms: number;
  readonly duration_s: number;
  readonly accesses: readonly { readonly proto: 'tcp' | 'udp'; readonly port: number }[];
  /** Canonical text (IPv4 dotted quad, IPv6 RFC 5952), or null: open for the packet's source address. */
  readonly allow_address: string | null;
  /** The prefix request (EXT_PREFIX TLV, issue 10): present only when asked. */
  readonly prefix4?: number;
  readonly prefix6?: number;
}

/** Applied in order to the sealed packet to get packet_hex. */
export type Mutation =
  | { readonly op: 'xor'; readonly offset: number; readonly value: number }
  | { readonly op: 'set'; readonly offset: number; readonly value: number }
  | { readonly op: 'truncate'; readonly length: number }
  | { readonly op: 'extend'; readonly length: number; readonly fill: number };

export type Expectation =
  | { readonly result: 'accept'; readonly request: VectorRequest }
  | { readonly result: 'reject'; readonly reason: 'size' | 'version' | 'unknown-key' | 'mac' | 'malformed' | 'stale' };

export interface VectorCase {
  readonly name: string;
  readonly description: string;
  /** The one key the verifier is configured with, text form. */
  readonly key: string;
  readonly key_hex: string;
  readonly sub_keys: { readonly id: string; readonly enc: string; readonly mac: string };
  /** The verifier's clock. */
  readonly now_ms: number;
  readonly window_s: number;
  readonly packet_hex: string;
  readonly expect: Expectation;
  /** How packet_hex was made (not needed to verify it; needed to reproduce it). */
  readonly construction: {
    /** Present only when the packet was sealed with a key other than `key`. */
    readonly sender_key_hex?: string;
    readonly request: VectorRequest;
    /** The plaintext payload actually encrypted (the encoded request, plus any TLV extensions). */
    readonly payload_hex: string;
    readonly key_id_epoch: number;
    readonly key_id_hex: string;
    readonly nonce_hex: string;
    readonly mutations: readonly Mutation[];
  };
}

export interface VectorFile {
  readonly title: string;
  readonly generator: string;
  readonly protocol_version: number;
  readonly constants: Readonly<Record<string, string | number>>;
  readonly cases: readonly VectorCase[];
}

/* ---------- fixed inputs (harness/vector-cases.ts) ---------- */

export { KEY_A, KEY_B, KEY_STRANGER, NOW_MS, WINDOW_S } from './vector-cases.js';

/** nonce = SHA-256("spa-knock/v1 test vector nonce: " ‖ name)[0..24]: fixed, distinct per case. */
export function nonceFor(name: string): Uint8Array {
  return sha256Of(utf8(`spa-knock/v1 test vector nonce: ${name}`)).slice(0, 24);
}

/* ---------- construction ---------- */

function toVectorRequest(r: KnockRequest): VectorRequest {
  return {
    type: r.type,
    timestamp_ms: r.timestamp,
    duration_s: r.duration,
    accesses: r.accesses.map((a) => ({ proto: a.proto, port: a.port })),
    allow_address: r.allowAddress ?? null,
    ...(r.prefix4 !== undefined ? { prefix4: r.prefix4 } : {}),
    ...(r.prefix6 !== undefined ? { prefix6: r.prefix6 } : {}),
  };
}

/** The packet layout around an arbitrary plaintext and key-id epoch (sealPacket without the encoder). */
function sealRaw(keys: SubKeys, payload: Uint8Array, keyIdEpoch: number, nonce: Uint8Array): Uint8Array {
  const header = concat(Uint8Array.of(PROTOCOL_VERSION), keyIdFor(keys.id, keyIdEpoch), nonce);
  const authenticated = concat(header, xorStream(keys.enc, nonce, payload));
  return concat(authenticated, macOf(keys.mac, authenticated));
}

export function applyMutations(pkt: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = Uint8Array.from(pkt);
  for (const m of mutations) {
    if (m.op === 'xor') out[m.offset] = (out[m.offset] ?? 0) ^ m.value;
    else if (m.op === 'set') out[m.offset] = m.value;
    else if (m.op === 'truncate') out = out.slice(0, m.length);
    else {
      const longer = new Uint8Array(m.length).fill(m.fill);
      longer.set(out);
      out = longer;
    }
  }
  return out;
}

function makeCase(s: Spec): VectorCase {
  const keys = deriveKeys(s.key);
  const senderKeys = deriveKeys(s.sender ?? s.key);
  const nonce = nonceFor(s.name);
  const encoded = encodePayload(s.request);
  const payload = s.extensions ? concat(encoded, s.extensions) : encoded;
  const keyIdEpoch = s.keyIdEpoch ?? epochOf(s.request.timestamp);
  const sealed =
    s.extensions === undefined && s.keyIdEpoch === undefined
      ? sealPacket(senderKeys, s.request, nonce)
      : sealRaw(senderKeys, payload, keyIdEpoch, nonce);
  const mutations = s.mutations ?? [];
  const packet = applyMutations(sealed, mutations);
  let expect: Expectation;
  if (s.expect === 'accept') {
    const d = decodePayload(payload);
    if (!d.ok) throw new Error(`${s.name}: payload does not decode`);
    expect = { result: 'accept', request: toVectorRequest(d.value) };
  } else {
    expect = { result: 'reject', reason: s.expect };
  }
  return {
    name: s.name,
    description: s.description,
    key: formatKey(s.key),
    key_hex: toHex(s.key),
    sub_keys: { id: toHex(keys.id), enc: toHex(keys.enc), mac: toHex(keys.mac) },
    now_ms: NOW_MS,
    window_s: WINDOW_S,
    packet_hex: toHex(packet),
    expect,
    construction: {
      ...(s.sender ? { sender_key_hex: toHex(s.sender) } : {}),
      request: toVectorRequest(s.request),
      payload_hex: toHex(payload),
      key_id_epoch: keyIdEpoch,
      key_id_hex: toHex(keyIdFor(senderKeys.id, keyIdEpoch)),
      nonce_hex: toHex(nonce),
      mutations,
    },
  };
}

/** Every case, computed now (pure). */
export function buildVectors(): VectorFile {
  return {
    title: 'spa-knock packet v1 known-answer vectors (see README.md next to this file)',
    generator: 'scripts/gen-vectors.ts',
    protocol_version: PROTOCOL_VERSION,
    constants: {
      kdf: 'HKDF-SHA256',
      kdf_salt: KDF_SALT,
      kdf_label_id: KDF_LABEL_ID,
      kdf_label_enc: KDF_LABEL_ENC,
      kdf_label_mac: KDF_LABEL_MAC,
      key_id_epoch_ms: KEY_ID_EPOCH_MS,
      min_packet_len: MIN_PACKET_LEN,
      max_packet_len: MAX_PACKET_LEN,
    },
    cases: SPECS.map(makeCase),
  };
}

/** The file's exact text. */
export function renderVectors(): string {
  return JSON.stringify(buildVectors(), null, 2) + '\n';
}

export const VECTORS_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '../test/vectors/knock-v1.json');

/** Rewrite the vectors file; returns the number of cases. */
export function writeVectors(): number {
  writeFileSync(VECTORS_PATH, renderVectors());
  return buildVectors().cases.length;
}
