/**
 * `spa-knockd doctor`, the pure core of findings 1 and 2: does another input-hook chain drop a port? Works on a small
 * model of chains and rules that both front ends fill in (server/doctor-nft.ts from `nft -j list ruleset`,
 * server/doctor-iptables.ts from `iptables-legacy-save`). No I/O.
 *
 * Why it matters: in nftables every base chain on a hook sees the packet, whatever its priority, and a `drop` in any
 * of them is final; an `accept` in ours (or anywhere else) does not override it (nft(8), "VERDICT STATEMENT": accept
 * ends the evaluation of the current base chain only; drop ends it for good). iptables-legacy rules run beside
 * nftables in the same hook. So a port spa-knockd opens can still be dropped by the host's own firewall.
 *
 * The walk follows one chain like the kernel would for a new connection to the port from an unknown source: a rule
 * whose match certainly covers the port (`yes`) and ends in drop/reject is an error, and nothing after it runs; one
 * whose match may cover it (other conditions: source, interface, …) is a warning; an accept that certainly covers it
 * ends the chain; jump/goto are followed (cycles and depth bounded); at the end a `policy drop` is an error.
 * @module
 */
import { type Access, formatAccess } from '../shared/access.js';

export type Severity = 'error' | 'warning' | 'note';

/** One line of doctor's answer. `error`/`warning` are findings (exit 1); a `note` is information only. */
export interface Finding {
  readonly severity: Severity;
  /** Stable code, e.g. `foreign-drop` (docs/operations.md lists them). */
  readonly code: string;
  readonly message: string;
  /** What to change (empty for a note). */
  readonly fix: string;
}

/** Inclusive port ranges. */
export type PortRanges = readonly (readonly [number, number])[];

/** What a rule matches, as far as the port question goes. */
export interface RuleMatch {
  /** Transport protocols the rule is limited to; undefined: any. */
  readonly protos?: ReadonlySet<'tcp' | 'udp'> | undefined;
  /** Destination ports it is limited to; undefined: any. */
  readonly dports?: PortRanges | undefined;
  /** `dport != …` / `! --dport`: the ports above are the ones it does NOT match. */
  readonly dportsNegated?: boolean;
  /** A ct state match that excludes `new` (e.g. `ct state established,related`): a new connection never matches. */
  readonly notNew?: boolean;
  /** Other conditions (source, interface, unknown expressions): it may or may not match. */
  readonly other?: boolean;
}

export type Verdict = 'accept' | 'drop' | 'reject' | 'jump' | 'goto' | 'return' | 'none';

export interface ModelRule {
  readonly match: RuleMatch;
  readonly verdict: Verdict;
  /** jump/goto target chain name (same table). */
  readonly target?: string | undefined;
  /** Short text of the rule for the message, e.g. `tcp dport 2201 drop`. */
  readonly text: string;
  /** nft rule handle, or 1-based iptables rule number in its chain. */
  readonly position: number;
}

export interface ModelChain {
  readonly name: string;
  /** Base chain on the input hook (a start of the walk)? */
  readonly inputHook: boolean;
  readonly priority?: number | undefined;
  readonly policy?: 'accept' | 'drop' | undefined;
  readonly rules: readonly ModelRule[];
}

/** One table (nft) or one iptables table of one family, as the walk sees it. */
export interface ModelTable {
  /** For messages, e.g. `nft table ip other` or `iptables-legacy (IPv4) filter`. */
  readonly label: string;
  /** Which address families its chains see. */
  readonly families: readonly (4 | 6)[];
  readonly chains: ReadonlyMap<string, ModelChain>;
  /** Chains of spa-knockd itself (never reported, never followed). */
  readonly own?: ReadonlySet<string> | undefined;
  /** The command that lets `port` through in `chain` before rule `position` (or at the end). */
  readonly fixFor: (chain: string, access: Access, position: number | undefined) => string;
}

/** A port to look for and what it means when it is dropped. */
export interface DropTarget {
  readonly access: Access;
  /** `protected`: a port the daemon opens (finding 1); `knock`: the daemon's UDP port (finding 2). */
  readonly role: 'protected' | 'knock' | 'step';
  /**
   * `step`: a step of a classic `[[sequence]]` (recognised by spa-knockd's own rules in the kernel). Only chains that
   * run before ours see it first: those with a priority below this one (ours drops the step packets itself).
   */
  readonly before?: number | undefined;
  /** `step`: the sequence's name, for the message. */
  readonly sequence?: string | undefined;
}

