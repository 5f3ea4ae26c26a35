/**
 * spak1: spa-knock's own packet v1 (shared/wire.ts, docs/protocol.md).
 * The key-id index maps the rotating 8-byte id of every client for every epoch the replay window can reach to that
 * client, so the right key is found in O(1) without a static identifier on the wire.
 * @module
 */
import { toHex } from '../../shared/bytes.js';
import { MAX_PACKET_LEN, MIN_PACKET_LEN, PROTOCOL_VERSION } from '../../shared/constants.js';
import { type SubKeys, deriveKeys, epochOf, keyIdFor } from '../../shared/crypto.js';
import { MacState } from '../../shared/mac.js';
import { decryptPayload, splitPacket } from '../../shared/wire.js';
import type { ClientConfig } from '../config.js';
import { traceMark } from '../grant-trace.js';
import type { AuthResult, Gate, PacketFormat } from './format.js';

interface Keyed {
  readonly client: ClientConfig;
  readonly keys: SubKeys;
  /** The MAC key's inner and outer states, hashed once (shared/mac.ts). */
  readonly mac: MacState;
}

interface Entry extends Keyed {
  readonly epoch: number;
}

export class Spak1Format implements PacketFormat {
  readonly name = 'spak1';
  readonly minSize = MIN_PACKET_LEN;
  readonly maxSize = MAX_PACKET_LEN;
  readonly #clients: Keyed[];
  readonly #windowMs: number;
  /** key id (hex) → entries; more than one only on an 8-byte collision. */
  #index = new Map<string, Entry[]>();
  #from = 0;
  #to = -1;

  constructor(clients: readonly ClientConfig[], windowMs: number) {
    this.#clients = clients
      .filter((c) => c.format === 'spak1')
      .map((client) => {
        const keys = deriveKeys(client.key);
        return { client, keys, mac: new MacState(keys.mac) };
      });
    this.#windowMs = windowMs;
  }

  claims(buf: Uint8Array): boolean {
    return buf.length > 0 && buf[0] === PROTOCOL_VERSION;
  }

  /** Make the index cover every epoch a timestamp within the window of `now` can fall in. */
  #refresh(nowMs: number): void {
    const from = epochOf(nowMs - this.#windowMs);
    const to = epochOf(nowMs + this.#windowMs);
    if (from === this.#from && to === this.#to) return;
    const next = new Map<string, Entry[]>();
    for (const [id, list] of this.#index) {
      const kept = list.filter((e) => e.epoch >= from && e.epoch <= to);
      if (kept.length) next.set(id, kept);
    }
    for (let epoch = from; epoch <= to; epoch++) {
      if (epoch >= this.#from && epoch <= this.#to) continue; // already indexed
      for (const k of this.#clients) {
        const id = toHex(keyIdFor(k.keys.id, epoch));
        const list = next.get(id);
        // a literal, not `{ ...k, epoch }`: a spread copies the source object's size, which V8 trims after the first
        // objects of a site, so entries made at start (the warm-up, server/warmup.ts) and later would differ in shape
        const e: Entry = { client: k.client, keys: k.keys, mac: k.mac, epoch };
        if (list) list.push(e);
        else next.set(id, [e]);
      }
    }
    this.#index = next;
    this.#from = from;
    this.#to = to;
  }

  authenticate(buf: Uint8Array, nowMs: number, gate?: Gate): AuthResult {
    const split = splitPacket(buf);
    if (!split.ok) return split;
    const parts = split.value;
    this.#refresh(nowMs);
    const candidates = this.#index.get(toHex(parts.keyId));
    if (!candidates) return { ok: false, code: 'unknown-key' };
    traceMark('key-found');
    if (gate !== undefined && !gate.admit()) return { ok: false, code: 'rate' };
    for (const e of candidates) {
      if (!e.mac.matches(parts.authenticated, parts.tag)) continue; // wire.ts authenticate, with the states kept
      traceMark('mac-ok');
      const d = decryptPayload(e.keys, parts);
      if (!d.ok) return d;
      // the id in clear must be the id of the timestamp inside: a packet cannot borrow another epoch's id
      if (epochOf(d.value.timestamp) !== e.epoch) return { ok: false, code: 'malformed' };
      return { ok: true, value: { client: e.client, request: d.value, replayId: 'spak1:' + toHex(parts.nonce) } };
    }
    return { ok: false, code: 'mac' };
  }
}
