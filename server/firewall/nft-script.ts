/**
 * The nft command text of the nftables backend: the ruleset it installs and the element syntax of grants. Pure
 * functions of validated values (server/firewall/validate.ts): addresses canonical, protocols from a union, ports
 * integers, owners matching OWNER_RE, the table name checked by names.ts. Nothing else is ever interpolated.
 *
 * ```
 * table inet spa_knock {
 *   set allow4  { type ipv4_addr . inet_proto . inet_service; size 65535; flags dynamic,timeout; }  # rules update it
 *   set allow6  { type ipv6_addr . inet_proto . inet_service; size 65535; flags dynamic,timeout; }
 *   set allow4p { type ipv4_addr . inet_proto . inet_service; flags interval,timeout; }   # prefix grants
 *   set allow6p { type ipv6_addr . inet_proto . inet_service; flags interval,timeout; }
 *   set protect { type inet_proto . inet_service; }
 *   chain input {
 *     type filter hook input priority filter - 10; policy accept;
 *     iif "lo" accept
 *     ct state established,related accept
 *     ip saddr . meta l4proto . th dport @allow4 accept
 *     ip6 saddr . meta l4proto . th dport @allow6 accept
 *     ip saddr . meta l4proto . th dport @allow4p accept
 *     ip6 saddr . meta l4proto . th dport @allow6p accept
 *     meta l4proto . th dport @protect drop
 *   }
 *   chain prefilter { … }               # the kernel prefilter on the knock port (nft-prefilter.ts)
 *   chain output {                      # only with silencePortUnreachable or the fast path
 *     type filter hook output priority filter - 10; policy accept;
 *     meta skuid 0 udp sport 62300 update @allow4 { ip daddr . 6 . udp dport timeout 30s } drop   # fast path:
 *     …                                                                                 # nft-fastpath.ts
 *     icmp type destination-unreachable icmp code port-unreachable drop
 *     icmpv6 type destination-unreachable icmpv6 code port-unreachable drop
 *   }
 * }
 * ```
 * A grant is an element with a timeout and, when the grant has an owner, a comment: `10.0.0.2 . tcp . 22 timeout 30s
 * comment "alice"`. A prefix grant (issue 10) is an element of allow4p/allow6p, whose key is an interval:
 * `10.0.0.0/24 . tcp . 22 timeout 30s comment "alice"`. One-address grants stay in the hash sets allow4/allow6 (the
 * fast path, looked up first); the interval sets (nft's pipapo set type for concatenations with intervals) refuse an
 * element that overlaps another one (nft 1.0.6, Linux 6.18, measured: "File exists"), which the grant manager
 * prevents (`prefix-overlap`). `add element` of an existing prefix element refreshes its timeout but keeps its comment,
 * as in the hash sets (measured).
 * @module
 */
import type { Access } from '../../shared/access.js';
import { type Family, type GrantKey, grantSource } from '../../shared/address.js';
import { prefilterLines } from './nft-prefilter.js';
import { fastPathInputRules, fastPathRules } from './nft-fastpath.js';
import { NFT_KNOCK_JUMPS, sequenceLines } from './nft-sequences.js';
import type { CheckedPlan } from './validate.js';

/** The input chain's rules exactly as `nft list chain` prints them (and as we write them). */
export const NFT_RULES: readonly string[] = Object.freeze([
  'iif "lo" accept',
  'ct state established,related accept',
  'ip saddr . meta l4proto . th dport @allow4 accept',
  'ip6 saddr . meta l4proto . th dport @allow6 accept',
  'ip saddr . meta l4proto . th dport @allow4p accept',
  'ip6 saddr . meta l4proto . th dport @allow6p accept',
  'meta l4proto . th dport @protect drop',
]);

/**
 * The input chain's rules for a plan: the fast path's trigger ports refused first (nft-fastpath.ts); with knock
 * sequences, the jumps to the knock chain go before the drop.
 */
export function inputRules(plan: Pick<CheckedPlan, 'sequences' | 'fastPath'>): string[] {
  const fast = plan.fastPath ? fastPathInputRules(plan.fastPath) : [];
  if (plan.sequences.length === 0) return [...fast, ...NFT_RULES];
  return [...fast, ...NFT_RULES.slice(0, -1), ...NFT_KNOCK_JUMPS, ...NFT_RULES.slice(-1)];
}

