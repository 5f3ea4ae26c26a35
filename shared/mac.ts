/**
 * HMAC-SHA256 (RFC 2104) with the key's inner and outer states computed once: `hmac.create(sha256, key)` hashes the
 * key's two padded blocks (ipad, opad; RFC 2104 §2 steps 1–2 and 5) at construction, and each tag starts from a copy
 * of those states (`_cloneInto`, noble's own reuse path) instead of hashing them again — two SHA-256 compressions of
 * the five a 49–120-byte message needs. The daemon keeps one per client key (server/formats/spak1.ts); the result is
 * the same tag as shared/crypto.ts `macOf` (test/shared/mac.test.ts), compared in constant time as `tagMatches`.
 * Not reentrant (one scratch state and output per instance; JavaScript runs it to the end before the next call).
 * @module
 */
import { equalBytes } from '@noble/ciphers/utils.js';
import { type _HMAC, hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { TAG_LEN } from './constants.js';

type Hmac = _HMAC<ReturnType<typeof sha256.create>>;

export class MacState {
  readonly #keyed: Hmac;
  readonly #work: Hmac;
  readonly #out = new Uint8Array(32);

  constructor(macKey: Uint8Array) {
    this.#keyed = hmac.create(sha256, macKey) as Hmac;
    // the scratch state exists from the start (keyed the same way, not a clone: `_cloneInto()` without a target takes
    // a branch the hot path never takes), so every tag takes the one path `_cloneInto(work)`, also the first one of a
    // key: else it would throw away the code the daemon's warm-up optimized (server/warmup.ts)
    this.#work = hmac.create(sha256, macKey) as Hmac;
  }

  /** HMAC-SHA256(key, data), a new array. */
  mac(data: Uint8Array): Uint8Array {
    this.#into(data);
    return this.#out.slice();
  }

  /** Constant-time comparison of `tag` with HMAC-SHA256(key, authenticated) (lengths are public). */
  matches(authenticated: Uint8Array, tag: Uint8Array): boolean {
    if (tag.length !== TAG_LEN) return false;
    this.#into(authenticated);
    const ok = equalBytes(this.#out, tag);
    this.#out.fill(0);
    return ok;
  }

  #into(data: Uint8Array): void {
    const w = this.#keyed._cloneInto(this.#work);
    w.update(data);
    w.digestInto(this.#out);
  }
}
