/**
 * The firewall plan a config asks for (`planOf`: the gate, the sequences, the kernel prefilter, the kernel fast path;
 * `fastPathOf`), and the daemon's news of the part of it that may not take: the kernel fast path's state, logged
 * once per change after each install (start, reload, heal). Kept out of server/daemon.ts; `planOf` and `fastPathOf`
 * are re-exported from there.
 * @module
 */
import type { Config } from './config.js';
import type { FirewallBackend, FirewallPlan } from './firewall/backend.js';
import { prefilterOf } from './firewall/prefilter.js';
import { FAST_PATH_MAX_DURATIONS, type FastPathPlan } from './firewall/nft-fastpath.js';
import type { Logger } from './log.js';
import { sequencesAt } from './sequence-config.js';

/** The firewall plan of a config at `nowMs` (rotating sequences: the current and the previous time step's). */
export function planOf(config: Config, nowMs: number = Date.now()): FirewallPlan {
  return {
    protect: config.firewall.protect,
    silencePortUnreachable: config.firewall.silencePortUnreachable,
    sequences: sequencesAt(config.sequences, config.rotatingSequences, nowMs),
    prefilter: prefilterOf(config.listen.port, config.limit),
    // "auto" asks only the backend that has one (nftables); iptables has no fast path (config.ts refuses `true`)
    ...(config.firewall.fastPath === true ||
    (config.firewall.fastPath === 'auto' && config.firewall.backend === 'nftables')
      ? { fastPath: fastPathOf(config) }
      : {}),
  };
}

/**
 * The kernel fast path's plan (server/firewall/nft-fastpath.ts): a trigger port for each default grant duration a
 * knock gets: grant.duration, then the shorter ones some clients' max_duration clamps it to (at most
 * FAST_PATH_MAX_DURATIONS in all). Optional under `fast_path = "auto"`.
 */
export function fastPathOf(config: Config): FastPathPlan {
  const d = config.grant.duration;
  const others = new Set(config.clients.map((cl) => Math.min(d, cl.maxDuration)).filter((x) => x !== d));
  const durationsS = [d, ...[...others].sort((a, b) => a - b)].slice(0, FAST_PATH_MAX_DURATIONS);
  return {
    firstPort: config.firewall.fastPathPort,
    durationsS,
    uid: process.getuid?.() ?? 0,
    ...(config.firewall.fastPath === 'auto' ? { optional: true } : {}),
  };
}

/** The kernel fast path of the installed plan: on, or off and why; undefined when there is none. */
export type FastPathState = { readonly on: boolean; readonly reason?: string } | undefined;

/** The daemon's log of the kernel fast path's state (one per daemon: it remembers what it logged last). */
export class FastPathNews {
  /** The kernel fast path's state last logged ('on', or the reason it is off), so each change is logged once. */
  #fastLogged: string | undefined;

  constructor(
    private readonly backend: FirewallBackend,
    private readonly log: Logger,
  ) {}

  /**
   * Log a change of the kernel fast path's state after an install (start, reload, heal): a warning once when an
   * optional one (`fast_path = "auto"`) could not be set up, with why; a line when it comes (back) on. Returns it.
   */
  news(): FastPathState {
    const state = this.backend.fastPathState?.();
    const key = state === undefined ? undefined : state.on ? 'on' : state.reason;
    if (key !== this.#fastLogged) {
      if (state !== undefined && !state.on)
        this.log.warn(
          { event: 'fast-path-off', reason: state.reason },
          'kernel fast path off; grants go through nft -i alone',
        );
      else if (state?.on && this.#fastLogged !== undefined)
        this.log.info({ event: 'fast-path-on' }, 'kernel fast path on');
    }
    this.#fastLogged = key;
    return state;
  }
}