/** The output chain's rules (silencePortUnreachable), as `nft list chain` prints them (nft 1.0.6, measured). */
export const NFT_OUTPUT_RULES: readonly string[] = Object.freeze([
  'icmp type destination-unreachable icmp code port-unreachable drop',
  'icmpv6 type destination-unreachable icmpv6 code port-unreachable drop',
]);

/**
 * The output chain's rules of a plan: the kernel fast path's (nft-fastpath.ts), then silencePortUnreachable's; as
 * written, or (`listed`) as `nft list chain` prints them. Empty: no output chain.
 */
export function outputRules(plan: Pick<CheckedPlan, 'silencePortUnreachable' | 'fastPath'>, listed: boolean): string[] {
  return [
    ...(plan.fastPath ? fastPathRules(plan.fastPath, listed) : []),
    ...(plan.silencePortUnreachable ? NFT_OUTPUT_RULES : []),
  ];
}

export type GrantSetName = 'allow4' | 'allow6' | 'allow4p' | 'allow6p';
/** The grant sets: one-address (hash) and prefix (interval), per family. */
export const GRANT_SETS: readonly GrantSetName[] = ['allow4', 'allow6', 'allow4p', 'allow6p'];

export const SET_TYPES: Readonly<Record<GrantSetName | 'protect', readonly string[]>> = {
  allow4: ['ipv4_addr', 'inet_proto', 'inet_service'],
  allow6: ['ipv6_addr', 'inet_proto', 'inet_service'],
  allow4p: ['ipv4_addr', 'inet_proto', 'inet_service'],
  allow6p: ['ipv6_addr', 'inet_proto', 'inet_service'],
  protect: ['inet_proto', 'inet_service'],
};

/** Priority of both chains (`filter - 10`): before a default `filter` table, so our drop is seen first. */
export const CHAIN_PRIO = -10;
const chainSpec = (hook: 'input' | 'output'): string =>
  `{ type filter hook ${hook} priority filter - 10; policy accept; }`;

/** `90061500` → `1d1h1m1s500ms` (nft refuses large plain `NNNms` values; the compound form has no such limit). */
export function nftDuration(ms: number): string {
  let rest = Math.max(0, Math.round(ms));
  const parts: string[] = [];
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [u, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n}${u}`);
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}ms`);
  return parts.join('');
}

/** The set of a grant: allow4/allow6 for one address, allow4p/allow6p for a prefix. */
export function setName(f: Family, prefix?: number): GrantSetName {
  if (prefix !== undefined) return f === 4 ? 'allow4p' : 'allow6p';
  return f === 4 ? 'allow4' : 'allow6';
}

/** The family and kind of a grant set. */
export function setKind(name: GrantSetName): { family: Family; prefix: boolean } {
  return { family: name === 'allow4' || name === 'allow4p' ? 4 : 6, prefix: name.endsWith('p') };
}

/** The grant set of a key. */
export function setOf(k: Pick<GrantKey, 'family' | 'prefix'>): GrantSetName {
  return setName(k.family, k.prefix);
}

/** The element key: `10.0.0.2 . tcp . 22`, or for a prefix grant `10.0.0.0/24 . tcp . 22`. */
export function elemKey(k: GrantKey): string {
  return `${grantSource(k)} . ${k.access.proto} . ${k.access.port}`;
}

/** An element with its timeout and, if any, its owner: `10.0.0.2 . tcp . 22 timeout 30s comment "alice"`. */
export function elemWithTimeout(k: GrantKey, timeoutMs: number, owner: string | undefined): string {
  return `${elemKey(k)} timeout ${nftDuration(timeoutMs)}${owner !== undefined ? ` comment "${owner}"` : ''}`;
}

/** Flags of each set, as nft lists them (nft 1.0.6's JSON leaves out `dynamic`: measured). */
export const SET_FLAGS: Readonly<Record<GrantSetName | 'protect', readonly string[]>> = {
  allow4: ['timeout'],
  allow6: ['timeout'],
  allow4p: ['interval', 'timeout'],
  allow6p: ['interval', 'timeout'],
  protect: [],
};

