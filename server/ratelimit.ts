/**
 * Token buckets in a fixed-size table (cf. wireguard-go's ratelimiter/ratelimiter.go): the daemon's two cheap
 * limits on hostile rates.
 *
 * - Per source (`limit.source_rate` / `source_burst`, table of `limit.source_table` entries): datagrams that reach
 *   the MAC check, keyed by source address — an IPv4 address, or an IPv6 address's /64 prefix (one host usually holds
 *   a whole /64, RFC 4291 §2.5.4). The verifier asks *after* the cheap stages (size, version, key-id lookup) and
 *   *before* the HMAC: junk that does not carry a current key id never touches a bucket, so an off-path attacker who
 *   forges a victim's source address with random bytes cannot drain the victim's bucket (reason `rate`). fwknop
 *   packets carry no key id, so for them the bucket is asked after the cheap base64 checks, in a scope of its own:
 *   fwknop-shaped junk forged with an address spends that address's fwknop tokens only.
 * - Per client (`limit.client_rate` / `client_burst`): authenticated, allowed knocks of one client, before their
 *   replay record is written (reason `client-rate`); only the key holder can spend them.
 *
 * Memory is bounded: at most `capacity` buckets. A new key in a full table evicts, from the oldest, the first of a few
 * buckets that has refilled (an idle source loses nothing by being forgotten: it would start full anyway); a drained
 * bucket met on the way is moved to the back. If none of them has refilled, the oldest goes. So a flood of forged
 * sources costs the attacker `capacity` packets for each time it buys a busy flooder a fresh burst.
 * Time comes from the caller (ms); a clock that steps back refills nothing and never throws.
 * @module
 */

export interface BucketOptions {
  /** Tokens added per second. */
  readonly rate: number;
  /** Bucket size: the most taken at once after an idle spell. */
  readonly burst: number;
  /** Most buckets held at once. */
  readonly capacity: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** How many buckets a new key looks at for one that has refilled before it evicts the oldest. */
const EVICT_SCAN = 8;

export class TokenBuckets {
  readonly #rate: number;
  readonly #burst: number;
  readonly #capacity: number;
  readonly #table = new Map<string, Bucket>();
  #evicted = 0;

  constructor(o: BucketOptions) {
    if (!(o.rate > 0 && o.burst >= 1 && o.capacity >= 1)) throw new RangeError('TokenBuckets: bad options');
    this.#rate = o.rate / 1000;
    this.#burst = o.burst;
    this.#capacity = Math.floor(o.capacity);
  }

  /** Take one token for `key` at `nowMs`: true if there was one (the packet goes on), false if over the limit. */
  take(key: string, nowMs: number): boolean {
    let b = this.#table.get(key);
    if (b === undefined) {
      if (this.#table.size >= this.#capacity) this.#evict(nowMs);
      b = { tokens: this.#burst, at: nowMs };
      this.#table.set(key, b);
    } else if (nowMs > b.at) {
      b.tokens = Math.min(this.#burst, b.tokens + (nowMs - b.at) * this.#rate);
      b.at = nowMs;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  #full(b: Bucket, nowMs: number): boolean {
    return b.tokens + Math.max(0, nowMs - b.at) * this.#rate >= this.#burst;
  }

  #evict(nowMs: number): void {
    this.#evicted++;
    for (let i = 0; i < EVICT_SCAN; i++) {
      const first = this.#table.entries().next();
      if (first.done) return;
      const [k, b] = first.value;
      this.#table.delete(k);
      if (this.#full(b, nowMs)) return;
      this.#table.set(k, b); // drained: to the back
    }
    const oldest = this.#table.keys().next();
    if (!oldest.done) this.#table.delete(oldest.value);
  }

  /** Buckets held now (at most `capacity`). */
  get size(): number {
    return this.#table.size;
  }

  /** Buckets evicted to make room, since start. */
  get evictions(): number {
    return this.#evicted;
  }
}

/**
 * The bucket key of a source address as node:dgram reports it: an IPv4 address as is (also IPv4-mapped
 * `::ffff:a.b.c.d`), an IPv6 address by its /64 prefix (`6:` and four hex groups), a zone dropped. No allocation of an
 * address object: this runs for every datagram that carries a current key id.
 */
export function sourceKey(address: string): string {
  let a = address;
  const pct = a.indexOf('%');
  if (pct >= 0) a = a.slice(0, pct);
  if (a.indexOf(':') < 0) return a;
  const lower = a.toLowerCase();
  if (lower.startsWith('::ffff:') && lower.indexOf('.') > 0) return lower.slice(7);
  const gap = lower.indexOf('::');
  const groupsOf = (s: string): string[] => {
    if (s === '') return [];
    const out: string[] = [];
    for (const g of s.split(':')) {
      if (g.indexOf('.') >= 0)
        out.push('0', '0'); // embedded IPv4: two groups, past the /64 prefix in any real form
      else out.push(g);
    }
    return out;
  };
  let groups: string[];
  if (gap < 0) groups = groupsOf(lower);
  else {
    const head = groupsOf(lower.slice(0, gap));
    const tail = groupsOf(lower.slice(gap + 2));
    const fill = Math.max(0, 8 - head.length - tail.length);
    groups = [...head, ...new Array<string>(fill).fill('0'), ...tail];
  }
  let key = '6';
  for (let i = 0; i < 4; i++) key += `:${(Number.parseInt(groups[i] ?? '0', 16) || 0).toString(16)}`;
  return key;
}

/** The per-source limiter the verifier asks before the HMAC (reason `rate`). */
export class SourceLimiter {
  readonly #b: TokenBuckets;
  constructor(o: BucketOptions) {
    this.#b = new TokenBuckets(o);
  }
  /**
   * `scope` keeps packet formats apart: fwknop packets carry no key id, so junk forged with a victim's address can
   * reach the HMAC there; in a scope of its own it spends only the victim's fwknop tokens, never its spak1 ones.
   */
  admit(source: string, nowMs: number, scope = ''): boolean {
    return this.#b.take(scope + sourceKey(source), nowMs);
  }
  get size(): number {
    return this.#b.size;
  }
  get evictions(): number {
    return this.#b.evictions;
  }
}
