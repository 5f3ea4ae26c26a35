/**
 * The inputs of the known-answer vectors (harness/vectors.ts builds the file from them): the fixed clock, window and
 * keys, and one spec per case — what to seal, how to damage it, and what a verifier must answer.
 * @module
 */
import { concat } from '../shared/bytes.js';
import { MAX_PACKET_LEN, MIN_PACKET_LEN } from '../shared/constants.js';
import { epochOf } from '../shared/crypto.js';
import type { KnockRequest } from '../shared/wire.js';
import type { Expectation, Mutation } from './vectors.js';

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

/** One case before construction. */
export interface Spec {
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

const ssh: KnockRequest = {
  type: 'open',
  timestamp: NOW_MS - 1_200,
  accesses: [{ proto: 'tcp', port: 22 }],
  duration: 0,
};

export const SPECS: readonly Spec[] = [
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
    description:
      'Open tcp/22, tcp/443 and udp/51820 for 120 s, for the explicit IPv4 address 198.51.100.7; client clock 0.8 s ahead.',
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
    description: "Open everything the client's policy allows (access count 0) for 60 s. 78 bytes: the smallest packet.",
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
    name: 'open-prefix-request',
    description:
      "open-one-port asking for the source's IPv4 /24 and IPv6 /64 (TLV type 0x01, length 2, value 18 40): a server whose policy allows those prefixes grants the network; an older server skips the TLV and grants the one address. 85 bytes.",
    key: KEY_A,
    request: { ...ssh, prefix4: 24, prefix6: 64 },
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
    description:
      'A valid packet sealed with a key the verifier does not have (construction.sender_key_hex): its key id matches no configured key in any epoch.',
    key: KEY_A,
    sender: KEY_STRANGER,
    request: ssh,
    expect: 'unknown-key',
  },
  {
    name: 'reject-unknown-key-far-epoch',
    description:
      'Sealed with the right key but stamped one hour before now_ms: its key id belongs to an epoch the verifier does not index, so it is unknown-key, not stale.',
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
    description:
      "Authentic, but the key id in clear is the one of the epoch after the timestamp's epoch (both epochs are indexed): malformed.",
    key: KEY_A,
    request: { ...ssh, timestamp: NOW_MS - 45_000 },
    keyIdEpoch: epochOf(NOW_MS - 45_000) + 1,
    expect: 'malformed',
  },
  {
    name: 'reject-stale-past',
    description:
      'Stamped 61 s before now_ms: the key id (epoch of now - 61 s, indexed) and the tag are fine, the time window is not.',
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
