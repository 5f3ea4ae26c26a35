/**
 * Turn validated CLI options into a knock request and a sealed packet. No I/O besides the injected clock and
 * random source.
 * @module
 */
import ipaddr from 'ipaddr.js';
import { randomBytes } from '@noble/ciphers/utils.js';
import { type Access, formatAccess, parseAccess } from '../shared/access.js';
import { isStrictIp } from '../shared/address.js';
import { toHex } from '../shared/bytes.js';
import { NONCE_LEN } from '../shared/constants.js';
import { deriveKeys } from '../shared/crypto.js';
import { type KnockRequest, sealPacket, splitPacket } from '../shared/wire.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function parseAccessList(values: readonly string[]): Access[] {
  return values
    .flatMap((v) => v.split(','))
    .filter((v) => v.trim() !== '')
    .map((v) => {
      const a = parseAccess(v);
      if (!a) throw new UsageError(`--open "${v}" is not an access like tcp/22 or udp/53`);
      return a;
    });
}

export function checkAllowIp(ip: string): string {
  if (!isStrictIp(ip)) throw new UsageError(`--allow-ip "${ip}" is not an IPv4 or IPv6 address`);
  const a = ipaddr.process(ip);
  if (a.range() === 'unspecified') throw new UsageError(`--allow-ip ${ip} is the unspecified address`);
  return a.toString();
}

export interface BuiltPacket {
  readonly bytes: Uint8Array;
  readonly request: KnockRequest;
  readonly keyIdHex: string;
}

export function buildPacket(
  key: Uint8Array,
  req: { type: 'open' | 'close'; accesses: readonly Access[]; duration: number; allowAddress?: string | undefined },
  now: number = Date.now(),
  nonce: Uint8Array = randomBytes(NONCE_LEN),
): BuiltPacket {
  const request: KnockRequest = { ...req, timestamp: now };
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
  };
}
