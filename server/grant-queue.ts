/**
 * The grant manager's call queue (server/grants.ts): its firewall calls (a batch of opens, a close, a re-install, a
 * revoke of removed or expired clients' grants, a timed revoke) run one at a time, in the order they were queued, so
 * each decision sees the outcome of the one before. A call that fails does not stop the ones after it. With nothing
 * queued or running, a call starts at once, in the caller's turn: no promise hop between a verified knock and the
 * firewall.
 *
 * `hold` lets the call in flight wait a little while nothing else is queued (the nftables fast path's confirmation,
 * server/firewall/nftables.ts): the next call queued, or release(), ends the wait at once.
 * @module
 */
import type { Timers } from './timers.js';

export class CallQueue {
  #queue: Promise<unknown> = Promise.resolve();
  /** Calls queued by run() and not settled yet (0: the next one starts synchronously). */
  #running = 0;
  /** Ends of the holds in progress (hold). */
  readonly #wakers = new Set<() => void>();

  /**
   * Run `fn` after every call queued before it. With none queued or running, `fn` starts at once, synchronously (up
   * to its first await), which is what lets an idle manager reach the firewall in the knock's own turn.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    let p: Promise<T>;
    if (this.#running > 0) {
      p = this.#queue.then(fn);
      this.release(); // a call waits now: a hold of the one in flight ends
    } else {
      try {
        p = fn();
      } catch (err) {
        p = Promise.reject(err);
      }
    }
    this.#running++;
    const done = p.then(
      () => this.#settle(),
      () => this.#settle(),
    );
    this.#queue = done;
    return p;
  }

  /**
   * For the call in flight: wait up to `ms`, unless another call is queued — at once if one already is, else as soon as
   * one is (run) or release() is called. Never rejects.
   */
  hold(ms: number, timers: Timers): Promise<void> {
    // the call in flight counts itself once run() returned (a call started in its caller's turn holds before that)
    if (this.#running > 1) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = (): void => {
        timers.clearTimeout(handle);
        this.#wakers.delete(wake);
        resolve();
      };
      const handle = timers.setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }

  /** End every hold in progress now (stop). */
  release(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  #settle(): void {
    this.#running--;
  }
}
