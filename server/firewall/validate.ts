/**
 * Validation of everything a backend is given. Every value that ends up in nft or iptables text passes through here
 * first; nothing unvalidated is ever interpolated. Built on the one address module (shared/address.ts) and the one
 * access module (shared/access.ts): this file adds only the shape checks and the ERR_SPA_FIREWALL errors.
 * @module
 */
import { type Access, dedupeAccesses, toAccess } from '../../shared/access.js';
import {
  type Family,
  type GrantKey,
  type IpAddress,
  grantKeyString,
  hostPrefix,
  networkOf,
  parseIpOfFamily,
} from '../../shared/address.js';
import { SpaError } from '../../shared/errors.js';
import type { GrantEntry, KnockSequence } from './backend.js';
import { type Prefilter, checkPrefilter } from './prefilter.js';
import { FAST_PATH_MAX_DURATIONS, type FastPathPlan } from './nft-fastpath.js';
import { checkSequences } from './sequence-check.js';

/** The error every backend throws: one line for the operator, code ERR_SPA_FIREWALL. */
export function firewallError(message: string): SpaError {
  return new SpaError('ERR_SPA_FIREWALL', message);
}

/** Owner names as stored in the kernel (nft element comment, iptables rule comment): config client names. */
export const OWNER_RE = /^[A-Za-z0-9._@-]{1,64}$/;

function shown(v: unknown): string {
  return JSON.stringify(String(v)).slice(0, 60);
}

/** A clean copy of `a`, or ERR_SPA_FIREWALL unless it is `{ proto: 'tcp' | 'udp', port: 1..65535 }`. */
export function checkAccess(a: unknown): Access {
  const access = toAccess(a);
  if (access === undefined) {
    const { proto, port } = (typeof a === 'object' && a !== null ? a : {}) as { proto?: unknown; port?: unknown };
    throw firewallError(`invalid access ${shown(proto)}/${shown(port)}: must be tcp or udp and a port 1-65535`);
  }
  return access;
}

/**
 * A validated grant key: family 4 or 6, the address in canonical form (shared/address.ts: an IPv4-mapped IPv6
 * address is family 4, so it is refused as family 6), an optional prefix length (issue 10), and the access. Zones
 * and non-strict forms are refused.
 */
export function checkGrantKey(e: unknown): GrantKey {
  if (typeof e !== 'object' || e === null) throw firewallError('invalid grant: not an object');
  const { family, address, access, prefix } = e as {
    family?: unknown;
    address?: unknown;
    access?: unknown;
    prefix?: unknown;
  };
  if (family !== 4 && family !== 6) throw firewallError(`invalid grant family ${shown(family)}`);
  const ip = parseIpOfFamily(family as Family, address);
  if (ip === undefined) throw firewallError(`invalid IPv${family} address ${shown(address)}`);
  const len = checkPrefix(family, ip, prefix);
  return { family, address: ip.text, ...(len !== undefined ? { prefix: len } : {}), access: checkAccess(access) };
}

/**
 * The prefix length of a grant: undefined (one address; so is 32 / 128, which is normalised away) or 1..31 / 1..127
 * with `ip` the network address (no host bits set: `10.0.0.1` with prefix 24 is refused, it would silently mean
 * 10.0.0.0/24).
 */
function checkPrefix(family: Family, ip: IpAddress, prefix: unknown): number | undefined {
  if (prefix === undefined || prefix === hostPrefix(family)) return undefined;
  if (typeof prefix !== 'number' || !Number.isInteger(prefix) || prefix < 1 || prefix > hostPrefix(family)) {
    throw firewallError(`invalid grant prefix length ${shown(prefix)} for IPv${family}`);
  }
  if (networkOf(ip, prefix)?.network.toString() !== ip.text) {
    throw firewallError(`invalid grant prefix ${shown(`${ip.text}/${prefix}`)}: host bits set`);
  }
  return prefix;
}

/** Undefined (no owner) or a name matching {@link OWNER_RE}. */
export function checkOwner(owner: unknown): string | undefined {
  if (owner === undefined) return undefined;
  if (typeof owner !== 'string' || !OWNER_RE.test(owner)) {
    throw firewallError(`invalid grant owner ${shown(owner)}: 1-64 letters, digits, or . _ @ -`);
  }
  return owner;
}

/** A finite expiry (ms since the epoch). */
export function checkExpiresAt(v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw firewallError('invalid grant expiresAt');
  return v;
}

