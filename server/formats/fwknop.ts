/**
 * fwknop: packets of the fwknop client (FKO protocol 3.0.0, Rijndael + HMAC; docs/fwknop.md) on the same UDP port
 * as spak1. The text carries no key id, so every fwknop client's HMAC is tried in turn (constant time each) before
 * anything is decrypted. Access requests (types 1 and 3) become the same `KnockRequest` as a spak1 open; NAT and
 * command requests are refused with their own reasons. The replay id is fwknopd's digest-cache key,
 * SHA-256(packet text), in base64url: the HMAC is compared as text, so no second text of one packet exists.
 * @module
 */
import { SALT_PREFIX_B64 } from '../../shared/fwknop/crypto.js';
import {
  FWKNOP_MAX_LEN,
  FWKNOP_MIN_LEN,
  type FwknopKeys,
  checkHmac,
  decryptBody,
  looksLikeFwknop,
  replayKeyOf,
} from '../../shared/fwknop/codec.js';
import type { ClientConfig } from '../config.js';
import type { AuthResult, Gate, PacketFormat } from './format.js';

export class FwknopFormat implements PacketFormat {
  readonly name = 'fwknop';
  readonly minSize = FWKNOP_MIN_LEN;
  readonly maxSize = FWKNOP_MAX_LEN;
  readonly #clients: { client: ClientConfig; keys: FwknopKeys }[];

  constructor(clients: readonly ClientConfig[]) {
    this.#clients = clients.flatMap((client) => (client.fwknop ? [{ client, keys: client.fwknop }] : []));
  }

  /** Base64 text only (spak1 packets start with byte 0x01, which is not). */
  claims(buf: Uint8Array): boolean {
    return this.#clients.length > 0 && looksLikeFwknop(buf);
  }

  authenticate(buf: Uint8Array, _nowMs: number, gate?: Gate): AuthResult {
    const text = Buffer.from(buf).toString('latin1');
    // fwknopd's rule: a packet that already carries the salt prefix is someone re-wrapping a seen packet
    if (text.startsWith(SALT_PREFIX_B64)) return { ok: false, code: 'version' };
    if (gate !== undefined && !gate.admit()) return { ok: false, code: 'rate' };
    for (const { client, keys } of this.#clients) {
      const h = checkHmac(text, keys);
      if (!h.ok) continue;
      const d = decryptBody(h.body, keys);
      if (!d.ok) return { ok: false, code: 'malformed' };
      const v = d.value;
      if (v.kind === 'nat') return { ok: false, code: 'fwknop-nat' };
      if (v.kind === 'command') return { ok: false, code: 'fwknop-command' };
      return {
        ok: true,
        value: {
          client,
          request: {
            type: 'open',
            timestamp: v.timestamp * 1000,
            accesses: v.accesses,
            duration: Math.min(v.timeout, 0xffff),
            allowAddress: v.allowIp,
          },
          // base64url: the replay log's ids are [A-Za-z0-9:_-] (server/replay-file.ts)
          replayId: `fwknop:${replayKeyOf(text).replace(/\+/g, '-').replace(/\//g, '_')}`,
        },
      };
    }
    return { ok: false, code: 'mac' };
  }
}
