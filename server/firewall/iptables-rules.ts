/**
 * The rule text of the iptables backend, built without running anything (unit-tested without root in
 * test/server/iptables-rules.test.ts; `iptables -S` output is parsed back by iptables-snapshot.ts). Chain content per
 * family, exactly as `iptables -S` prints it and as `iptables-restore` takes it:
 *
 * ```
 * -A INPUT -j SPA_KNOCK                                   (rule 1 of INPUT)
 * -A SPA_KNOCK -i lo -j RETURN
 * -A SPA_KNOCK -p udp -m udp --dport 62201 -j SPA_KNOCK_PRE   (kernel prefilter: iptables-prefilter.ts)
 * -A SPA_KNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
 * -A SPA_KNOCK -s 10.0.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "spa-knock exp=1700000000000 owner=alice" -j RETURN
 * -A SPA_KNOCK -s 10.0.1.0/24 -p tcp -m tcp --dport 22 -m comment --comment "spa-knock exp=1700000000000 owner=bob" -j RETURN
 * -A SPA_KNOCK -p tcp -m tcp --dport 22 -j DROP
 * -A OUTPUT -j SPA_KNOCK_OUT                              (silencePortUnreachable only; rule 1 of OUTPUT)
 * -A SPA_KNOCK_OUT -p icmp -m icmp --icmp-type 3/3 -j DROP            (IPv4: port unreachable)
 * -A SPA_KNOCK_OUT -p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j DROP    (IPv6: port unreachable)
 * ```
 * Every value is validated before it gets here (server/firewall/validate.ts); the chain name by names.ts.
 * @module
 */
import type { Access } from '../../shared/access.js';
import { type Family, hostPrefix } from '../../shared/address.js';
import type { GrantEntry } from './backend.js';
import { preChainName, preInstallLines, preJumpLines, preProblems, preUndoLines } from './iptables-prefilter.js';
import type { ChainSnapshot, Snapshot } from './iptables-snapshot.js';
import type { Prefilter } from './prefilter.js';

/** The output chain of `chain`: `SPA_KNOCK` → `SPA_KNOCK_OUT` (names.ts keeps room for the suffix). */
export function outChainName(chain: string): string {
  return `${chain}_OUT`;
}

/** The comment of a grant rule: `spa-knock exp=<ms since epoch>` and, with an owner, ` owner=<name>`. */
export function grantComment(expiresAt: number, owner: string | undefined): string {
  return `spa-knock exp=${Math.round(expiresAt)}${owner !== undefined ? ` owner=${owner}` : ''}`;
}

export function grantRule(chain: string, g: GrantEntry): string {
  const { proto, port } = g.access;
  return `-A ${chain} -s ${g.address}/${g.prefix ?? hostPrefix(g.family)} -p ${proto} -m ${proto} --dport ${port} -m comment --comment "${grantComment(g.expiresAt, g.owner)}" -j RETURN`;
}

export function dropRule(chain: string, a: Access): string {
  return `-A ${chain} -p ${a.proto} -m ${a.proto} --dport ${a.port} -j DROP`;
}

/** The output chain's one rule: drop this host's ICMP (v4 type 3 code 3) / ICMPv6 (type 1 code 4) port unreachable. */
export function silenceRule(chain: string, f: Family): string {
  const out = outChainName(chain);
  return f === 4
    ? `-A ${out} -p icmp -m icmp --icmp-type 3/3 -j DROP`
    : `-A ${out} -p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j DROP`;
}

