/**
 * The rule text of the iptables backend, built and parsed without running anything (unit-tested without root in
 * test/server/iptables-rules.test.ts). Chain content per family, exactly as `iptables -S` prints it and as
 * `iptables-restore` takes it:
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
import { type Access, isPort, isProto } from '../../shared/access.js';
import { type Family, hostPrefix, parseCidr } from '../../shared/address.js';
import type { GrantEntry } from './backend.js';
import {
  type PreSnapshot,
  isPreJumpLine,
  preChainName,
  preInstallLines,
  preJumpLines,
  preProblems,
  preUndoLines,
} from './iptables-prefilter.js';
import { isSeqChain, isSequenceMainLine } from './iptables-sequences.js';
import type { Prefilter } from './prefilter.js';
import { OWNER_RE } from './validate.js';

/** The output chain of `chain`: `SPA_KNOCK` → `SPA_KNOCK_OUT` (names.ts keeps room for the suffix). */
export function outChainName(chain: string): string {
  return `${chain}_OUT`;
}

/** The comment of a grant rule: `spa-knock exp=<ms since epoch>` and, with an owner, ` owner=<name>`. */
export function grantComment(expiresAt: number, owner: string | undefined): string {
  return `spa-knock exp=${Math.round(expiresAt)}${owner !== undefined ? ` owner=${owner}` : ''}`;
}

const COMMENT_RE = /^spa-knock exp=([0-9]{1,16})(?: owner=(\S+))?$/;

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

/** Split an `iptables -S` line into words, honouring double quotes (with backslash escapes). */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

const KNOWN_OPTIONS = new Set(['-s', '-p', '-m', '--dport', '--comment', '-j', '-i', '--ctstate']);

/** The options of an `-A CHAIN ...` line as a map; undefined if an option appears that we never write. */
function options(w: readonly string[]): Map<string, string[]> | undefined {
  const m = new Map<string, string[]>();
  for (let i = 2; i < w.length; i += 2) {
    const k = w[i] as string;
    const v = w[i + 1];
    if (!KNOWN_OPTIONS.has(k) || v === undefined) return undefined;
    m.set(k, [...(m.get(k) ?? []), v]);
  }
  return m;
}

/** A grant rule (words of an `-A CHAIN` line) back to its grant; undefined if it is not one we write. */
export function parseGrantRule(f: Family, w: readonly string[]): GrantEntry | undefined {
  const o = options(w);
  if (!o) return undefined;
  const src = o.get('-s')?.[0];
  const proto = o.get('-p')?.[0];
  const port = Number(o.get('--dport')?.[0]);
  const cm = COMMENT_RE.exec(o.get('--comment')?.[0] ?? '');
  if (o.get('-j')?.[0] !== 'RETURN' || src === undefined || !cm || !isProto(proto) || !isPort(port)) return undefined;
  if (o.has('-i') || o.has('--ctstate')) return undefined;
  // one address (`/32`, `/128`) or a prefix grant (issue 10: a shorter length, no host bits set)
  const c = parseCidr(src);
  if (!c.ok || c.cidr.family !== f || c.cidr.prefix === 0) return undefined;
  const owner = cm[2] !== undefined && OWNER_RE.test(cm[2]) ? cm[2] : undefined;
  return {
    family: f,
    address: c.cidr.network.toString(),
    ...(c.cidr.prefix !== hostPrefix(f) ? { prefix: c.cidr.prefix } : {}),
    access: { proto, port },
    expiresAt: Number(cm[1]),
    ...(owner !== undefined ? { owner } : {}),
  };
}

/** A drop rule back to its access; undefined if it is not one we write. */
export function parseDropRule(w: readonly string[]): Access | undefined {
  const o = options(w);
  if (o?.get('-j')?.[0] !== 'DROP' || o.has('-s') || o.has('-i')) return undefined;
  const proto = o.get('-p')?.[0];
  const port = Number(o.get('--dport')?.[0]);
  return isProto(proto) && isPort(port) ? { proto, port } : undefined;
}

