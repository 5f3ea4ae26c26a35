/**
 * Active grants: what is open, for whom, until when. Turns a policy decision into firewall calls, and — for backends
 * whose kernel does not expire grants by itself (iptables) — revokes each grant on time. The clock and the timers are
 * injected so tests drive time by hand.
 *
 * Ownership (kept in the kernel with each grant, so it survives a restart): a grant belongs to the client that first
 * opened it. Another client's knock for the same (address, access) may only lengthen it, never shorten it, and the
 * owner stays; `close` removes only the knocker's own grants. A grant with no known owner (older version, made by
 * hand) can be extended by anyone and closed by nobody: it expires. Each client holds grants for at most
 * `maxGrants` distinct addresses at once (`grant-limit`); a prefix grant (issue 10) counts as one address. A prefix
 * grant that would overlap a live prefix grant of another length for the same access is refused (`prefix-overlap`):
 * an nftables interval set cannot hold both (measured, nft 1.0.6: "File exists"), and which one should decide who may
 * connect is not obvious. Every decision is taken before the firewall call; calls are serialised so each decision
 * sees the outcome of the one before.
 *
 * Under a flood of valid knocks (issue 9) the firewall must not become the queue:
 * - Coalescing: a knock whose grant already exists (or is being made) with an expiry within COALESCE_SLACK_MS (at most
 *   a tenth of the duration) of what it would give changes nothing (`unchanged`): a flood of one knock is one change
 *   per slack interval at most.
 * - Batching: opens that arrive while a firewall change is in flight wait together and go in one `grant` call (one
 *   transaction), each decided in arrival order against what the ones before it wrote.
 * - Bound: at most `maxQueue` opens wait; one more is refused at once with `busy`, and `stop()` sheds those waiting
 *   (also `busy`) instead of letting the daemon wait for a backlog.
 * A close, a re-install or a revoke of removed clients seals the waiting batch, so no open overtakes it.
 * @module
 */
import { type Access, sameAccess } from '../shared/access.js';
import { grantKeyString } from '../shared/address.js';
import { type FirewallBackend, type GrantEntry, keyFields } from './firewall/backend.js';
import { type BatchAdds, type LiveGrants, type Writes, decide } from './grant-decide.js';
import { GrantHolders } from './grant-holders.js';
import { CallQueue } from './grant-queue.js';
import { traceMark } from './grant-trace.js';
import type { Decision } from './policy.js';
import type { Timers } from './timers.js';

export { type Timers, realTimers } from './timers.js';
export { COALESCE_SLACK_MS } from './grant-decide.js';

export interface GrantManagerOptions {
  readonly backend: FirewallBackend;
  readonly now: () => number;
  readonly timers: Timers;
  /** Most distinct addresses a client may hold live grants for (default: no limit). */
  readonly maxGrantsOf?: (client: string) => number;
  /** Called after grants ended on time (revoked by us, or expired in the kernel). */
  readonly onExpire?: (entries: readonly GrantEntry[]) => void;
  /** Called when a timed revoke failed; the manager retries on the next tick. */
  readonly onError?: (err: unknown) => void;
  /** Most opens waiting for the firewall (default: no limit); one more is refused with `busy`. */
  readonly maxQueue?: () => number;
}

/**
 * What a knock did to one access: `opened` (new grant, the knocker owns it), `renewed` (the knocker's own grant, new
 * expiry, possibly shorter), `extended` (another's or an ownerless grant made to last longer; owner kept),
 * `unchanged` (another's or an ownerless grant already lasting at least as long, or any grant already ending within
 * the coalescing slack of the new expiry: no firewall change).
 */
export type GrantAction = 'opened' | 'renewed' | 'extended' | 'unchanged';

export interface GrantOutcome {
  readonly access: Access;
  readonly action: GrantAction;
  /** Owner after the knock (undefined: unknown). */
  readonly owner: string | undefined;
  readonly expiresAt: number;
}

export type OpenResult =
  | { readonly ok: true; readonly outcomes: readonly GrantOutcome[] }
  | { readonly ok: false; readonly reason: 'grant-limit' | 'prefix-overlap' | 'busy' };

export interface CloseResult {
  /** The knocker's live grants, now removed. */
  readonly revoked: readonly Omit<GrantEntry, 'expiresAt'>[];
  /** Named by the knock, but no live grant: nothing to do (already expired, or never opened). */
  readonly absent: readonly Access[];
  /** Live grants of another client, or without a known owner: left untouched. */
  readonly notOwned: readonly Access[];
}

const keyOf = grantKeyString;

/** A timed revoke that failed (iptables) is retried after this long. */
const REVOKE_RETRY_MS = 1000;

interface Waiting {
  readonly d: Decision;
  readonly resolve: (r: OpenResult) => void;
  readonly reject: (err: unknown) => void;
}

/** Opens that go to the firewall together (one `grant` call). */
interface Batch {
  items: Waiting[];
}