/** The full content of our input chain for one family (`preLines`: the jump to the prefilter chain, if any). */
export function chainLines(
  chain: string,
  f: Family,
  protect: readonly Access[],
  grants: Iterable<GrantEntry>,
  seqLines: readonly string[] = [],
  preLines: readonly string[] = [],
): string[] {
  const lines = [
    `-A ${chain} -i lo -j RETURN`,
    ...preLines,
    `-A ${chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
  ];
  for (const g of grants) if (g.family === f) lines.push(grantRule(chain, g));
  lines.push(...seqLines);
  for (const a of protect) lines.push(dropRule(chain, a));
  return lines;
}

/** The sequence part of a plan for one family, as text: lines of the input chain and each sequence chain. */
export interface SeqText {
  readonly main: readonly string[];
  readonly chains: ReadonlyMap<string, readonly string[]>;
}

export const NO_SEQ: SeqText = { main: [], chains: new Map() };

/** Is the chain jumped to exactly once, plainly, from rule 1 of its hook? */
function jumpOk(s: ChainSnapshot): boolean {
  return s.hookJumpPositions.length === 1 && s.hookJumpPositions[0] === 1;
}

/** Lines that leave exactly one plain jump from rule 1 of `hook` to `target` (nothing if that is already so). */
function fixJump(hook: 'INPUT' | 'OUTPUT', target: string, s: ChainSnapshot): string[] {
  return jumpOk(s) ? [] : [...s.hookJumpPositions.map(() => `-D ${hook} -j ${target}`), `-I ${hook} 1 -j ${target}`];
}

function restore(lines: readonly string[]): string {
  return ['*filter', ...lines, 'COMMIT', ''].join('\n');
}

/**
 * `iptables-restore --noflush` input that installs one family in one commit: our input chain refilled, one jump at
 * rule 1 of INPUT, and the output chain with its jump from rule 1 of OUTPUT when `silence`, else removed (with the
 * plain OUTPUT jumps to it; another rule jumping to it makes the commit fail, so nothing changes).
 */
export function installText(
  chain: string,
  f: Family,
  snap: Snapshot,
  protect: readonly Access[],
  grants: Iterable<GrantEntry>,
  silence: boolean,
  seq: SeqText = NO_SEQ,
  prefilter?: Prefilter,
): string {
  const out = outChainName(chain);
  const pre = preInstallLines(chain, f, snap.pre, prefilter);
  const lines = [`:${chain} - [0:0]`, ...pre.declare];
  const stale = [...snap.seqChains.keys()].filter((q) => !seq.chains.has(q));
  for (const q of [...seq.chains.keys(), ...stale]) lines.push(`:${q} - [0:0]`);
  if (silence || snap.output.exists) lines.push(`:${out} - [0:0]`);
  lines.push(...fixJump('INPUT', chain, snap.input));
  if (silence) lines.push(...fixJump('OUTPUT', out, snap.output));
  else if (snap.output.exists)
    lines.push(...snap.output.hookJumpPositions.map(() => `-D OUTPUT -j ${out}`), `-X ${out}`);
  lines.push(...chainLines(chain, f, protect, grants, seq.main, preJumpLines(chain, prefilter)));
  for (const qLines of seq.chains.values()) lines.push(...qLines);
  for (const q of stale) lines.push(`-X ${q}`);
  lines.push(...pre.body);
  if (silence) lines.push(silenceRule(chain, f));
  return restore(lines);
}

/** Input that refills our input chain only (grant, revoke). */
export function chainText(
  chain: string,
  f: Family,
  protect: readonly Access[],
  grants: Iterable<GrantEntry>,
  seqMain: readonly string[] = [],
  preMain: readonly string[] = [],
): string {
  return restore([`:${chain} - [0:0]`, ...chainLines(chain, f, protect, grants, seqMain, preMain)]);
}

/**
 * Input that puts a family back from the state a successful {@link installText} left (one jump at rule 1 of INPUT; with
 * `silence`, the output chain and one jump at rule 1 of OUTPUT) to the state `snap` saw.
 */
export function undoInstallText(
  chain: string,
  snap: Snapshot,
  silence: boolean,
  seq: SeqText = NO_SEQ,
  prefilter?: Prefilter,
): string {
  const out = outChainName(chain);
  const pre = preUndoLines(chain, snap.pre, prefilter);
  const lines = [`:${chain} - [0:0]`, ...pre.declare, `-D INPUT -j ${chain}`];
  const qs = new Set([...seq.chains.keys(), ...snap.seqChains.keys()]);
  for (const q of qs) lines.push(`:${q} - [0:0]`);
  if (silence || snap.output.exists) lines.push(`:${out} - [0:0]`);
  if (silence) lines.push(`-D OUTPUT -j ${out}`);
  if (!snap.input.exists) lines.push(`-X ${chain}`);
  if (!snap.output.exists && silence) lines.push(`-X ${out}`);
  for (const q of qs) if (!snap.seqChains.has(q)) lines.push(`-X ${q}`);
  lines.push(...snap.input.lines, ...snap.output.lines, ...pre.body);
  for (const qLines of snap.seqChains.values()) lines.push(...qLines);
  for (const p of [...snap.input.hookJumpPositions].sort((a, b) => a - b)) lines.push(`-I INPUT ${p} -j ${chain}`);
  for (const p of [...snap.output.hookJumpPositions].sort((a, b) => a - b)) lines.push(`-I OUTPUT ${p} -j ${out}`);
  return restore(lines);
}

/** Input that removes every jump to our chains and the chains themselves; undefined when there is nothing. */
export function uninstallText(chain: string, snap: Snapshot): string | undefined {
  const lines = [...snap.input.jumps, ...snap.output.jumps].map((l) => l.replace(/^-A /, '-D '));
  for (const [name, s] of [
    [chain, snap.input],
    [outChainName(chain), snap.output],
  ] as const) {
    if (s.exists) lines.push(`-F ${name}`, `-X ${name}`);
  }
  for (const q of snap.seqChains.keys()) lines.push(`-F ${q}`, `-X ${q}`);
  if (snap.pre.exists) lines.push(`-F ${preChainName(chain)}`, `-X ${preChainName(chain)}`);
  return lines.length === 0 ? undefined : restore(lines);
}

/** Problems of one family against the plan (empty: as expected). `label` is `IPv4`/`IPv6`. */
export function snapshotProblems(
  chain: string,
  f: Family,
  snap: Snapshot,
  protect: readonly Access[],
  silence: boolean,
  label: string,
  protectDiff: string | undefined,
  seq: SeqText = NO_SEQ,
  prefilter?: Prefilter,
): string[] {
  const problems: string[] = [];
  if (!snap.input.exists) {
    problems.push(`iptables chain ${chain} is missing (${label})`);
    if (snap.input.jumps.length > 0)
      problems.push(`${snap.input.jumps.length} rule(s) jump to the missing chain (${label})`);
    return problems;
  }
  problems.push(...jumpProblems('INPUT', chain, snap.input, label));
  if (protectDiff !== undefined) problems.push(`${protectDiff} (${label})`);
  else if (
    chainLines(chain, f, protect, snap.grants, seq.main, preJumpLines(chain, prefilter)).join('\n') !==
    snap.input.lines.join('\n')
  ) {
    problems.push(`iptables chain ${chain} rules differ from the plan (${label})`);
  }
  for (const [q, want] of seq.chains) {
    const have = snap.seqChains.get(q);
    if (have === undefined) problems.push(`iptables chain ${q} is missing (${label})`);
    else if (have.join('\n') !== want.join('\n'))
      problems.push(`iptables chain ${q} rules differ from the plan (${label})`);
  }
  for (const q of snap.seqChains.keys())
    if (!seq.chains.has(q)) problems.push(`iptables chain ${q} is not in the plan (${label})`);
  problems.push(...preProblems(chain, f, snap.pre, prefilter, label));
  const out = outChainName(chain);
  if (silence) {
    if (!snap.output.exists)
      problems.push(`iptables chain ${out} is missing but silence_port_unreachable is on (${label})`);
    else {
      problems.push(...jumpProblems('OUTPUT', out, snap.output, label));
      if (snap.output.lines.join('\n') !== silenceRule(chain, f))
        problems.push(`iptables chain ${out} rules differ from the plan (${label})`);
    }
  } else if (snap.output.exists || snap.output.jumps.length > 0) {
    problems.push(`iptables chain ${out} exists but silence_port_unreachable is off (${label})`);
  }
  return problems;
}

function jumpProblems(hook: 'INPUT' | 'OUTPUT', target: string, s: ChainSnapshot, label: string): string[] {
  const n = s.hookJumpPositions.length;
  if (n === 0) return [`no jump from ${hook} to ${target} (${label})`];
  if (n > 1) return [`${n} jumps from ${hook} to ${target} (${label})`];
  if (s.hookJumpPositions[0] !== 1)
    return [`jump to ${target} is rule ${s.hookJumpPositions[0]} of ${hook}, not rule 1 (${label})`];
  return [];
}