/** One of our chains as `iptables -S` showed it. */
export interface ChainSnapshot {
  readonly exists: boolean;
  /** The chain's rules as printed (`-A CHAIN ...`), in order. */
  readonly lines: readonly string[];
  /** Rules elsewhere that jump to the chain (`-A X ... -j CHAIN`), as printed. */
  readonly jumps: readonly string[];
  /** 1-based positions, in the built-in chain that should jump here (INPUT or OUTPUT), of plain `-j CHAIN` rules. */
  readonly hookJumpPositions: readonly number[];
}

/** What `iptables -S` told us about our chains in one family. */
export interface Snapshot {
  readonly input: ChainSnapshot;
  readonly output: ChainSnapshot;
  /** Grant rules found in the input chain. */
  readonly grants: readonly GrantEntry[];
  /** DROP rules found in the input chain. */
  readonly protect: readonly Access[];
  /** Our knock-sequence chains (`CHAIN_Q<i>`, iptables-sequences.ts) and their rules as printed. */
  readonly seqChains: ReadonlyMap<string, readonly string[]>;
  /** The sequence lines of the input chain (grants by a completed sequence, jumps to the sequence chains). */
  readonly seqMain: readonly string[];
  /** The kernel prefilter chain (`CHAIN_PRE`, iptables-prefilter.ts) and the input chain's jumps to it. */
  readonly pre: PreSnapshot;
  readonly preMain: readonly string[];
}

/** The sequence part of a plan for one family, as text: lines of the input chain and each sequence chain. */
export interface SeqText {
  readonly main: readonly string[];
  readonly chains: ReadonlyMap<string, readonly string[]>;
}

export const NO_SEQ: SeqText = { main: [], chains: new Map() };

/** Parse `iptables -S` (filter table) output for our chain `chain` and its output chain. */
export function parseSnapshot(chain: string, f: Family, text: string): Snapshot {
  const targets = [
    { name: chain, hook: 'INPUT' },
    { name: outChainName(chain), hook: 'OUTPUT' },
  ] as const;
  const snaps = targets.map(() => ({
    exists: false,
    lines: [] as string[],
    jumps: [] as string[],
    hookJumpPositions: [] as number[],
  }));
  const grants: GrantEntry[] = [];
  const protect: Access[] = [];
  const seqChains = new Map<string, string[]>();
  const seqMain: string[] = [];
  const preName = preChainName(chain);
  const pre = { exists: false, lines: [] as string[] };
  const preMain: string[] = [];
  const pos: Record<string, number> = { INPUT: 0, OUTPUT: 0 };
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const w = splitRuleLine(line);
    if (w[0] === '-N') {
      if (w[1] === preName) pre.exists = true;
      if (w[1] !== undefined && isSeqChain(chain, w[1])) seqChains.set(w[1], seqChains.get(w[1]) ?? []);
      targets.forEach((t, i) => {
        if (w[1] === t.name) (snaps[i] as { exists: boolean }).exists = true;
      });
      continue;
    }
    if (w[0] !== '-A' || w[1] === undefined) continue;
    if (w[1] in pos) pos[w[1]] = (pos[w[1]] ?? 0) + 1;
    const j = w.indexOf('-j');
    targets.forEach((t, i) => {
      const s = snaps[i] as (typeof snaps)[number];
      if (w[1] === t.name) s.lines.push(line);
      else if (j >= 0 && w[j + 1] === t.name) {
        s.jumps.push(line);
        if (w[1] === t.hook && w.length === 4) s.hookJumpPositions.push(pos[t.hook] ?? 0);
      }
    });
    if (isSeqChain(chain, w[1])) seqChains.set(w[1], [...(seqChains.get(w[1]) ?? []), line]);
    if (w[1] === preName) pre.lines.push(line);
    if (w[1] === chain && isPreJumpLine(chain, line)) preMain.push(line);
    if (w[1] === chain) {
      if (isSequenceMainLine(chain, line)) seqMain.push(line);
      const g = parseGrantRule(f, w);
      if (g) grants.push(g);
      const d = parseDropRule(w);
      if (d) protect.push(d);
    }
  }
  return {
    input: snaps[0] as ChainSnapshot,
    output: snaps[1] as ChainSnapshot,
    grants,
    protect,
    seqChains,
    seqMain,
    pre,
    preMain,
  };
}

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
