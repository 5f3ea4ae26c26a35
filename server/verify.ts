/**
 * The receive path, read like the spec (cf. wireguard-go device/receive.go): every stage rejects with a reason code,
 * cheapest first —
 *
 *   size → format/version → key id → per-source rate → HMAC → decrypt + parse   (the packet format: server/formats/*)
 *   → client expiry → time window and replay floor → replay → policy → per-client rate   (common to every format)
 *   → replay record written                                     (`state-write` if it cannot be: fail closed)
 *
 * A one-time code (server/formats/code.ts) has its own replay rule instead of the time window and the replay record:
 * its format finds it among the live codes, and its `consume` (the client's counter floor, written durably) takes the
 * replay record's place after the policy.
 *
 * The two rates (server/ratelimit.ts) are optional seams: `sourceLimit` is asked only for packets that carry a
 * current key id (so forged junk cannot spend a victim's tokens), `clientLimit` only for authentic, allowed knocks
 * that are not replays (so only the key holder can spend them); a knock over the client's rate is not remembered,
 * which keeps the replay records of one client bounded by its rate. They are objects, asked through their methods,
 * not callbacks: a method of one class is one call target for every instance, so the code the daemon's warm-up
 * optimized with its own limiters stays valid for the real ones (a closure made per verifier is another target, and
 * V8 throws the inlined code away at the first real packet: "wrong call target"; server/warmup.ts).
 *
 * Only a packet that passes every stage is remembered by the replay guard. Nothing here throws (a failed replay
 * record write is a verdict), reads a clock of its own, or touches the network or the firewall.
 * @module
 */
import { parseIp } from '../shared/address.js';
import { traceMark } from './grant-trace.js';
import { type ReplayGuard, checkTime } from '../shared/replay.js';
import type { Gate, PacketFormat } from './formats/format.js';
import { type Decision, decide } from './policy.js';
import type { RejectReason } from './reasons.js';

export type Verdict =
  | { readonly ok: true; readonly decision: Decision; readonly oneTimeCode?: number }
  | {
      readonly ok: false;
      readonly code: RejectReason;
      readonly client?: string;
      readonly error?: unknown;
      /** `stale` outside the window: the authenticated packet's timestamp minus the daemon's clock, ms. */
      readonly offsetMs?: number;
    };

export interface VerifierOptions {
  readonly formats: readonly PacketFormat[];
  readonly replay: ReplayGuard;
  /** Default grant duration in seconds (for requests that ask for 0). */
  readonly defaultDuration: number;
  /** IPv4 directed-broadcast addresses of this host's subnets: never granted (shared/address.ts subnetBroadcasts). */
  readonly broadcasts?: ReadonlySet<string>;
  /** Per-source limiter, asked before the MAC (reason `rate`). */
  readonly sourceLimit?: SourceLimit;
  /** Per-client limiter on allowed knocks, asked before the replay record is written (reason `client-rate`). */
  readonly clientLimit?: ClientLimit;
}

/** The per-source limiter as the verifier asks it (server/ratelimit.ts SourceLimiter). */
export interface SourceLimit {
  admit(source: string, nowMs: number, scope: string): boolean;
}

/** The per-client limiter as the verifier asks it (server/ratelimit.ts TokenBuckets). */
export interface ClientLimit {
  take(client: string, nowMs: number): boolean;
}

/**
 * The question a format asks just before its first MAC (PacketFormat.authenticate): may this source spend one? One
 * per verifier, set for each packet (verify runs to its end before the next packet), so that no closure is made per
 * packet and the format's call site always sees the same method.
 */
class SourceGate implements Gate {
  source = '';
  /** A double from the start, as every clock reading is (0 would be a small integer: another shape, see above). */
  nowMs = Number.NaN;
  scope = '';
  constructor(readonly limit: SourceLimit) {}

  admit(): boolean {
    return this.limit.admit(this.source, this.nowMs, this.scope);
  }
}

export class Verifier {
  readonly #formats: readonly PacketFormat[];
  readonly #replay: ReplayGuard;
  readonly #policy: { defaultDuration: number; broadcasts?: ReadonlySet<string> };
  readonly #gate: SourceGate | undefined;
  readonly #clientLimit: ClientLimit | undefined;

  constructor(opts: VerifierOptions) {
    this.#formats = opts.formats;
    this.#replay = opts.replay;
    this.#policy = {
      defaultDuration: opts.defaultDuration,
      ...(opts.broadcasts ? { broadcasts: opts.broadcasts } : {}),
    };
    this.#gate = opts.sourceLimit ? new SourceGate(opts.sourceLimit) : undefined;
    this.#clientLimit = opts.clientLimit;
  }

  /** `source` is the sender's address as the socket reported it (IPv4-mapped forms and zones are normalised here). */
  verify(buf: Uint8Array, source: string, nowMs: number): Verdict {
    // a loop, no callbacks: nothing made per packet, one call site per question (see SourceGate)
    let format: PacketFormat | undefined;
    let sized = false;
    for (const f of this.#formats) {
      if (buf.length < f.minSize || buf.length > f.maxSize) continue;
      sized = true;
      if (f.claims(buf)) {
        format = f;
        break;
      }
    }
    if (!format) return { ok: false, code: sized ? 'version' : 'size' };
    const gate = this.#gate;
    if (gate) {
      gate.source = source;
      gate.nowMs = nowMs;
      // spak1 in the empty scope; any other format in its own (server/ratelimit.ts SourceLimiter.admit)
      gate.scope = format.name === 'spak1' ? '' : `${format.name}|`;
    }
    const auth = format.authenticate(buf, nowMs, gate);
    if (!auth.ok) return auth;
    traceMark('authenticated');
    const { client, request, replayId, consume, oneTimeCode } = auth.value;
    // per client, so only after authentication; a comparison, so before the replay lookups
    if (client.expiresAt !== undefined && nowMs >= client.expiresAt)
      return { ok: false, code: 'expired', client: client.name };
    const ts = request.timestamp;
    // a format with its own replay rule (one-time codes) has no timestamp to check and no replay record to keep
    if (consume === undefined) {
      if (checkTime(ts, nowMs, this.#replay.windowMs) !== 'ok')
        return { ok: false, code: 'stale', client: client.name, offsetMs: ts - nowMs };
      if (this.#replay.check(replayId, nowMs) === 'replay') return { ok: false, code: 'replay', client: client.name };
      // older than a record the guard has forgotten: after a clock step back it could be one of those (shared/replay.ts)
      if (this.#replay.forgotten(ts, nowMs)) return { ok: false, code: 'stale', client: client.name };
    }
    const src = parseIp(source, { zone: 'strip' });
    if (!src) return { ok: false, code: 'source', client: client.name };
    const p = decide(client, request, src, this.#policy, nowMs);
    if (!p.ok) return { ok: false, code: p.code, client: client.name };
    traceMark('policy');
    if (this.#clientLimit && !this.#clientLimit.take(client.name, nowMs))
      return { ok: false, code: 'client-rate', client: client.name };
    try {
      if (consume) consume();
      else this.#replay.remember(replayId, ts, nowMs);
    } catch (error) {
      return { ok: false, code: 'state-write', client: client.name, error };
    }
    return oneTimeCode === undefined ? p : { ...p, oneTimeCode };
  }
}
