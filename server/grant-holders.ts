/**
 * Which sources each client holds live grants for, kept up to date as the grant manager (server/grants.ts) writes,
 * removes and ages grants, so its per-client limit (`grant.max_grants`, reason `grant-limit`) costs O(1) per knock
 * (amortised O(log n) for the expiries) instead of a walk over every live grant.
 *
 * A source is one address or one prefix (issue 10: a prefix counts as one address), per family. A grant counts for
 * its owner while `expiresAt > now`; ownerless grants (older version, by hand) count for nobody. The grant manager
 * keeps a grant listed past its expiry until its timed revoke ran (iptables), so expiry is not removal: a min-heap of
 * expiries uncounts each grant when the caller's clock passes it. Entries replaced or removed before then stay in the
 * heap and are skipped when they come out (the heap is rebuilt when such leftovers outnumber the live entries, so a
 * flood of renewals cannot grow it). If the clock goes back (a wall-clock step), the counts are rebuilt from the
 * entries, as the walk would have counted them. No clock of its own: every question carries `now`.
 * @module
 */
import { grantSource } from '../shared/address.js';
import type { GrantEntry } from './firewall/backend.js';

/** `family|address` or `family|address/prefix`: one source, as the limit counts it. */
export function sourceKey(g: Pick<GrantEntry, 'family' | 'address' | 'prefix'>): string {
  return `${g.family}|${grantSource(g)}`;
}

interface Held {
  readonly owner: string;
  readonly source: string;
  readonly expiresAt: number;
  /** Counted in #bySource (false once its expiry has passed). */
  counted: boolean;
}

export class GrantHolders {
  /** Every owned grant by grant key (live or expired-but-listed), as the grant manager holds it. */
  readonly #byKey = new Map<string, Held>();
  /** owner → source → how many of its counted grants have that source. */
  readonly #bySource = new Map<string, Map<string, number>>();
  /** Min-heap on expiresAt of counted entries (and leftovers of replaced ones). */
  #heap: Held[] = [];
  #counted = 0;
  /** The latest `now` expiries were applied for. */
  #at = Number.NEGATIVE_INFINITY;

  /** The grant under `key` is now `entry` (replacing what was there). */
  set(key: string, entry: GrantEntry): void {
    this.delete(key);
    if (entry.owner === undefined) return;
    const h: Held = { owner: entry.owner, source: sourceKey(entry), expiresAt: entry.expiresAt, counted: false };
    this.#byKey.set(key, h);
    if (h.expiresAt > this.#at) this.#count(h);
  }

  /** The grant under `key` is gone. */
  delete(key: string): void {
    const h = this.#byKey.get(key);
    if (h === undefined) return;
    this.#byKey.delete(key);
    if (h.counted) this.#uncount(h);
  }

  /** Does `owner` hold a grant for this source that is live at `now`? */
  holds(owner: string, source: string, now: number): boolean {
    this.#advance(now);
    return this.#bySource.get(owner)?.has(source) ?? false;
  }

  /** How many distinct sources `owner` holds live grants for at `now`. */
  count(owner: string, now: number): number {
    this.#advance(now);
    return this.#bySource.get(owner)?.size ?? 0;
  }

  /** Entries in the expiry heap, leftovers included (for tests: it stays bounded). */
  get heapSize(): number {
    return this.#heap.length;
  }

  #count(h: Held): void {
    h.counted = true;
    this.#counted++;
    let m = this.#bySource.get(h.owner);
    if (m === undefined) this.#bySource.set(h.owner, (m = new Map()));
    m.set(h.source, (m.get(h.source) ?? 0) + 1);
    this.#push(h);
    if (this.#heap.length > 2 * this.#counted + 64) this.#rebuildHeap();
  }

  #uncount(h: Held): void {
    h.counted = false;
    this.#counted--;
    const m = this.#bySource.get(h.owner);
    const n = m?.get(h.source) ?? 0;
    if (n > 1) m?.set(h.source, n - 1);
    else {
      m?.delete(h.source);
      if (m?.size === 0) this.#bySource.delete(h.owner);
    }
  }

  /** Uncount what expired by `now`; a clock that went back re-counts what is live again. */
  #advance(now: number): void {
    if (now < this.#at) {
      this.#at = now;
      for (const h of this.#byKey.values()) if (!h.counted && h.expiresAt > now) this.#count(h);
      return;
    }
    this.#at = now;
    for (let top = this.#heap[0]; top !== undefined && top.expiresAt <= now; top = this.#heap[0]) {
      this.#pop();
      if (top.counted) this.#uncount(top);
    }
  }

  // ------------------------------------------------------------------------------------------------ binary heap
  #rebuildHeap(): void {
    this.#heap = [...this.#byKey.values()].filter((h) => h.counted);
    for (let i = (this.#heap.length >> 1) - 1; i >= 0; i--) this.#down(i);
  }

  #push(h: Held): void {
    const a = this.#heap;
    let i = a.push(h) - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as Held;
      if (parent.expiresAt <= h.expiresAt) break;
      a[i] = parent;
      i = p;
    }
    a[i] = h;
  }

  #pop(): void {
    const a = this.#heap;
    const last = a.pop();
    if (last === undefined || a.length === 0) return;
    a[0] = last;
    this.#down(0);
  }

  #down(start: number): void {
    const a = this.#heap;
    const h = a[start] as Held;
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && (a[r] as Held).expiresAt < (a[l] as Held).expiresAt ? r : l;
      const child = a[c] as Held;
      if (child.expiresAt >= h.expiresAt) break;
      a[i] = child;
      i = c;
    }
    a[i] = h;
  }
}
