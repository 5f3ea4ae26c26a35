/**
 * `spa-knock --format fwknop`: packets the real `fwknopd` accepts (docs/fwknop.md), from a key file holding
 * fwknop's two keys (`spa-knock keygen --format fwknop`, `fwknop --key-gen` output, or one `~/.fwknoprc` stanza).
 * @module
 */
import { userInfo } from 'node:os';
import { randomBytes } from '@noble/ciphers/utils.js';
import type { Access } from '../shared/access.js';
import { formatAccess } from '../shared/access.js';
import { parseIp } from '../shared/address.js';
import { usageError } from '../shared/cli.js';
import { SpaError } from '../shared/errors.js';
import { type FwknopKeys, encodePacket } from '../shared/fwknop/codec.js';
import { parseFwknopKeyText } from '../shared/fwknop/keys.js';
import { readSecretFile } from '../shared/keyfile.js';

/** Read an fwknop key file under the key-file rules (regular file, 0600). */
export function readFwknopKeyFile(path: string): FwknopKeys {
  const r = parseFwknopKeyText(readSecretFile(path));
  if (!r.ok) throw new SpaError('ERR_SPA_KEYFILE_INVALID', `key file ${path}: ${r.reason}`);
  return r.value;
}

/** 16 random decimal digits (fwknop's `rand` field). */
function randDigits(): string {
  let s = '';
  for (const b of randomBytes(32)) if (b < 250 && s.length < 16) s += String(b % 10);
  return s.length === 16 ? s : randDigits();
}

function userName(): string {
  try {
    const u = userInfo().username;
    if (/^[\x21-\x39\x3b-\x7e]{1,64}$/.test(u)) return u;
  } catch {
    // no passwd entry
  }
  return 'spa-knock';
}

export interface FwknopBuilt {
  readonly bytes: Uint8Array;
  readonly fields: Record<string, unknown>;
  readonly timestamp: number;
}

/** Build one fwknop packet; usage errors for what fwknop cannot carry. */
export function buildFwknopPacket(
  keys: FwknopKeys,
  req: { close: boolean; accesses: readonly Access[]; duration: number; allowAddress: string | undefined },
  now: number = Date.now(),
): FwknopBuilt {
  if (req.close) throw usageError('--close: fwknop has no close message (--format fwknop)');
  if (req.accesses.length === 0) throw usageError('--open is required with --format fwknop (e.g. --open tcp/22)');
  if (req.allowAddress !== undefined && parseIp(req.allowAddress)?.family !== 4)
    throw usageError('--allow-ip: fwknop carries IPv4 addresses only (--format fwknop)');
  const timestamp = Math.floor(now / 1000);
  const enc = { user: userName(), timestamp, allowIp: req.allowAddress, accesses: req.accesses, timeout: req.duration };
  let text: string;
  try {
    text = encodePacket(enc, keys, randomBytes(8), randDigits());
  } catch (e) {
    if (e instanceof RangeError) throw usageError(`--format fwknop: ${e.message}`);
    throw e;
  }
  return {
    bytes: new Uint8Array(Buffer.from(text, 'latin1')),
    timestamp: timestamp * 1000,
    fields: {
      format: 'fwknop',
      type: req.duration > 0 ? 'access with client timeout (3)' : 'access (1)',
      timestamp: new Date(timestamp * 1000).toISOString(),
      accesses: req.accesses.map(formatAccess),
      duration: req.duration || 'server default',
      allow_address: req.allowAddress ?? '0.0.0.0 (packet source address)',
      hmac: keys.digest,
    },
  };
}
