/**
 * The daemon: wires config, packet formats, replay guard, policy, grants and the firewall backend together.
 * Every dependency with a side effect (clock, timers, socket, firewall, replay file, logger, /proc reader, the
 * host's interfaces) is injected, so tests can run the whole receive path in-process with a fake clock and a fake
 * firewall; server/main.ts builds the real ones.
 * @module
 */
import { networkInterfaces } from 'node:os';
import { formatAccess } from '../shared/access.js';
import { grantSource, subnetBroadcasts } from '../shared/address.js';
import { REPLAY_COMPACT_FACTOR, REPLAY_COMPACT_SLACK } from '../shared/constants.js';
import { ReplayGuard } from '../shared/replay.js';
import { ClockSkews } from './clock-skew.js';
import { CodeFloors } from './code-floor.js';
import type { Config } from './config.js';
import { type FirewallBackend, type FirewallPlan, type GrantEntry, keyFields } from './firewall/backend.js';
import { ExpiryWatch } from './client-expiry.js';
import { prefilterOf } from './firewall/prefilter.js';
import { FAST_PATH_MAX_DURATIONS, type FastPathPlan } from './firewall/nft-fastpath.js';
import { GrantManager } from './grants.js';
import { PrefilterCount } from './prefilter-count.js';
import type { GateHealer } from './heal.js';
import { type Limiters, limitersFor, maxGrantsOf, startHealer, startRotator, verifierFor } from './daemon-parts.js';
import { type Listener, openUdpListener } from './listener.js';
import type { Logger } from './log.js';
import type { ReplayFile } from './replay-file.js';
import { RejectBook } from './reject-book.js';
import { RejectCounter } from './stats.js';
import { type Timers, realTimers } from './timers.js';
import type { SequenceRotator } from './rotation.js';
import { sequencesAt } from './sequence-config.js';
import { type DropReader, procDropReader } from './udp-drops.js';
import type { Verifier } from './verify.js';
import { warmUp } from './warmup.js';
import { traceMark, traceStart, traceTake } from './grant-trace.js';
import { fmtEntries, grantLine, revokeLine } from './grant-log.js';

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

/** The firewall plan of a config at `nowMs` (rotating sequences: the current and the previous time step's). */
export function planOf(config: Config, nowMs: number = Date.now()): FirewallPlan {
  return {
    protect: config.firewall.protect,
    silencePortUnreachable: config.firewall.silencePortUnreachable,
    sequences: sequencesAt(config.sequences, config.rotatingSequences, nowMs),
    prefilter: prefilterOf(config.listen.port, config.limit),
    // "auto" asks only the backend that has one (nftables); iptables has no fast path (config.ts refuses `true`)
    ...(config.firewall.fastPath === true ||
    (config.firewall.fastPath === 'auto' && config.firewall.backend === 'nftables')
      ? { fastPath: fastPathOf(config) }
      : {}),
  };
}

/**
 * The kernel fast path's plan (server/firewall/nft-fastpath.ts): a trigger port for each default grant duration a
 * knock gets: grant.duration, then the shorter ones some clients' max_duration clamps it to (at most
 * FAST_PATH_MAX_DURATIONS in all). Optional under `fast_path = "auto"`.
 */
