/**
 * `spa-knockd doctor`: `iptables-legacy-save` / `ip6tables-legacy-save` text (iptables-save(8)) → the chain model
 * of server/doctor-chains.ts. Legacy (x_tables) rules run in the same netfilter hooks as nftables, beside it: a
 * DROP there is as final as one in nft. Only the `filter` table's INPUT and the chains it jumps to matter here.
 * Pure: the caller runs the tools.
 * @module
 */
import type { Access } from '../shared/access.js';
import type { ModelChain, ModelRule, ModelTable, PortRanges, Verdict } from './doctor-chains.js';

/** Split an iptables-save rule line into words (quoted strings, e.g. comments, kept whole). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) out.push(m[1] ?? m[2] ?? '');
  return out;
}

/** `22`, `1000:2000`, `22,80,1000:2000` → ranges; undefined if it is not ports (a service name, say). */
function ports(s: string): PortRanges | undefined {
  const out: [number, number][] = [];
  for (const part of s.split(',')) {
    const m = /^(\d+)(?::(\d+))?$/.exec(part);
    if (!m) return undefined;
    out.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  return out;
}

const TERMINAL: Readonly<Record<string, Verdict>> = {
  ACCEPT: 'accept',
  DROP: 'drop',
  REJECT: 'reject',
  RETURN: 'return',
};
/** Options that take one value and do not limit which packets match. */
const NEUTRAL_WITH_VALUE = new Set(['-m', '--comment', '--reject-with', '--log-prefix', '--log-level']);

/** One `-A CHAIN …` line (without `-A CHAIN`) → match and verdict. */
export function iptablesRule(argv: readonly string[]): Omit<ModelRule, 'position'> {
  let protos: Set<'tcp' | 'udp'> | undefined;
  let dports: PortRanges | undefined;
  let dportsNegated = false;
  let notNew = false;
  let other = false;
  let verdict: Verdict = 'none';
  let target: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const neg = argv[i] === '!';
    if (neg) i++;
    const w = argv[i] ?? '';
    const val = argv[i + 1] ?? '';
    if (w === '-p' || w === '--protocol') {
      i++;
      const p = val.toLowerCase();
      if (p === 'tcp' || p === 'udp')
        protos = neg ? new Set((['tcp', 'udp'] as const).filter((x) => x !== p)) : new Set([p]);
      else if (p !== 'all') protos = neg ? undefined : new Set();
    } else if (w === '--dport' || w === '--destination-port' || w === '--dports' || w === '--destination-ports') {
      i++;
      const r = ports(val);
      if (r === undefined) other = true;
      else {
        dports = r;
        dportsNegated = neg;
      }
    } else if (w === '--ctstate' || w === '--state') {
      i++;
      const has = val.split(',').includes('NEW');
      if (has === neg) notNew = true;
    } else if (w === '-j' || w === '-g') {
      i++;
      const t = TERMINAL[val];
      if (t !== undefined) verdict = t;
      else if (w === '-g') {
        verdict = 'goto';
        target = val;
      } else if (/^[A-Za-z0-9_.-]+$/.test(val) && !['LOG', 'NFLOG', 'MARK', 'CONNMARK', 'TRACE'].includes(val)) {
        verdict = 'jump';
        target = val;
      }
    } else if (NEUTRAL_WITH_VALUE.has(w)) {
      i++;
    } else if (w.startsWith('-')) {
      other = true; // -s, -i, --sport, -m recent …: conditions beyond the port
      if (i + 1 < argv.length && !(argv[i + 1] ?? '').startsWith('-')) i++;
    }
  }
  return {
    match: { protos, dports, dportsNegated, notNew, other },
    verdict,
    target,
    text: argv.join(' '),
  };
}

/** The `filter` table of an iptables-save dump, as the walk sees it. `own`: spa-knockd's chains (never walked). */
export function iptablesSaveTable(
  text: string,
  family: 4 | 6,
  own: ReadonlySet<string>,
  tool: string,
): ModelTable | undefined {
  let inFilter = false;
  const chains = new Map<string, ModelChain & { rules: ModelRule[] }>();
  let any = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    const head = /^:(\S+)\s+(\S+)/.exec(line);
    if (head) {
      const name = head[1] ?? '';
      chains.set(name, {
        name,
        inputHook: name === 'INPUT',
        policy: head[2] === 'DROP' ? 'drop' : head[2] === 'ACCEPT' ? 'accept' : undefined,
        rules: [],
      });
      if (head[2] === 'DROP') any = true;
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const w = words(line);
    const c = chains.get(w[1] ?? '');
    if (!c) continue;
    any = true;
    c.rules.push({ ...iptablesRule(w.slice(2)), position: c.rules.length + 1 });
  }
  if (!any) return undefined;
  return {
    label: `${tool} table filter`,
    families: [family],
    chains,
    own,
    fixFor: (chain: string, a: Access, position: number | undefined) =>
      `${tool} -I ${chain} ${position ?? 1} -p ${a.proto} --dport ${a.port} -j ACCEPT`,
  };
}
