/**
 * JIT warm-up at start: run the verification path (size, key-id lookup, per-source rate, HMAC, XChaCha20, parse, time,
 * replay, policy, per-client rate) on WARMUP_ROUNDS synthetic packets of a throwaway key, so the first real knocks do
 * not pay for V8's cold code (~0.25 ms instead of ~0.02 ms per packet; docs/performance.md). Nothing here touches the
 * real replay state, the real limiters or the firewall, and the throwaway key is never configured.
 *
 * V8 specialises optimized code on what it saw, so the warm-up feeds the path what the daemon will: a verifier built
 * by the daemon's own factory (verifierFor: the same formats, limiters and broadcasts), its client made where the
 * config makes its own (clientConfig: the same shape), its replay records appended by a ReplayFile (to /dev/null),
 * packets as the listener hands them over (a plain Uint8Array, server/listener.ts), source addresses as fresh strings
 * as the socket reports them (a literal is an internalized string: another shape), and a clock that moves (1 ms a
 * round: the limiters refill). The daemon runs it before it makes its own objects (server/daemon.ts). Warmed on
 * anything else, the first real packet throws the optimized code away (`node --trace-deopt`: "wrong map", "wrong
 * call target", "insufficient type feedback") and the knock path runs unoptimized from then on.
 * @module
 */
import { randomBytes } from '@noble/ciphers/utils.js';
import { parseCidr } from '../shared/address.js';
import { REWARM_ROUNDS, REWARM_STEP, WARMUP_ROUNDS } from '../shared/constants.js';
import { type SubKeys, deriveKeys } from '../shared/crypto.js';
import { ReplayGuard } from '../shared/replay.js';
import { sealPacket } from '../shared/wire.js';
import { CodeFloors } from './code-floor.js';
import type { Config } from './config.js';
import { clientConfig } from './config-client.js';
import { limitersFor, verifierFor } from './daemon-parts.js';
import { ReplayFile } from './replay-file.js';
import type { Verifier } from './verify.js';

const ANY_V4 = parseCidr('0.0.0.0/0');
/**
 * Limits no warm-up round reaches, so every round takes the whole path, MAC included. A small integer (V8's Smi, below
 * 2^30), as a configured burst is: a larger number would give the limiters another shape than the daemon's.
 */
const UNLIMITED = 2 ** 30 - 1;

/** A warm-up verifier of its own (never the daemon's) and the throwaway key it verifies packets of. */
export class WarmUp {
  readonly #v: Verifier;
  readonly #keys: SubKeys;
  readonly #file: ReplayFile;
  #round = 0;

  constructor(c: Config, broadcasts: ReadonlySet<string>) {
    const key = randomBytes(32);
    // made as the config makes its clients (the same shape), with the limits of the first one
    const model = c.clients.find((cl) => cl.format === 'spak1');
    const client = clientConfig({
      name: 'warm-up',
      format: 'spak1',
      key,
      open: [{ proto: 'tcp', port: 22 }],
      sources: ANY_V4.ok ? [ANY_V4.cidr] : [],
      maxDuration: 30,
      maxGrants: 1,
      requireSourceAddress: false,
      maxPrefix4: model?.maxPrefix4 ?? 32,
      maxPrefix6: model?.maxPrefix6 ?? 128,
    });
    const limit = {
      ...c.limit,
      sourceRate: UNLIMITED,
      sourceBurst: UNLIMITED,
      clientRate: UNLIMITED,
      clientBurst: UNLIMITED,
    };
    const warm: Config = { ...c, clients: [client], limit };
    // its records go where the daemon's go, through the same code: a replay file, appending to /dev/null
    this.#file = new ReplayFile('', { appendTo: '/dev/null' });
    const replay = new ReplayGuard({ windowMs: 60_000, persist: this.#file });
    this.#v = verifierFor(warm, replay, broadcasts, new CodeFloors(), limitersFor(warm));
    this.#keys = deriveKeys(key);
  }

  /** Close the /dev/null it appends to. */
  close(): void {
    this.#file.close();
  }

  /**
   * Verify `rounds` more synthetic packets, the first at `now` and each 1 ms after the one before (so that the limiters
   * refill and the replay guard prunes, as between real knocks): a third fail their MAC, half ask for no access.
   */
  run(rounds: number, now: number): void {
    for (let n = 0; n < rounds; n++) {
      const i = this.#round++;
      const t = now + n;
      const pkt = sealPacket(
        this.#keys,
        { type: 'open', timestamp: t, accesses: i % 2 ? [] : [{ proto: 'tcp', port: 22 }], duration: 0 },
        randomBytes(24),
      );
      if (i % 3 === 0) pkt[40] = (pkt[40] ?? 0) ^ 1;
      this.#v.verify(pkt, ['192', '0', '2', String(1 + (i % 250))].join('.'), t);
    }
  }
}

/** WARMUP_ROUNDS synthetic packets through a fresh warm-up verifier (the daemon, before it makes its own). */
export function warmUp(c: Config, broadcasts: ReadonlySet<string>, now: number, rounds = WARMUP_ROUNDS): void {
  const w = new WarmUp(c, broadcasts);
  w.run(rounds, now);
  w.close();
}

/**
 * REWARM_ROUNDS more rounds on a fresh warm-up verifier, REWARM_STEP per turn of the event loop (setImmediate), so
 * that knocks go on between the steps; stops early once `live()` is false (the daemon stopping). The daemon runs it
 * after its first REWARM_KNOCKS accepted knocks (shared/constants.ts says why).
 */
export function rewarm(c: Config, broadcasts: ReadonlySet<string>, now: () => number, live: () => boolean): void {
  const w = new WarmUp(c, broadcasts);
  let left = REWARM_ROUNDS;
  const step = (): void => {
    const n = live() ? Math.min(REWARM_STEP, left) : left;
    if (live()) w.run(n, now());
    left -= n;
    if (left > 0) setImmediate(step);
    else w.close();
  };
  setImmediate(step);
}
