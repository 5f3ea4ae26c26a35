/**
 * A fake clock with timers, for tests that drive time by hand instead of sleeping.
 */
import type { Timers } from '../../server/grants.js';

export class FakeClock implements Timers {
  #now: number;
  #seq = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 10, 27, 12, 0, 0)) {
    this.#now = start;
  }

  now = (): number => this.#now;

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return id;
  };

  clearTimeout = (h: unknown): void => {
    this.#timers.delete(h as number);
  };

  /** Advance time, firing due timers in order (and awaiting the microtasks they start). */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const t of this.#timers) if (t[1].at <= end && (!next || t[1].at < next[1].at)) next = t;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
      await new Promise((r) => setImmediate(r));
    }
    this.#now = end;
    await new Promise((r) => setImmediate(r));
  }

  get pending(): number {
    return this.#timers.size;
  }
}
