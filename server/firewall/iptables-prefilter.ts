/**
 * The kernel prefilter in iptables (prefilter.ts): a chain of its own per family, jumped to from the gate's input
 * chain right after the loopback rule, for datagrams to the knock port. For chain SPA_KNOCK, port 62201, rate 40/s,
 * burst 80, 16384 sources remembered 10 s, exactly as `iptables -S` prints it (iptables 1.8.9, measured):
 *
 * ```
 * -A SPA_KNOCK -i lo -j RETURN
 * -A SPA_KNOCK -p udp -m udp --dport 62201 -j SPA_KNOCK_PRE
 * ...the gate's rules...
 * -A SPA_KNOCK_PRE -m hashlimit --hashlimit-above 40/sec --hashlimit-burst 80 --hashlimit-mode srcip --hashlimit-name spak_1a2b3c4d5e --hashlimit-htable-max 16384 --hashlimit-htable-expire 10000 -j DROP
 * (IPv6: the same with ` --hashlimit-srcmask 64` before `-j DROP`: one bucket per /64)
 * ```
 * iptables-extensions(8) hashlimit: `--hashlimit-above` matches (here: drops) once the source's bucket is empty, one
 * bucket per source address (`--hashlimit-mode srcip`), at most `htable-max` of them, each forgotten `htable-expire`
 * ms after its last packet. The largest rate it takes is 1000000/sec (measured: "Rate too fast" above).
 *
 * The hashlimit table is named from the chain and the parameters: the kernel keeps using an existing table of the same
 * name with its old parameters while any rule references it, so a change of rate gets a table of a new name.
 * The prefilter chain is refilled only at install and only when it differs from the plan, so its rule counter (the
 * drops: `iptables -v -S CHAIN_PRE` prints `-c PACKETS BYTES`) is not reset by every grant or re-install.
 * @module
 */
import { createHash } from 'node:crypto';
import type { Family } from '../../shared/address.js';
import type { Prefilter } from './prefilter.js';

/** The prefilter chain of `chain`: `SPA_KNOCK` → `SPA_KNOCK_PRE` (names.ts keeps room for a 4-letter suffix). */
export function preChainName(chain: string): string {
  return `${chain}_PRE`;
}

/** The hashlimit table name (at most 15 characters): `spak_` and 10 hex digits of a hash of chain and parameters. */
export function hashlimitName(chain: string, p: Prefilter): string {
  const h = createHash('sha256').update(`${chain} ${p.rate} ${p.burst} ${p.size} ${p.timeoutS}`).digest('hex');
  return `spak_${h.slice(0, 10)}`;
}

/** The input chain's jump to the prefilter chain (none without a prefilter). */
export function preJumpLines(chain: string, p: Prefilter | undefined): string[] {
  return p === undefined ? [] : [`-A ${chain} -p udp -m udp --dport ${p.port} -j ${preChainName(chain)}`];
}

/** Is this line of the input chain a jump to the prefilter chain? */
export function isPreJumpLine(chain: string, line: string): boolean {
  return line.startsWith(`-A ${chain} `) && line.endsWith(` -j ${preChainName(chain)}`);
}

/** The prefilter chain's one rule for a family. */
export function preChainLines(chain: string, f: Family, p: Prefilter): string[] {
  const mask = f === 6 ? ' --hashlimit-srcmask 64' : '';
  return [
    `-A ${preChainName(chain)} -m hashlimit --hashlimit-above ${p.rate}/sec --hashlimit-burst ${p.burst} --hashlimit-mode srcip --hashlimit-name ${hashlimitName(chain, p)} --hashlimit-htable-max ${p.size} --hashlimit-htable-expire ${p.timeoutS * 1000}${mask} -j DROP`,
  ];
}

/** The prefilter chain as `iptables -S` showed it. */
export interface PreSnapshot {
  readonly exists: boolean;
  readonly lines: readonly string[];
}

/**
 * `iptables-restore --noflush` lines (besides the input chain, which the caller refills with the jump) that put the
 * prefilter chain as the plan says: declared and filled when missing or different, left alone (counter kept) when it
 * is as planned, deleted when there is a chain and no prefilter. Declarations first: they go at the top.
 */
export function preInstallLines(
  chain: string,
  f: Family,
  snap: PreSnapshot,
  p: Prefilter | undefined,
): { declare: string[]; body: string[] } {
  const pre = preChainName(chain);
  if (p === undefined)
    return snap.exists ? { declare: [`:${pre} - [0:0]`], body: [`-X ${pre}`] } : { declare: [], body: [] };
  const want = preChainLines(chain, f, p);
  if (snap.exists && snap.lines.join('\n') === want.join('\n')) return { declare: [], body: [] };
  return { declare: [`:${pre} - [0:0]`], body: want };
}

/** Lines that put the prefilter chain back as `snap` saw it (undo of a half-done two-family install). */
export function preUndoLines(
  chain: string,
  snap: PreSnapshot,
  p: Prefilter | undefined,
): { declare: string[]; body: string[] } {
  const pre = preChainName(chain);
  if (!snap.exists)
    return p === undefined ? { declare: [], body: [] } : { declare: [`:${pre} - [0:0]`], body: [`-X ${pre}`] };
  return { declare: [`:${pre} - [0:0]`], body: [...snap.lines] };
}

/** Problems of the prefilter chain of one family against the plan. The jump is checked with the input chain. */
export function preProblems(
  chain: string,
  f: Family,
  snap: PreSnapshot,
  p: Prefilter | undefined,
  label: string,
): string[] {
  const pre = preChainName(chain);
  if (p === undefined)
    return snap.exists ? [`iptables chain ${pre} exists but limit.kernel_prefilter is off (${label})`] : [];
  if (!snap.exists) return [`iptables chain ${pre} is missing (${label})`];
  if (snap.lines.join('\n') !== preChainLines(chain, f, p).join('\n'))
    return [`iptables chain ${pre} rules differ from the plan (${label})`];
  return [];
}

/** The packets dropped by the prefilter chain, from `iptables -v -S CHAIN_PRE` (`-c PACKETS BYTES`); undefined if none. */
export function parsePreCounter(chain: string, stdout: string): number | undefined {
  let total: number | undefined;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith(`-A ${preChainName(chain)} `)) continue;
    const m = / -c ([0-9]{1,20}) [0-9]{1,20}(?: |$)/.exec(line);
    if (m) total = (total ?? 0) + Number(m[1]);
  }
  return total;
}
