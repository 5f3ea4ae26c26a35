/**
 * Policy: given an authenticated request, what may be granted. Pure.
 * - the packet's source address, and the explicit allow-address if any, must lie in one of the client's `sources`
 *   (`source`);
 * - the address to open (the allow-address, else the source) must be one host's: not unspecified, loopback,
 *   multicast, a broadcast or one of this host's subnet broadcasts; and a source that no host sends from (all of
 *   those but loopback, which only this host itself can send from) is refused too (`address`);
 * - a client with `require_source_address` must name the address to open (`source-required`): a copy of its knock
 *   raced from elsewhere then opens nothing for the copier;
 * - every requested access must be in the client's `open` list, else the request is refused whole (`policy`);
 *   no access requested means everything the client may open;
 * - a prefix request (issue 10; `prefix4`/`prefix6` of the request, for the family of the address to open) asks for the
 *   network of that address at /N: N shorter than the client's `max_prefix4`/`max_prefix6` is refused (`prefix`;
 *   refused, not clamped: a client that asked for /24 and silently got /28 could not tell why a neighbour address
 *   fails); the whole network must lie in one of `sources` (`source`) and must not overlap a special-purpose block
 *   (shared/address.ts ungrantablePrefixReason; `address`). This host's subnet broadcasts inside a prefix are not a
 *   reason to refuse it: no packet comes from a broadcast address, so granting a block that holds one opens nothing
 *   more. /32 or /128 is the one-address grant.
 * - duration: 0 means the default; longer than the client's maximum is clamped to that maximum, and for a client
 *   with `expires`, to the seconds left until then (rounded up; the daemon ends the grant at expiry itself).
 * @module
 */
import { type Access, dedupeAccesses, sameAccess } from '../shared/access.js';
import {
  type Family,
  type IpAddress,
  cidrContains,
  hostPrefix,
  inAnyCidr,
  networkOf,
  parseIp,
  ungrantablePrefixReason,
  ungrantableReason,
} from '../shared/address.js';
import type { KnockRequest, MessageType } from '../shared/wire.js';
import type { ClientConfig } from './config.js';

export interface Decision {
  readonly client: string;
  readonly type: MessageType;
  readonly family: Family;
  /** Canonical address the grant is for (a prefix grant: the network address). */
  readonly address: string;
  /** A prefix grant: its length (IPv4 < 32, IPv6 < 128). Absent: one address. */
  readonly prefix?: number | undefined;
  /** The packet's source (canonical), for the log. */
  readonly source: string;
  readonly accesses: readonly Access[];
  /** Seconds. */
  readonly duration: number;
}

export interface PolicyOptions {
  /** Default grant duration in seconds (for requests that ask for 0). */
  readonly defaultDuration: number;
  /** IPv4 directed-broadcast addresses of this host's subnets (shared/address.ts subnetBroadcasts). */
  readonly broadcasts?: ReadonlySet<string>;
}

export type PolicyCode = 'source' | 'source-required' | 'address' | 'prefix' | 'policy';
export type PolicyResult = { ok: true; decision: Decision } | { ok: false; code: PolicyCode };

/** May a grant name this address? (Not a special-purpose address, not one of this host's subnet broadcasts.) */
export function grantable(a: IpAddress, broadcasts: ReadonlySet<string> | undefined): boolean {
  return ungrantableReason(a) === undefined && !(broadcasts?.has(a.text) ?? false);
}

/** Could a packet really come from this source? Loopback can (this host); the other ungrantable ranges cannot. */
function plausibleSender(a: IpAddress, broadcasts: ReadonlySet<string> | undefined): boolean {
  return (ungrantableReason(a) === undefined || a.ip.range() === 'loopback') && !(broadcasts?.has(a.text) ?? false);
}

export function decide(
  client: ClientConfig,
  req: KnockRequest,
  source: IpAddress,
  opts: PolicyOptions,
  nowMs = 0,
): PolicyResult {
  if (!inAnyCidr(source, client.sources)) return { ok: false, code: 'source' };
  if (!plausibleSender(source, opts.broadcasts)) return { ok: false, code: 'address' };
  let target = source;
  if (req.allowAddress !== undefined) {
    const t = parseIp(req.allowAddress);
    if (!t || !inAnyCidr(t, client.sources)) return { ok: false, code: 'source' };
    target = t;
  } else if (client.requireSourceAddress) {
    return { ok: false, code: 'source-required' };
  }
  if (!grantable(target, opts.broadcasts)) return { ok: false, code: 'address' };
  let prefix: number | undefined;
  const asked = target.family === 4 ? req.prefix4 : req.prefix6;
  if (asked !== undefined && asked < hostPrefix(target.family)) {
    const cap = (target.family === 4 ? client.maxPrefix4 : client.maxPrefix6) ?? hostPrefix(target.family);
    if (asked < cap) return { ok: false, code: 'prefix' };
    const net = networkOf(target, asked);
    if (net === undefined) return { ok: false, code: 'prefix' };
    if (!client.sources.some((c) => cidrContains(c, net))) return { ok: false, code: 'source' };
    if (ungrantablePrefixReason(net) !== undefined) return { ok: false, code: 'address' };
    target = { family: target.family, text: net.network.toString(), ip: net.network };
    prefix = asked;
  }
  let accesses: readonly Access[];
  if (req.accesses.length === 0) accesses = client.open;
  else {
    for (const a of req.accesses) if (!client.open.some((b) => sameAccess(a, b))) return { ok: false, code: 'policy' };
    accesses = dedupeAccesses(req.accesses);
  }
  const askedS = req.duration === 0 ? opts.defaultDuration : req.duration;
  let duration = Math.min(askedS, client.maxDuration);
  if (client.expiresAt !== undefined)
    duration = Math.max(1, Math.min(duration, Math.ceil((client.expiresAt - nowMs) / 1000)));
  return {
    ok: true,
    decision: {
      client: client.name,
      type: req.type,
      family: target.family,
      address: target.text,
      ...(prefix !== undefined ? { prefix } : {}),
      source: source.text,
      accesses,
      duration,
    },
  };
}
