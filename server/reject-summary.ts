/**
 * The daemon's periodic `rejects` line (log.reject_summary_interval): the packets refused since the last one, by
 * reason (server/stats.ts), with the kernel's drops on the knock socket (server/udp-drops.ts) and the kernel
 * prefilter's drops (server/prefilter-count.ts). The counters are read at each line, at start and at stop, never on
 * the packet path. Kept out of server/daemon.ts, which starts, reschedules (reload) and stops it.
 * @module
 */
import type { Logger } from './log.js';
import { PrefilterCount } from './prefilter-count.js';
import type { RejectCounter } from './stats.js';
import type { Timers } from './timers.js';
import type { DropReader } from './udp-drops.js';

export interface RejectSummaryOptions {
  readonly rejects: RejectCounter;
  readonly log: Logger;
  readonly timers: Timers;
  /** Kernel drop counter of the knock socket by local port. */
  readonly readDrops: DropReader;
  /** The kernel prefilter's drop counter (firewall/prefilter.ts); undefined without one to read. */
  readonly readPrefilterDrops: (() => Promise<number | undefined>) | undefined;
  /** Between two lines, ms: the config in force's log.reject_summary_interval (read at each scheduling). */
  readonly intervalMs: () => number;
}

export class RejectSummary {
  /** The kernel prefilter's drops (server/prefilter-count.ts); undefined without a counter to read. */
  readonly prefilter: PrefilterCount | undefined;
  readonly #o: RejectSummaryOptions;
  #summaryTimer: unknown;
  /** The knock socket's port (kept after stop closes it, for the last drop count). */
  #port: number | undefined;
  /** Kernel drop count at the last summary. */
  #dropsBase: number | undefined;

  constructor(opts: RejectSummaryOptions) {
    this.#o = opts;
    const read = opts.readPrefilterDrops;
    this.prefilter = read ? new PrefilterCount(read) : undefined;
  }

  /** Count the kernel drops of the knock socket on `port` from now on (start). */
  watch(port: number | undefined): void {
    this.#port = port;
    this.#dropsBase = port !== undefined ? this.#o.readDrops(port) : undefined;
  }

  schedule(): void {
    const ms = this.#o.intervalMs();
    this.#summaryTimer = this.#o.timers.setTimeout(() => {
      const pf = this.prefilter;
      if (pf === undefined) this.flush();
      else void pf.refresh().then(() => this.flush());
      this.schedule();
    }, ms);
  }

  /** Schedule the next line again, with the interval now in force (reload), unless stopped or not started. */
  reschedule(): void {
    if (this.#summaryTimer !== undefined) {
      this.#o.timers.clearTimeout(this.#summaryTimer);
      this.schedule();
    }
  }

  /** No more lines on the timer (stop). */
  cancel(): void {
    if (this.#summaryTimer !== undefined) this.#o.timers.clearTimeout(this.#summaryTimer);
    this.#summaryTimer = undefined;
  }

  /** Datagrams the kernel prefilter dropped since this daemon started (read now); undefined: no prefilter. */
  async prefilterDrops(): Promise<number | undefined> {
    await this.prefilter?.refresh();
    return this.prefilter?.sinceStart;
  }

  /** Kernel drops on the knock socket since the last call (undefined when /proc cannot tell). */
  #dropsSinceLast(): number | undefined {
    const port = this.#port;
    if (port === undefined) return undefined;
    const total = this.#o.readDrops(port);
    if (total === undefined) return undefined;
    const since = total - (this.#dropsBase ?? 0);
    this.#dropsBase = total;
    return Math.max(0, since);
  }

  /** Log one summary line of the rejects (and kernel drops) counted since the last one, if any. */
  flush(): void {
    const drops = this.#dropsSinceLast();
    const pf = this.prefilter?.takeSinceLast();
    const s = this.#o.rejects.drain();
    if (!s && !drops && !pf) return;
    this.#o.log.info(
      {
        event: 'rejects',
        total: s?.total ?? 0,
        by: s?.by ?? {},
        ...(drops !== undefined ? { drops } : {}),
        ...(pf !== undefined ? { prefilter_drops: pf } : {}),
      },
      drops
        ? 'packets rejected or dropped by the kernel (receive buffer full)'
        : pf
          ? 'packets rejected or dropped by the kernel prefilter'
          : 'packets rejected',
    );
  }
}
