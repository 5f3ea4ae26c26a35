/**
 * The receive path, read like the spec (cf. wireguard-go device/receive.go): every stage rejects with a reason code,
 * cheapest first —
 *
 *   size → format/version → key id → HMAC → decrypt + parse   (the packet format: server/formats/*)
 *   → time window → replay → policy                            (common to every format)
 *
 * Only a packet that passes every stage is remembered by the replay guard. Nothing here throws on hostile input,
 * reads a clock of its own, or touches the network or the firewall.
 * @module
 */
import { type ReplayGuard, checkTime } from '../shared/replay.js';
import type { PacketFormat } from './formats/format.js';
import { type Decision, canonicalAddress, decide } from './policy.js';
import type { RejectReason } from './reasons.js';

export type Verdict = { readonly ok: true; readonly decision: Decision } | { readonly ok: false; readonly code: RejectReason; readonly client?: string };

export interface VerifierOptions {
  readonly formats: readonly PacketFormat[];
  readonly replay: ReplayGuard;
  /** Default grant duration in seconds (for requests that ask for 0). */
  readonly defaultDuration: number;
}

export class Verifier {
  readonly #formats: readonly PacketFormat[];
  readonly #replay: ReplayGuard;
  readonly #defaultDuration: number;

  constructor(opts: VerifierOptions) {
    this.#formats = opts.formats;
    this.#replay = opts.replay;
    this.#defaultDuration = opts.defaultDuration;
  }

  /** `source` is the sender's address as the socket reported it (IPv4-mapped forms are normalised here). */
  verify(buf: Uint8Array, source: string, nowMs: number): Verdict {
    if (!this.#formats.some((f) => buf.length >= f.minSize && buf.length <= f.maxSize)) return { ok: false, code: 'size' };
    const format = this.#formats.find((f) => buf.length >= f.minSize && buf.length <= f.maxSize && f.claims(buf));
    if (!format) return { ok: false, code: 'version' };
    const auth = format.authenticate(buf, nowMs);
    if (!auth.ok) return auth;
    const { client, request, replayId } = auth.value;
    if (checkTime(request.timestamp, nowMs, this.#replay.windowMs) !== 'ok') return { ok: false, code: 'stale', client: client.name };
    if (this.#replay.check(replayId, nowMs) === 'replay') return { ok: false, code: 'replay', client: client.name };
    const src = canonicalAddress(source);
    if (!src) return { ok: false, code: 'source', client: client.name };
    const p = decide(client, request, src, this.#defaultDuration);
    if (!p.ok) return { ok: false, code: p.code, client: client.name };
    this.#replay.remember(replayId, request.timestamp, nowMs);
    return p;
  }
}
