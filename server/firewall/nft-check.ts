/**
 * `spa-knockd check` for nftables, the pure part: compare what `nft -j list table` and `nft list chain` show with
 * the plan, and say every difference in one line each. No I/O; nftables.ts runs the commands.
 * @module
 */
import { accessListDiff } from '../../shared/access.js';
import type { NftTableListing } from './nft-json.js';
import { accessOfElem } from './nft-json.js';
import { CHAIN_PRIO, GRANT_SETS, SET_FLAGS, SET_TYPES, inputRules, outputRules } from './nft-script.js';
import { PREFILTER_CHAIN, prefilterProblems } from './nft-prefilter.js';
import { KNOCK_CHAIN, seqChain, stageSets } from './nft-sequences.js';
import type { CheckedPlan } from './validate.js';

/** The rule lines of a chain, from `nft list chain inet T C` text (the lines after `type filter hook …`). */
export function parseChainRules(stdout: string): string[] {
  const lines = stdout.split('\n').map((l) => l.trim());
  const start = lines.findIndex((l) => l.startsWith('type filter hook'));
  if (start < 0) return [];
  const rules: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (l === '}') break;
    if (l !== '') rules.push(l);
  }
  return rules;
}

/**
 * Problems of an installed table `t` (`inet NAME`) against the plan; empty when it is as planned. `rules` holds the
 * rule lines of each chain that exists (undefined for a missing chain).
 */
export function nftCheckProblems(
  t: string,
  listing: NftTableListing,
  want: CheckedPlan,
  rules: Readonly<Record<'input' | 'output', readonly string[] | undefined>> & {
    readonly [PREFILTER_CHAIN]?: readonly string[] | undefined;
  },
): string[] {
  const problems: string[] = [];
  for (const name of [...GRANT_SETS, 'protect'] as const) {
    const set = listing.sets.get(name);
    if (!set) {
      problems.push(`nft set ${t} ${name} is missing`);
      continue;
    }
    if (set.type.join(' . ') !== SET_TYPES[name].join(' . '))
      problems.push(`nft set ${name} has type ${set.type.join(' . ')}`);
    for (const flag of SET_FLAGS[name])
      if (!set.flags.includes(flag)) problems.push(`nft set ${name} lacks flags ${flag}`);
  }
  const pset = listing.sets.get('protect');
  if (pset) {
    const have = pset.elems.map((e) => accessOfElem(e.parts));
    const diff = accessListDiff(
      have.filter((a) => a !== undefined),
      want.protect,
    );
    if (diff !== undefined) problems.push(diff);
    const odd = pset.elems.filter((_, i) => have[i] === undefined).map((e) => e.raw);
    if (odd.length > 0) problems.push(`nft set protect holds elements spa-knockd does not write: ${odd.join(', ')}`);
  }
  problems.push(...chainProblems(t, listing, 'input', inputRules(want), rules.input));
  if (want.sequences.length > 0 && !listing.chains.has(KNOCK_CHAIN)) problems.push(`nft chain ${t} knock is missing`);
  for (const s of want.sequences) {
    if (!listing.chains.has(seqChain(s))) problems.push(`nft chain ${t} ${seqChain(s)} is missing`);
    for (const st of stageSets(s)) if (!listing.sets.has(st.name)) problems.push(`nft set ${t} ${st.name} is missing`);
  }
  const outRules = outputRules(want, true);
  if (outRules.length > 0) problems.push(...chainProblems(t, listing, 'output', outRules, rules.output));
  else if (listing.chains.has('output'))
    problems.push(`nft chain ${t} output exists but silence_port_unreachable and fast_path are off`);
  problems.push(...prefilterProblems(t, listing, want.prefilter, rules[PREFILTER_CHAIN]));
  return problems;
}

function chainProblems(
  t: string,
  listing: NftTableListing,
  hook: 'input' | 'output',
  want: readonly string[],
  rules: readonly string[] | undefined,
): string[] {
  const chain = listing.chains.get(hook);
  if (!chain) return [`nft chain ${t} ${hook} is missing`];
  const problems: string[] = [];
  if (chain.type !== 'filter' || chain.hook !== hook || chain.prio !== CHAIN_PRIO) {
    problems.push(
      `nft chain ${hook} is not "type filter hook ${hook} priority filter - 10" (found ${String(chain.type)} ${String(chain.hook)} ${String(chain.prio)})`,
    );
  }
  if (chain.policy !== 'accept') problems.push(`nft chain ${hook} has policy ${String(chain.policy)}`);
  const have = rules ?? [];
  if (have.join('\n') !== want.join('\n')) problems.push(`nft chain ${hook} rules differ: found [${have.join('; ')}]`);
  return problems;
}
