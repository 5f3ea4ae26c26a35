/**
 * spc1: one-time codes (shared/codes.ts, docs/codes.md) on the knock port, for clients with `codes = true`.
 *
 * Every code client's codes from `floor − window` to `floor + window − 1` are computed in advance into a Map keyed by
 * the code's first 8 characters: a datagram is looked up there (no HMAC per datagram, whatever it holds), and a hit is
 * compared whole in constant time. At or above the floor it is live: the result carries `consume`, which raises the
 * floor past it durably (server/code-floor.ts) once the policy allowed it (server/verify.ts). Below the floor it was
 * used or skipped over (`code-used`); not in the Map at all, it is no code of any client's window (`code`).
 * @module
 */
import { equalBytes } from '@noble/ciphers/utils.js';
import { utf8 } from '../../shared/bytes.js';
import {
  CODE_COUNTER_LIMIT,
  CODE_LEN,
  codeBody,
  codeBodyOf,
  codeFloorId,
  codeKeyOf,
  looksLikeCode,
} from '../../shared/codes.js';
import type { CodeFloors } from '../code-floor.js';
import type { ClientConfig } from '../config.js';
import type { AuthResult, PacketFormat } from './format.js';

/** Characters of a code's body that index the Map (40 bits: collisions are rare, and handled). */
const INDEX_LEN = 8;

interface CodeClient {
  readonly client: ClientConfig;
  readonly codeKey: Uint8Array;
  readonly floorId: string;
  readonly window: number;
  /** The counters indexed now, with their Map key. */
  readonly indexed: Map<number, string>;
}

interface Entry {
  readonly cc: CodeClient;
  readonly counter: number;
  readonly body: Uint8Array;
}

export class CodeFormat implements PacketFormat {
  readonly name = 'code';
  readonly minSize = CODE_LEN;
  readonly maxSize = CODE_LEN + 2;
  readonly #clients: CodeClient[];
  readonly #floors: CodeFloors;
  readonly #index = new Map<string, Entry[]>();
  #computed = 0;

  constructor(clients: readonly ClientConfig[], floors: CodeFloors) {
    this.#floors = floors;
    this.#clients = clients.flatMap((client) => {
      if (client.codesWindow === undefined || client.format !== 'spak1') return [];
      const codeKey = codeKeyOf(client.key);
      return [{ client, codeKey, floorId: codeFloorId(codeKey), window: client.codesWindow, indexed: new Map() }];
    });
    for (const cc of this.#clients) this.#reindex(cc);
  }

  /** How many codes (HMACs) this format has computed so far: the cost is per accepted code, never per datagram. */
  get computed(): number {
    return this.#computed;
  }

  /** Does any client take codes? (Without one the daemon leaves this format out.) */
  get active(): boolean {
    return this.#clients.length > 0;
  }

  claims(buf: Uint8Array): boolean {
    return looksLikeCode(buf);
  }

  /** Index the client's codes in [floor − window, floor + window), computing only those not indexed already. */
  #reindex(cc: CodeClient): void {
    const floor = this.#floors.get(cc.floorId);
    const from = Math.max(0, floor - cc.window);
    const to = Math.min(floor + cc.window, CODE_COUNTER_LIMIT);
    for (const [c, key] of cc.indexed) {
      if (c >= from && c < to) continue;
      const kept = (this.#index.get(key) ?? []).filter((e) => e.cc !== cc || e.counter !== c);
      if (kept.length === 0) this.#index.delete(key);
      else this.#index.set(key, kept);
      cc.indexed.delete(c);
    }
    for (let c = from; c < to; c++) {
      if (cc.indexed.has(c)) continue;
      const text = codeBody(cc.codeKey, c);
      this.#computed++;
      const key = text.slice(0, INDEX_LEN);
      const e: Entry = { cc, counter: c, body: utf8(text) };
      const list = this.#index.get(key);
      if (list) list.push(e);
      else this.#index.set(key, [e]);
      cc.indexed.set(c, key);
    }
  }

  authenticate(buf: Uint8Array, nowMs: number): AuthResult {
    const body = codeBodyOf(buf);
    if (body === undefined) return { ok: false, code: 'code' };
    const candidates = this.#index.get(body.slice(0, INDEX_LEN));
    if (!candidates) return { ok: false, code: 'code' };
    const bytes = utf8(body);
    for (const e of candidates) {
      if (!equalBytes(e.body, bytes)) continue;
      const { cc, counter } = e;
      if (counter < this.#floors.get(cc.floorId)) return { ok: false, code: 'code-used' };
      return {
        ok: true,
        value: {
          client: cc.client,
          // a code asks for nothing: all the client's accesses, the default duration, the datagram's source
          request: { type: 'open', timestamp: nowMs, accesses: [], duration: 0 },
          replayId: `code:${cc.floorId}:${counter}`,
          oneTimeCode: counter,
          consume: () => {
            this.#floors.raise(cc.floorId, counter + 1);
            this.#reindex(cc);
          },
        },
      };
    }
    return { ok: false, code: 'code' };
  }
}
