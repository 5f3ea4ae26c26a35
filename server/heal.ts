/**
 * The gate heals (docs/operations.md): `nft flush ruleset` (Debian's nftables.conf does it on every reload),
 * `iptables -F` or a deleted chain removes the gate without telling anyone, leaving the protected ports open for
 * everyone (or closed for every grant). Every `firewall.heal_interval` seconds the healer asks the backend's read side
 * (`check`, the same one `spa-knockd check` uses) whether the plan is installed as expected; if not, it installs the
 * plan again and re-grants every live grant of the grant manager, and reports it (`event: "heal"`). A check that
 * fails (e.g. a flush between its two reads) counts as a problem: the plan is installed again at once. An install
 * that fails is reported (`heal-error`) and tried again at the next tick. After a clean check, an optional kernel
 * fast path that is off because a trigger port was taken is tried again (`retryFastPath`): once the port is free it
 * is installed the same way, without a reload. Timers are injected (server/timers.ts).
 * @module
 */
import type { FirewallBackend, FirewallPlan } from './firewall/backend.js';
import type { Timers } from './timers.js';

/** Default of `firewall.heal_interval`, seconds. The bound from a flush to the gate back is about this plus ~50 ms. */
export const DEFAULT_HEAL_INTERVAL_S = 2;
/** Largest `firewall.heal_interval`, seconds; 0 turns healing off. */
export const MAX_HEAL_INTERVAL_S = 3600;

export interface HealReport {
  /** What the check found (the backend's own words). */
  readonly problems: readonly string[];
  /** Live grants granted again. */
  readonly grants: number;
  /** From the start of the check that found the problem to the gate back, milliseconds. */
  readonly ms: number;
}

export interface HealerOptions {
  readonly backend: FirewallBackend;
  readonly plan: (nowMs: number) => FirewallPlan;
  readonly now: () => number;
  readonly timers: Timers;
  /** Between two checks, milliseconds (> 0). */
  readonly intervalMs: number;
  /** Install the plan and re-grant the live grants, in the grant manager's queue; resolves with the grants re-granted. */
  readonly reinstall: () => Promise<number>;
  readonly onHeal: (r: HealReport) => void;
  readonly onError: (err: unknown) => void;
  /**
   * After a clean check: take the trigger ports of a fast path left off again (FirewallBackend.bindFastPath); when it
   * says true, the healer installs the plan again (reinstall), which puts the fast path in.
   */
  readonly retryFastPath?: () => Promise<boolean>;
}

export class GateHealer {
  readonly #o: HealerOptions;
  #timer: unknown;
  #stopped = false;
  /** The check (and heal) in flight (tests and stop() await it). */
  current: Promise<void> = Promise.resolve();

  constructor(o: HealerOptions) {
    this.#o = o;
  }

  start(): void {
    this.#schedule();
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.timers.setTimeout(() => {
      this.#timer = undefined;
      this.current = this.tick().then(() => this.#schedule());
    }, this.#o.intervalMs);
  }

  /** One check, and a heal if the check finds a problem. Never throws. Returns whether it healed. */
  async tick(): Promise<boolean> {
    if (this.#stopped) return false;
    const t0 = performance.now();
    try {
      let problems: readonly string[];
      try {
        problems = await this.#o.backend.check(this.#o.plan(this.#o.now()));
      } catch (err) {
        // a check can fail half-way when the ruleset is flushed under it (the table is listed, then its chain is
        // gone): a gate that cannot be verified is re-installed (install is idempotent), not left for an interval
        problems = [`the check failed: ${(err as Error)?.message ?? String(err)}`];
      }
      if (this.#stopped) return false;
      if (problems.length === 0) {
        if ((await this.#o.retryFastPath?.()) === true && !this.#stopped) await this.#o.reinstall();
        return false;
      }
      const grants = await this.#o.reinstall();
      this.#o.onHeal({ problems, grants, ms: Math.round((performance.now() - t0) * 10) / 10 });
      return true;
    } catch (err) {
      this.#o.onError(err);
      return false;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.current;
  }
}
