/**
 * The kernel prefilter (issue 9, "Flood resilience"): a per-source rate limit on the knock port, in the kernel, in
 * front of the daemon's socket, so a flood from one source is dropped before it wakes Node (node:dgram costs 7–9 µs of
 * CPU per datagram whatever the daemon does with it). Keyed like the daemon's own limiter (server/ratelimit.ts): an
 * IPv4 address, or an IPv6 address's /64 (RFC 4291 §2.5.4: one host usually holds a whole /64).
 *
 * This module is the backend-neutral part: the plan field, its validation, and how it follows from `[limit]`. The rule
 * text is nft-prefilter.ts (nft dynamic sets with a per-element `limit`) and iptables-prefilter.ts (`-m hashlimit`).
 *
 * The kernel cannot tell which datagrams carry a current key id, so it counts every datagram of a source; the daemon's
 * limiter, which counts only those, stays the second line and decides at its own rate. So the kernel's budget is
 * twice the daemon's (`2 × source_rate` per second, burst `2 × source_burst`): a source at the daemon's limit is
 * refused by the daemon (`rate`, counted) and the kernel drops only what is well past it. Capped at 1,000,000/s and a
 * burst of 1,000,000 (hashlimit's largest rate, measured with iptables 1.8.9: "Rate too fast" above).
 * @module
 */
import { isPort } from '../../shared/access.js';
import { SpaError } from '../../shared/errors.js';

/** ERR_SPA_FIREWALL, as validate.ts's firewallError (not imported from there: validate.ts imports this module). */
const firewallError = (message: string): SpaError => new SpaError('ERR_SPA_FIREWALL', message);

/** The kernel prefilter of a plan. */
export interface Prefilter {
  /** The knock port (UDP): `listen.port`. */
  readonly port: number;
  /** Datagrams per second per source (IPv6: /64) above which the kernel drops. */
  readonly rate: number;
  /** Bucket size in datagrams. */
  readonly burst: number;
  /** Most sources tracked per family (nft set `size`, hashlimit `htable-max`); a new one past it is not limited. */
  readonly size: number;
  /** Seconds a source is remembered after its last datagram (nft set `timeout`, hashlimit `htable-expire`). */
  readonly timeoutS: number;
}

/** Largest rate and burst (hashlimit's limit; nft takes the same). */
export const PREFILTER_MAX = 1_000_000;
/** Largest table size: the daemon's own `source_table` maximum. */
export const PREFILTER_MAX_SIZE = 1 << 22;
/** The kernel budget is this many times the daemon's own (see the module header). */
export const PREFILTER_FACTOR = 2;
/** Shortest and longest memory of a source, seconds. */
export const PREFILTER_MIN_TIMEOUT_S = 10;
export const PREFILTER_MAX_TIMEOUT_S = 3600;

/**
 * The prefilter that follows from `[limit]` (undefined when `kernel_prefilter = false`, or with no fixed port). A source is remembered at
 * least as long as its bucket takes to refill (burst / rate), so forgetting it never gives a flooder a fresh burst
 * sooner than it would get one anyway (the entry's timer restarts at each datagram).
 */
export function prefilterOf(
  port: number,
  limit: {
    readonly kernelPrefilter: boolean;
    readonly sourceRate: number;
    readonly sourceBurst: number;
    readonly sourceTable: number;
  },
): Prefilter | undefined {
  if (!limit.kernelPrefilter || !isPort(port)) return undefined; // port 0 (tests: an ephemeral port): none
  const rate = Math.min(PREFILTER_MAX, PREFILTER_FACTOR * limit.sourceRate);
  const burst = Math.min(PREFILTER_MAX, PREFILTER_FACTOR * limit.sourceBurst);
  const refillS = Math.ceil(burst / rate);
  return {
    port,
    rate,
    burst,
    size: Math.min(PREFILTER_MAX_SIZE, limit.sourceTable),
    timeoutS: Math.min(PREFILTER_MAX_TIMEOUT_S, Math.max(PREFILTER_MIN_TIMEOUT_S, refillS)),
  };
}

const whole = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** A clean copy of a plan's prefilter (undefined: none), or ERR_SPA_FIREWALL: every value ends up in rule text. */
export function checkPrefilter(p: unknown): Prefilter | undefined {
  if (p === undefined) return undefined;
  if (typeof p !== 'object' || p === null) throw firewallError('invalid plan: prefilter is not an object');
  const { port, rate, burst, size, timeoutS } = p as Record<string, unknown>;
  if (!isPort(port)) throw firewallError('invalid plan: prefilter port must be 1-65535');
  if (!whole(rate, 1, PREFILTER_MAX) || !whole(burst, 1, PREFILTER_MAX))
    throw firewallError(`invalid plan: prefilter rate and burst must be whole numbers 1-${PREFILTER_MAX}`);
  if (!whole(size, 1, PREFILTER_MAX_SIZE))
    throw firewallError(`invalid plan: prefilter size must be a whole number 1-${PREFILTER_MAX_SIZE}`);
  if (!whole(timeoutS, 1, PREFILTER_MAX_TIMEOUT_S))
    throw firewallError(`invalid plan: prefilter timeout must be 1-${PREFILTER_MAX_TIMEOUT_S} s`);
  return { port, rate, burst, size, timeoutS };
}
