/**
 * Rotating classic sequences (docs/classic.md): the ports of a `rotating = true` sequence come from the sequence's
 * key and the current time step, so a sniffed sequence is good for one or two steps (at most ~2 × 30 s), not forever.
 *
 *   subkey  = HKDF-SHA256(key, salt = "", info = "spa-knock rotating sequence v1", 32 bytes)
 *   counter = floor(unix seconds / 30)
 *   bytes   = HMAC-SHA256(subkey, counter as 8 bytes big-endian), then HMAC-SHA256(subkey, previous bytes), …
 *   steps   = ROTATING_LENGTH TCP ports: each 2 bytes v (big-endian) with v < 60000 gives 40000 + v mod 10000,
 *             skipped when it equals the port before it (a repeated step is a duplicate packet).
 *
 * Fixed on both sides (no configuration to get out of step): 30 s, 4 TCP steps, ports 40000-49999. The daemon
 * accepts the current step's sequence and the previous one.
 * @module
 */
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Access } from './access.js';
import { u64be, utf8 } from './bytes.js';

export const ROTATING_STEP_S = 30;
export const ROTATING_LENGTH = 4;
export const ROTATING_LOW = 40000;
export const ROTATING_HIGH = 49999;
const SPAN = ROTATING_HIGH - ROTATING_LOW + 1;
const LIMIT = Math.floor(65536 / SPAN) * SPAN;
const LABEL = 'spa-knock rotating sequence v1';

/** The time step of `nowMs`. */
export function rotatingCounter(nowMs: number): number {
  return Math.floor(nowMs / 1000 / ROTATING_STEP_S);
}

/** The steps of time step `counter` for `key`. */
export function rotatingSteps(key: Uint8Array, counter: number): Access[] {
  const subkey = hkdf(sha256, key, new Uint8Array(0), utf8(LABEL), 32);
  const ports: number[] = [];
  let block = hmac(sha256, subkey, u64be(counter));
  for (;;) {
    for (let i = 0; i + 1 < block.length; i += 2) {
      const v = ((block[i] as number) << 8) | (block[i + 1] as number);
      if (v >= LIMIT) continue;
      const port = ROTATING_LOW + (v % SPAN);
      if (port === ports.at(-1)) continue;
      ports.push(port);
      if (ports.length === ROTATING_LENGTH) return ports.map((port) => ({ proto: 'tcp', port }));
    }
    block = hmac(sha256, subkey, block);
  }
}

/** When the step of `counter` begins and ends, ms since the epoch. */
export function rotatingWindow(counter: number): { from: number; until: number } {
  return { from: counter * ROTATING_STEP_S * 1000, until: (counter + 1) * ROTATING_STEP_S * 1000 };
}
