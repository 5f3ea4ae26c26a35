/**
 * The nft command text of the nftables backend: the ruleset it installs and the element syntax of grants. Pure
 * functions of validated values (server/firewall/validate.ts): addresses canonical, protocols from a union, ports
 * integers, owners matching OWNER_RE, the table name checked by names.ts. Nothing else is ever interpolated.
 *
 * ```
 * table inet spa_knock {
 *   set allow4  { type ipv4_addr . inet_proto . inet_service; flags timeout; }
 *   set allow6  { type ipv6_addr . inet_proto . inet_service; flags timeout; }
 *   set protect { type inet_proto . inet_service; }
 *   chain input {
 *     type filter hook input priority filter - 10; policy accept;
 *     iif "lo" accept
 *     ct state established,related accept
 *     ip saddr . meta l4proto . th dport @allow4 accept
 *     ip6 saddr . meta l4proto . th dport @allow6 accept
 *     meta l4proto . th dport @protect drop
 *   }
 *   chain output {                      # only with silencePortUnreachable
 *     type filter hook output priority filter - 10; policy accept;
 *     icmp type destination-unreachable icmp code port-unreachable drop
 *     icmpv6 type destination-unreachable icmpv6 code port-unreachable drop
 *   }
 * }
 * ```
 * A grant is an element with a timeout and, when the grant has an owner, a comment: `10.0.0.2 . tcp . 22 timeout 30s
 * comment "alice"`.
 * @module
 */
import type { Access } from '../../shared/access.js';
import type { Family, GrantKey } from '../../shared/address.js';
import { NFT_KNOCK_JUMPS, sequenceLines } from './nft-sequences.js';
import type { CheckedPlan } from './validate.js';

/** The input chain's rules exactly as `nft list chain` prints them (and as we write them). */
export const NFT_RULES: readonly string[] = Object.freeze([
  'iif "lo" accept',
  'ct state established,related accept',
  'ip saddr . meta l4proto . th dport @allow4 accept',
  'ip6 saddr . meta l4proto . th dport @allow6 accept',
  'meta l4proto . th dport @protect drop',
]);

/** The input chain's rules for a plan: with knock sequences, the jumps to the knock chain go before the drop. */
export function inputRules(plan: Pick<CheckedPlan, 'sequences'>): string[] {
  if (plan.sequences.length === 0) return [...NFT_RULES];
  return [...NFT_RULES.slice(0, -1), ...NFT_KNOCK_JUMPS, ...NFT_RULES.slice(-1)];
}

/** The output chain's rules (silencePortUnreachable), as `nft list chain` prints them (nft 1.0.6, measured). */
export const NFT_OUTPUT_RULES: readonly string[] = Object.freeze([
  'icmp type destination-unreachable icmp code port-unreachable drop',
  'icmpv6 type destination-unreachable icmpv6 code port-unreachable drop',
]);

export const SET_TYPES: Readonly<Record<'allow4' | 'allow6' | 'protect', readonly string[]>> = {
  allow4: ['ipv4_addr', 'inet_proto', 'inet_service'],
  allow6: ['ipv6_addr', 'inet_proto', 'inet_service'],
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

export function setName(f: Family): 'allow4' | 'allow6' {
  return f === 4 ? 'allow4' : 'allow6';
}

/** The element key: `10.0.0.2 . tcp . 22`. */
export function elemKey(k: GrantKey): string {
  return `${k.address} . ${k.access.proto} . ${k.access.port}`;
}

/** An element with its timeout and, if any, its owner: `10.0.0.2 . tcp . 22 timeout 30s comment "alice"`. */
export function elemWithTimeout(k: GrantKey, timeoutMs: number, owner: string | undefined): string {
  return `${elemKey(k)} timeout ${nftDuration(timeoutMs)}${owner !== undefined ? ` comment "${owner}"` : ''}`;
}

function setDecl(name: 'allow4' | 'allow6' | 'protect'): string {
  const flags = name === 'protect' ? '' : ' flags timeout;';
  return `{ type ${SET_TYPES[name].join(' . ')};${flags} }`;
}

/**
 * Keep-the-grants install: `add` leaves an existing table and its sets alone; the protect set and the chains are
 * refilled; the output chain is created or removed (add, flush, delete: absent-safe) as the plan says.
 */
export function installLines(
  table: string,
  plan: CheckedPlan,
  stale: { chains: string[]; sets: string[] } = { chains: [], sets: [] },
): string[] {
  const t = `inet ${table}`;
  const seq = sequenceLines(t, plan.sequences);
  const elements = plan.protect.map((a: Access) => `${a.proto} . ${a.port}`).join(', ');
  const output = plan.silencePortUnreachable
    ? [
        `add chain ${t} output ${chainSpec('output')}`,
        `flush chain ${t} output`,
        ...NFT_OUTPUT_RULES.map((r) => `add rule ${t} output ${r}`),
      ]
    : [`add chain ${t} output ${chainSpec('output')}`, `flush chain ${t} output`, `delete chain ${t} output`];
  return [
    `add table ${t}`,
    `add set ${t} allow4 ${setDecl('allow4')}`,
    `add set ${t} allow6 ${setDecl('allow6')}`,
    `add set ${t} protect ${setDecl('protect')}`,
    `flush set ${t} protect`,
    ...(plan.protect.length > 0 ? [`add element ${t} protect { ${elements} }`] : []),
    ...seq.before,
    `add chain ${t} input ${chainSpec('input')}`,
    `flush chain ${t} input`,
    ...inputRules(plan).map((r) => `add rule ${t} input ${r}`),
    ...seq.after(stale),
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
  for (const f of [4, 6] as const) {
    const els = grants
      .filter((g) => g.family === f && (g.remainingMs === undefined || g.remainingMs >= minMs))
      .map((g) =>
        g.remainingMs === undefined
          ? `${elemKey(g)}${g.owner !== undefined ? ` comment "${g.owner}"` : ''}`
          : elemWithTimeout(g, g.remainingMs, g.owner),
      );
    if (els.length > 0) lines.push(`add element ${t} ${setName(f)} { ${els.join(', ')} }`);
  }
  return lines;
}
