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

/* ---------- the file's shape ---------- */

export interface VectorRequest {
  readonly type: 'open' | 'close';
  readonly timestamp_ms: number;
  readonly duration_s: number;
  readonly accesses: readonly { readonly proto: 'tcp' | 'udp'; readonly port: number }[];
  /** Canonical text (IPv4 dotted quad, IPv6 RFC 5952), or null: open for the packet's source address. */
  readonly allow_address: string | null;
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

/* ---------- fixed inputs ---------- */

/** 2026-01-01T00:00:30Z: half-way through key-id epoch 29453760. */
export const NOW_MS = 1_767_225_630_000;
export const WINDOW_S = 60;
const W = WINDOW_S * 1000;

const seq = (start: number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => (start + i) & 0xff);
/** Client key A: 00 01 02 … 1f. */
export const KEY_A = seq(0x00);
/** Client key B: a0 a1 … bf. */
export const KEY_B = seq(0xa0);
/** A key no verifier in this file is configured with: 40 41 … 5f. */
export const KEY_STRANGER = seq(0x40);

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

interface Spec {
  readonly name: string;
  readonly description: string;
  readonly key: Uint8Array;
  readonly sender?: Uint8Array;
  readonly request: KnockRequest;
  /** TLV bytes appended to the encoded request. */
  readonly extensions?: Uint8Array;
  /** Key-id epoch in the header; default: the epoch of the request's timestamp. */
  readonly keyIdEpoch?: number;
  readonly mutations?: readonly Mutation[];
  readonly expect: 'accept' | Exclude<Expectation, { result: 'accept' }>['reason'];
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

const ssh: KnockRequest = { type: 'open', timestamp: NOW_MS - 1_200, accesses: [{ proto: 'tcp', port: 22 }], duration: 0 };

const SPECS: readonly Spec[] = [
  /* ---- accepted ---- */
  {
    name: 'open-one-port',
    description: 'Open tcp/22 for the default duration, for the source address; client clock 1.2 s behind. 81 bytes.',
    key: KEY_A,
    request: ssh,
    expect: 'accept',
  },
  {
    name: 'open-several-ports-v4-allow-address',
    description: 'Open tcp/22, tcp/443 and udp/51820 for 120 s, for the explicit IPv4 address 198.51.100.7; client clock 0.8 s ahead.',
    key: KEY_A,
    request: {
      type: 'open',
      timestamp: NOW_MS + 800,
      accesses: [
        { proto: 'tcp', port: 22 },
        { proto: 'tcp', port: 443 },
        { proto: 'udp', port: 51820 },
      ],
      duration: 120,
      allowAddress: '198.51.100.7',
    },
    expect: 'accept',
  },
  {
    name: 'open-v6-allow-address',
    description: 'Open tcp/22 for 300 s for the explicit IPv6 address 2001:db8:85a3::8a2e:370:7334 (key B).',
    key: KEY_B,
    request: {
      type: 'open',
      timestamp: NOW_MS - 5_000,
      accesses: [{ proto: 'tcp', port: 22 }],
      duration: 300,
      allowAddress: '2001:db8:85a3::8a2e:370:7334',
    },
    expect: 'accept',
  },
  {
    name: 'close',
    description: 'Close tcp/22 early (message type 2; key B).',
    key: KEY_B,
    request: { type: 'close', timestamp: NOW_MS - 2_000, accesses: [{ proto: 'tcp', port: 22 }], duration: 0 },
    expect: 'accept',
  },
  {
    name: 'open-empty-access-list',
    description: 'Open everything the client\'s policy allows (access count 0) for 60 s. 78 bytes: the smallest packet.',
    key: KEY_A,
    request: { type: 'open', timestamp: NOW_MS - 300, accesses: [], duration: 60 },
    expect: 'accept',
  },
  {
    name: 'open-with-padding',
    description: 'open-one-port plus a padding TLV (type 0x00, length 32, 32 zero bytes), which a verifier skips.',
    key: KEY_A,
    request: ssh,
    extensions: concat(Uint8Array.of(0x00, 32), new Uint8Array(32)),
    expect: 'accept',
  },
  {
    name: 'open-with-unknown-extension',
    description: 'open-one-port plus an unknown non-critical TLV (type 0x42 < 0x80, length 3), which a verifier skips.',
    key: KEY_A,
    request: ssh,
    extensions: Uint8Array.of(0x42, 3, 0xde, 0xad, 0x01),
    expect: 'accept',
  },
  {
    name: 'open-window-edge-past',
    description: 'Timestamp exactly window_s before now_ms: still inside the window (|ts - now| <= window).',
    key: KEY_A,
    request: { ...ssh, timestamp: NOW_MS - W },
    expect: 'accept',
  },
  {
    name: 'open-window-edge-future',
    description: 'Timestamp exactly window_s after now_ms: still inside the window.',
    key: KEY_A,
    request: { ...ssh, timestamp: NOW_MS + W },
    expect: 'accept',
  },
  /* ---- rejected ---- */
  {
    name: 'reject-too-short',
    description: 'open-one-port truncated to 77 bytes, one less than the smallest packet (78).',
    key: KEY_A,
    request: ssh,
    mutations: [{ op: 'truncate', length: MIN_PACKET_LEN - 1 }],
    expect: 'size',
  },
  {
    name: 'reject-too-long',
    description: 'open-one-port extended with zero bytes to 513 bytes, one more than the largest packet (512).',
    key: KEY_A,
    request: ssh,
    mutations: [{ op: 'extend', length: MAX_PACKET_LEN + 1, fill: 0 }],
    expect: 'size',
  },
  {
    name: 'reject-wrong-version',
    description: 'open-one-port with the version byte set to 0x02.',
    key: KEY_A,
    request: ssh,
    mutations: [{ op: 'set', offset: 0, value: 0x02 }],
    expect: 'version',
  },
  {
    name: 'reject-unknown-key',
    description: 'A valid packet sealed with a key the verifier does not have (construction.sender_key_hex): its key id matches no configured key in any epoch.',
    key: KEY_A,
    sender: KEY_STRANGER,
    request: ssh,
    expect: 'unknown-key',
  },
  {
    name: 'reject-unknown-key-far-epoch',
    description: 'Sealed with the right key but stamped one hour before now_ms: its key id belongs to an epoch the verifier does not index, so it is unknown-key, not stale.',
    key: KEY_A,
    request: { ...ssh, timestamp: NOW_MS - 3_600_000 },
    expect: 'unknown-key',
  },
  {
    name: 'reject-truncated-by-one',
    description: 'open-one-port without its last byte (80 bytes): long enough, so the tag is simply wrong.',
    key: KEY_A,
    request: ssh,
    mutations: [{ op: 'truncate', length: 80 }],
    expect: 'mac',
  },
  {
    name: 'reject-tampered-ciphertext',
    description: 'open-one-port with ciphertext byte 44 (payload byte 11, the access count) XORed with 0x01.',
    key: KEY_A,
    request: ssh,
    mutations: [{ op: 'xor', offset: 44, value: 0x01 }],
    expect: 'mac',
  },
  {
    name: 'reject-tampered-nonce',
    description: 'open-one-port with nonce byte 0 (packet byte 9) XORed with 0x01: the header is authenticated too.',
    key: KEY_A,
    request: ssh,
    mutations: [{ op: 'xor', offset: 9, value: 0x01 }],
    expect: 'mac',
  },
  {
    name: 'reject-tampered-tag',
    description: 'open-one-port with the last tag byte XORed with 0x80.',
    key: KEY_A,
    request: ssh,
    mutations: [{ op: 'xor', offset: 80, value: 0x80 }],
    expect: 'mac',
  },
  {
    name: 'reject-critical-extension',
    description: 'Authentic, but the payload carries a TLV of unknown critical type 0x80 (>= 0x80): malformed.',
    key: KEY_A,
    request: ssh,
    extensions: Uint8Array.of(0x80, 1, 0x00),
    expect: 'malformed',
  },
  {
    name: 'reject-key-id-epoch-mismatch',
    description: 'Authentic, but the key id in clear is the one of the epoch after the timestamp\'s epoch (both epochs are indexed): malformed.',
    key: KEY_A,
    request: { ...ssh, timestamp: NOW_MS - 45_000 },
    keyIdEpoch: epochOf(NOW_MS - 45_000) + 1,
    expect: 'malformed',
  },
  {
    name: 'reject-stale-past',
    description: 'Stamped 61 s before now_ms: the key id (epoch of now - 61 s, indexed) and the tag are fine, the time window is not.',
    key: KEY_A,
    request: { ...ssh, timestamp: NOW_MS - W - 1_000 },
    expect: 'stale',
  },
  {
    name: 'reject-stale-future',
    description: 'Stamped 61 s after now_ms (epoch indexed): stale.',
    key: KEY_A,
    request: { ...ssh, timestamp: NOW_MS + W + 1_000 },
    expect: 'stale',
  },
];

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
