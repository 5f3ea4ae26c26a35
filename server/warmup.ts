/**
 * JIT warm-up at start: run the verification path (key-id lookup, HMAC, XChaCha20, parse, time, replay, policy) on
 * WARMUP_ROUNDS synthetic packets of a throwaway key, so the first real knocks do not pay for V8's cold code
 * (~0.25 ms instead of ~0.02 ms per packet; docs/performance.md). Nothing here touches the real replay state or the
 * firewall, and the throwaway key is never configured.
 * @module
 */
import { randomBytes } from '@noble/ciphers/utils.js';
import { parseCidr } from '../shared/address.js';
import { WARMUP_ROUNDS } from '../shared/constants.js';
import { deriveKeys } from '../shared/crypto.js';
import { ReplayGuard } from '../shared/replay.js';
import { sealPacket } from '../shared/wire.js';
import type { ClientConfig } from './config.js';
import { Spak1Format } from './formats/spak1.js';
import { Verifier } from './verify.js';

const ANY_V4 = parseCidr('0.0.0.0/0');

export function warmUp(now: number, rounds = WARMUP_ROUNDS): void {
  if (!ANY_V4.ok) return;
  const key = randomBytes(32);
  const client: ClientConfig = {
    name: 'warm-up',
    format: 'spak1',
    key,
    open: [{ proto: 'tcp', port: 22 }],
    sources: [ANY_V4.cidr],
    maxDuration: 30,
    maxGrants: 1,
    requireSourceAddress: false,
  };
  const v = new Verifier({
    formats: [new Spak1Format([client], 60_000)],
    replay: new ReplayGuard({ windowMs: 60_000 }),
    defaultDuration: 30,
  });
  const keys = deriveKeys(key);
  for (let i = 0; i < rounds; i++) {
    const pkt = sealPacket(
      keys,
      { type: 'open', timestamp: now, accesses: i % 2 ? [] : [{ proto: 'tcp', port: 22 }], duration: 0 },
      randomBytes(24),
    );
    if (i % 3 === 0) pkt[40] = (pkt[40] ?? 0) ^ 1; // a share of MAC failures too
    v.verify(pkt, '192.0.2.1', now);
  }
}
