/**
 * Classic knock sequences in the iptables backend (docs/classic.md): the `recent` match keeps, per source address,
 * which step it took last; the same semantics as the nftables rules (nft-sequences.ts). Text exactly as
 * `iptables -S` / `ip6tables -S` prints it (measured: iptables 1.8.9 adds `--mask` and `--rsource`). For the
 * sequence `seed` = 8881, 7777, 9991 (gap 5 s, opens tcp/22 for 30 s, ignore tcp/80), the first in the plan, and the
 * chain SPA_KNOCK (IPv4; IPv6 has the /128 mask):
 *
 * ```
 * -A SPA_KNOCK -p tcp -m tcp --dport 22 -m recent --rcheck --seconds 30 --name SPA_KNOCK_seed_open
 *       --mask 255.255.255.255 --rsource -j RETURN                        # granted by a completed sequence
 * -A SPA_KNOCK -p udp -j SPA_KNOCK_Q0                                       # UDP datagrams and pure SYNs only
 * -A SPA_KNOCK -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j SPA_KNOCK_Q0
 * -A SPA_KNOCK_Q0 -p tcp -m tcp --dport 80 -j RETURN                        # ignore
 * -A SPA_KNOCK_Q0 -p tcp -m tcp --dport 9991 -m recent --rcheck --seconds 5 --name SPA_KNOCK_seed_1 …
 *       -m recent --remove --name SPA_KNOCK_seed_1 … -m recent --set --name SPA_KNOCK_seed_open … -j DROP
 * -A SPA_KNOCK_Q0 -p tcp -m tcp --dport 7777 -m recent --rcheck --seconds 5 --name SPA_KNOCK_seed_1 … -j DROP
 * -A SPA_KNOCK_Q0 -p tcp -m tcp --dport 7777 -m recent --rcheck --seconds 5 --name SPA_KNOCK_seed_0 …
 *       -m recent --remove --name SPA_KNOCK_seed_0 … -m recent --set --name SPA_KNOCK_seed_1 … -j DROP
 * -A SPA_KNOCK_Q0 -p tcp -m tcp --dport 8881 -m recent --rcheck --seconds 5 --name SPA_KNOCK_seed_0 … -j DROP
 * -A SPA_KNOCK_Q0 -m recent --remove --name SPA_KNOCK_seed_0 …              # anything else: reset (no target)
 * -A SPA_KNOCK_Q0 -m recent --remove --name SPA_KNOCK_seed_1 …
 * -A SPA_KNOCK_Q0 -p tcp -m tcp --dport 8881 -m recent --set --name SPA_KNOCK_seed_0 … -j DROP   # start
 * -A SPA_KNOCK_Q0 -p tcp -m tcp --dport 8881 -j DROP                       # knock ports stay silent (each step)
 * ```
 * The matches of a rule run in order and stop at the first that fails, so `--rcheck` guards `--remove`/`--set`.
 * An entry older than `--seconds` fails `--rcheck`: the gap and the grant expire in the kernel. xt_recent keeps at
 * most `ip_list_tot` (default 100) addresses per list and evicts the oldest: a spoofed flood can push a knocker out
 * (a DoS), not open a door. A grant made this way is not a rule, so list() does not show it.
 * @module
 */
import type { Access } from '../../shared/access.js';
import type { Family } from '../../shared/address.js';
import type { KnockSequence } from './backend.js';

/** The chain of the i-th sequence of the plan (names.ts keeps 4 characters of room; at most 32 sequences). */
export const seqChainName = (chain: string, i: number): string => `${chain}_Q${i}`;

/** Is `name` one of our sequence chains? (`chain` is validated: letters, digits, `_`.) */
export const isSeqChain = (chain: string, name: string): boolean =>
  name.startsWith(`${chain}_Q`) && /^[0-9]{1,2}$/.test(name.slice(chain.length + 2));

/** The xt_recent list of stage `k` (0-based) or of the completed sequence. */
export const recentList = (chain: string, s: KnockSequence, k: number | 'open'): string => `${chain}_${s.name}_${k}`;

const MASK: Readonly<Record<Family, string>> = {
  4: '255.255.255.255',
  6: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
};

/** `any`: no `--mask` (the family's full mask is the default), so one text loads into iptables and ip6tables. */
export type MaskFamily = Family | 'any';

const recent = (f: MaskFamily, op: string, list: string): string =>
  `-m recent ${op} --name ${list}${f === 'any' ? '' : ` --mask ${MASK[f]}`} --rsource`;
const port = (a: Access): string => `-p ${a.proto} -m ${a.proto} --dport ${a.port}`;

/** The lines in our input chain (after the grant rules, before the drops): sequence grants, then the jumps. */
export function sequenceMainLines(chain: string, f: MaskFamily, sequences: readonly KnockSequence[]): string[] {
  const lines: string[] = [];
  for (const s of sequences) {
    const check = recent(f, `--rcheck --seconds ${s.durationS}`, recentList(chain, s, 'open'));
    for (const o of s.open) lines.push(`-A ${chain} ${port(o)} ${check} -j RETURN`);
  }
  sequences.forEach((_, i) => {
    const q = seqChainName(chain, i);
    lines.push(`-A ${chain} -p udp -j ${q}`, `-A ${chain} -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ${q}`);
  });
  return lines;
}

/** The rules of the i-th sequence's chain. */
export function sequenceChainLines(chain: string, f: MaskFamily, s: KnockSequence, i: number): string[] {
  const q = `-A ${seqChainName(chain, i)}`;
  const lines = s.ignore.map((a) => `${q} ${port(a)} -j RETURN`);
  const n = s.steps.length;
  const rcheck = (k: number): string => recent(f, `--rcheck --seconds ${s.gapS}`, recentList(chain, s, k));
  const remove = (k: number | 'open'): string => recent(f, '--remove', recentList(chain, s, k));
  const set = (k: number | 'open'): string => recent(f, '--set', recentList(chain, s, k));
  for (let k = n - 2; k >= 0; k--) {
    const next = s.steps[k + 1] as Access;
    lines.push(`${q} ${port(next)} ${rcheck(k)} ${remove(k)} ${set(k + 1 === n - 1 ? 'open' : k + 1)} -j DROP`);
    lines.push(`${q} ${port(s.steps[k] as Access)} ${rcheck(k)} -j DROP`);
  }
  for (let k = 0; k <= n - 2; k++) lines.push(`${q} ${remove(k)}`);
  lines.push(`${q} ${port(s.steps[0] as Access)} ${set(0)} -j DROP`);
  const seen = new Set<string>();
  for (const st of s.steps) {
    const p = port(st);
    if (!seen.has(p)) lines.push(`${q} ${p} -j DROP`);
    seen.add(p);
  }
  return lines;
}

/** Is this line of our input chain one that sequenceMainLines writes? */
export function isSequenceMainLine(chain: string, line: string): boolean {
  return / -m recent --rcheck /.test(line) || new RegExp(` -j ${chain}_Q[0-9]{1,2}$`).test(line);
}
