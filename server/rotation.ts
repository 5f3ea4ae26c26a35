/**
 * Rotating sequences (docs/classic.md, shared/rotating.ts): at each time step boundary the daemon installs the plan
 * again, with the new step's sequence and the previous one. `install` replaces the rules atomically and keeps the
 * grants and the attempts of the sequence that stays. Failures are logged and retried at the next boundary (the
 * kernel keeps the last rules meanwhile: fail-closed, the old sequences stay valid a step longer).
 * @module
 */
import { ROTATING_STEP_S } from '../shared/rotating.js';
import type { FirewallBackend, FirewallPlan } from './firewall/backend.js';
import type { Timers } from './timers.js';

/** After the boundary by this much, so the new step has surely begun on this clock. */
const AFTER_BOUNDARY_MS = 20;

export interface RotatorOptions {
  readonly backend: FirewallBackend;
  readonly plan: (nowMs: number) => FirewallPlan;
  readonly now: () => number;
  readonly timers: Timers;
  readonly onRotate: (nowMs: number) => void;
  readonly onError: (err: unknown) => void;
}

export class SequenceRotator {
  readonly #o: RotatorOptions;
  #timer: unknown;
  #stopped = false;
  /** The install in flight (tests await it). */
  current: Promise<void> = Promise.resolve();

  constructor(o: RotatorOptions) {
    this.#o = o;
  }

  start(): void {
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    const stepMs = ROTATING_STEP_S * 1000;
    const now = this.#o.now();
    const wait = stepMs - (((now % stepMs) + stepMs) % stepMs) + AFTER_BOUNDARY_MS;
    this.#timer = this.#o.timers.setTimeout(() => {
      this.current = this.#rotate();
    }, wait);
  }

  async #rotate(): Promise<void> {
    if (this.#stopped) return;
    const now = this.#o.now();
    try {
      await this.#o.backend.install(this.#o.plan(now), now);
      this.#o.onRotate(now);
    } catch (err) {
      this.#o.onError(err);
    }
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.current;
  }
}
