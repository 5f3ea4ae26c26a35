/**
 * The nftables backend's mirror of its grant elements: owner and expiry of each element this process read or wrote,
 * so a grant can tell whether one `add element` is enough or it needs `add; delete; add` (server/firewall/nftables.ts
 * explains why). The kernel holds the truth; the mirror only ever errs towards the three-command path:
 * - an element whose change failed is `uncertain` (any owner, maybe there);
 * - an entry is kept NFT_KNOWN_GRACE_MS past its expiry (nft lists timeouts in whole seconds, so the kernel may hold
 *   an element a little longer than we think) and is no knowledge after that;
 * - "surely absent" needs the whole table read or written by this process, and no rules that add elements of their
 *   own (classic sequences).
 * @module
 */
import { type GrantKey, grantKeyString } from '../../shared/address.js';
import { NFT_KNOWN_GRACE_MS } from '../../shared/constants.js';
import type { GrantEntry } from './backend.js';

/** What the mirror knows of one element. */
export interface Known {
  readonly owner: string | undefined;
  readonly expiresAt: number;
  /** A change to it failed: it may or may not be there, with any owner. */
  readonly uncertain?: boolean;
}

export class NftMirror {
  readonly #known = new Map<string, Known>();
  /** Does the mirror hold every element of the table (after install or list in this process)? */
  #complete = false;
  /** Do rules of the installed plan add grants themselves (classic sequences)? Then no element is surely absent. */
  kernelAddsGrants = false;
  /** When prune() next walks the entries. */
  #nextPrune = 0;

  /** What is known of the element `g` at `now` (undefined: nothing, or past its grace). */
  at(g: GrantKey, now: number): Known | undefined {
    const k = this.#known.get(grantKeyString(g));
    return k !== undefined && k.expiresAt + NFT_KNOWN_GRACE_MS > now ? k : undefined;
  }

  /** Can the element not exist in the kernel (so one `add` creates it with our timeout and owner)? */
  surelyAbsent(g: GrantKey, now: number): boolean {
    return this.at(g, now) === undefined && this.#complete && !this.kernelAddsGrants;
  }

  /** These grants were written (or read); `replaceAll`: they are the whole table. */
  remember(grants: readonly GrantEntry[], replaceAll: boolean): void {
    if (replaceAll) {
      this.#known.clear();
      this.#complete = true;
    }
    for (const g of grants) this.#known.set(grantKeyString(g), { owner: g.owner, expiresAt: g.expiresAt });
  }

  /** A change to these failed: they may be there or not, with any owner, until `expiresAt` (+ grace). */
  uncertain<K extends GrantKey>(keys: readonly K[], expiresAt: (k: K) => number): void {
    for (const k of keys)
      this.#known.set(grantKeyString(k), { owner: undefined, expiresAt: expiresAt(k), uncertain: true });
  }

  /** These were deleted from the kernel: absent. */
  forget(keys: readonly GrantKey[]): void {
    for (const k of keys) this.#known.delete(grantKeyString(k));
  }

  /** The table is gone. */
  clear(): void {
    this.#known.clear();
  }

  /** Forget entries past their grace, at most once per NFT_KNOWN_GRACE_MS (a walk over every entry). */
  prune(now: number): void {
    if (now < this.#nextPrune) return;
    this.#nextPrune = now + NFT_KNOWN_GRACE_MS;
    for (const [k, v] of this.#known) if (v.expiresAt + NFT_KNOWN_GRACE_MS <= now) this.#known.delete(k);
  }
}
