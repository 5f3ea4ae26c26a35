/**
 * The log lines of an accepted knock: `"event":"grant"` and `"event":"revoke"` (docs/operations.md). Built after the
 * firewall change committed, never before it (server/daemon.ts `handle`). Fields only: no key, no raw packet.
 * @module
 */
import { formatAccess } from '../shared/access.js';
import { grantSource } from '../shared/address.js';
import type { GrantEntry } from './firewall/backend.js';
import type { CloseResult, GrantAction, GrantOutcome } from './grants.js';
import type { Decision } from './policy.js';

export const fmtEntries = (entries: readonly Pick<GrantEntry, 'access'>[]): string[] =>
  entries.map((e) => formatAccess(e.access));

/** `tcp/22` texts of the accesses whose outcome is `action`. */
export function accessesWith(outcomes: readonly GrantOutcome[], action: GrantAction): string[] {
  return outcomes.filter((o) => o.action === action).map((o) => formatAccess(o.access));
}

export interface GrantLineExtra {
  /** A one-time code's number in the client's list (docs/codes.md). */
  readonly oneTimeCode?: number | undefined;
  /** Packet handed to the daemon → firewall change committed (verification + firewall), milliseconds. */
  readonly latencyMs: number;
  /** SPAK_TRACE_GRANT marks (server/grant-trace.ts), bench only. */
  readonly trace?: unknown;
}

export function grantLine(d: Decision, outcomes: readonly GrantOutcome[], x: GrantLineExtra): Record<string, unknown> {
  const exp = Math.max(...outcomes.map((o) => o.expiresAt));
  return {
    event: 'grant',
    client: d.client,
    ...(x.oneTimeCode !== undefined ? { one_time_code: x.oneTimeCode } : {}),
    source: d.source,
    address: grantSource(d),
    accesses: outcomes.map((o) => formatAccess(o.access)),
    opened: accessesWith(outcomes, 'opened'),
    renewed: accessesWith(outcomes, 'renewed'),
    // another client's (or an ownerless) grant: lengthened or left as it was, its owner kept
    extended: accessesWith(outcomes, 'extended'),
    unchanged: accessesWith(outcomes, 'unchanged'),
    duration: d.duration,
    expires: new Date(exp).toISOString(),
    latency_ms: x.latencyMs,
    trace: x.trace,
  };
}

export function revokeLine(d: Decision, r: CloseResult): Record<string, unknown> {
  return {
    event: 'revoke',
    client: d.client,
    source: d.source,
    address: grantSource(d),
    // what the knocker no longer holds: revoked now, or already gone
    accesses: [...fmtEntries(r.revoked), ...r.absent.map(formatAccess)],
    revoked: fmtEntries(r.revoked),
    not_owned: r.notOwned.map(formatAccess),
  };
}
