/**
 * The iptables backend's parsers of `iptables -S` output (filter table, one family): our chains back to a
 * {@link Snapshot} of their rules, jumps, grants and drops, without running anything (unit-tested without root in
 * test/server/iptables-rules.test.ts). The rule text they read is built by iptables-rules.ts, which shows the chains.
 * @module
 */
import { type Access, isPort, isProto } from '../../shared/access.js';
import { type Family, hostPrefix, parseCidr } from '../../shared/address.js';
import type { GrantEntry } from './backend.js';
import { type PreSnapshot, isPreJumpLine, preChainName } from './iptables-prefilter.js';
import { outChainName } from './iptables-rules.js';
import { isSeqChain, isSequenceMainLine } from './iptables-sequences.js';
import { OWNER_RE } from './validate.js';

/** A grant rule's comment (iptables-rules.ts grantComment) back to its expiry and owner. */
const COMMENT_RE = /^spa-knock exp=([0-9]{1,16})(?: owner=(\S+))?$/;

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