export function fastPathOf(config: Config): FastPathPlan {
  const d = config.grant.duration;
  const others = new Set(config.clients.map((cl) => Math.min(d, cl.maxDuration)).filter((x) => x !== d));
  const durationsS = [d, ...[...others].sort((a, b) => a - b)].slice(0, FAST_PATH_MAX_DURATIONS);
  return {
    firstPort: config.firewall.fastPathPort,
    durationsS,
    uid: process.getuid?.() ?? 0,
    ...(config.firewall.fastPath === 'auto' ? { optional: true } : {}),
  };
}

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
  readonly #readDrops: DropReader;
  #listener: Listener | undefined;
  /** The knock socket's port (kept after stop closes it, for the last drop count). */
  #port: number | undefined;
  #summaryTimer: unknown;
  /** The kernel fast path's state last logged ('on', or the reason it is off), so each change is logged once. */
  #fastLogged: string | undefined;
  /** Re-installs the plan at each time step when the config has rotating sequences. */
  rotator: SequenceRotator | undefined;
  /** Re-installs the gate when the firewall lost it (firewall.heal_interval; server/heal.ts). */
  healer: GateHealer | undefined;
  #ready = false;
  /** Counts refused packets, notes clock skews, says when the replay record cannot be written (reject-book.ts). */
  readonly #refusals: RejectBook;
  /** Kernel drop count at the last summary. */
  #dropsBase: number | undefined;
  /** The kernel prefilter's drops (server/prefilter-count.ts); undefined without a counter to read. */
  readonly #prefilter: PrefilterCount | undefined;
  /** Promise of the firewall change in flight for the latest packet (tests await it). */
  #pending = new Set<Promise<void>>();
  /** Ends the grants of clients that reach their `expires` (server/client-expiry.ts). */
  readonly #expiry: ExpiryWatch;

  constructor(deps: DaemonDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#timers = deps.timers ?? realTimers;
    this.#readDrops = deps.readDrops ?? procDropReader();
    this.#refusals = new RejectBook(this.rejects, this.clockSkews, deps.log);
    const b = deps.backend;
    const read =
      deps.readPrefilterDrops ??
      (b.prefilterDrops ? () => b.prefilterDrops?.() ?? Promise.resolve(undefined) : undefined);
    this.#prefilter = read ? new PrefilterCount(read) : undefined;
    const c = deps.config;
    this.#config = c;
    const now = this.#now();
    const rf = deps.replayFile;
    const windowMs = c.replay.window * 1000;
    this.#replay = new ReplayGuard({
      windowMs,
      initial: rf ? rf.load(now, windowMs) : [],
      floor: rf?.floor ?? 0,
      ...(rf ? { persist: (r) => rf.append(r) } : {}),
    });
    this.#broadcasts = deps.broadcasts ?? subnetBroadcasts(networkInterfaces());
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
      onExpire: (entries) => {
        for (const e of entries) {
          deps.log.info(
            { event: 'expire', address: grantSource(e), accesses: fmtEntries([e]), owner: e.owner },
            'grant expired',
          );
        }
      },
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
    const names = new Set(clients);
    const log = this.#d.log;
    const p = this.grants
      .endOwnedBy((owner) => owner !== undefined && names.has(owner))
      .then(
        (ended) =>
          // info when grants ended; a client long expired (seen again at each reload) only at debug
          log[ended.length > 0 ? 'info' : 'debug'](
            {
              event: 'client-expired',
              clients,
              ended: ended.map((g) => ({ client: g.owner, address: g.address, access: formatAccess(g.access) })),
            },
            'client past its expires date: knocks refused, grants ended',
          ),
        (err: unknown) =>
          log.error({ event: 'firewall-error', clients, err }, 'ending the grants of an expired client failed'),
      );
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
      await this.#prefilter?.refresh();
      // the gate stays installed if adoption fails: protected ports stay closed (fail-closed)
      listener ??= await open();
    } catch (e) {
      await listener?.close();
      throw e;
    }
    this.#startLoops();
    this.#expiry.watch(c.clients);
    if (this.#d.warmUp !== false) warmUp(this.#now());
    this.#listener = listener;
    this.#port = listener.port;
    this.#dropsBase = listener.port !== undefined ? this.#readDrops(listener.port) : undefined;
    this.#ready = true;
    this.#scheduleSummary();
    const fast = this.#fastPathNews();
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

  /**
   * Log a change of the kernel fast path's state after an install (start, reload, heal): a warning once when an
   * optional one (`fast_path = "auto"`) could not be set up, with why; a line when it comes (back) on. Returns it.
   */
  #fastPathNews(): { readonly on: boolean; readonly reason?: string } | undefined {
    const state = this.#d.backend.fastPathState?.();
    const key = state === undefined ? undefined : state.on ? 'on' : state.reason;
    if (key !== this.#fastLogged) {
      if (state !== undefined && !state.on)
        this.#d.log.warn(
          { event: 'fast-path-off', reason: state.reason },
          'kernel fast path off; grants go through nft -i alone',
        );
      else if (state?.on && this.#fastLogged !== undefined)
        this.#d.log.info({ event: 'fast-path-on' }, 'kernel fast path on');
    }
    this.#fastLogged = key;
    return state;
  }

  #startLoops(): void {
    const { backend, log } = this.#d;
    const plan = (now: number) => planOf(this.#config, now);
    const reinstall = async () => {
      const n = await this.grants.reinstall((now) => backend.install(plan(now), now));
      this.#fastPathNews();
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
    this.#fastPathNews();
    this.#limits = limitersFor(next);
    this.#verifier = verifierFor(next, this.#replay, this.#broadcasts, this.#codeFloors, this.#limits);
    this.#maxGrants = maxGrantsOf(next);
    this.#d.log.level = next.log.level;
    this.#startLoops();
    if (this.#summaryTimer !== undefined) {
      this.#timers.clearTimeout(this.#summaryTimer);
      this.#scheduleSummary();
    }
    const names = new Set(next.clients.map((cl) => cl.name));
    const ended = await this.grants.endOwnedBy((owner) => owner !== undefined && !names.has(owner));
    this.#expiry.watch(next.clients);
    return ended;
  }

  get backendName(): string {
    return this.#d.backend.name;
  }

  /** The kernel fast path of the installed plan (status): on, or off and why; undefined when there is none. */
  get fastPathState(): { readonly on: boolean; readonly reason?: string } | undefined {
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
    const work =
      d.type === 'open'
        ? this.grants.open(d).then((r) => {
            if (!r.ok) {
              this.rejects.add(r.reason);
              return;
            }
            const latencyMs = Number(process.hrtime.bigint() - t0) / 1e6;
            log.info(
              grantLine(d, r.outcomes, { oneTimeCode, latencyMs, trace: traceTake() }),
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
      this.#maybeCompact(this.#now());
    });
  }

  /** Wait for every firewall change started so far (tests; graceful stop). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  #maybeCompact(now: number): void {
    const rf = this.#d.replayFile;
    if (!rf || rf.lines <= REPLAY_COMPACT_FACTOR * this.#replay.size + REPLAY_COMPACT_SLACK) return;
    try {
      rf.compact(this.#replay.state(now));
    } catch (err) {
      // appends go on to the old file; compaction is retried on the next accepted knock
      this.#d.log.error({ event: 'state-write-error', err }, 'compacting the replay log failed');
    }
  }

  #scheduleSummary(): void {
    const ms = this.#config.log.rejectSummaryInterval * 1000;
    this.#summaryTimer = this.#timers.setTimeout(() => {
      const pf = this.#prefilter;
      if (pf === undefined) this.flushRejectSummary();
      else void pf.refresh().then(() => this.flushRejectSummary());
      this.#scheduleSummary();
    }, ms);
  }

  /** Datagrams the kernel prefilter dropped since this daemon started (read now); undefined: no prefilter. */
  async prefilterDrops(): Promise<number | undefined> {
    await this.#prefilter?.refresh();
    return this.#prefilter?.sinceStart;
  }

  /** Kernel drops on the knock socket since the last call (undefined when /proc cannot tell). */
  #dropsSinceLast(): number | undefined {
    const port = this.#port;
    if (port === undefined) return undefined;
    const total = this.#readDrops(port);
    if (total === undefined) return undefined;
    const since = total - (this.#dropsBase ?? 0);
    this.#dropsBase = total;
    return Math.max(0, since);
  }

  /** Log one summary line of the rejects (and kernel drops) counted since the last one, if any. */
  flushRejectSummary(): void {
    const drops = this.#dropsSinceLast();
    const pf = this.#prefilter?.takeSinceLast();
    const s = this.rejects.drain();
    if (!s && !drops && !pf) return;
    this.#d.log.info(
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

  /**
   * Stop listening and release the backend, without waiting for a backlog: knocks still waiting for the firewall are
   * shed (`busy`, one `shed-on-stop` line), only the change in flight completes. The protection stays in place:
   * protected ports stay closed. With a
   * backend whose kernel does not expire grants (iptables) the live grants are revoked first, since nobody would
   * revoke them on time; nftables grants keep expiring in the kernel by themselves.
   */
  async stop(): Promise<void> {
    if (this.#summaryTimer !== undefined) this.#timers.clearTimeout(this.#summaryTimer);
    this.#summaryTimer = undefined;
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
    await this.#prefilter?.refresh();
    this.flushRejectSummary();
    if (!this.#d.backend.kernelExpiry) {
      const live = this.grants.active().map(({ entry }) => keyFields(entry));
      if (live.length > 0) {
        try {
          await this.#d.backend.revoke(live);
          this.#d.log.info({ event: 'revoke-on-stop', grants: live.length }, 'revoked live grants on stop');
        } catch (err) {
          this.#d.log.error({ event: 'firewall-error', err }, 'revoking grants on stop failed');
        }
      }
    }
    await this.#d.backend.close();
    this.#d.replayFile?.close();
    this.#codeFloors.close();
  }
}
