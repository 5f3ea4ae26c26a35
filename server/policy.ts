/**
 * Policy: given an authenticated request, what may be granted. Pure.
 * - the packet's source address, and the explicit allow-address if any, must lie in one of the client's `sources`;
 * - every requested access must be in the client's `open` list, else the request is refused whole;
 *   no access requested means everything the client may open;
 * - duration: 0 means the default; longer than the client's maximum is clamped to that maximum.
 * @module
 */
import ipaddr from 'ipaddr.js';
import { type Access, sameAccess } from '../shared/access.js';
import { isStrictIp } from '../shared/address.js';
import type { KnockRequest, MessageType } from '../shared/wire.js';
import type { ClientConfig, Cidr } from './config.js';
import type { Family } from './firewall/backend.js';

export interface Decision {
  readonly client: string;
  readonly type: MessageType;
  readonly family: Family;
  /** Canonical address the grant is for. */
  readonly address: string;
  /** The packet's source (canonical), for the log. */
  readonly source: string;
  readonly accesses: readonly Access[];
  /** Seconds. */
  readonly duration: number;
}

export interface Canonical {
  readonly family: Family;
  readonly address: string;
  readonly parsed: ipaddr.IPv4 | ipaddr.IPv6;
}

/** Canonical form of an address: IPv4-mapped IPv6 becomes IPv4, IPv6 is RFC 5952 compressed. */
export function canonicalAddress(text: string): Canonical | undefined {
  // strip an IPv6 zone id (fe80::1%eth0): a zone is local to the receiving host
  const bare = text.includes('%') ? text.slice(0, text.indexOf('%')) : text;
  if (!isStrictIp(bare)) return undefined;
  const parsed = ipaddr.process(bare);
  return { family: parsed.kind() === 'ipv4' ? 4 : 6, address: parsed.toString(), parsed };
}

export function inSources(a: Canonical, sources: readonly Cidr[]): boolean {
  return sources.some((c) => c.kind === a.parsed.kind() && a.parsed.match(c.range as [ipaddr.IPv4 & ipaddr.IPv6, number]));
}

export type PolicyResult = { ok: true; decision: Decision } | { ok: false; code: 'source' | 'policy' };

export function decide(client: ClientConfig, req: KnockRequest, source: Canonical, defaultDuration: number): PolicyResult {
  if (!inSources(source, client.sources)) return { ok: false, code: 'source' };
  let target = source;
  if (req.allowAddress !== undefined) {
    const t = canonicalAddress(req.allowAddress);
    if (!t || !inSources(t, client.sources)) return { ok: false, code: 'source' };
    if (t.parsed.range() === 'unspecified') return { ok: false, code: 'source' };
    target = t;
  }
  let accesses: readonly Access[];
  if (req.accesses.length === 0) accesses = client.open;
  else {
    for (const a of req.accesses) if (!client.open.some((b) => sameAccess(a, b))) return { ok: false, code: 'policy' };
    accesses = req.accesses.filter((a, i) => req.accesses.findIndex((b) => sameAccess(a, b)) === i);
  }
  const asked = req.duration === 0 ? defaultDuration : req.duration;
  const duration = Math.min(asked, client.maxDuration);
  return {
    ok: true,
    decision: { client: client.name, type: req.type, family: target.family, address: target.address, source: source.address, accesses, duration },
  };
}
