/**
 * The commands of the nftables backend's grant and revoke transactions (server/firewall/nftables.ts explains them):
 * per grant element one `add element … timeout T comment "owner"` where the mirror (nft-mirror.ts) shows that is
 * enough, else `add; delete; add`; per revoked element `add; delete`. Pure: builds text, runs nothing.
 * @module
 */
import { type GrantKey, grantKeyString } from '../../shared/address.js';
import { MIN_GRANT_MS } from '../../shared/constants.js';
import type { GrantEntry } from './backend.js';
import type { NftMirror } from './nft-mirror.js';
import { GRANT_SETS, elemKey, elemWithTimeout, setOf } from './nft-script.js';

/**
 * A triggered element counts as the owner's own (one `add` refreshes it, its comment kept) only if the mirror's expiry
 * is at least this far ahead: else the kernel may have expired it just before the trigger made a new one, without
 * comment.
 */
const MADE_MARGIN_MS = 1000;

/** A grant transaction: its commands, and the grants as they will be written (expiresAt at least MIN_GRANT_MS on). */
export interface GrantCommands {
  readonly cmds: string[];
  readonly applied: GrantEntry[];
}

/**
 * The commands that grant `grants` (checked) in table `t` (`inet NAME`). `made`: keys of the elements the fast path
 * just triggered; `fast`: a plain `add element` refreshes an existing element's timeout here (persistent mode).
 */
export function grantCommands(
  t: string,
  grants: readonly GrantEntry[],
  now: number,
  mirror: NftMirror,
  made: ReadonlySet<string>,
  fast: boolean,
): GrantCommands {
  const cmds: string[] = [];
  const applied: GrantEntry[] = [];
  for (const name of GRANT_SETS) {
    const set = `${t} ${name}`;
    const refresh: string[] = [];
    const replace: GrantEntry[] = [];
    for (const g of grants.filter((x) => setOf(x) === name)) {
      const expiresAt = Math.max(g.expiresAt, now + MIN_GRANT_MS);
      applied.push({ ...g, expiresAt });
      const known = mirror.at(g, now);
      // one `add` where it is enough: an element that cannot exist (the table is fully known and it is not in
      // it), or, where `add` refreshes timeouts, the same owner's own element; otherwise add; delete; add
      // (the fast path: an element the kernel just made has no owner yet, so it is neither absent nor the
      // owner's own unless it surely still held the owner's element when triggered)
      const key = grantKeyString(g);
      const absent = mirror.surelyAbsent(g, now) && !made.has(key);
      const sameOwner =
        known !== undefined &&
        !known.uncertain &&
        known.owner === g.owner &&
        (!made.has(key) || known.expiresAt > now + MADE_MARGIN_MS);
      if (absent || (fast && sameOwner)) refresh.push(elemWithTimeout(g, expiresAt - now, g.owner));
      else replace.push({ ...g, expiresAt });
    }
    if (refresh.length > 0) cmds.push(`add element ${set} { ${refresh.join(', ')} }`);
    if (replace.length > 0) {
      const withTimeout = replace.map((g) => elemWithTimeout(g, g.expiresAt - now, g.owner)).join(', ');
      cmds.push(
        `add element ${set} { ${withTimeout} }`,
        `delete element ${set} { ${replace.map(elemKey).join(', ')} }`,
        `add element ${set} { ${withTimeout} }`,
      );
    }
  }
  return { cmds, applied };
}

/** The commands that revoke `keys` (checked) in table `t`: `add; delete` per set, so an absent element is no error. */
export function revokeCommands(t: string, keys: readonly GrantKey[]): string[] {
  const cmds: string[] = [];
  for (const name of GRANT_SETS) {
    const mine = keys.filter((k) => setOf(k) === name);
    if (mine.length === 0) continue;
    const set = `${t} ${name}`;
    const els = mine.map(elemKey).join(', ');
    cmds.push(`add element ${set} { ${els} }`, `delete element ${set} { ${els} }`);
  }
  return cmds;
}
