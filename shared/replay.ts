/**
 * Replay protection, one defence per unit (as wireguard-go's replay/): a timestamp window plus a record of every
 * accepted packet that is kept for as long as the window could still accept it.
 *
 * A packet is identified by its nonce (24 random bytes, unique per packet; it is only looked at after the HMAC has
 * passed, so only key holders can add records). A record made for a packet stamped `ts` is kept until
 * `max(ts, now) + window`: after that the time check alone refuses the packet — as long as the clock never goes
 * back. It can (an NTP step, a wrong RTC at boot), so forgetting a record raises a *floor*: `expiresAt − window` of
 * every forgotten record, which is ≥ that packet's timestamp. A packet stamped at or below the floor is refused
 * whatever the clock says now, so a forgotten packet can never be accepted again (docs/protocol.md §8).
 *
 * The guard is pure: the clock is an argument and persistence is a store given (the daemon appends to a file in its
 * state directory and writes the floor when it compacts it, see server/replay-file.ts).
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

/** What must survive a restart: the live records and the floor. */
export interface ReplayState {
  readonly records: readonly ReplayRecord[];
  /** Packets stamped at or before this (ms since epoch) are refused; 0 = none yet. */
  readonly floor: number;
}

export interface ReplayGuardOptions {
  readonly windowMs: number;
  /** Records loaded from persistent storage. Expired ones are dropped (raising the floor) on the first prune. */
  readonly initial?: Iterable<ReplayRecord>;
  /** The floor loaded from persistent storage. */
  readonly floor?: number;
  /** Given every new record, synchronously, before `remember` returns. */
  readonly persist?: ReplayStore;
}

/**
 * Where records are kept (the daemon: its replay file, server/replay-file.ts). An object, not a callback: its method
 * is one call target for every store of its class, so the daemon's JIT warm-up (server/warmup.ts) can warm the very
 * code its own store runs. `append` throws if the record could not be kept.
 */
export interface ReplayStore {
  append(r: ReplayRecord): void;
}

export class ReplayGuard {
  readonly windowMs: number;
  readonly #seen = new Map<string, number>();
  readonly #persist: ReplayStore | undefined;
  #floor: number;
  #nextPrune = -Infinity;

  constructor(opts: ReplayGuardOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError('window must be positive');
    this.windowMs = opts.windowMs;
    this.#persist = opts.persist;
    this.#floor = Number.isFinite(opts.floor) ? (opts.floor as number) : 0;
    for (const r of opts.initial ?? []) {
      const prev = this.#seen.get(r.id);
      if (prev === undefined || prev < r.expiresAt) this.#seen.set(r.id, r.expiresAt);
    }
  }

  /** Has this packet been accepted before (and is its record still live)? An expired record is forgotten here. */
  check(id: string, nowMs: number): ReplayVerdict {
    this.prune(nowMs);
    const exp = this.#seen.get(id);
    if (exp === undefined) return 'fresh';
    if (exp >= nowMs) return 'replay';
    this.#forget(id, exp);
    return 'fresh';
  }

  /**
   * Could a packet stamped `tsMs` have been accepted and then forgotten? (Its timestamp is at or below the floor.)
   * Such a packet must be refused even when the clock, stepped back, puts it inside the window again.
   */
  forgotten(tsMs: number, nowMs: number): boolean {
    this.prune(nowMs);
    return tsMs <= this.#floor;
  }

  /** Record an accepted packet. Persisted before returning (if a persist callback was given); throws if that fails. */
  remember(id: string, tsMs: number, nowMs: number): ReplayRecord {
    // kept until the window can no longer accept it, whichever clock is ahead
    const r = { id, expiresAt: Math.max(tsMs, nowMs) + this.windowMs };
    this.#persist?.append(r);
    this.#seen.set(id, r.expiresAt);
    return r;
  }

  /** Drop expired records, raising the floor (at most once a second of guard time; O(n) then). */
  prune(nowMs: number): void {
    // a clock stepped back must not postpone pruning until it has caught up again
    if (nowMs < this.#nextPrune && nowMs >= this.#nextPrune - 1000) return;
    this.#nextPrune = nowMs + 1000;
    for (const [id, exp] of this.#seen) if (exp < nowMs) this.#forget(id, exp);
  }

  #forget(id: string, expiresAt: number): void {
    this.#seen.delete(id);
    this.#floor = Math.max(this.#floor, expiresAt - this.windowMs);
  }

  /** Live records, for compaction of the persistent log. */
  records(nowMs: number): ReplayRecord[] {
    const out: ReplayRecord[] = [];
    for (const [id, expiresAt] of this.#seen) if (expiresAt >= nowMs) out.push({ id, expiresAt });
    return out;
  }

  /** Everything to persist (expired records forgotten first, so the floor covers them). */
  state(nowMs: number): ReplayState {
    this.#nextPrune = -Infinity;
    this.prune(nowMs);
    return { records: this.records(nowMs), floor: this.#floor };
  }

  /** Packets stamped at or before this are refused (ms since epoch; 0 = none). */
  get floor(): number {
    return this.#floor;
  }

  get size(): number {
    return this.#seen.size;
  }
}
