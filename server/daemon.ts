/**
 * The daemon: wires config, packet formats, replay guard, policy, grants and the firewall backend together.
 * Every dependency with a side effect (clock, timers, socket, firewall, replay file, logger) is injected, so tests
 * can run the whole receive path in-process with a fake clock and a fake firewall; server/main.ts builds the real ones.
 * @module
 */
import { formatAccess } from '../shared/access.js';
import { ReplayGuard } from '../shared/replay.js';
import type { Config } from './config.js';
import type { FirewallBackend, FirewallPlan, GrantEntry } from './firewall/backend.js';
import { Spak1Format } from './formats/spak1.js';
import { GrantManager, type Timers, realTimers } from './grants.js';
import { type Listener, openUdpListener } from './listener.js';
import type { Logger } from './log.js';
import type { ReplayFile } from './replay-file.js';
import { RejectCounter } from './stats.js';
import { Verifier } from './verify.js';
import { warmUp } from './warmup.js';

export interface DaemonDeps {
  readonly config: Config;
  readonly backend: FirewallBackend;
  readonly log: Logger;
  readonly now?: () => number;
  readonly timers?: Timers;
  /** Persistent replay records; omit for memory only (unit tests). */
  readonly replayFile?: ReplayFile;
  /** Socket seam; default is a real node:dgram listener. */
  readonly listen?: typeof openUdpListener;
  /** Warm the verification path up at start (default true; unit tests turn it off to stay fast). */
  readonly warmUp?: boolean;
}

export function planOf(config: Config): FirewallPlan {
  return { protect: config.firewall.protect };
}

const fmtEntries = (entries: readonly Pick<GrantEntry, 'access'>[]) => entries.map((e) => formatAccess(e.access));

export class Daemon {
  readonly rejects = new RejectCounter();
  readonly grants: GrantManager;
  readonly #d: DaemonDeps;
  readonly #now: () => number;
  readonly #timers: Timers;
  readonly #replay: ReplayGuard;
  readonly #verifier: Verifier;
  #listener: Listener | undefined;
  #summaryTimer: unknown;
  #ready = false;
  /** Promise of the firewall change in flight for the latest packet (tests await it). */
  #pending = new Set<Promise<void>>();