const inRanges = (port: number, r: PortRanges) => r.some(([lo, hi]) => port >= lo && port <= hi);

/** Does a rule match a new connection to `a`: certainly, perhaps, or never? */
export function covers(m: RuleMatch, a: Access): 'yes' | 'maybe' | 'no' {
  if (m.notNew) return 'no';
  if (m.protos !== undefined && !m.protos.has(a.proto)) return 'no';
  if (m.dports !== undefined && inRanges(a.port, m.dports) === (m.dportsNegated === true)) return 'no';
  return m.other ? 'maybe' : 'yes';
}

const MAX_DEPTH = 16;

type WalkEnd = 'accepted' | 'dropped' | 'return' | 'end';

/** Findings for one target in one table: every input-hook base chain walked. */
function walkTable(t: ModelTable, target: DropTarget, out: Finding[]): void {
  const what = formatAccess(target.access);
  const fam = t.families.length === 2 ? '' : ` (IPv${t.families[0]})`;
  const consequence =
    target.role === 'knock'
      ? 'knocks never reach spa-knockd'
      : target.role === 'step'
        ? `knocks of sequence "${target.sequence ?? '?'}" never reach spa-knockd's rules (this chain runs before them)`
        : "a knock opens spa-knockd's gate but the connection is still dropped";
  const code =
    target.role === 'knock' ? 'knock-port-dropped' : target.role === 'step' ? 'sequence-step-dropped' : 'foreign-drop';
  const letThrough =
    target.role === 'protected'
      ? `let ${what} through there (spa-knockd's gate still decides who may connect):`
      : `let ${what} through there:`;
  // `cond`: 'maybe' once the path into this chain depended on other conditions (a jump from a `maybe` rule)
  const walk = (chain: ModelChain, depth: number, seen: Set<string>, via: string, cond: 'yes' | 'maybe'): WalkEnd => {
    for (const r of chain.rules) {
      const own = covers(r.match, target.access);
      if (own === 'no') continue;
      const c = cond === 'maybe' ? 'maybe' : own;
      const where = `${t.label}${fam} chain ${chain.name}${via} rule ${r.position} "${r.text}"`;
      switch (r.verdict) {
        case 'accept':
          if (c === 'yes') return 'accepted';
          break;
        case 'drop':
        case 'reject':
          out.push({
            severity: c === 'yes' ? 'error' : 'warning',
            code,
            message: `${where} ${c === 'yes' ? 'drops' : 'may drop'} ${what}: ${consequence}`,
            fix: `${letThrough} ${t.fixFor(chain.name, target.access, r.position)}`,
          });
          if (c === 'yes') return 'dropped';
          break;
        case 'jump':
        case 'goto': {
          const sub = r.target !== undefined ? t.chains.get(r.target) : undefined;
          if (sub === undefined || t.own?.has(sub.name) || seen.has(sub.name) || depth >= MAX_DEPTH) break;
          seen.add(sub.name);
          const end = walk(sub, depth + 1, seen, `${via} (via ${chain.name})`, c);
          seen.delete(sub.name);
          if (end === 'accepted' || end === 'dropped') return end;
          if (r.verdict === 'goto' && c === 'yes') return 'end';
          break;
        }
        case 'return':
          if (c === 'yes') return 'return';
          break;
        default:
          break;
      }
    }
    return 'end';
  };
  for (const chain of t.chains.values()) {
    if (!chain.inputHook || t.own?.has(chain.name)) continue;
    if (target.before !== undefined && !(chain.priority !== undefined && chain.priority < target.before)) continue;
    const end = walk(chain, 0, new Set([chain.name]), '', 'yes');
    if ((end === 'end' || end === 'return') && chain.policy === 'drop') {
      const prio = chain.priority !== undefined ? ` (priority ${chain.priority})` : '';
      out.push({
        severity: 'error',
        code,
        message: `${t.label}${fam} chain ${chain.name}${prio} has policy drop and no rule accepts ${what}: ${consequence}`,
        fix: `${letThrough} ${t.fixFor(chain.name, target.access, undefined)}`,
      });
    }
  }
}

/** Every drop of every target in every table. */
export function dropFindings(tables: readonly ModelTable[], targets: readonly DropTarget[]): Finding[] {
  const out: Finding[] = [];
  for (const t of tables) for (const target of targets) walkTable(t, target, out);
  return out;
}
