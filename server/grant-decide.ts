/**
 * The grant manager's decision for one open knock of a batch (server/grants.ts), taken before the firewall call,
 * touching nothing but the batch's own bookkeeping (`writes`, `adds`): ownership (who opens, renews, extends, or
 * leaves a grant as it is), coalescing (COALESCE_SLACK_MS), the per-client grant limit (`grant-limit`) and the prefix
 * overlap (`prefix-overlap`), against the live grants and what the knocks before it in the batch write. The rules are
 * in server/grants.ts's module comment; this is their code, kept out of it.
 * @module
 */
import { sameAccess } from '../shared/access.js';
import { type Cidr, cidrsOverlap, grantKeyString, grantSource, parseCidr } from '../shared/address.js';
import type { GrantEntry } from './firewall/backend.js';
import { type GrantHolders, sourceKey } from './grant-holders.js';
import type { GrantOutcome, OpenResult } from './grants.js';
import type { Decision } from './policy.js';

const keyOf = grantKeyString;

/** A grant already ending within this much of a knock's new expiry is left as it is (coalescing), ms. */
export const COALESCE_SLACK_MS = 1000;

/** The slack for a knock of `durationS` seconds: COALESCE_SLACK_MS, at most a tenth of the duration. */
const slackOf = (durationS: number): number => Math.min(COALESCE_SLACK_MS, durationS * 100);

/** A batch's writes by grant key. */
export type Writes = Map<string, GrantEntry>;

/** Per client, the sources a batch opens that the client did not hold before it. */
export type BatchAdds = Map<string, Set<string>>;

/** What a decision reads of the grant manager. */
export interface LiveGrants {
  /** The live grant under this key at `now`; undefined when there is none or it has expired. */
  readonly current: (key: string, now: number) => GrantEntry | undefined;
  /** The grants the manager holds, by key (some may have expired by now). */
  readonly live: ReadonlyMap<string, GrantEntry>;
  /** Who holds which sources among `live` (grant-holders.ts). */
  readonly holders: GrantHolders;
  /** Most distinct addresses a client may hold live grants for. */
  readonly maxGrantsOf: (client: string) => number;
}

/** One knock's outcomes against the live grants and the batch's `writes` so far (which it extends). */
export function decide(
  d: Decision,
  now: number,
  writes: Writes,
  adds: BatchAdds,
  g: LiveGrants,
): { result: OpenResult; wrote: boolean } {
  const expiresAt = now + d.duration * 1000;
  const slack = slackOf(d.duration);
  const outcomes: GrantOutcome[] = [];
  const mine: GrantEntry[] = [];
  const prefix = d.prefix !== undefined ? { prefix: d.prefix } : {};
  for (const access of d.accesses) {
    const key = { family: d.family, address: d.address, ...prefix, access };
    const k = keyOf(key);
    const cur = writes.get(k) ?? g.current(k, now);
    let o: GrantOutcome;
    if (cur === undefined) o = { access, action: 'opened', owner: d.client, expiresAt };
    else if (Math.abs(cur.expiresAt - expiresAt) <= slack)
      o = { access, action: 'unchanged', owner: cur.owner, expiresAt: cur.expiresAt };
    else if (cur.owner === d.client) o = { access, action: 'renewed', owner: d.client, expiresAt };
    else if (cur.expiresAt < expiresAt) o = { access, action: 'extended', owner: cur.owner, expiresAt };
    else o = { access, action: 'unchanged', owner: cur.owner, expiresAt: cur.expiresAt };
    outcomes.push(o);
    if (o.action !== 'unchanged')
      mine.push({ ...key, expiresAt: o.expiresAt, ...(o.owner !== undefined ? { owner: o.owner } : {}) });
  }
  const opens = outcomes.some((o) => o.action === 'opened');
  if (opens && !withinLimit(d, now, adds, g)) return { result: { ok: false, reason: 'grant-limit' }, wrote: false };
  if (d.prefix !== undefined && overlaps(d, now, writes, g))
    return { result: { ok: false, reason: 'prefix-overlap' }, wrote: false };
  for (const e of mine) writes.set(keyOf(e), e);
  if (opens) addSource(d, now, adds, g.holders);
  return { result: { ok: true, outcomes }, wrote: mine.length > 0 };
}

/**
 * Would one more address for this client stay within its limit? (An address it already holds, or that this batch
 * already opens for it, costs nothing.) O(1): the held sources are counted as grants change (grant-holders.ts).
 */
function withinLimit(d: Decision, now: number, adds: BatchAdds, g: LiveGrants): boolean {
  const max = g.maxGrantsOf(d.client);
  const src = sourceKey(d);
  if (g.holders.holds(d.client, src, now)) return true;
  const batch = adds.get(d.client);
  if (batch?.has(src)) return true;
  return g.holders.count(d.client, now) + (batch?.size ?? 0) < max;
}

/** Note that this batch opens `d`'s source for its client (when the client did not hold it already). */
function addSource(d: Decision, now: number, adds: BatchAdds, holders: GrantHolders): void {
  const src = sourceKey(d);
  if (holders.holds(d.client, src, now)) return;
  let batch = adds.get(d.client);
  if (batch === undefined) adds.set(d.client, (batch = new Set()));
  batch.add(src);
}

/**
 * Would this prefix grant overlap a live prefix grant (or one this batch writes) of another length for one of the
 * same accesses? (A grant restored from nft after a restart is listed up to 1 s early, so the kernel may hold it a
 * moment longer than this knows: the nft change then fails, `firewall`, and a later knock succeeds.)
 */
function overlaps(d: Decision, now: number, writes: ReadonlyMap<string, GrantEntry>, g: LiveGrants): boolean {
  const mine = blockOf(d);
  if (mine === undefined) return false;
  for (const l of [...g.live.values(), ...writes.values()]) {
    if (l.prefix === undefined || l.family !== d.family || l.prefix === d.prefix) continue;
    if (l.expiresAt <= now || !d.accesses.some((a) => sameAccess(a, l.access))) continue;
    const other = blockOf(l);
    if (other !== undefined && cidrsOverlap(mine, other)) return true;
  }
  return false;
}

function blockOf(g: { address: string; prefix?: number | undefined }): Cidr | undefined {
  const r = parseCidr(grantSource(g));
  return r.ok ? r.cidr : undefined;
}
