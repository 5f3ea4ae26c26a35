/**
 * Turn validated CLI options into a knock request and a sealed packet. No I/O besides the injected clock and
 * random source.
 * @module
 */
import { randomBytes } from '@noble/ciphers/utils.js';
import { type Access, formatAccess, parseAccess } from '../shared/access.js';
import { parseIp, ungrantableReason } from '../shared/address.js';
import { toHex } from '../shared/bytes.js';
import { usageError } from '../shared/cli.js';
import { MAX_ACCESSES, NONCE_LEN } from '../shared/constants.js';
import { deriveKeys } from '../shared/crypto.js';
import { type KnockRequest, sealPacket, splitPacket } from '../shared/wire.js';

/** `--open` values (repeated and/or comma-separated) as accesses; at most MAX_ACCESSES fit in one packet. */
export function parseAccessList(values: readonly string[]): Access[] {
  const list = values
    .flatMap((v) => v.split(','))
    .filter((v) => v.trim() !== '')
    .map((v) => {
      const a = parseAccess(v);
      if (!a) throw usageError(`--open "${v}" is not an access like tcp/22 or udp/53`);
      return a;
    });
  if (list.length > MAX_ACCESSES)
    throw usageError(`--open names ${list.length} accesses; one packet holds at most ${MAX_ACCESSES}`);
  return list;
}

/**
 * The canonical form of an `--allow-ip` address, refusing what no server may grant (unspecified, loopback,
 * multicast, broadcast, …: the same rule the server applies). `label` names where the address came from.
 */
export function checkAllowIp(ip: string, label = `--allow-ip ${ip}`): string {
  const a = parseIp(ip);
  if (!a) throw usageError(`--allow-ip "${ip}" is not an IPv4 or IPv6 address (or "auto")`);
  const why = ungrantableReason(a);
  if (why !== undefined) throw usageError(`${label} is ${why}; no server grants it`);
  return a.text;
}

export interface BuiltPacket {
  readonly bytes: Uint8Array;
  readonly request: KnockRequest;
  readonly keyIdHex: string;
}

export function buildPacket(
  key: Uint8Array,
  req: {
    type: 'open' | 'close';
    accesses: readonly Access[];
    duration: number;
    allowAddress?: string | undefined;
    /** Ask for the /N of the IPv4 / IPv6 address instead of the one address (issue 10; the server caps it). */
    prefix4?: number | undefined;
    prefix6?: number | undefined;
  },
  now: number = Date.now(),
  nonce: Uint8Array = randomBytes(NONCE_LEN),
): BuiltPacket {
  const { prefix4, prefix6, ...rest } = req;
  const request: KnockRequest = {
    ...rest,
    timestamp: now,
    ...(prefix4 !== undefined ? { prefix4 } : {}),
    ...(prefix6 !== undefined ? { prefix6 } : {}),
  };
  const bytes = sealPacket(deriveKeys(key), request, nonce);
  const split = splitPacket(bytes);
  return { bytes, request, keyIdHex: split.ok ? toHex(split.value.keyId) : '' };
}

export function describe(p: BuiltPacket): Record<string, unknown> {
  return {
    version: 1,
    key_id: p.keyIdHex,
    type: p.request.type,
    timestamp: new Date(p.request.timestamp).toISOString(),
    accesses: p.request.accesses.length ? p.request.accesses.map(formatAccess) : 'all the policy allows',
    duration: p.request.duration || 'server default',
    allow_address: p.request.allowAddress ?? 'packet source address',
    ...(p.request.prefix4 !== undefined ? { prefix4: p.request.prefix4 } : {}),
    ...(p.request.prefix6 !== undefined ? { prefix6: p.request.prefix6 } : {}),
  };
}
