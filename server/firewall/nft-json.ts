/**
 * Reading nft's JSON output (`nft -j list table|tables`) with zod: what the nftables backend needs from it and
 * nothing more. Unknown items are ignored; an element of a form we do not write (a range, a prefix) is kept as raw
 * text so a check can show it, and never becomes a grant.
 *
 * Element forms (nft 1.0.6, measured): a plain value `{"concat": ["10.0.0.2", "tcp", 22]}`, or with attributes
 * `{"elem": {"val": {"concat": […]}, "timeout": 30, "expires": 29, "comment": "alice"}}` (timeout and expires in
 * whole seconds, expires rounded down). In an interval set (allow4p/allow6p) a prefix part is
 * `{"prefix": {"addr": "10.0.0.0", "len": 24}}`; it is read as the text `10.0.0.0/24`.
 * @module
 */
import { z } from 'zod';
import { type Access, isPort, isProto } from '../../shared/access.js';
import { type Family, hostPrefix, parseCidr, parseIpOfFamily } from '../../shared/address.js';
import type { GrantEntry } from './backend.js';
import { GRANT_SETS, setKind } from './nft-script.js';
import { checkOwner, firewallError } from './validate.js';

const prefixPart = z
  .object({ prefix: z.object({ addr: z.string(), len: z.number() }) })
  .transform((p) => `${p.prefix.addr}/${p.prefix.len}`);
const scalar = z.union([z.string(), z.number(), prefixPart]);
const concat = z.object({ concat: z.array(scalar) });
const value = z.union([concat, scalar]);
const withAttrs = z.object({
  elem: z.object({
    val: value,
    timeout: z.number().optional(),
    expires: z.number().optional(),
    comment: z.string().optional(),
  }),
});
const setSchema = z.object({
  family: z.string(),
  name: z.string(),
  table: z.string(),
  type: z.union([z.string(), z.array(z.string())]),
  flags: z.array(z.string()).optional(),
  size: z.number().optional(),
  timeout: z.number().optional(),
  elem: z.array(z.unknown()).optional(),
});
const chainSchema = z.object({
  family: z.string(),
  table: z.string(),
  name: z.string(),
  handle: z.number().optional(),
  type: z.string().optional(),
  hook: z.string().optional(),
  prio: z.number().optional(),
  policy: z.string().optional(),
});
const counterSchema = z.object({ family: z.string(), table: z.string(), name: z.string() });
const tableSchema = z.object({ family: z.string(), name: z.string(), handle: z.number() });
const docSchema = z.object({ nftables: z.array(z.record(z.string(), z.unknown())) });

/** One set element. */
export interface NftElem {
  /** The key's parts (`["10.0.0.2", "tcp", 22]`; one part for a plain key), or undefined for a form we do not write. */
  readonly parts: readonly (string | number)[] | undefined;
  /** The element as nft printed it (JSON), for messages. */
  readonly raw: string;
  /** Whole seconds, as nft prints them. */
  readonly timeoutS: number | undefined;
  readonly expiresS: number | undefined;
  readonly comment: string | undefined;
}

export interface NftSet {
  readonly name: string;
  /** Key type parts: `['ipv4_addr', 'inet_proto', 'inet_service']`. */
  readonly type: readonly string[];
  readonly flags: readonly string[];
  readonly elems: readonly NftElem[];
  /** The set's `size` and default element `timeout` (whole seconds), when declared. */
  readonly size?: number | undefined;
  readonly timeoutS?: number | undefined;
}

export interface NftChain {
  readonly name: string;
  readonly type: string | undefined;
  readonly hook: string | undefined;
  readonly prio: number | undefined;
  readonly policy: string | undefined;
}

/** What `nft -j list table inet T` says about table T. */
export interface NftTableListing {
  readonly sets: ReadonlyMap<string, NftSet>;
  readonly chains: ReadonlyMap<string, NftChain>;
  /** Names of the table's named counters (nft-prefilter.ts); undefined where a listing was built without them. */
  readonly counters?: ReadonlySet<string>;
}

export interface NftTableRef {
  readonly family: string;
  readonly name: string;
  readonly handle: number;
}

function items(stdout: string, what: string): Record<string, unknown>[] {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw firewallError(`${what} failed: output is not JSON`);
  }
  const parsed = docSchema.safeParse(doc);
  if (!parsed.success) throw firewallError(`${what} failed: unexpected JSON shape`);
  return parsed.data.nftables;
}

function parseElem(e: unknown): NftElem {
  const raw = JSON.stringify(e);
  const partsOf = (v: z.infer<typeof value>): (string | number)[] => (typeof v === 'object' ? v.concat : [v]);
  const a = withAttrs.safeParse(e);
  if (a.success) {
    const { val, timeout, expires, comment } = a.data.elem;
    return { parts: partsOf(val), raw, timeoutS: timeout, expiresS: expires, comment };
  }
  const v = value.safeParse(e);
  return {
    parts: v.success ? partsOf(v.data) : undefined,
    raw,
    timeoutS: undefined,
    expiresS: undefined,
    comment: undefined,
  };
}

