/**
 * The daemon: wires config, packet formats, replay guard, policy, grants and the firewall backend together.
 * Every dependency with a side effect (clock, timers, socket, firewall, replay file, logger, /proc reader, the
 * host's interfaces) is injected, so tests can run the whole receive path in-process with a fake clock and a fake
 * firewall; server/main.ts builds the real ones.
 * @module
 */
import { networkInterfaces } from 'node:os';
import { formatAccess } from '../shared/access.js';
import { subnetBroadcasts } from '../shared/address.js';
import { REWARM_KNOCKS } from '../shared/constants.js';
import type { ReplayGuard } from '../shared/replay.js';
import { ClockSkews } from './clock-skew.js';
import { CodeFloors } from './code-floor.js';
import type { Config } from './config.js';
import type { FirewallBackend, GrantEntry } from './firewall/backend.js';
import { ExpiryWatch } from './client-expiry.js';
import { GrantManager } from './grants.js';
import type { GateHealer } from './heal.js';
import { type Limiters, limitersFor, maxGrantsOf, startHealer, startRotator, verifierFor } from './daemon-parts.js';
import { FastPathNews, type FastPathState, planOf } from './daemon-plan.js';
import { compactIfDue, replayGuardOf } from './daemon-replay.js';
import { type Listener, openUdpListener } from './listener.js';
import type { Logger } from './log.js';
import type { ReplayFile } from './replay-file.js';
import { RejectBook } from './reject-book.js';
import { RejectCounter } from './stats.js';
import { RejectSummary } from './reject-summary.js';
import { type Timers, realTimers } from './timers.js';
import type { SequenceRotator } from './rotation.js';
import { type DropReader, procDropReader } from './udp-drops.js';
import type { Verifier } from './verify.js';
import { rewarm, warmUp } from './warmup.js';
import { traceMark, traceStart, traceTake } from './grant-trace.js';
import { grantLine, revokeLine } from './grant-log.js';
import { endExpiredClients, logExpired, revokeOnStop } from './grant-ends.js';

export interface DaemonDeps {
  readonly config: Config;
  readonly backend: FirewallBackend;
  readonly log: Logger;
  readonly now?: () => number;
  readonly timers?: Timers;
  /** Persistent replay records; omit for memory only (unit tests). */
  readonly replayFile?: ReplayFile;
  /** One-time codes' counter floors (server/code-floor.ts openCodeFloors); omit for memory only (unit tests). */
  readonly codeFloors?: CodeFloors;
  /** Socket seam; default is a real node:dgram listener. */
  readonly listen?: typeof openUdpListener;
  /**
   * The UDP socket systemd passed (socket activation, server/listen-fds.ts): adopted instead of binding
   * `listen.address`/`listen.port`.
   */
  readonly listenFd?: number;
  /** Warm the verification path up at start (default true; unit tests turn it off to stay fast). */
  readonly warmUp?: boolean;
  /** This host's subnet broadcast addresses, never granted (default: from os.networkInterfaces() at construction). */
  readonly broadcasts?: ReadonlySet<string>;
  /** Kernel drop counter of the knock socket by local port (default: /proc/net/udp{,6}). */
  readonly readDrops?: DropReader;
  /**
   * The kernel prefilter's drop counter (firewall/prefilter.ts; default: the backend's `prefilterDrops`, if it has
   * one). Read at each summary, at start and at stop, never on the packet path.
   */
  readonly readPrefilterDrops?: () => Promise<number | undefined>;
}

export { fastPathOf, planOf } from './daemon-plan.js';

