/**
 * `spa-knockd doctor`: `nft -j list ruleset` (libnftables-json(5)) → the chain model of server/doctor-chains.ts.
 * Tables of the families that see IPv4/IPv6 input (inet, ip, ip6); spa-knockd's own objects are marked `own`:
 * the nftables backend's table `inet TABLE`, the iptables backend's chains TABLE, TABLE_OUT and TABLE_PRE (iptables-nft shows
 * them in the ruleset as tables `ip filter` / `ip6 filter`). Pure: the caller runs nft.
 * @module
 */
import type { Access } from '../shared/access.js';
import type { ModelChain, ModelRule, ModelTable, PortRanges, RuleMatch, Verdict } from './doctor-chains.js';

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const FAMILIES: Readonly<Record<string, readonly (4 | 6)[]>> = { inet: [4, 6], ip: [4], ip6: [6] };

/** Which of spa-knockd's objects the walk must skip. */
export interface OwnObjects {
  readonly backend: 'nftables' | 'iptables';
  /** config firewall.table */
  readonly table: string;
}

/** A port value of nft JSON: a number, a range, a set (anonymous or `@named`), or something else (undefined). */
function portRanges(v: unknown, sets: ReadonlyMap<string, unknown[]>): PortRanges | undefined {
  if (typeof v === 'number') return [[v, v]];
  if (typeof v === 'string' && v.startsWith('@')) {
    const elems = sets.get(v.slice(1));
    return elems === undefined ? undefined : portRanges({ set: elems }, sets);
  }
  if (!isObj(v)) return undefined;
  if (Array.isArray(v.range) && typeof v.range[0] === 'number' && typeof v.range[1] === 'number')
    return [[v.range[0], v.range[1]]];
  if (isObj(v.elem)) return portRanges(v.elem.val, sets);
  if (Array.isArray(v.set)) {
    const out: [number, number][] = [];
    for (const e of v.set) {
      const r = portRanges(e, sets);
      if (r === undefined) return undefined;
      out.push(...r.map(([a, b]) => [a, b] as [number, number]));
    }
    return out;
  }
  return undefined;
}

const VERDICTS = ['accept', 'drop', 'reject', 'jump', 'goto', 'return'] as const;
/** Statements that neither match nor decide (the rule goes on). */
const NEUTRAL = new Set(['counter', 'log', 'mangle', 'notrack']);

/** nft-like text of a match value: `22`, `2201-2300`, `{ 80, 443 }`, `@ports`. */
function valueText(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  if (isObj(v) && Array.isArray(v.range)) return v.range.map(valueText).join('-');
  if (isObj(v) && isObj(v.elem)) return valueText(v.elem.val);
  if (isObj(v) && Array.isArray(v.set)) return `{ ${v.set.map(valueText).join(', ')} }`;
  if (isObj(v) && isObj(v.prefix)) return `${valueText(v.prefix.addr)}/${valueText(v.prefix.len)}`;
  return '…';
}

/** The match and verdict of one rule's `expr` list. */
export function ruleOf(expr: readonly unknown[], sets: ReadonlyMap<string, unknown[]>): Omit<ModelRule, 'position'> {
  let protos: Set<'tcp' | 'udp'> | undefined;
  let dports: PortRanges | undefined;
  let dportsNegated = false;
  let notNew = false;
  let other = false;
  let verdict: Verdict = 'none';
  let target: string | undefined;
  const words: string[] = [];
  const limitProto = (p: unknown) => {
    const keep = new Set<'tcp' | 'udp'>((['tcp', 'udp'] as const).filter((x) => x === p));
    protos = protos === undefined ? keep : new Set([...protos].filter((x) => keep.has(x)));
  };
  for (const e of expr) {
    if (!isObj(e)) continue;
    const [kind, body] = Object.entries(e)[0] ?? [];
    if (kind === undefined) continue;
    if ((VERDICTS as readonly string[]).includes(kind)) {
      verdict = kind as Verdict;
      if ((kind === 'jump' || kind === 'goto') && isObj(body) && typeof body.target === 'string') target = body.target;
      words.push(kind === 'jump' || kind === 'goto' ? `${kind} ${String(target)}` : kind);
      continue;
    }
    if (kind !== 'match' || !isObj(body)) {
      if (!NEUTRAL.has(kind)) other = true;
      if (kind === 'counter') words.push('counter');
      continue;
    }
    const left = body.left;
    const op = body.op;
    const right = body.right;
    const pl = isObj(left) && isObj(left.payload) ? left.payload : undefined;
    const meta = isObj(left) && isObj(left.meta) ? left.meta : undefined;
    const ct = isObj(left) && isObj(left.ct) ? left.ct : undefined;
    if (pl && pl.field === 'dport' && ['tcp', 'udp', 'th'].includes(String(pl.protocol))) {
      if (pl.protocol !== 'th') limitProto(pl.protocol);
      const r = portRanges(right, sets);
      if (r === undefined || (op !== '==' && op !== 'in' && op !== '!=')) other = true;
      else {
        dports = r;
        dportsNegated = op === '!=';
      }
      words.push(`${String(pl.protocol)} dport ${op === '!=' ? '!= ' : ''}${valueText(right)}`);
    } else if (meta && meta.key === 'l4proto' && op === '==' && typeof right === 'string') {
      limitProto(right);
      words.push(`meta l4proto ${right}`);
    } else if (pl && pl.field === 'protocol' && pl.protocol === 'ip' && op === '==' && typeof right === 'string') {
      limitProto(right);
      words.push(`ip protocol ${right}`);
    } else if (pl && pl.field === 'nexthdr' && pl.protocol === 'ip6' && op === '==' && typeof right === 'string') {
      limitProto(right);
      words.push(`ip6 nexthdr ${right}`);
    } else if (ct && ct.key === 'state') {
      const states = (Array.isArray(right) ? right : [right]).map(String);
      const has = states.includes('new');
      if ((op === '!=' && has) || (op !== '!=' && !has)) notNew = true;
      words.push(`ct state ${op === '!=' ? '!= ' : ''}${states.join(',')}`);
    } else {
      other = true;
      const l = pl ? `${String(pl.protocol)} ${String(pl.field)}` : meta ? `meta ${String(meta.key)}` : '…';
      words.push(`${l} ${op === '==' || op === 'in' ? '' : `${String(op)} `}${valueText(right)}`);
    }
  }
  const match: RuleMatch = { protos, dports, dportsNegated, notNew, other };
  return { match, verdict, target, text: words.join(' ') };
}

