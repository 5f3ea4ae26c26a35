/**
 * The parts of the daemon that are built from its config, and built again when a reload (SIGHUP, server/reload.ts)
 * switches to a new one: the verifier (packet formats for the clients), the per-client grant limits, the periodic
 * loops (rotating sequences, the gate healer). Kept out of server/daemon.ts so that one builds them the same way at
 * start and at reload.
 * @module
 */
import type { ReplayGuard } from '../shared/replay.js';
import type { Config } from './config.js';
import type { FirewallBackend, FirewallPlan } from './firewall/backend.js';
import { CodeFloors } from './code-floor.js';
import { CodeFormat } from './formats/code.js';
import { FwknopFormat } from './formats/fwknop.js';
import { Spak1Format } from './formats/spak1.js';
import { GateHealer } from './heal.js';
import type { Logger } from './log.js';
import { SequenceRotator } from './rotation.js';
import { SourceLimiter, TokenBuckets } from './ratelimit.js';
import type { Timers } from './timers.js';
import { Verifier } from './verify.js';

/** The flood limiters of a config's `[limit]` (server/ratelimit.ts); a reload builds new ones. */
export interface Limiters {
  readonly source: SourceLimiter;
  readonly client: TokenBuckets;
}

export function limitersFor(c: Config): Limiters {
  const l = c.limit;
  return {
    source: new SourceLimiter({ rate: l.sourceRate, burst: l.sourceBurst, capacity: l.sourceTable }),
    client: new TokenBuckets({ rate: l.clientRate, burst: l.clientBurst, capacity: Math.max(1, c.clients.length) }),
  };
}

export function verifierFor(
  c: Config,
  replay: ReplayGuard,
  broadcasts: ReadonlySet<string>,
  codeFloors: CodeFloors = new CodeFloors(),
  limits?: Limiters,
): Verifier {
  const codes = new CodeFormat(c.clients, codeFloors);
  return new Verifier({
    // fwknop and codes only when a client speaks them: a native-only daemon keeps spak1's size bounds (reason `size`)
    formats: [
      new Spak1Format(c.clients, c.replay.window * 1000),
      ...(c.clients.some((cl) => cl.fwknop) ? [new FwknopFormat(c.clients)] : []),
      ...(codes.active ? [codes] : []),
    ],
    replay,
    defaultDuration: c.grant.duration,
    broadcasts,
    ...(limits ? { sourceLimit: limits.source, clientLimit: limits.client } : {}),
  });
}

/** Each client's own grant.max_grants (clients without one use the config's). */
export const maxGrantsOf = (c: Config): ReadonlyMap<string, number> =>
  new Map(c.clients.map((cl) => [cl.name, cl.maxGrants]));

export interface LoopDeps {
  readonly backend: FirewallBackend;
  readonly plan: (nowMs: number) => FirewallPlan;
  readonly now: () => number;
  readonly timers: Timers;
  readonly log: Logger;
  /** Install the plan and re-grant the live grants (GrantManager.reinstall). */
  readonly reinstall: () => Promise<number>;
}

/** The rotator of a config with rotating sequences, started; undefined without. */
export function startRotator(c: Config, d: LoopDeps): SequenceRotator | undefined {
  if (c.rotatingSequences.length === 0) return undefined;
  const r = new SequenceRotator({
    backend: d.backend,
    plan: d.plan,
    now: d.now,
    timers: d.timers,
    onRotate: () => d.log.debug({ event: 'rotate' }, 'rotating sequences: rules replaced'),
    onError: (err) => d.log.error({ event: 'firewall-error', err }, 'rotating sequences: install failed'),
  });
  r.start();
  return r;
}

/** The gate healer (firewall.heal_interval; server/heal.ts), started; undefined when the interval is 0. */
export function startHealer(c: Config, d: LoopDeps): GateHealer | undefined {
  if (c.firewall.healInterval <= 0) return undefined;
  const h = new GateHealer({
    backend: d.backend,
    plan: d.plan,
    now: d.now,
    timers: d.timers,
    intervalMs: c.firewall.healInterval * 1000,
    reinstall: d.reinstall,
    onHeal: (r) =>
      d.log.warn(
        { event: 'heal', problems: r.problems, grants: r.grants, heal_ms: r.ms },
        'the firewall lost the gate (flushed or changed by someone else): installed it again with the live grants',
      ),
    onError: (err) => d.log.error({ event: 'heal-error', err }, 'checking or re-installing the gate failed; retrying'),
    ...(d.backend.bindFastPath ? { retryFastPath: () => d.backend.bindFastPath?.() ?? Promise.resolve(false) } : {}),
  });
  h.start();
  return h;
}
