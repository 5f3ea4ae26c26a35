/**
 * The kernel prefilter in nftables (prefilter.ts): a base chain of its own in our table, ahead of the gate's input
 * chain, that drops a source's datagrams to the knock port past its rate. For port 62201, rate 40/s, burst 80, 16384
 * sources remembered for 10 s:
 *
 * ```
 * counter flood_drops                                     # every datagram the prefilter dropped (status, summary)
 * set flood4 { type ipv4_addr; size 16384; flags dynamic,timeout; timeout 10s; }
 * set flood6 { type ipv6_addr; size 16384; flags dynamic,timeout; timeout 10s; }   # keys are /64 prefixes
 * chain prefilter {
 *   type filter hook prerouting priority raw; policy accept;
 *   iif != "lo" udp dport 62201 fib daddr type local update @flood4 { ip saddr limit rate over 40/second burst 80 packets } counter name "flood_drops" drop
 *   iif != "lo" udp dport 62201 fib daddr type local update @flood6 { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 40/second burst 80 packets } counter name "flood_drops" drop
 * }
 * ```
 * Each element of a dynamic set carries its own `limit` (nft(8) "SET STATEMENT": `update @set { key statement }`), so
 * the limit is per source: a flood from one address spends that address's tokens only. `update` restarts the
 * element's timeout at each datagram, so a source is forgotten only after `timeout` of silence. A full set makes the
 * `update` fail and the rule not match: the datagram goes on to the daemon, whose own limiter still applies — a flood
 * of forged sources can make the prefilter let things through, never make it drop a source it has not seen over its
 * rate. Loopback is left alone, as by the gate (`iif "lo" accept`).
 *
 * The chain hooks prerouting at priority raw (−300), ahead of connection tracking (−200; nft(8) "CHAINS", priority
 * table): a dropped datagram never creates or looks up a conntrack entry. What the prefilter lets through is tracked
 * as before, so the gate's `ct state` rules see it unchanged. Prerouting also sees datagrams being forwarded; `fib
 * daddr type local` keeps the prefilter to those addressed to this host (nft(8) "FIB EXPRESSIONS").
 *
 * Measured with nft 1.0.6, Linux 6.18: `nft list chain` prints the rules exactly as written above (priority as
 * `raw` in text, `prio: -300` in JSON); `add set` of an existing set with another `size` or `timeout` succeeds and keeps
 * the old declaration, so an install re-creates the two sets (`add`, `delete`, `add`: absent-safe) after flushing the
 * chain that references them, in the same transaction — unless `keepSets` (the caller saw them as planned: a heal, a
 * rotation, a reload that changed nothing of them), so the sources' buckets live through it; the counter is `add`ed
 * (kept) so it counts across re-installs.
 * @module
 */
import type { NftTableListing } from './nft-json.js';
import type { Prefilter } from './prefilter.js';

export const PREFILTER_CHAIN = 'prefilter';
export const PREFILTER_COUNTER = 'flood_drops';
export const PREFILTER_SETS = { 4: 'flood4', 6: 'flood6' } as const;
/** Hook and priority of the prefilter chain: prerouting at `raw`, before conntrack (`-200`) and the gate's input chain. */
export const PREFILTER_HOOK = 'prerouting';
export const PREFILTER_PRIO = -300;

const SET_TYPE = { 4: 'ipv4_addr', 6: 'ipv6_addr' } as const;
const KEY = { 4: 'ip saddr', 6: 'ip6 saddr & ffff:ffff:ffff:ffff::' } as const;

const chainSpec = `{ type filter hook prerouting priority raw; policy accept; }`;

/** The set declaration of one family's sources. */
function setDecl(f: 4 | 6, p: Prefilter): string {
  return `{ type ${SET_TYPE[f]}; flags dynamic,timeout; size ${p.size}; timeout ${p.timeoutS}s; }`;
}

/** The prefilter chain's rules exactly as `nft list chain` prints them (and as we write them). */
export function prefilterRules(p: Prefilter): string[] {
  return ([4, 6] as const).map(
    (f) =>
      `iif != "lo" udp dport ${p.port} fib daddr type local update @${PREFILTER_SETS[f]} { ${KEY[f]} limit rate over ${p.rate}/second burst ${p.burst} packets } counter name "${PREFILTER_COUNTER}" drop`,
  );
}

/**
 * The lines of an install transaction for table `t` (`inet NAME`) that put the prefilter as the plan says: installed
 * (sets re-created, chain refilled, counter kept) or, with none, removed whole (chain, sets, counter; absent-safe).
 */