/**
 * allow4/allow6 are declared `dynamic` with `size 65535` because rules write them (`update @allow4 {…}`: the kernel
 * fast path, classic sequences), and nft makes a set that a rule updates just that, whatever was declared. An install
 * over the table of an earlier run (a restart, a reload) then declares the sets as the kernel holds them and keeps
 * them; a different declaration fails with "File exists" and the table is replaced whole, every grant carried with
 * its time rounded down to the second. 65535 is nft's size for such a set. The kernel sizes the hash table for it up
 * front (nft_rhash_init: the size is the rhashtable's element hint), 2 MiB of slab per set (measured, Linux 6.18).
 * A grant past it fails as `firewall`.
 */
export const GRANT_SET_SIZE = 65535;

function setDecl(name: GrantSetName | 'protect'): string {
  const written = name === 'allow4' || name === 'allow6';
  const list = written ? ['dynamic', ...SET_FLAGS[name]] : SET_FLAGS[name];
  const flags = list.length === 0 ? '' : ` flags ${list.join(',')};`;
  return `{ type ${SET_TYPES[name].join(' . ')};${written ? ` size ${GRANT_SET_SIZE};` : ''}${flags} }`;
}

/**
 * Keep-the-grants install: `add` leaves an existing table and its sets alone; the protect set and the chains are
 * refilled; the output chain is created or removed (add, flush, delete: absent-safe) as the plan says.
 */
export function installLines(
  table: string,
  plan: CheckedPlan,
  stale: { chains: string[]; sets: string[] } = { chains: [], sets: [] },
  keepPrefilterSets = false,
): string[] {
  const t = `inet ${table}`;
  const seq = sequenceLines(t, plan.sequences);
  const elements = plan.protect.map((a: Access) => `${a.proto} . ${a.port}`).join(', ');
  const outRules = outputRules(plan, false);
  const output =
    outRules.length > 0
      ? [
          `add chain ${t} output ${chainSpec('output')}`,
          `flush chain ${t} output`,
          ...outRules.map((r) => `add rule ${t} output ${r}`),
        ]
      : [`add chain ${t} output ${chainSpec('output')}`, `flush chain ${t} output`, `delete chain ${t} output`];
  return [
    `add table ${t}`,
    `add set ${t} allow4 ${setDecl('allow4')}`,
    `add set ${t} allow6 ${setDecl('allow6')}`,
    `add set ${t} allow4p ${setDecl('allow4p')}`,
    `add set ${t} allow6p ${setDecl('allow6p')}`,
    `add set ${t} protect ${setDecl('protect')}`,
    `flush set ${t} protect`,
    ...(plan.protect.length > 0 ? [`add element ${t} protect { ${elements} }`] : []),
    ...seq.before,
    `add chain ${t} input ${chainSpec('input')}`,
    `flush chain ${t} input`,
    ...inputRules(plan).map((r) => `add rule ${t} input ${r}`),
    ...seq.after(stale),
    ...prefilterLines(t, plan.prefilter, keepPrefilterSets),
    ...output,
  ];
}

/** A grant as the replace path re-adds it: its key, remaining time (undefined: no timeout) and owner. */
export interface CarriedGrant extends GrantKey {
  readonly remainingMs: number | undefined;
  readonly owner?: string | undefined;
}

/** Replace the table whole (one transaction), re-adding the given grants with their remaining timeouts and owners. */
export function replaceLines(
  table: string,
  plan: CheckedPlan,
  grants: readonly CarriedGrant[],
  minMs: number,
): string[] {
  const t = `inet ${table}`;
  const lines = [`add table ${t}`, `delete table ${t}`, ...installLines(table, plan)];
  for (const set of GRANT_SETS) {
    const els = grants
      .filter((g) => setOf(g) === set && (g.remainingMs === undefined || g.remainingMs >= minMs))
      .map((g) =>
        g.remainingMs === undefined
          ? `${elemKey(g)}${g.owner !== undefined ? ` comment "${g.owner}"` : ''}`
          : elemWithTimeout(g, g.remainingMs, g.owner),
      );
    if (els.length > 0) lines.push(`add element ${t} ${set} { ${els.join(', ')} }`);
  }
  return lines;
}