export class Daemon {
  readonly rejects = new RejectCounter();
  /** Clock offsets of recent authenticated `stale` knocks (status `clock.stale`, spa-knockd doctor). */
  readonly clockSkews = new ClockSkews();
  readonly grants: GrantManager;
  readonly #d: DaemonDeps;
  readonly #now: () => number;
  readonly #timers: Timers;
  readonly #replay: ReplayGuard;
  readonly #codeFloors: CodeFloors;
  #config: Config;
  #verifier: Verifier;
  /** Per-source and per-client token buckets (`[limit]`, server/ratelimit.ts). */
  #limits: Limiters;
  #maxGrants: ReadonlyMap<string, number>;
  readonly #broadcasts: ReadonlySet<string>;
  #listener: Listener | undefined;
  /** The periodic `rejects` line, with the kernel's drops (server/reject-summary.ts). */
  readonly #summary: RejectSummary;
  /** Logs each change of the kernel fast path's state (server/daemon-plan.ts). */
  readonly #fastNews: FastPathNews;
  /** Re-installs the plan at each time step when the config has rotating sequences. */
  rotator: SequenceRotator | undefined;
  /** Re-installs the gate when the firewall lost it (firewall.heal_interval; server/heal.ts). */
  healer: GateHealer | undefined;
  #ready = false;
  /** Counts refused packets, notes clock skews, says when the replay record cannot be written (reject-book.ts). */
  readonly #refusals: RejectBook;
  /** Promise of the firewall change in flight for the latest packet (tests await it). */
  #pending = new Set<Promise<void>>();
  /** Accepted knocks still to be followed by a warm-up (REWARM_KNOCKS at start). */
  #rewarms = REWARM_KNOCKS;
  /** Ends the grants of clients that reach their `expires` (server/client-expiry.ts). */
  readonly #expiry: ExpiryWatch;

