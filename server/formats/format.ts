/**
 * A packet format: how to recognise, authenticate and decrypt one kind of knock. Every format ends in the same
 * `Authenticated` value, which then goes through one path: time window → replay → policy → grant → firewall.
 * spa-knock's own format is `spak1` (server/formats/spak1.ts); fwknop's (server/formats/fwknop.ts) and one-time codes
 * (server/formats/code.ts, which replace time window and replay by a counter floor: `consume`) share the port.
 * @module
 */
import type { KnockRequest } from '../../shared/wire.js';
import type { ClientConfig } from '../config.js';
import type { RejectReason } from '../reasons.js';

export interface Authenticated {
  readonly client: ClientConfig;
  readonly request: KnockRequest;
  /** Unique per packet, stable across retransmissions: the replay record's id. */
  readonly replayId: string;
  /**
   * Present for a format with a replay rule of its own (one-time codes: server/formats/code.ts): the verifier then
   * skips the time-window and replay stages, and calls this once the policy allowed the request, instead of writing a
   * replay record. It records the use durably, and throws (the knock is refused: `state-write`) when it cannot.
   */
  readonly consume?: () => void;
  /** A one-time code's counter (for the grant's log line: which code of the user's list was used). */
  readonly oneTimeCode?: number;
}

export type AuthResult =
  | { readonly ok: true; readonly value: Authenticated }
  | { readonly ok: false; readonly code: RejectReason };

export interface PacketFormat {
  readonly name: string;
  /** Smallest and largest datagram this format can be (bytes). */
  readonly minSize: number;
  readonly maxSize: number;
  /** Cheap test (no crypto) of whether the datagram could be this format. */
  claims(buf: Uint8Array): boolean;
  /**
   * Size, version, key lookup, MAC, decrypt, parse. Never throws on hostile input. `gate` (the per-source limiter,
   * server/ratelimit.ts, through server/verify.ts) is asked once the packet passed the checks that cost no crypto,
   * just before the first MAC: false ends it with reason `rate`.
   */
  authenticate(buf: Uint8Array, nowMs: number, gate?: Gate): AuthResult;
}

/** May this packet's source spend one MAC now? (server/verify.ts SourceGate) */
export interface Gate {
  admit(): boolean;
}
