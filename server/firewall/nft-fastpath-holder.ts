/**
 * The state of the nftables backend's kernel fast path (`firewall.fast_path`, server/firewall/nft-fastpath.ts): the
 * trigger sockets while the installed plan has them, or why an optional fast path (`fast_path = "auto"`) is off, and
 * the fast path to bind again later when it is off for a port that was taken. server/firewall/nftables.ts owns one
 * and calls it from inside its queue, so nothing here runs concurrently.
 * @module
 */
import type { GrantEntry } from './backend.js';
import { type FastPathPlan, FastPathSender, fastRoutes } from './nft-fastpath.js';
import { type CheckedPlan, firewallError } from './validate.js';

export class FastPathHolder {
  /** The kernel fast path's trigger sockets, while the installed plan has one (nft-fastpath.ts). */
  private fast: FastPathSender | undefined;
  /** Why an optional fast path (`fast_path = "auto"`) is off in the installed plan; undefined: on, or not asked for. */
  private fastOff: string | undefined;
  /** The fast path that plan wanted, while it is off for a port that could not be bound (bind retries it). */
  private fastWanted: FastPathPlan | undefined;

  /**
   * Open (or keep, or close) the fast path's trigger sockets for the plan, and return the plan to install. They live in
   * this process's network namespace, so the fast path needs the daemon where its table is (no `wrap`) and a long-lived
   * `nft -i` (whose transaction confirms each grant): `usable` says the backend has both. Where it cannot be set up
   * (that, or a trigger port that cannot be bound), a required fast path (`fast_path = true`) fails the install, naming
   * the config key; an optional one (`"auto"`) is left out of the installed plan, and `state()` says why.
   */
  async prepare(plan: CheckedPlan, usable: boolean): Promise<CheckedPlan> {
    const want = plan.fastPath;
    const same =
      want !== undefined &&
      this.fast !== undefined &&
      JSON.stringify(fastRoutes(this.fast.plan)) === JSON.stringify(fastRoutes(want));
    this.fastWanted = undefined;
    if (same) {
      this.fastOff = undefined; // held already (kept, or taken again by bind)
      return plan;
    }
    this.fast?.close();
    this.fast = undefined;
    this.fastOff = undefined;
    if (want === undefined) return plan;
    const off = (reason: string): CheckedPlan => {
      if (want.optional !== true) throw firewallError(reason);
      this.fastOff = reason;
      return withoutFastPath(plan);
    };
    if (!usable)
      return off('firewall.fast_path needs the persistent nft -i and the daemon in the namespace of its table');
    try {
      this.fast = await FastPathSender.open(want);
    } catch (err) {
      this.fastWanted = want;
      return off(`firewall.fast_path_port ${want.firstPort}: cannot bind the trigger ${(err as Error).message}`);
    }
    return plan;
  }

  /**
   * An optional fast path left out because a trigger port was taken: try to bind its ports again. True when they are
   * held now (see NftablesBackend.bindFastPath).
   */
  async bind(): Promise<boolean> {
    if (this.fastOff === undefined) return false; // on, or not asked for
    if (this.fast !== undefined) return true; // held, but the install that would put it in has not run (or failed)
    const want = this.fastWanted;
    if (want === undefined) return false; // off for a reason that binding cannot cure
    try {
      this.fast = await FastPathSender.open(want);
    } catch {
      return false; // still taken; the reason logged stays as it was
    }
    this.fastWanted = undefined;
    return true;
  }

  /**
   * The kernel fast path of the installed plan: `on`, or off and why (an optional one that could not be set up);
   * undefined when the plan has none.
   */
  state(): { readonly on: boolean; readonly reason?: string } | undefined {
    if (this.fastOff !== undefined) return { on: false, reason: this.fastOff };
    return this.fast !== undefined ? { on: true } : undefined;
  }

  /** Send the triggers of the grants that have a route (FastPathSender.trigger); none while no sockets are held. */
  trigger(entries: readonly GrantEntry[], now: number): GrantEntry[] {
    return this.fast?.trigger(entries, now) ?? [];
  }

  /**
   * The plans an installed table may match. An optional fast path is as this object installed it; a process that
   * installed nothing (`spa-knockd check`, doctor) cannot know whether the daemon could bind the trigger ports, so
   * the table may have the fast path or not.
   */
  checkedAgainst(plan: CheckedPlan): CheckedPlan[] {
    if (plan.fastPath?.optional !== true) return [plan];
    // off in the installed plan, even while bind() holds the ports again and the install that adds it is pending
    if (this.fastOff !== undefined) return [withoutFastPath(plan)];
    if (this.fast !== undefined) return [plan];
    return [plan, withoutFastPath(plan)];
  }

  /** The table is gone (uninstall): close the sockets and forget the fast path, and why it was off. */
  clear(): void {
    this.fast?.close();
    this.fast = undefined;
    this.fastOff = undefined;
    this.fastWanted = undefined;
  }

  /** The backend closes: close the sockets (`state()` still says why an optional fast path was off). */
  close(): void {
    this.fast?.close();
    this.fast = undefined;
    this.fastWanted = undefined;
  }
}

/** The plan without its kernel fast path. */
function withoutFastPath(plan: CheckedPlan): CheckedPlan {
  const { fastPath: _, ...rest } = plan;
  return rest;
}
