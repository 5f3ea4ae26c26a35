/**
 * The grant manager's call queue (server/grants.ts): its firewall calls (a batch of opens, a close, a re-install, a
 * revoke of removed or expired clients' grants, a timed revoke) run one at a time, in the order they were queued, so
 * each decision sees the outcome of the one before. A call that fails does not stop the ones after it. With nothing
 * queued or running, a call starts at once, in the caller's turn: no promise hop between a verified knock and the
 * firewall.
 * @module
 */

export class CallQueue {
  #queue: Promise<unknown> = Promise.resolve();
  /** Calls queued by run() and not settled yet (0: the next one starts synchronously). */
  #running = 0;

  /**
   * Run `fn` after every call queued before it. With none queued or running, `fn` starts at once, synchronously (up
   * to its first await), which is what lets an idle manager reach the firewall in the knock's own turn.
   */
  run<T>(fn: () => Promise<T>): Promise<T> {
    let p: Promise<T>;
    if (this.#running > 0) p = this.#queue.then(fn);
    else {
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

  #settle(): void {
    this.#running--;
  }
}
