/**
 * Replay protection, one defence per unit (as wireguard-go's replay/): a timestamp window plus a record of every
 * accepted packet that is kept for as long as the window could still accept it.
 *
 * A packet is identified by its nonce (24 random bytes, unique per packet; it is only looked at after the HMAC has
 * passed, so only key holders can add records). A record made for a packet stamped `ts` is kept until
 * `ts + window`: after that the time check alone refuses the packet. The guard is pure: the clock is an argument
 * and persistence is a callback (the daemon appends to a file in its state directory, see server/replay-file.ts).
 * @module
 */

export type TimeVerdict = 'ok' | 'stale';
export type ReplayVerdict = 'fresh' | 'replay';

/** |ts − now| ≤ window. */
export function checkTime(tsMs: number, nowMs: number, windowMs: number): TimeVerdict {
  return Math.abs(tsMs - nowMs) <= windowMs ? 'ok' : 'stale';
}

export interface ReplayRecord {
  readonly id: string;
  /** ms since epoch after which the record may be forgotten. */
  readonly expiresAt: number;
}

export interface ReplayGuardOptions {
  readonly windowMs: number;
  /** Records loaded from persistent storage. Expired ones are dropped on the first prune. */
  readonly initial?: Iterable<ReplayRecord>;
  /** Called synchronously for every new record, before `remember` returns. */
  readonly persist?: (r: ReplayRecord) => void;
}

export class ReplayGuard {
  readonly windowMs: number;
  readonly #seen = new Map<string, number>();
  readonly #persist: ((r: ReplayRecord) => void) | undefined;
  #nextPrune = 0;

  constructor(opts: ReplayGuardOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError('window must be positive');
    this.windowMs = opts.windowMs;
    this.#persist = opts.persist;
    for (const r of opts.initial ?? []) {
      const prev = this.#seen.get(r.id);
      if (prev === undefined || prev < r.expiresAt) this.#seen.set(r.id, r.expiresAt);
    }
  }

  /** Has this packet been accepted before (and is its record still live)? */
  check(id: string, nowMs: number): ReplayVerdict {
    this.prune(nowMs);
    const exp = this.#seen.get(id);
    return exp !== undefined && exp >= nowMs ? 'replay' : 'fresh';
  }

  /** Record an accepted packet. Persisted before returning (if a persist callback was given). */
  remember(id: string, tsMs: number, nowMs: number): ReplayRecord {
    // kept until the window can no longer accept it, whichever clock is ahead
    const r = { id, expiresAt: Math.max(tsMs, nowMs) + this.windowMs };
    this.#persist?.(r);
    this.#seen.set(id, r.expiresAt);
    return r;
  }

  /** Drop expired records (at most once a second of guard time; O(n) then). */
  prune(nowMs: number): void {
    if (nowMs < this.#nextPrune) return;
    this.#nextPrune = nowMs + 1000;
    for (const [id, exp] of this.#seen) if (exp < nowMs) this.#seen.delete(id);
  }

  /** Live records, for compaction of the persistent log. */
  records(nowMs: number): ReplayRecord[] {
    const out: ReplayRecord[] = [];
    for (const [id, expiresAt] of this.#seen) if (expiresAt >= nowMs) out.push({ id, expiresAt });
    return out;
  }

  get size(): number {
    return this.#seen.size;
  }
}
