/**
 * `spa-knockd rules --config FILE --format nft|iptables-restore`: the configured protection and knock sequences as a
 * standalone ruleset, for people who want the seed's kernel-only method with no daemon at all (docs/classic.md).
 * The same rule text the backends install (nft-script.ts, iptables-rules.ts, iptables-sequences.ts), without grants.
 * @module
 */
import { preChainLines, preChainName, preJumpLines } from './iptables-prefilter.js';
import { chainLines } from './iptables-rules.js';
import { seqChainName, sequenceChainLines, sequenceMainLines } from './iptables-sequences.js';
import { installLines } from './nft-script.js';
import type { CheckedPlan } from './validate.js';

/** `nft -f` input: our table, created or refilled (SPA grant sets kept if they exist). */
export function standaloneNft(table: string, plan: CheckedPlan, source: string): string {
  return [
    `# spa-knockd rules --format nft, from ${JSON.stringify(source)}. Load: nft -f FILE. Remove: nft delete table inet ${table}`,
    ...installLines(table, plan),
    '',
  ].join('\n');
}

/**
 * `iptables-restore` input that loads unchanged into both `iptables-restore` and `ip6tables-restore` (no family-
 * specific value in it: the `recent` masks are left to their default). Without `--noflush` it replaces the whole
 * filter table, as the seed's `iptables.rules` does; with `--noflush` it adds our chains and a jump at rule 1 of INPUT.
 * silence_port_unreachable is not part of it (its ICMP rules differ per family); the kernel prefilter is, in its IPv4
 * form (one bucket per address also for IPv6: the /64 mask, `--hashlimit-srcmask 64`, is refused by iptables).
 */
export function standaloneIptables(chain: string, plan: CheckedPlan, source: string): string {
  const seqChains = plan.sequences.map((_, i) => seqChainName(chain, i));
  const p = plan.prefilter;
  return [
    `# spa-knockd rules --format iptables-restore, from ${JSON.stringify(source)}.`,
    '# Load into both families: iptables-restore < FILE && ip6tables-restore < FILE',
    '# (add --noflush to keep the rest of the filter table)',
    '*filter',
    `:${chain} - [0:0]`,
    ...seqChains.map((q) => `:${q} - [0:0]`),
    ...(p !== undefined ? [`:${preChainName(chain)} - [0:0]`] : []),
    `-I INPUT 1 -j ${chain}`,
    ...chainLines(chain, 4, plan.protect, [], sequenceMainLines(chain, 'any', plan.sequences), preJumpLines(chain, p)),
    ...plan.sequences.flatMap((s, i) => sequenceChainLines(chain, 'any', s, i)),
    ...(p !== undefined
      ? [
          '# kernel prefilter (limit.kernel_prefilter); for ip6tables a /64 bucket: add --hashlimit-srcmask 64',
          ...preChainLines(chain, 4, p),
        ]
      : []),
    'COMMIT',
    '',
  ].join('\n');
}
