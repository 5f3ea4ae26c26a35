/**
 * Clock offsets of recent `stale` rejects: for an *authenticated* packet (its MAC verified, so only a key holder can
 * put an entry here) whose timestamp fell outside `replay.window`, the offset packet timestamp − daemon clock, per
 * (client, source), the latest one kept. `spa-knockd status --json` shows them (`clock.stale`) and `spa-knockd
 * doctor` turns them into "knocks from X arrive N s ahead/behind" (server/doctor-checks.ts). Bounded: at most
 * {@link MAX_SKEW_ENTRIES} pairs, the least recently seen dropped first. No clock of its own: the caller passes `now`.
 * @module
 */

/** Most (client, source) pairs remembered. */
export const MAX_SKEW_ENTRIES = 32;

export interface SkewEntry {
  readonly client: string;
  readonly source: string;
  /** Packet timestamp − daemon clock, ms (positive: the client's clock is ahead). */
  readonly offsetMs: number;
  /** Daemon clock when it was seen, ms since the epoch. */
  readonly at: number;
  /** Stale rejects of this pair since the daemon started. */
  readonly count: number;
}

export class ClockSkews {
  readonly #entries = new Map<string, SkewEntry>();

  record(client: string, source: string, offsetMs: number, now: number): void {
    const k = `${client}\u0000${source}`;
    const count = (this.#entries.get(k)?.count ?? 0) + 1;
    this.#entries.delete(k); // re-inserted last: the Map's order is least recently seen first
    this.#entries.set(k, { client, source, offsetMs, at: now, count });
    if (this.#entries.size > MAX_SKEW_ENTRIES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  /** The remembered pairs, most recently seen first. */
  recent(): SkewEntry[] {
    return [...this.#entries.values()].reverse();
  }
}