  constructor(deps: DaemonDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#timers = deps.timers ?? realTimers;
    const c = deps.config;
    const now = this.#now();
    const rf = deps.replayFile;
    this.#replay = new ReplayGuard({
      windowMs: c.replay.window * 1000,
      initial: rf ? rf.load(now) : [],
      ...(rf ? { persist: (r) => rf.append(r) } : {}),
    });
    this.#verifier = new Verifier({
      formats: [new Spak1Format(c.clients, c.replay.window * 1000)],
      replay: this.#replay,
      defaultDuration: c.grant.duration,
    });
    this.grants = new GrantManager({
      backend: deps.backend,
      now: this.#now,
      timers: this.#timers,
      onExpire: (entries) => {
        for (const e of entries) {
          deps.log.info({ event: 'expire', address: e.address, accesses: fmtEntries([e]) }, 'grant expired');
        }
      },
      onError: (err) => deps.log.error({ event: 'firewall-error', err: (err as Error).message }, 'revoking an expired grant failed; retrying'),
    });
  }

  /**
   * Bind the socket first (a port in use must not leave a firewall change behind), then install the firewall plan
   * and adopt surviving grants; only then are packets handled. Throws a one-line error on failure.
   */
  async start(): Promise<void> {
    const c = this.#d.config;
    const listener = await (this.#d.listen ?? openUdpListener)({
      address: c.listen.address,
      port: c.listen.port,
      onMessage: (buf, src) => {
        if (this.#ready) this.handle(buf, src);
      },
      onError: (err) => this.#d.log.error({ event: 'socket-error', err: err.message }, 'socket error'),
    });
    try {
      await this.#d.backend.install(planOf(c), this.#now());
      const restored = await this.grants.restore();
      if (restored.length > 0) {
        this.#d.log.info({ event: 'restore', grants: restored.length }, 'kept grants that were open before the restart');
      }
    } catch (e) {
      await listener.close();
      throw e;
    }
    if (this.#d.warmUp !== false) warmUp(this.#now());
    this.#listener = listener;
    this.#ready = true;
    this.#scheduleSummary();
    this.#d.log.info(
      {
        event: 'start',
        listen: this.#listener.bound,
        backend: this.#d.backend.name,
        protect: c.firewall.protect.map(formatAccess),
        clients: c.clients.length,
      },
      'spa-knockd listening',
    );
  }

  get bound(): string | undefined {
    return this.#listener?.bound;
  }

  /** The hot path: verify synchronously, then apply the firewall change. Never throws, never replies. */
  handle(buf: Uint8Array, source: string): void {
    const t0 = process.hrtime.bigint();
    const now = this.#now();
    const v = this.#verifier.verify(buf, source, now);
    if (!v.ok) {
      this.rejects.add(v.code);
      return;
    }
    const d = v.decision;
    this.#maybeCompact(now);
    const log = this.#d.log;
    const work =
      d.type === 'open'
        ? this.grants.open(d).then((entries) => {
            const exp = entries[0]?.expiresAt ?? now;
            log.info(
              {
                event: 'grant',
                client: d.client,
                source: d.source,
                address: d.address,
                accesses: fmtEntries(entries),
                duration: d.duration,
                expires: new Date(exp).toISOString(),
                // packet handed to us → firewall change committed (verification + firewall), milliseconds
                latency_ms: Number(process.hrtime.bigint() - t0) / 1e6,
              },
              'knock accepted: access granted',
            );
          })
        : this.grants.close(d).then((entries) => {
            log.info({ event: 'revoke', client: d.client, source: d.source, address: d.address, accesses: fmtEntries(entries) }, 'knock accepted: access revoked');
          });
    const p = work.catch((err: unknown) => {
      this.rejects.add('firewall');
      log.error({ event: 'firewall-error', client: d.client, address: d.address, err: (err as Error).message }, 'firewall change failed');
    });
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** Wait for every firewall change started so far (tests; graceful stop). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  #maybeCompact(now: number): void {
    const rf = this.#d.replayFile;
    if (rf && rf.lines > 2 * this.#replay.size + 1000) rf.compact(this.#replay.records(now));
  }

  #scheduleSummary(): void {
    const ms = this.#d.config.log.rejectSummaryInterval * 1000;
    this.#summaryTimer = this.#timers.setTimeout(() => {
      this.flushRejectSummary();
      this.#scheduleSummary();
    }, ms);
  }

  /** Log one summary line of the rejects counted since the last one (if any). */
  flushRejectSummary(): void {
    const s = this.rejects.drain();
    if (s) this.#d.log.info({ event: 'rejects', total: s.total, by: s.by }, 'packets rejected');
  }

  /**
   * Stop listening and release the backend. The protection stays in place: protected ports stay closed. With a
   * backend whose kernel does not expire grants (iptables) the live grants are revoked first, since nobody would
   * revoke them on time; nftables grants keep expiring in the kernel by themselves.
   */
  async stop(): Promise<void> {
    if (this.#summaryTimer !== undefined) this.#timers.clearTimeout(this.#summaryTimer);
    this.#summaryTimer = undefined;
    this.#ready = false;
    await this.#listener?.close();
    this.#listener = undefined;
    await this.settled();
    this.flushRejectSummary();
    this.grants.stop();
    if (!this.#d.backend.kernelExpiry) {
      const live = this.grants.active().map(({ entry: { family, address, access } }) => ({ family, address, access }));
      if (live.length > 0) {
        try {
          await this.#d.backend.revoke(live);
          this.#d.log.info({ event: 'revoke-on-stop', grants: live.length }, 'revoked live grants on stop');
        } catch (err) {
          this.#d.log.error({ event: 'firewall-error', err: (err as Error).message }, 'revoking grants on stop failed');
        }
      }
    }
    await this.#d.backend.close();
    this.#d.replayFile?.close();
  }
}
