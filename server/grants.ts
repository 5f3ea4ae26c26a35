/**
 * Active grants: what is open, for whom, until when. Turns a policy decision into firewall calls, and — for backends
 * whose kernel does not expire grants by itself (iptables) — revokes each grant on time. The clock and the timers are
 * injected so tests drive time by hand.
 * @module
 */
import { type Access, sameAccess } from '../shared/access.js';
import type { FirewallBackend, GrantEntry } from './firewall/backend.js';
import { grantKeyString } from './firewall/exec.js';
import type { Decision } from './policy.js';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface GrantManagerOptions {
  readonly backend: FirewallBackend;
  readonly now: () => number;
  readonly timers: Timers;
  /** Called after grants ended on time (revoked by us, or expired in the kernel). */
  readonly onExpire?: (entries: readonly GrantEntry[]) => void;
  /** Called when a timed revoke failed; the manager retries on the next tick. */
  readonly onError?: (err: unknown) => void;
}

interface Live {
  entry: GrantEntry;
  /** Client name; undefined for grants found in the kernel at start. */
  owner: string | undefined;
}

/** One identity for a grant, the same string the backends use. */
const keyOf = grantKeyString;

export class GrantManager {
  readonly #o: GrantManagerOptions;
  readonly #live = new Map<string, Live>();
  #timer: unknown;
  #timerAt = Infinity;
  #stopped = false;

  constructor(opts: GrantManagerOptions) {
    this.#o = opts;
  }

  /** Adopt the grants the kernel already holds (after a restart or a crash). */
  async restore(): Promise<GrantEntry[]> {
    const now = this.#o.now();
    const found = await this.#o.backend.list(now);
    for (const entry of found) this.#live.set(keyOf(entry), { entry, owner: undefined });
    this.#schedule();
    return found;
  }

  /** Open (or extend) what the decision grants. Atomic: on error nothing changed. */
  async open(d: Decision): Promise<GrantEntry[]> {
    const now = this.#o.now();
    const expiresAt = now + d.duration * 1000;
    const entries: GrantEntry[] = d.accesses.map((access) => ({ family: d.family, address: d.address, access, expiresAt }));
    await this.#o.backend.grant(entries, now);
    for (const entry of entries) this.#live.set(keyOf(entry), { entry, owner: d.client });
    this.#schedule();
    return entries;
  }

  /** Revoke what the decision names, except grants that belong to another client. */
  async close(d: Decision): Promise<Omit<GrantEntry, 'expiresAt'>[]> {
    const targets = d.accesses
      .map((access) => ({ family: d.family, address: d.address, access }))
      .filter((t) => {
        const l = this.#live.get(keyOf(t));
        return l === undefined || l.owner === undefined || l.owner === d.client;
      });
    if (targets.length === 0) return [];
    await this.#o.backend.revoke(targets);
    for (const t of targets) this.#live.delete(keyOf(t));
    this.#schedule();
    return targets;
  }

  /** Live grants (not yet expired by `now`). */
  active(): { entry: GrantEntry; owner: string | undefined }[] {
    const now = this.#o.now();
    return [...this.#live.values()].filter((l) => l.entry.expiresAt > now).map((l) => ({ ...l }));
  }

  /** Is this (address, access) granted right now? */
  isOpen(address: string, access: Access): boolean {
    const now = this.#o.now();
    for (const l of this.#live.values()) if (l.entry.address === address && sameAccess(l.entry.access, access) && l.entry.expiresAt > now) return true;
    return false;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#stopped) return;
    let next = Infinity;
    for (const l of this.#live.values()) next = Math.min(next, l.entry.expiresAt);
    if (next === this.#timerAt && this.#timer !== undefined) return;
    if (this.#timer !== undefined) this.#o.timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = next;
    if (next === Infinity) return;
    const delay = Math.max(0, next - this.#o.now());
    this.#timer = this.#o.timers.setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      void this.#tick();
    }, delay);
  }

  async #tick(): Promise<void> {
    const now = this.#o.now();
    const due = [...this.#live.entries()].filter(([, l]) => l.entry.expiresAt <= now);
    if (due.length === 0) return this.#schedule();
    const entries = due.map(([, l]) => l.entry);
    if (!this.#o.backend.kernelExpiry) {
      try {
        await this.#o.backend.revoke(entries.map(({ family, address, access }) => ({ family, address, access })));
      } catch (err) {
        this.#o.onError?.(err);
        // retry in a second; the entries stay listed so they are not forgotten
        if (!this.#stopped) {
          this.#timer = this.#o.timers.setTimeout(() => {
            this.#timer = undefined;
            void this.#tick();
          }, 1000);
          this.#timerAt = now + 1000;
        }
        return;
      }
    }
    for (const [k, l] of due) if (this.#live.get(k) === l) this.#live.delete(k);
    this.#o.onExpire?.(entries);
    this.#schedule();
  }
}
