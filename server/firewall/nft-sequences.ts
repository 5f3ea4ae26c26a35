/**
 * Classic knock sequences in nftables (docs/classic.md): the kernel recognises the knocks, nothing in user space runs
 * per knock. Pure text from validated values (sequence-check.ts). For the sequence `seed` = 8881, 7777, 9991 (gap 5 s,
 * opens tcp/22 for 30 s, ignore tcp/80) and IPv4 (IPv6 is the same with `ip6 saddr` and `_6` sets):
 *
 * ```
 * set seq_seed_0_4 { type ipv4_addr; flags dynamic,timeout; size 65536; }  # sources that took step 1 last
 * set seq_seed_1_4 { ... }                                                 # sources that took step 2 last
 * chain input { ...allow rules...
 *   meta l4proto udp jump knock                                 # UDP datagrams and pure SYNs only: an ACK or
 *   tcp flags syn / fin,syn,rst,ack jump knock                 # RST never advances nor resets an attempt
 *   ...protect drop }
 * chain knock { jump seq_seed }
 * chain seq_seed {
 *   meta l4proto . th dport { tcp . 80 } return                                         # ignore: no effect
 *   ip saddr @seq_seed_1_4 tcp dport 9991 update @allow4 { ip saddr . 6 . 22 timeout 30s }
 *                                           delete @seq_seed_1_4 { ip saddr } drop       # last step: grant/extend
 *   ip saddr @seq_seed_1_4 tcp dport 7777 drop                                           # repeat: no change
 *   ip saddr @seq_seed_0_4 tcp dport 7777 update @seq_seed_1_4 { ip saddr timeout 5s }
 *                                           delete @seq_seed_0_4 { ip saddr } drop       # next step: promote
 *   ip saddr @seq_seed_0_4 tcp dport 8881 drop                                           # repeat
 *   ip saddr @seq_seed_0_4 delete @seq_seed_0_4 { ip saddr }                             # anything else: reset
 *   ip saddr @seq_seed_1_4 delete @seq_seed_1_4 { ip saddr }
 *   meta nfproto ipv4 tcp dport 8881 update @seq_seed_0_4 { ip saddr timeout 5s } drop   # first step: start
 *   meta l4proto . th dport { tcp . 8881, tcp . 7777, tcp . 9991 } drop                 # knock ports stay silent
 * }
 * ```
 * A stage set's element timeout is the gap: a step older than `gap` is forgotten by the kernel. The grant goes into
 * the same allow4/allow6 sets as SPA grants (no owner comment: the kernel cannot write one), so `list` shows it
 * and it expires in the kernel. A full stage set (65536 sources) makes `update` fail and the packet fall through to
 * the final drop: a flood can stop knocks, never open a door.
 * @module
 */
import { type Access, PROTO_NUMBER } from '../../shared/access.js';
import type { Family } from '../../shared/address.js';
import type { KnockSequence } from './backend.js';
import { nftDuration, setName } from './nft-script.js';

/** Entries per stage set: a bound on kernel memory under a spoofed flood. */
export const STAGE_SET_SIZE = 65536;

/** The chain every sequence chain hangs from. */
export const KNOCK_CHAIN = 'knock';

/** Prefix of the per-sequence chains and stage sets (so a re-install finds and removes stale ones). */
export const SEQ_PREFIX = 'seq_';

/** The input chain rules that send knock candidates to the knock chain (inserted before the protect drop). */
export const NFT_KNOCK_JUMPS: readonly string[] = Object.freeze([
  `meta l4proto udp jump ${KNOCK_CHAIN}`,
  `tcp flags syn / fin,syn,rst,ack jump ${KNOCK_CHAIN}`,
]);

export const seqChain = (s: KnockSequence): string => `${SEQ_PREFIX}${s.name}`;

/** Name of the stage set of step index `k` (0-based: the sources whose last step was k) for one family. */
export const stageSet = (s: KnockSequence, k: number, f: Family): string => `${SEQ_PREFIX}${s.name}_${k}_${f}`;

/** The stage sets of a sequence: steps.length - 1 per family (the last step completes, it needs no set). */
export function stageSets(s: KnockSequence): { name: string; family: Family }[] {
  const out: { name: string; family: Family }[] = [];
  for (const f of [4, 6] as const) {
    for (let k = 0; k < s.steps.length - 1; k++) out.push({ name: stageSet(s, k, f), family: f });
  }
  return out;
}

const match = (a: Access): string => `meta l4proto ${a.proto} th dport ${a.port}`;
const pairs = (xs: readonly Access[]): string => xs.map((a) => `${a.proto} . ${a.port}`).join(', ');