/** A finite clock reading (ms since the epoch). */
export function checkNow(now: unknown): number {
  if (typeof now !== 'number' || !Number.isFinite(now)) throw firewallError('invalid grant time');
  return now;
}

/** Validate grants and drop duplicates (the last entry for a key wins). Owner kept only when given. */
export function checkGrants(entries: readonly GrantEntry[]): GrantEntry[] {
  if (!Array.isArray(entries)) throw firewallError('invalid grants: not an array');
  const byKey = new Map<string, GrantEntry>();
  for (const e of entries as unknown[]) {
    const k = checkGrantKey(e);
    const { expiresAt, owner } = e as { expiresAt?: unknown; owner?: unknown };
    const o = checkOwner(owner);
    byKey.set(grantKeyString(k), {
      ...k,
      expiresAt: checkExpiresAt(expiresAt),
      ...(o !== undefined ? { owner: o } : {}),
    });
  }
  return [...byKey.values()];
}

/** Validate revoke keys and drop duplicates. */
export function checkKeys(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): GrantKey[] {
  if (!Array.isArray(entries)) throw firewallError('invalid grants: not an array');
  const byKey = new Map<string, GrantKey>();
  for (const e of entries as unknown[]) {
    const k = checkGrantKey(e);
    byKey.set(grantKeyString(k), k);
  }
  return [...byKey.values()];
}

/** Validate a plan's protected accesses; duplicates removed, order kept. */
export function checkProtect(protect: unknown): Access[] {
  if (!Array.isArray(protect)) throw firewallError('invalid plan: protect is not an array');
  return dedupeAccesses((protect as unknown[]).map(checkAccess));
}

/** The validated parts of a plan. */
export interface CheckedPlan {
  readonly protect: Access[];
  readonly silencePortUnreachable: boolean;
  readonly sequences: KnockSequence[];
  /** The kernel prefilter on the knock port (prefilter.ts); undefined: none. */
  readonly prefilter?: Prefilter | undefined;
  readonly fastPath?: FastPathPlan;
}

export function checkPlan(plan: unknown): CheckedPlan {
  if (typeof plan !== 'object' || plan === null) throw firewallError('invalid plan: not an object');
  const { protect, silencePortUnreachable, sequences, prefilter, fastPath } = plan as {
    protect?: unknown;
    silencePortUnreachable?: unknown;
    sequences?: unknown;
    prefilter?: unknown;
    fastPath?: unknown;
  };
  if (silencePortUnreachable !== undefined && typeof silencePortUnreachable !== 'boolean') {
    throw firewallError('invalid plan: silencePortUnreachable is not a boolean');
  }
  const pf = checkPrefilter(prefilter);
  const fast = checkFastPath(fastPath);
  return {
    protect: checkProtect(protect),
    silencePortUnreachable: silencePortUnreachable === true,
    sequences: checkSequences(sequences),
    ...(pf !== undefined ? { prefilter: pf } : {}),
    ...(fast !== undefined ? { fastPath: fast } : {}),
  };
}

const isInt = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** The kernel fast path's plan (nft-fastpath.ts): ports 1024–65535, 1–8 durations of 1–65535 s, a uid. */
export function checkFastPath(fp: unknown): FastPathPlan | undefined {
  if (fp === undefined) return undefined;
  const { firstPort, durationsS, uid, optional } = (typeof fp === 'object' && fp !== null ? fp : {}) as {
    firstPort?: unknown;
    durationsS?: unknown;
    uid?: unknown;
    optional?: unknown;
  };
  const ds = Array.isArray(durationsS) ? [...new Set(durationsS as unknown[])] : [];
  if (ds.length === 0 || ds.length > FAST_PATH_MAX_DURATIONS || !ds.every((d) => isInt(d, 1, 65535)))
    throw firewallError(`invalid plan: fast path durations must be 1-${FAST_PATH_MAX_DURATIONS} whole seconds`);
  if (!isInt(firstPort, 1024, 65535 - 2 * ds.length + 1))
    throw firewallError(
      `invalid plan: fast path port ${shown(firstPort)} must leave ${2 * ds.length} ports below 65536`,
    );
  if (!isInt(uid, 0, 2 ** 32 - 1)) throw firewallError(`invalid plan: fast path uid ${shown(uid)}`);
  return { firstPort, durationsS: ds as number[], uid, ...(optional === true ? { optional: true } : {}) };
}