export function prefilterLines(t: string, p: Prefilter | undefined, keepSets = false): string[] {
  const chain = `${t} ${PREFILTER_CHAIN}`;
  // `add chain` without a spec is absent-safe whatever hook an existing chain has (an older install hooked input at
  // filter - 11: nft refuses to change a base chain's hook), so the chain is emptied, deleted and declared anew
  const lines = [`add chain ${chain}`, `flush chain ${chain}`, `delete chain ${chain}`];
  if (p === undefined) {
    const stand = { port: 1, rate: 1, burst: 1, size: 1, timeoutS: 1 };
    for (const f of [4, 6] as const)
      lines.push(`add set ${t} ${PREFILTER_SETS[f]} ${setDecl(f, stand)}`, `delete set ${t} ${PREFILTER_SETS[f]}`);
    lines.push(`add counter ${t} ${PREFILTER_COUNTER}`, `delete counter ${t} ${PREFILTER_COUNTER}`);
    return lines;
  }
  lines.push(`add chain ${chain} ${chainSpec}`, `add counter ${t} ${PREFILTER_COUNTER}`);
  for (const f of [4, 6] as const) {
    const set = `${t} ${PREFILTER_SETS[f]}`;
    if (keepSets) lines.push(`add set ${set} ${setDecl(f, p)}`);
    else lines.push(`add set ${set} ${setDecl(f, p)}`, `delete set ${set}`, `add set ${set} ${setDecl(f, p)}`);
  }
  for (const r of prefilterRules(p)) lines.push(`add rule ${chain} ${r}`);
  return lines;
}

/** Are both per-source sets in the listing as `p` declares them (so an install may keep them and what they hold)? */
export function prefilterSetsAsPlanned(listing: NftTableListing, p: Prefilter | undefined): boolean {
  if (p === undefined) return false;
  return ([4, 6] as const).every((f) => {
    const set = listing.sets.get(PREFILTER_SETS[f]);
    return (
      set !== undefined &&
      set.type.join(' . ') === SET_TYPE[f] &&
      set.flags.includes('timeout') &&
      set.size === p.size &&
      set.timeoutS === p.timeoutS
    );
  });
}

/**
 * Problems of the prefilter in a listing of table `t` against the plan (empty: as planned). `rules`: the prefilter
 * chain's rule lines (undefined when the chain is missing).
 */
export function prefilterProblems(
  t: string,
  listing: NftTableListing,
  p: Prefilter | undefined,
  rules: readonly string[] | undefined,
): string[] {
  const chain = listing.chains.get(PREFILTER_CHAIN);
  if (p === undefined) {
    const left = [
      ...(chain ? [`chain ${PREFILTER_CHAIN}`] : []),
      ...Object.values(PREFILTER_SETS)
        .filter((s) => listing.sets.has(s))
        .map((s) => `set ${s}`),
      ...(listing.counters?.has(PREFILTER_COUNTER) ? [`counter ${PREFILTER_COUNTER}`] : []),
    ];
    return left.length > 0 ? [`nft ${left.join(', ')} of ${t} exist but limit.kernel_prefilter is off`] : [];
  }
  const problems: string[] = [];
  if (!chain) problems.push(`nft chain ${t} ${PREFILTER_CHAIN} is missing`);
  else {
    if (
      chain.type !== 'filter' ||
      chain.hook !== PREFILTER_HOOK ||
      chain.prio !== PREFILTER_PRIO ||
      chain.policy !== 'accept'
    )
      problems.push(
        `nft chain ${PREFILTER_CHAIN} is not "type filter hook prerouting priority raw; policy accept" (found ${String(chain.type)} ${String(chain.hook)} ${String(chain.prio)} ${String(chain.policy)})`,
      );
    const want = prefilterRules(p);
    const have = rules ?? [];
    if (have.join('\n') !== want.join('\n'))
      problems.push(`nft chain ${PREFILTER_CHAIN} rules differ: found [${have.join('; ')}]`);
  }
  for (const f of [4, 6] as const) {
    const set = listing.sets.get(PREFILTER_SETS[f]);
    if (!set) problems.push(`nft set ${t} ${PREFILTER_SETS[f]} is missing`);
    else {
      // nft 1.0.6's JSON lists the flags of these sets as ["timeout"] (measured): `dynamic` is not shown
      if (set.type.join(' . ') !== SET_TYPE[f] || !set.flags.includes('timeout'))
        problems.push(`nft set ${PREFILTER_SETS[f]} is not "type ${SET_TYPE[f]}; flags dynamic,timeout"`);
      else if (set.size !== p.size || set.timeoutS !== p.timeoutS)
        problems.push(
          `nft set ${PREFILTER_SETS[f]} has size ${String(set.size)} and timeout ${String(set.timeoutS)}s, not ${p.size} and ${p.timeoutS}s`,
        );
    }
  }
  if (listing.counters !== undefined && !listing.counters.has(PREFILTER_COUNTER))
    problems.push(`nft counter ${t} ${PREFILTER_COUNTER} is missing`);
  return problems;
}

/** The packets of our counter in `nft -j list counter inet T flood_drops` output; undefined if not found. */
export function parseCounterPackets(stdout: string): number | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  const items = (doc as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) return undefined;
  for (const item of items as unknown[]) {
    const c = (item as { counter?: { name?: unknown; packets?: unknown } } | null)?.counter;
    if (c?.name === PREFILTER_COUNTER && typeof c.packets === 'number' && Number.isSafeInteger(c.packets))
      return c.packets;
  }
  return undefined;
}