/** The rules of one sequence's chain, as written (order matters: highest stage first, reset, then start). */
export function sequenceRules(s: KnockSequence): string[] {
  const rules: string[] = [];
  if (s.ignore.length > 0) rules.push(`meta l4proto . th dport { ${pairs(s.ignore)} } return`);
  const gap = nftDuration(s.gapS * 1000);
  const dur = nftDuration(s.durationS * 1000);
  const n = s.steps.length;
  for (const f of [4, 6] as const) {
    const src = f === 4 ? 'ip saddr' : 'ip6 saddr';
    const at = (k: number): string => `${src} @${stageSet(s, k, f)}`;
    const leave = (k: number): string => `delete @${stageSet(s, k, f)} { ${src} }`;
    for (let k = n - 2; k >= 0; k--) {
      const next = s.steps[k + 1] as Access;
      const action =
        k + 1 === n - 1
          ? s.open
              .map((o) => `update @${setName(f)} { ${src} . ${PROTO_NUMBER[o.proto]} . ${o.port} timeout ${dur} }`)
              .join(' ')
          : `update @${stageSet(s, k + 1, f)} { ${src} timeout ${gap} }`;
      rules.push(`${at(k)} ${match(next)} ${action} ${leave(k)} drop`);
      rules.push(`${at(k)} ${match(s.steps[k] as Access)} drop`);
    }
    for (let k = 0; k <= n - 2; k++) rules.push(`${at(k)} ${leave(k)}`);
    rules.push(
      `meta nfproto ${f === 4 ? 'ipv4' : 'ipv6'} ${match(s.steps[0] as Access)} update @${stageSet(s, 0, f)} { ${src} timeout ${gap} } drop`,
    );
  }
  rules.push(`meta l4proto . th dport { ${pairs(s.steps)} } drop`);
  return rules;
}

/**
 * The nft lines that install the sequences into table `t` (`inet NAME`), after the allow sets exist and before the
 * input chain is filled. Stage sets are `add`ed (kept, with their attempts, across a re-install); chains refilled.
 * `stale` names chains/sets of sequences no longer configured: removed after the input chain no longer jumps there.
 */
export function sequenceLines(
  t: string,
  sequences: readonly KnockSequence[],
): { before: string[]; after: (stale: { chains: string[]; sets: string[] }) => string[] } {
  const before: string[] = [];
  if (sequences.length > 0) {
    for (const s of sequences) {
      for (const st of stageSets(s)) {
        const type = st.family === 4 ? 'ipv4_addr' : 'ipv6_addr';
        before.push(`add set ${t} ${st.name} { type ${type}; flags dynamic,timeout; size ${STAGE_SET_SIZE}; }`);
      }
      before.push(`add chain ${t} ${seqChain(s)}`, `flush chain ${t} ${seqChain(s)}`);
      for (const r of sequenceRules(s)) before.push(`add rule ${t} ${seqChain(s)} ${r}`);
    }
    before.push(`add chain ${t} ${KNOCK_CHAIN}`, `flush chain ${t} ${KNOCK_CHAIN}`);
    for (const s of sequences) before.push(`add rule ${t} ${KNOCK_CHAIN} jump ${seqChain(s)}`);
  }
  const after = (stale: { chains: string[]; sets: string[] }): string[] => [
    ...stale.chains.flatMap((c) => [`flush chain ${t} ${c}`, `delete chain ${t} ${c}`]),
    ...stale.sets.map((x) => `delete set ${t} ${x}`),
  ];
  return { before, after };
}

/** Chains and sets of ours in a listing that the plan's sequences no longer use. */
export function staleSequenceObjects(
  chains: Iterable<string>,
  sets: Iterable<string>,
  sequences: readonly KnockSequence[],
): { chains: string[]; sets: string[] } {
  const wantChains = new Set(sequences.map(seqChain));
  if (sequences.length > 0) wantChains.add(KNOCK_CHAIN);
  const wantSets = new Set(sequences.flatMap((s) => stageSets(s).map((x) => x.name)));
  const stale = {
    chains: [...chains].filter((c) => (c === KNOCK_CHAIN || c.startsWith(SEQ_PREFIX)) && !wantChains.has(c)),
    sets: [...sets].filter((x) => x.startsWith(SEQ_PREFIX) && !wantSets.has(x)),
  };
  // the knock chain jumps to the sequence chains: it goes first
  stale.chains.sort((a, b) => (a === KNOCK_CHAIN ? -1 : b === KNOCK_CHAIN ? 1 : 0));
  return stale;
}
