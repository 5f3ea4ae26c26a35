/**
 * JIT warm-up at start: run the verification path (key-id lookup, HMAC, XChaCha20, parse, time, replay, policy) on
 * a few thousand synthetic packets of a throwaway key, so the first real knocks do not pay for V8's cold code
 * (~0.25 ms instead of ~0.02 ms per packet; docs/performance.md). Nothing here touches the real replay state or the
 * firewall, and the throwaway key is never configured.
 * @module
 */
import ipaddr from 'ipaddr.js';
import { randomBytes } from '@noble/ciphers/utils.js';
import { deriveKeys } from '../shared/crypto.js';
import { ReplayGuard } from '../shared/replay.js';
import { sealPacket } from '../shared/wire.js';
import type { ClientConfig } from './config.js';
import { Spak1Format } from './formats/spak1.js';
import { Verifier } from './verify.js';

export function warmUp(now: number, rounds = 2000): void {
  const key = randomBytes(32);
  const client: ClientConfig = {
    name: 'warm-up',
    format: 'spak1',
    key,
    open: [{ proto: 'tcp', port: 22 }],
    sources: [{ text: '0.0.0.0/0', kind: 'ipv4', range: ipaddr.parseCIDR('0.0.0.0/0') }],
    maxDuration: 30,
  };
  const v = new Verifier({ formats: [new Spak1Format([client], 60_000)], replay: new ReplayGuard({ windowMs: 60_000 }), defaultDuration: 30 });
  const keys = deriveKeys(key);
  for (let i = 0; i < rounds; i++) {
    const pkt = sealPacket(keys, { type: 'open', timestamp: now, accesses: i % 2 ? [] : [{ proto: 'tcp', port: 22 }], duration: 0 }, randomBytes(24));
    if (i % 3 === 0) pkt[40] = (pkt[40] ?? 0) ^ 1; // a share of MAC failures too
    v.verify(pkt, '192.0.2.1', now);
  }
}
