/**
 * The daemon's running count of the kernel prefilter's drops (server/firewall/prefilter.ts): the kernel counter is read
 * (never on the packet path: at start, at each reject summary, for `status`, at stop) and turned into drops since the
 * daemon started and since the last summary.
 *
 * The kernel counter is not the daemon's: it was there before the daemon started (nft keeps it across restarts), and
 * it starts again from 0 when the prefilter is rewritten (iptables, after a change of its parameters) or turned off
 * and on by a reload. So the count adds up increases: a reading below the last one is a fresh counter, and counts
 * whole. A reading that fails changes nothing (the next one catches up); a prefilter that is gone (undefined) shows as
 * none until it is back.
 * @module
 */

export class PrefilterCount {
  readonly #read: () => Promise<number | undefined>;
  /** The last kernel reading, once there has been one. */
  #last: number | undefined;
  /** Is there a prefilter counter right now (the last read found one)? */
  #present = false;
  #total = 0;
  #atSummary = 0;
  /** Reads may overlap (a status during a summary): only a reading issued after the last one applied is used. */
  #issued = 0;
  #applied = 0;

  constructor(read: () => Promise<number | undefined>) {
    this.#read = read;
  }

  /** Read the kernel counter. The first reading is the starting point: what it held before does not count. */
  async refresh(): Promise<void> {
    const seq = ++this.#issued;
    let n: number | undefined;
    try {
      n = await this.#read();
    } catch {
      return; // as a failed read: nothing changes
    }
    if (seq < this.#applied) return; // older than what is applied already: a lower reading would look like a reset
    this.#applied = seq;
    if (n === undefined) {
      this.#present = false;
      return;
    }
    if (this.#last !== undefined) this.#total += n >= this.#last ? n - this.#last : n;
    this.#last = n;
    this.#present = true;
  }

  /** Drops since the daemon started (as of the last read); undefined when there is no prefilter counter. */
  get sinceStart(): number | undefined {
    return this.#present ? this.#total : undefined;
  }

  /** Drops since the last call (the reject summary's `prefilter_drops`); undefined when there is no counter. */
  takeSinceLast(): number | undefined {
    if (!this.#present) return undefined; // what it counted before it went shows in the next line after it is back
    const since = this.#total - this.#atSummary;
    this.#atSummary = this.#total;
    return since;
  }
}