/** Parse `nft -j list table inet <table>` output: the sets and chains of that table. Throws ERR_SPA_FIREWALL. */
export function parseNftTable(stdout: string, family: string, table: string): NftTableListing {
  const sets = new Map<string, NftSet>();
  const chains = new Map<string, NftChain>();
  const counters = new Set<string>();
  for (const item of items(stdout, 'nft list')) {
    if ('set' in item) {
      const s = setSchema.safeParse(item['set']);
      if (!s.success || s.data.table !== table || s.data.family !== family) continue;
      const { name, type, flags, elem, size, timeout } = s.data;
      sets.set(name, {
        name,
        type: typeof type === 'string' ? [type] : type,
        flags: flags ?? [],
        elems: (elem ?? []).map(parseElem),
        size,
        timeoutS: timeout,
      });
    } else if ('chain' in item) {
      const c = chainSchema.safeParse(item['chain']);
      if (!c.success || c.data.table !== table || c.data.family !== family) continue;
      const { name, type, hook, prio, policy } = c.data;
      chains.set(name, { name, type, hook, prio, policy });
    } else if ('counter' in item) {
      const c = counterSchema.safeParse(item['counter']);
      if (c.success && c.data.table === table && c.data.family === family) counters.add(c.data.name);
    }
  }
  return { sets, chains, counters };
}

/** Parse `nft -j list tables` output. Works for any table name, keywords included. */
export function parseNftTables(stdout: string): NftTableRef[] {
  const out: NftTableRef[] = [];
  for (const item of items(stdout, 'nft list tables')) {
    const t = tableSchema.safeParse(item['table']);
    if (t.success) out.push(t.data);
  }
  return out;
}

/** A grant as listed from the kernel, with the remaining time nft reported (undefined: element without timeout). */
export interface NftListedGrant extends GrantEntry {
  readonly remainingMs: number | undefined;
}

/**
 * The grants in allow4/allow6 of a listing: expiresAt = now + the remaining time (`expires`, else `timeout`), owner
 * from the comment when it is an owner name (absent or foreign comment: no owner). Elements spa-knockd could not have
 * written are left out.
 */
export function grantsOfListing(listing: NftTableListing, now: number): NftListedGrant[] {
  const out: NftListedGrant[] = [];
  for (const set of GRANT_SETS) {
    const { family, prefix } = setKind(set);
    for (const e of listing.sets.get(set)?.elems ?? []) {
      const g = grantOf(family, prefix, e, now);
      if (g) out.push(g);
    }
  }
  return out;
}

/** The source part of an element: one address (hash sets) or a prefix shorter than a host (interval sets). */
function sourceOf(
  family: Family,
  prefixSet: boolean,
  part: string | number | undefined,
): { address: string; prefix?: number } | undefined {
  if (!prefixSet) {
    const ip = parseIpOfFamily(family, part);
    return ip === undefined ? undefined : { address: ip.text };
  }
  if (typeof part !== 'string' || !part.includes('/')) return undefined; // a plain address: not one we write there
  const c = parseCidr(part);
  if (!c.ok || c.cidr.family !== family || c.cidr.prefix === hostPrefix(family)) return undefined;
  return { address: c.cidr.network.toString(), prefix: c.cidr.prefix };
}

function grantOf(family: Family, prefixSet: boolean, e: NftElem, now: number): NftListedGrant | undefined {
  if (e.parts === undefined || e.parts.length !== 3) return undefined;
  const [addr, proto, port] = e.parts;
  const src = sourceOf(family, prefixSet, addr);
  if (src === undefined || !isProto(proto) || !isPort(port)) return undefined;
  let owner: string | undefined;
  try {
    owner = checkOwner(e.comment);
  } catch {
    owner = undefined; // a comment spa-knockd did not write
  }
  const remainingS = e.expiresS ?? e.timeoutS;
  const remainingMs = remainingS === undefined ? undefined : remainingS * 1000;
  return {
    family,
    ...src,
    access: { proto, port },
    expiresAt: remainingMs === undefined ? Number.POSITIVE_INFINITY : now + remainingMs,
    remainingMs,
    ...(owner !== undefined ? { owner } : {}),
  };
}

/** A protect-set element `["tcp", 22]` as an access, or undefined. */
export function accessOfElem(parts: readonly (string | number)[] | undefined): Access | undefined {
  if (parts === undefined || parts.length !== 2) return undefined;
  const [proto, port] = parts;
  return isProto(proto) && isPort(port) ? { proto, port } : undefined;
}
