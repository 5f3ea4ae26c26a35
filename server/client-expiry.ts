/**
 * Client expiry (`expires` in a `[[client]]`, docs/config.md): the verifier refuses an expired client's knocks
 * (`expired`, server/verify.ts) and the policy never grants past the expiry; this watch ends the grants an expired
 * client still holds — grants adopted at a restart, or made before a reload set an earlier `expires` — at the
 * instant of expiry. One timer, for the next expiry to come; clock and timers are injected (fake-clock tests).
 * @module
 */
import type { ClientConfig } from './config.js';
import type { Timers } from './timers.js';

/** setTimeout's largest delay (2^31-1 ms, about 24.8 days); a later expiry is reached in several waits. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface ExpiryWatchOptions {
  readonly now: () => number;
  readonly timers: Timers;
  /** These clients are past their expiry: end their grants. Called once per client and `watch()` call. */
  readonly onExpired: (clients: readonly string[]) => void;
}

export class ExpiryWatch {
  readonly #o: ExpiryWatchOptions;
  #timer: unknown;
  /** name → expiry (ms) of the clients not yet reported. */
  #pending = new Map<string, number>();

  constructor(opts: ExpiryWatchOptions) {
    this.#o = opts;
  }

  /** Watch these clients (at start and at each reload): the ones already expired are reported now. */
  watch(clients: readonly ClientConfig[]): void {
    this.#pending = new Map();
    for (const c of clients) if (c.expiresAt !== undefined) this.#pending.set(c.name, c.expiresAt);
    this.#check();
  }

  stop(): void {
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = new Map();
  }

  #check(): void {
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = this.#o.now();
    const due = [...this.#pending].filter(([, at]) => at <= now).map(([name]) => name);
    for (const name of due) this.#pending.delete(name);
    if (due.length > 0) this.#o.onExpired(due);
    if (this.#pending.size === 0) return;
    const next = Math.min(...this.#pending.values());
    this.#timer = this.#o.timers.setTimeout(
      () => {
        this.#timer = undefined;
        this.#check();
      },
      Math.min(MAX_DELAY_MS, next - now),
    );
  }
}