export class GrantManager {
  readonly #o: GrantManagerOptions;
  readonly #live = new Map<string, GrantEntry>();
  /** Who holds which sources among #live (the grant limit's count, O(1) per knock); changed with #live only. */
  readonly #holders = new GrantHolders();
  #timer: unknown;
  #timerAt = Infinity;
  #stopped = false;
  /** Runs the firewall calls one at a time (grant-queue.ts); an idle one starts a call in the caller's turn. */
  readonly #calls = new CallQueue();
  /** The backend's leave to wait before a confirmation (FirewallBackend.grant): none once stopped. */
  readonly #hold = (ms: number): Promise<void> =>
    this.#stopped ? Promise.resolve() : this.#calls.hold(ms, this.#o.timers);
  /** The batch new opens join (queued, not started); undefined once it starts or is sealed. */
  #batch: Batch | undefined;
  /** Batches queued and not started (stop() sheds them). */
  readonly #notStarted = new Set<Batch>();
  /** Opens in those batches. */
  #waiting = 0;

  /** What the decisions of a batch read (grant-decide.ts). */
  readonly #grants: LiveGrants;

  constructor(opts: GrantManagerOptions) {
    this.#o = opts;
    this.#grants = {
      current: (key, now) => this.#current(key, now),
      live: this.#live,
      holders: this.#holders,
      maxGrantsOf: (client) => this.#o.maxGrantsOf?.(client) ?? Infinity,
    };
  }

  /** Adopt the grants the kernel already holds (after a restart or a crash), with the owners stored there. */
  async restore(): Promise<GrantEntry[]> {
    const now = this.#o.now();
    const found = await this.#o.backend.list(now);
    for (const entry of found) this.#put(keyOf(entry), entry);
    this.#schedule();
    return found;
  }

  /**
   * Open (or extend) what the decision grants, under the ownership rules. Atomic: on error nothing changed (the
   * promise rejects). Joins the waiting batch; `busy` at once when `maxQueue` opens already wait or after stop().
   */
  open(d: Decision): Promise<OpenResult> {
    if (this.#stopped || this.full) return Promise.resolve({ ok: false, reason: 'busy' });
    let b = this.#batch;
    const fresh = b === undefined;
    if (b === undefined) {
      const nb: Batch = { items: [] };
      this.#batch = b = nb;
      this.#notStarted.add(nb);
    }
    this.#waiting++;
    const batch = b;
    const p = new Promise<OpenResult>((resolve, reject) => batch.items.push({ d, resolve, reject }));
    // with nothing in flight, the batch starts here, in the caller's turn: decided and handed to the backend before
    // open() returns (no promise hop between the verified knock and the firewall; a later open joins the next batch)
    if (fresh) void this.#calls.run(() => this.#flush(batch));
    return p;
  }

  /** Are `maxQueue` opens already waiting for the firewall? (The daemon sheds a close knock then, too.) */
  get full(): boolean {
    return this.#waiting >= (this.#o.maxQueue?.() ?? Infinity);
  }

  /** Opens waiting for the firewall right now (not counting the change in flight). */
  get waiting(): number {
    return this.#waiting;
  }

  /** Revoke what the decision names, only where the grant is the knocker's own. */
  close(d: Decision): Promise<CloseResult> {
    return this.#serialSealed(() => this.#close(d));
  }

  /** #calls.run, after sealing the waiting batch: opens that come later queue behind this call. */
  #serialSealed<T>(fn: () => Promise<T>): Promise<T> {
    this.#batch = undefined;
    return this.#calls.run(fn);
  }

  #current(key: string, now: number): GrantEntry | undefined {
    const l = this.#live.get(key);
    return l !== undefined && l.expiresAt > now ? l : undefined;
  }

  /** Decide a batch in arrival order, write what changes in one `grant` call, then answer each knock. */
  async #flush(b: Batch): Promise<void> {
    if (this.#batch === b) this.#batch = undefined;
    this.#notStarted.delete(b);
    this.#waiting -= b.items.length;
    const items = b.items;
    b.items = [];
    if (items.length === 0) return; // shed by stop()
    const now = this.#o.now();
    /** This batch's writes by grant key (a later knock in the batch sees an earlier one's write). */
    const writes: Writes = new Map();
    /** Per client, the sources this batch opens that it did not hold (counted against its limit with the held). */
    const adds: BatchAdds = new Map();
    const results = items.map((w) => decide(w.d, now, writes, adds, this.#grants));
    traceMark('decided');
    if (writes.size > 0) {
      try {
        await this.#o.backend.grant([...writes.values()], now, this.#hold);
      } catch (err) {
        // all or nothing: every knock of the batch that needed a change failed; one that needed none still holds
        items.forEach((w, i) => {
          const r = results[i];
          if (r?.wrote) w.reject(err);
          else if (r) w.resolve(r.result);
        });
        return;
      }
      for (const e of writes.values()) this.#put(keyOf(e), e);
      this.#schedule();
    }
    items.forEach((w, i) => {
      const r = results[i];
      if (r) w.resolve(r.result);
    });
  }

  /** #live.set, with the holders' count. */
  #put(key: string, e: GrantEntry): void {
    this.#live.set(key, e);
    this.#holders.set(key, e);
  }

  /** #live.delete, with the holders' count. */
  #drop(key: string): void {
    this.#live.delete(key);
    this.#holders.delete(key);
  }

  async #close(d: Decision): Promise<CloseResult> {
    const now = this.#o.now();
    const revoked: Omit<GrantEntry, 'expiresAt'>[] = [];
    const absent: Access[] = [];
    const notOwned: Access[] = [];
    for (const access of d.accesses) {
      const key = {
        family: d.family,
        address: d.address,
        ...(d.prefix !== undefined ? { prefix: d.prefix } : {}),
        access,
      };
      const cur = this.#current(keyOf(key), now);
      if (cur === undefined) absent.push(access);
      else if (cur.owner === d.client) revoked.push(key);
      else notOwned.push(access);
    }
    if (revoked.length > 0) {
      await this.#o.backend.revoke(revoked);
      for (const t of revoked) this.#drop(keyOf(t));
      this.#schedule();
    }
    return { revoked, absent, notOwned };
  }

  /**
   * The firewall lost the gate (server/heal.ts): run `install` and grant every live grant again, in the call queue so
   * no knock interleaves. Grants without a finite expiry (made by hand) are not re-made. Resolves with the count.
   */
  reinstall(install: (now: number) => Promise<void>): Promise<number> {
    return this.#serialSealed(async () => {
      await install(this.#o.now());
      // the clock read again: each element's timeout is its remaining time from now, not from before the install
      // (a slow install would otherwise lengthen every grant by its own duration)
      const now = this.#o.now();
      const live = [...this.#live.values()].filter((l) => l.expiresAt > now && Number.isFinite(l.expiresAt));
      if (live.length > 0) await this.#o.backend.grant(live, now);
      return live.length;
    });
  }

  /** Revoke every live grant whose owner matches (a reload removed the client); resolves with what was revoked. */
  endOwnedBy(match: (owner: string | undefined) => boolean): Promise<GrantEntry[]> {
    return this.#serialSealed(async () => {
      const now = this.#o.now();
      const ending = [...this.#live.entries()].filter(([, l]) => l.expiresAt > now && match(l.owner));
      if (ending.length === 0) return [];
      await this.#o.backend.revoke(ending.map(([, l]) => keyFields(l)));
      for (const [k, l] of ending) if (this.#live.get(k) === l) this.#drop(k);
      this.#schedule();
      return ending.map(([, l]) => l);
    });
  }

  /** Live grants (not yet expired by `now`). */
  active(): { entry: GrantEntry; owner: string | undefined }[] {
    const now = this.#o.now();
    return [...this.#live.values()].filter((l) => l.expiresAt > now).map((entry) => ({ entry, owner: entry.owner }));
  }

  /** Is this (address, access) granted right now, to this one address (prefix grants aside)? */
  isOpen(address: string, access: Access): boolean {
    const now = this.#o.now();
    for (const l of this.#live.values())
      if (l.prefix === undefined && l.address === address && sameAccess(l.access, access) && l.expiresAt > now)
        return true;
    return false;
  }

  /**
   * Stop the expiry timer and shed every open still waiting (answered `busy`, nothing written: fail closed); later
   * opens are `busy` too. The change in flight, if any, still completes. Returns how many opens were shed.
   */
  stop(): number {
    this.#stopped = true;
    this.#calls.release();
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    let shed = 0;
    for (const b of this.#notStarted) {
      for (const w of b.items) w.resolve({ ok: false, reason: 'busy' });
      shed += b.items.length;
      b.items = [];
    }
    this.#notStarted.clear();
    this.#waiting = 0;
    this.#batch = undefined;
    return shed;
  }

  #schedule(): void {
    if (this.#stopped) return;
    let next = Infinity;
    for (const l of this.#live.values()) next = Math.min(next, l.expiresAt);
    if (next === this.#timerAt && this.#timer !== undefined) return;
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = next;
    if (next === Infinity) return;
    const delay = Math.max(0, next - this.#o.now());
    this.#timer = this.#o.timers.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      void this.#calls.run(() => this.#tick());
    }, delay);
  }

  async #tick(): Promise<void> {
    const now = this.#o.now();
    const due = [...this.#live.entries()].filter(([, l]) => l.expiresAt <= now);
    if (due.length === 0) return this.#schedule();
    const entries = due.map(([, l]) => l);
    if (!this.#o.backend.kernelExpiry) {
      try {
        await this.#o.backend.revoke(entries.map(keyFields));
      } catch (err) {
        this.#o.onError?.(err);
        // retry after REVOKE_RETRY_MS; the entries stay listed so they are not forgotten
        if (!this.#stopped) {
          this.#timer = this.#o.timers.setTimeout(() => {
            this.#timer = undefined;
            void this.#calls.run(() => this.#tick());
          }, REVOKE_RETRY_MS);
          this.#timerAt = now + REVOKE_RETRY_MS;
        }
        return;
      }
    }
    for (const [k, l] of due) if (this.#live.get(k) === l) this.#drop(k);
    this.#o.onExpire?.(entries);
    this.#schedule();
  }
}
