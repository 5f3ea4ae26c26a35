/**
 * The timer seam: every module that waits (grant expiry, replay-log sync, reject summaries) takes a `Timers`, so
 * tests drive time with a fake clock (test/helpers/clock.ts) instead of sleeping.
 * @module
 */

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** node's timers, unref'd: a pending timer never keeps the process alive on its own. */
export const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