/** The tables of a `nft -j list ruleset` answer, as the walk sees them. Unknown shapes are skipped, never thrown. */
export function nftTables(json: unknown, own: OwnObjects): ModelTable[] {
  const items = isObj(json) && Array.isArray(json.nftables) ? json.nftables : [];
  const tables = new Map<
    string,
    {
      family: string;
      name: string;
      chains: Map<string, ModelChain & { rules: ModelRule[] }>;
      sets: Map<string, unknown[]>;
    }
  >();
  const key = (f: unknown, t: unknown) => `${String(f)} ${String(t)}`;
  const tableOf = (f: unknown, t: unknown) => {
    if (typeof f !== 'string' || typeof t !== 'string' || FAMILIES[f] === undefined) return undefined;
    const k = key(f, t);
    let x = tables.get(k);
    if (!x) {
      x = { family: f, name: t, chains: new Map(), sets: new Map() };
      tables.set(k, x);
    }
    return x;
  };
  const rules: Json[] = [];
  for (const it of items) {
    if (!isObj(it)) continue;
    if (isObj(it.chain)) {
      const c = it.chain;
      const t = tableOf(c.family, c.table);
      if (!t || typeof c.name !== 'string') continue;
      t.chains.set(c.name, {
        name: c.name,
        inputHook: c.hook === 'input' && (c.type === undefined || c.type === 'filter'),
        priority: typeof c.prio === 'number' ? c.prio : undefined,
        policy: c.policy === 'drop' ? 'drop' : c.policy === 'accept' ? 'accept' : undefined,
        rules: [],
      });
    } else if (isObj(it.set)) {
      const s = it.set;
      const t = tableOf(s.family, s.table);
      if (t && typeof s.name === 'string') t.sets.set(s.name, Array.isArray(s.elem) ? s.elem : []);
    } else if (isObj(it.rule)) rules.push(it.rule);
  }
  for (const r of rules) {
    const t = tables.get(key(r.family, r.table));
    const c = typeof r.chain === 'string' ? t?.chains.get(r.chain) : undefined;
    if (!t || !c || !Array.isArray(r.expr)) continue;
    c.rules.push({ ...ruleOf(r.expr, t.sets), position: typeof r.handle === 'number' ? r.handle : 0 });
  }
  const out: ModelTable[] = [];
  for (const t of tables.values()) {
    if (own.backend === 'nftables' && t.family === 'inet' && t.name === own.table) continue;
    const ownChains =
      own.backend === 'iptables' && t.name === 'filter'
        ? new Set([own.table, `${own.table}_OUT`, `${own.table}_PRE`])
        : undefined;
    const fam = t.family;
    out.push({
      label: `nft table ${fam} ${t.name}`,
      families: FAMILIES[fam] ?? [],
      chains: t.chains,
      own: ownChains,
      fixFor: (chain: string, a: Access, position: number | undefined) =>
        position === undefined
          ? `nft add rule ${fam} ${t.name} ${chain} ${a.proto} dport ${a.port} accept`
          : `nft insert rule ${fam} ${t.name} ${chain} position ${position} ${a.proto} dport ${a.port} accept`,
    });
  }
  return out;
}
