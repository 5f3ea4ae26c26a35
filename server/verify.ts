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
 * The two rates (server/ratelimit.ts) are optional seams: `admitSource` is asked only for packets that carry a
 * current key id (so forged junk cannot spend a victim's tokens), `admitClient` only for authentic, allowed knocks
 * that are not replays (so only the key holder can spend them); a knock over the client's rate is not remembered,
 * which keeps the replay records of one client bounded by its rate.
 *
 * Only a packet that passes every stage is remembered by the replay guard. Nothing here throws (a failed replay
 * record write is a verdict), reads a clock of its own, or touches the network or the firewall.
 * @module
 */
import { parseIp } from '../shared/address.js';
import { traceMark } from './grant-trace.js';
import { type ReplayGuard, checkTime } from '../shared/replay.js';
import type { PacketFormat } from './formats/format.js';
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
  readonly admitSource?: (source: string, nowMs: number, scope: string) => boolean;
  /** Per-client limiter on allowed knocks, asked before the replay record is written (reason `client-rate`). */
  readonly admitClient?: (client: string, nowMs: number) => boolean;
}

export class Verifier {
  readonly #formats: readonly PacketFormat[];
  readonly #replay: ReplayGuard;
  readonly #policy: { defaultDuration: number; broadcasts?: ReadonlySet<string> };
  readonly #admitSource: ((source: string, nowMs: number, scope: string) => boolean) | undefined;
  readonly #admitClient: ((client: string, nowMs: number) => boolean) | undefined;

  constructor(opts: VerifierOptions) {
    this.#formats = opts.formats;
    this.#replay = opts.replay;
    this.#policy = {
      defaultDuration: opts.defaultDuration,
      ...(opts.broadcasts ? { broadcasts: opts.broadcasts } : {}),
    };
    this.#admitSource = opts.admitSource;
    this.#admitClient = opts.admitClient;
  }

  /** `source` is the sender's address as the socket reported it (IPv4-mapped forms and zones are normalised here). */
  verify(buf: Uint8Array, source: string, nowMs: number): Verdict {
    if (!this.#formats.some((f) => buf.length >= f.minSize && buf.length <= f.maxSize))
      return { ok: false, code: 'size' };
    const format = this.#formats.find((f) => buf.length >= f.minSize && buf.length <= f.maxSize && f.claims(buf));
    if (!format) return { ok: false, code: 'version' };
    const admit = this.#admitSource;
    // spak1 in the empty scope; any other format in its own (server/ratelimit.ts SourceLimiter.admit)
    const scope = format.name === 'spak1' ? '' : `${format.name}|`;
    const auth = format.authenticate(buf, nowMs, admit ? () => admit(source, nowMs, scope) : undefined);
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
    if (this.#admitClient && !this.#admitClient(client.name, nowMs))
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
