/**
 * The daemon's bookkeeping of a refused packet on the hot path (server/daemon.ts `handle`): count it by reason (the
 * reject summary drains the counter, server/stats.ts), note the clock offset of an authenticated `stale` knock
 * (status `clock.stale`, server/clock-skew.ts), and say once — not per packet — that the replay record (or one-time
 * code floor) cannot be written, and once when it can again. Nothing here throws, replies or logs per packet.
 * @module
 */
import { parseIp } from '../shared/address.js';
import type { ClockSkews } from './clock-skew.js';
import type { Logger } from './log.js';
import type { RejectCounter } from './stats.js';
import type { Verdict } from './verify.js';

export type Refusal = Extract<Verdict, { ok: false }>;

export class RejectBook {
  /** The replay log cannot be written: knocks are refused until a write succeeds again. */
  #stateFailing = false;

  constructor(
    private readonly rejects: RejectCounter,
    private readonly clockSkews: ClockSkews,
    private readonly log: Logger,
  ) {}

  /** Verification refused a packet from `source` at `now`. */
  refused(v: Refusal, source: string, now: number): void {
    this.rejects.add(v.code);
    if (v.offsetMs !== undefined && v.client !== undefined)
      this.clockSkews.record(v.client, parseIp(source, { zone: 'strip' })?.text ?? source, v.offsetMs, now);
    if (v.code === 'state-write' && !this.#stateFailing) {
      this.#stateFailing = true;
      this.log.error(
        { event: 'state-write-error', client: v.client, err: v.error },
        'cannot write the replay record (or one-time code floor): knocks are refused until it can',
      );
    }
  }

  /** Verification accepted a packet (its replay record was written). */
  accepted(): void {
    if (!this.#stateFailing) return;
    this.#stateFailing = false;
    this.log.info({ event: 'state-write-recovered' }, 'replay records can be written again: knocks are accepted');
  }
}
