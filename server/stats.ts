/**
 * Reject counters. A flood must not flood the journal: rejects are counted by reason and summarised by the daemon at
 * a bounded rate (one line per interval, only when something was rejected).
 * @module
 */
import { REJECT_REASONS, type RejectReason } from './reasons.js';

export class RejectCounter {
  #counts = new Map<RejectReason, number>();
  #total = 0;
  #allTime = new Map<RejectReason, number>();

  add(reason: RejectReason): void {
    this.#counts.set(reason, (this.#counts.get(reason) ?? 0) + 1);
    this.#allTime.set(reason, (this.#allTime.get(reason) ?? 0) + 1);
    this.#total++;
  }

  /** Counts since the last drain (reasons in verification order), then reset. Undefined when nothing happened. */
  drain(): { total: number; by: Partial<Record<RejectReason, number>> } | undefined {
    if (this.#total === 0) return undefined;
    const by: Partial<Record<RejectReason, number>> = {};
    for (const r of REJECT_REASONS) {
      const n = this.#counts.get(r);
      if (n) by[r] = n;
    }
    const total = this.#total;
    this.#counts.clear();
    this.#total = 0;
    return { total, by };
  }

  /** Totals since start, for status and tests. */
  totals(): Partial<Record<RejectReason, number>> {
    return Object.fromEntries(this.#allTime) as Partial<Record<RejectReason, number>>;
  }
}