  constructor(deps: DaemonDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#timers = deps.timers ?? realTimers;
    const readDrops = deps.readDrops ?? procDropReader();
    this.#refusals = new RejectBook(this.rejects, this.clockSkews, deps.log);
    const b = deps.backend;
    this.#summary = new RejectSummary({
      rejects: this.rejects,
      log: deps.log,
      timers: this.#timers,
      readDrops,
      readPrefilterDrops:
        deps.readPrefilterDrops ??
        (b.prefilterDrops ? () => b.prefilterDrops?.() ?? Promise.resolve(undefined) : undefined),
      intervalMs: () => this.#config.log.rejectSummaryInterval * 1000,
    });
    this.#fastNews = new FastPathNews(b, deps.log);
    const c = deps.config;
    this.#config = c;
    this.#broadcasts = deps.broadcasts ?? subnetBroadcasts(networkInterfaces());
    // before the real verifier, replay guard and limiters exist: objects made before V8 widens a field (a timestamp
    // where a small integer was) keep the old, deprecated shape, and the warmed code would not run on them
    if (deps.warmUp !== false) warmUp(c, this.#broadcasts, this.#now());
    this.#replay = replayGuardOf(c, deps.replayFile, this.#now());
    this.#limits = limitersFor(c);
    this.#codeFloors = deps.codeFloors ?? new CodeFloors();
    this.#verifier = verifierFor(c, this.#replay, this.#broadcasts, this.#codeFloors, this.#limits);
    this.#maxGrants = maxGrantsOf(c);
    this.grants = new GrantManager({
      maxQueue: () => this.#config.limit.firewallQueue,
      backend: deps.backend,
      now: this.#now,
      timers: this.#timers,
      maxGrantsOf: (client) => this.#maxGrants.get(client) ?? this.#config.grant.maxGrants,
      onExpire: (entries) => logExpired(deps.log, entries),
      onError: (err) => deps.log.error({ event: 'firewall-error', err }, 'revoking an expired grant failed; retrying'),
    });
    this.#expiry = new ExpiryWatch({
      now: this.#now,
      timers: this.#timers,
      onExpired: (clients) => this.#endExpired(clients),
    });
  }

  /** Revoke the live grants of clients past their `expires`, and log it. */
  #endExpired(clients: readonly string[]): void {
    const p = endExpiredClients(this.grants, clients, this.#d.log);
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /**
   * Bind the socket first (a port in use must not leave a firewall change behind), then install the firewall plan
   * and adopt surviving grants; only then are packets handled. Throws a one-line error on failure.
   *
   * A socket passed by systemd (`listenFd`) is already bound, so it is adopted after the firewall is installed: the
   * datagrams that arrived meanwhile (the knock that made systemd start us) wait in its queue and are handled.
   */
  async start(): Promise<void> {
    const c = this.#config;
    const fd = this.#d.listenFd;
    const open = () =>
      (this.#d.listen ?? openUdpListener)({
        address: c.listen.address,
        port: c.listen.port,
        ...(fd !== undefined ? { fd } : {}),
        receiveBuffer: c.listen.receiveBuffer,
        onMessage: (buf, src) => {
          if (this.#ready) this.handle(buf, src);
        },
        onError: (err) => this.#d.log.error({ event: 'socket-error', err }, 'socket error'),
      });
    let listener = fd === undefined ? await open() : undefined;
    try {
      await this.#d.backend.install(planOf(c, this.#now()), this.#now());
      const restored = await this.grants.restore();
      if (restored.length > 0) {
        this.#d.log.info(
          { event: 'restore', grants: restored.length },
          'kept grants that were open before the restart',
        );
      }
      // the prefilter counter's starting point (drops before this start do not count): read before the socket is
      // adopted, since from there on nothing may be awaited until #ready (a queued knock would be ignored)
      await this.#summary.prefilter?.refresh();
      // the gate stays installed if adoption fails: protected ports stay closed (fail-closed)
      listener ??= await open();
    } catch (e) {
      await listener?.close();
      throw e;
    }
    this.#startLoops();
    this.#expiry.watch(c.clients);
    this.#listener = listener;
    this.#summary.watch(listener.port);
    this.#ready = true;
    this.#summary.schedule();
    const fast = this.#fastNews.news();
    this.#d.log.info(
      {
        event: 'start',
        listen: listener.bound,
        // where the socket came from: bound from listen.* in the config, or passed by systemd (socket activation)
        socket: fd === undefined ? 'bound' : `systemd fd ${fd}`,
        backend: this.#d.backend.name,
        ...(fast !== undefined ? { fast_path: fast.on } : {}),
        protect: c.firewall.protect.map(formatAccess),
        clients: c.clients.length,
        receive_buffer: listener.receiveBuffer,
      },
      'spa-knockd listening',
    );
    // Linux sets (and reports) twice the size asked for, after capping the request at net.core.rmem_max (socket(7))
    if (listener.receiveBuffer !== undefined && listener.receiveBuffer < 2 * c.listen.receiveBuffer) {
      this.#d.log.warn(
        { event: 'receive-buffer', asked: c.listen.receiveBuffer, got: listener.receiveBuffer },
        'the kernel gave a smaller receive buffer than listen.receive_buffer; raise net.core.rmem_max',
      );
    }
  }

  #startLoops(): void {
    const { backend, log } = this.#d;
    const plan = (now: number) => planOf(this.#config, now);
    const reinstall = async () => {
      const n = await this.grants.reinstall((now) => backend.install(plan(now), now));
      this.#fastNews.news();
      return n;
    };
    const deps = { backend, plan, now: this.#now, timers: this.#timers, log, reinstall };
    this.rotator = startRotator(this.#config, deps);
    this.healer = startHealer(this.#config, deps);
  }

  async #stopLoops(): Promise<void> {
    await this.rotator?.stop();
    await this.healer?.stop();
    this.rotator = undefined;
    this.healer = undefined;
  }

  /** The config in force (a reload replaces it). */
  get config(): Config {
    return this.#config;
  }

  /**
   * Switch to a new config (SIGHUP; server/reload.ts has checked it needs no restart). Its firewall plan is installed
   * first, with the live grants: if that fails nothing changed and the error is thrown. Then the clients, limits,
   * loops and log level switch over, and the grants of clients no longer in the config are revoked (returned).
   */
  async reload(next: Config): Promise<GrantEntry[]> {
    const { backend } = this.#d;
    await this.#stopLoops();
    try {
      await this.grants.reinstall((now) => backend.install(planOf(next, now), now));
    } catch (e) {
      this.#startLoops();
      throw e;
    }
    this.#config = next;
    this.#fastNews.news();
    this.#limits = limitersFor(next);
    this.#verifier = verifierFor(next, this.#replay, this.#broadcasts, this.#codeFloors, this.#limits);
    this.#maxGrants = maxGrantsOf(next);
    this.#d.log.level = next.log.level;
    this.#startLoops();
    this.#summary.reschedule();
    const names = new Set(next.clients.map((cl) => cl.name));
    const ended = await this.grants.endOwnedBy((owner) => owner !== undefined && !names.has(owner));
    this.#expiry.watch(next.clients);
    return ended;
  }

  get backendName(): string {
    return this.#d.backend.name;
  }

  /** The kernel fast path of the installed plan (status): on, or off and why; undefined when there is none. */
  get fastPathState(): FastPathState {
    return this.#d.backend.fastPathState?.();
  }

  get bound(): string | undefined {
    return this.#listener?.bound;
  }

  /** The hot path: verify synchronously, then apply the firewall change. Never throws, never replies. */
  handle(buf: Uint8Array, source: string): void {
    const t0 = process.hrtime.bigint();
    traceStart();
    const now = this.#now();
    const v = this.#verifier.verify(buf, source, now);
    traceMark('verified');
    const log = this.#d.log;
    if (!v.ok) {
      this.#refusals.refused(v, source, now);
      return;
    }
    this.#refusals.accepted();
    const d = v.decision;
    const oneTimeCode = v.oneTimeCode;
    if (d.type === 'close' && this.grants.full) {
      this.rejects.add('busy');
      return;
    }
    // nothing before the firewall change that does not open the port: compaction (a rewrite of replay.log, rare),
    // the log line and the stats come after it
    const opening = d.type === 'open' ? this.grants.open(d) : undefined;
    const early = traceTake(); // with an idle queue, the trigger is out by now (SPAK_TRACE_GRANT only)
    const work =
      opening !== undefined
        ? opening.then((r) => {
            if (!r.ok) {
              this.rejects.add(r.reason);
              return;
            }
            const latencyMs = Number(process.hrtime.bigint() - t0) / 1e6;
            log.info(
              grantLine(d, r.outcomes, { oneTimeCode, latencyMs, trace: traceTake(early) }),
              'knock accepted: access granted',
            );
          })
        : this.grants.close(d).then((r) => {
            log.info(revokeLine(d, r), 'knock accepted: access revoked');
          });
    const p = work.catch((err: unknown) => {
      this.rejects.add('firewall');
      log.error({ event: 'firewall-error', client: d.client, address: d.address, err }, 'firewall change failed');
    });
    this.#pending.add(p);
    void p.finally(() => {
      this.#pending.delete(p);
      compactIfDue(this.#d.replayFile, this.#replay, this.#now(), this.#d.log);
      // the first real knocks take turns the warm-up could not (the replay file's write, the real clients' objects);
      // V8 throws away the code they do not fit and would not optimize it again at knock rates: warm it once more,
      // now with what they left behind, after their firewall change (server/warmup.ts)
      if (this.#rewarms > 0 && this.#d.warmUp !== false) {
        this.#rewarms--;
        rewarm(this.#config, this.#broadcasts, this.#now, () => this.#ready);
      }
    });
  }

  /** Wait for every firewall change started so far (tests; graceful stop). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  /** Datagrams the kernel prefilter dropped since this daemon started (read now); undefined: no prefilter. */
  prefilterDrops(): Promise<number | undefined> {
    return this.#summary.prefilterDrops();
  }

  /** Log one summary line of the rejects (and kernel drops) counted since the last one, if any. */
  flushRejectSummary(): void {
    this.#summary.flush();
  }

  /**
   * Stop listening and release the backend, without waiting for a backlog: knocks still waiting for the firewall are
   * shed (`busy`, one `shed-on-stop` line), only the change in flight completes. The protection stays in place:
   * protected ports stay closed. With a
   * backend whose kernel does not expire grants (iptables) the live grants are revoked first, since nobody would
   * revoke them on time; nftables grants keep expiring in the kernel by themselves.
   */
  async stop(): Promise<void> {
    this.#summary.cancel();
    this.#ready = false;
    this.#expiry.stop();
    // no backlog is waited for (issue 9): knocks still waiting for the firewall are shed (fail closed), only the
    // change in flight completes; the socket closes first, so a flood stops costing anything
    const shed = this.grants.stop(); // each shed knock is counted `busy` where it was handled
    if (shed > 0)
      this.#d.log.warn({ event: 'shed-on-stop', knocks: shed }, 'stopping: knocks waiting for the firewall dropped');
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.close();
    await this.#stopLoops();
    await this.settled();
    await this.#summary.prefilter?.refresh();
    this.flushRejectSummary();
    await revokeOnStop(this.#d.backend, this.grants, this.#d.log);
    await this.#d.backend.close();
    this.#d.replayFile?.close();
    this.#codeFloors.close();
  }
}
