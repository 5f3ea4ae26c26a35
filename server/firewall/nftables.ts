/**
 * nftables backend: one table of our own, grants in kernel-expiring sets (ruleset: server/firewall/nft-script.ts).
 *
 * - install: one `nft -f -` transaction that `add`s table/sets/chains (keeps existing ones, so unexpired grants in
 *   allow4/allow6 survive a restart), refills `protect` and the chains. If that fails on an incompatible existing
 *   table (e.g. a set declared differently by another version), a second transaction replaces the whole table and
 *   re-adds the grants read from it with their remaining timeouts and owners. Then install reads the table back with
 *   the same command `list`/`check` use; if that fails, what this install created is removed (a table that was not
 *   there before is deleted by handle; one that was is left) and the error names `firewall.table`.
 * - grant: `add element` on an existing element does NOT change its comment (nft 1.0.6, Linux 6.18, measured), and
 *   refreshes its timeout only on kernels where the probe at install says so (Linux 6.x). So a grant is one
 *   `add element … timeout T comment "owner"` where that is enough — the element cannot exist (the table was read
 *   whole at install/list and this object has not written it since), or it is the same owner's own element and
 *   `add` refreshes — and otherwise `add; delete; add … timeout T comment "owner"` in one transaction: the element
 *   ends with the new timeout and owner either way. Which case applies comes from a mirror of what this object read
 *   and wrote; an element whose change failed is "uncertain" and always takes the three-command path, and so does
 *   every element not known when classic sequences are installed (their rules add grants the mirror never sees).
 * - revoke: `add element …; delete element …` in one transaction, so an absent element is not an error.
 * - prefix grants (issue 10) go to the interval sets allow4p/allow6p the same way (nft-script.ts); the grant manager
 *   keeps them from overlapping, which those sets refuse.
 * - grant/revoke go through one long-lived `nft -i` child (server/firewall/nft-shell.ts); a line of `;`-separated
 *   commands is one nft batch, i.e. one atomic transaction. Nothing that does not open the port runs before the line
 *   is written (the mirror's pruning runs after the commit).
 * - kernel fast path (`firewall.fast_path`, server/firewall/nft-fastpath.ts): a one-address grant whose (protocol,
 *   duration) has a trigger port is first added by the kernel itself from a datagram the daemon sends, then confirmed
 *   (and given its owner) by the usual transaction; a failed transaction is a failed grant as before.
 * - changes run one at a time (SerialQueue); the read-only `check` (the healer's, every heal_interval) does not take
 *   the queue, so it never delays a knock (docs/benchmarks.md).
 * @module
 */
import { grantKeyString } from '../../shared/address.js';
import { CONFIRM_HOLD_MS, MIN_GRANT_MS, NFT_RECYCLE_AFTER, NFT_TIMEOUT_MS } from '../../shared/constants.js';
import type { FirewallBackend, FirewallPlan, GrantEntry, Hold } from './backend.js';
import { tableNameProblem } from './names.js';
import { type NftListedGrant, type NftTableListing, parseNftTable } from './nft-json.js';
import { installLines, replaceLines } from './nft-script.js';
import { prefilterSetsAsPlanned } from './nft-prefilter.js';
import { staleSequenceObjects } from './nft-sequences.js';
import { traceMark } from '../grant-trace.js';
import { FastPathHolder } from './nft-fastpath-holder.js';
import { grantCommands, revokeCommands } from './nft-grant-text.js';
import { NftMirror } from './nft-mirror.js';
import { NftOneshot } from './nft-oneshot.js';
import { NftReader } from './nft-reader.js';
import { NftShell } from './nft-shell.js';
import { SerialQueue, run } from './process.js';
import { type CheckedPlan, checkGrants, checkKeys, checkNow, checkPlan, firewallError } from './validate.js';

export interface NftablesOptions {
  /** Table name in family `inet`. Default `spa_knock`. Checked by names.ts `tableNameProblem`. */
  readonly table?: string;
  /** Command prefix for every command, e.g. `['ip', 'netns', 'exec', 'NS']` (tests). */
  readonly wrap?: readonly string[];
  /**
   * `persistent` (default): grant/revoke are written to one long-lived `nft -i` child.
   * `oneshot`: every change spawns `nft -f -`. Install and uninstall always spawn; after an install in `persistent`
   * mode the reads (check, list, the prefilter's counter) go through long-lived read sessions (nft-reader.ts).
   */
  readonly mode?: 'persistent' | 'oneshot';
  /** Per-command timeout in ms. Default NFT_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** Replace the long-lived child after this many requests (bounds nft's in-memory history). Default NFT_RECYCLE_AFTER. */
  readonly recycleAfter?: number;
  /** The table-name rule (default names.ts `tableNameProblem`); a seam for the test that installs a keyword name. */
  readonly nameProblem?: (name: string) => string | undefined;
}

export class NftablesBackend implements FirewallBackend {
  readonly name = 'nftables' as const;
  readonly kernelExpiry = true;
  readonly table: string;
  private readonly wrap: readonly string[];
  private readonly mode: 'persistent' | 'oneshot';
  private readonly timeoutMs: number;
  private readonly recycleAfter: number;
  private readonly queue = new SerialQueue();
  private shell: NftShell | undefined;
  private addRefreshes = false;
  /** Owner and expiry of the elements this object knows the kernel holds (server/firewall/nft-mirror.ts). */
  private readonly mirror = new NftMirror();
  /** Bumped by every install/uninstall: a check that saw it change while reading reads again (see check()). */
  private layoutGen = 0;
  /** An install/uninstall is running in the queue. */
  private layoutBusy = false;
  /** The kernel fast path's trigger sockets, or why it is off (nft-fastpath-holder.ts). */
  private readonly fast = new FastPathHolder();
  /** The one-process nft commands on our table (nft-oneshot.ts). */
  private readonly cli: NftOneshot;

  constructor(opts: NftablesOptions = {}) {
    const table = opts.table ?? 'spa_knock';
    const problem = (opts.nameProblem ?? ((n: string) => tableNameProblem('nftables', n)))(table);
    if (typeof table !== 'string' || problem !== undefined) {
      throw firewallError(
        `invalid firewall.table ${JSON.stringify(String(table)).slice(0, 40)}: ${problem ?? 'not a string'}`,
      );
    }
    if (opts.wrap !== undefined && !opts.wrap.every((w) => typeof w === 'string')) {
      throw firewallError('invalid wrap: not a list of strings');
    }
    this.table = table;
    this.wrap = [...(opts.wrap ?? [])];
    this.mode = opts.mode ?? 'persistent';
    this.timeoutMs = opts.timeoutMs ?? NFT_TIMEOUT_MS;
    this.recycleAfter = opts.recycleAfter ?? NFT_RECYCLE_AFTER;
    this.cli = new NftOneshot(this.table, this.wrap, this.timeoutMs);
  }

  /** Pid of the long-lived `nft -i` child, if running (for diagnostics and tests). */
  get helperPid(): number | undefined {
    return this.shell?.pid;
  }

  /** For tests: kill the long-lived child as if it had crashed. */
  async killHelper(): Promise<void> {
    await this.shell?.kill();
  }

  /** Does a plain `add element` refresh an existing element's timeout here (probed at install)? */
  get refreshesWithAdd(): boolean {
    return this.addRefreshes;
  }

  private nftArgv(args: readonly string[]): string[] {
    return this.cli.argv(args);
  }

  private get t(): string {
    return `inet ${this.table}`;
  }

  // ------------------------------------------------------------------------------------------------ install
  /** Pids of the read sessions' `nft -i` children, while running (tests: the healer's check starts no process). */
  get readerPids(): readonly (number | undefined)[] {
    const s = this.cli.session;
    return s ? [s.json.pid, s.text.pid] : [];
  }

  async install(plan: FirewallPlan, now: number): Promise<void> {
    const checked = checkPlan(plan);
    checkNow(now);
    // the trigger ports first: if one cannot be bound, nothing is installed (no rule listens to a port we do not hold)
    await this.queue.run(async () => {
      // the fast path's sockets live in this process's namespace: it needs no `wrap`, and `nft -i` to confirm grants
      const installed = await this.fast.prepare(checked, this.wrap.length === 0 && this.mode === 'persistent');
      await this.changingLayout(() => this.installNow(installed, now));
    });
    await this.queue.run(() => this.prepareShell());
    // the gate is ours now: its reads (the healer's check, the prefilter's counter) go through long-lived sessions,
    // not a fork of the daemon each (nft-reader.ts)
    if (this.mode === 'persistent')
      this.cli.session ??= {
        json: new NftReader(this.nftArgv(['-j', '-i']), this.timeoutMs, this.recycleAfter),
        text: new NftReader(this.nftArgv(['-i']), this.timeoutMs, this.recycleAfter),
      };
  }

  /**
   * An optional fast path left out because a trigger port was taken: try to bind its ports again. True when they are
   * held now; the next install of the same plan then puts its rules in (and fastPathState() says on after it). The
   * healer calls this after a clean check, so a port freed later brings the fast path back without a reload.
   */
  bindFastPath(): Promise<boolean> {
    return this.queue.run(() => this.fast.bind());
  }

  /**
   * The kernel fast path of the installed plan: `on`, or off and why (an optional one that could not be set up);
   * undefined when the plan has none.
   */
  fastPathState(): { readonly on: boolean; readonly reason?: string } | undefined {
    return this.fast.state();
  }

  private async installNow(plan: CheckedPlan, now: number): Promise<void> {
    const existed = (await this.cli.tableHandle()) !== undefined;
    const old = existed ? await this.readBack('it exists but') : undefined; // unreadable: change nothing
    const stale = staleSequenceObjects(old?.chains.keys() ?? [], old?.sets.keys() ?? [], plan.sequences);
    this.mirror.kernelAddsGrants = plan.sequences.length > 0;
    // the prefilter's per-source sets are kept (with what they hold) when already as planned (nft-prefilter.ts)
    const keep = old !== undefined && prefilterSetsAsPlanned(old, plan.prefilter);
    const first = await this.cli.runScript(installLines(this.table, plan, stale, keep));
    const failed = (msg: string): Error =>
      firewallError(`nft install of table ${this.t} (firewall.table) failed: ${msg}`);
    if (!first.ok) {
      if (first.kind === 'process' || !existed) throw failed(first.message);
      // Maybe an incompatible table of the same name (older/newer layout): replace it whole, keeping the grants.
      const listed = await this.cli.readGrants(now);
      const second = await this.cli.runScript(replaceLines(this.table, plan, listed ?? [], MIN_GRANT_MS));
      if (!second.ok) throw failed(first.message);
    }
    let grants: NftListedGrant[];
    try {
      grants = (await this.cli.readGrants(now)) ?? [];
    } catch (err) {
      if (!existed) await this.cli.deleteByHandle();
      throw firewallError(
        `nft table ${this.t} was installed but cannot be read back (${(err as Error).message}); ` +
          `${existed ? 'the table was there before and is left' : 'it was removed again'}: choose another firewall.table`,
      );
    }
    this.mirror.remember(grants, true);
  }

  /** Read the table with the command `list`/`check` use; throws one line naming firewall.table. */
  private async readBack(context: string): Promise<NftTableListing | undefined> {
    try {
      return await this.cli.listTable();
    } catch (err) {
      throw firewallError(
        `nft table ${this.t}: ${context} cannot be read (${(err as Error).message}): choose another firewall.table`,
      );
    }
  }

  /**
   * Persistent mode: start the `nft -i` child now rather than at the first knock, and find out whether this kernel's
   * `add element` replaces the timeout of an existing element (Linux 6.x does). The probe uses a scratch set that no
   * rule references, so it has no effect on traffic. Any failure here only means the slower, always-correct path.
   */
  private async prepareShell(): Promise<void> {
    if (this.mode !== 'persistent') return;
    this.shell ??= new NftShell(this.nftArgv(['-i']), this.timeoutMs, this.recycleAfter);
    this.addRefreshes = false;
    const set = `${this.t} spak_probe`;
    const made = await this.shell.transact(
      `add set ${set} { type ipv4_addr; flags timeout; }; add element ${set} { 127.0.0.1 timeout 10s }`,
    );
    if (!made.ok) return;
    try {
      const again = await this.shell.transact(`add element ${set} { 127.0.0.1 timeout 1h }`);
      if (!again.ok) return;
      const r = await run(this.nftArgv(['-j', 'list', 'table', 'inet', this.table]), { timeoutMs: this.timeoutMs });
      const probe = r.code === 0 ? parseNftTable(r.stdout, 'inet', this.table).sets.get('spak_probe') : undefined;
      this.addRefreshes = (probe?.elems[0]?.expiresS ?? 0) > 60;
    } finally {
      await this.shell.transact(`delete set ${set}`);
    }
  }

  // ------------------------------------------------------------------------------------------------ grant / revoke
  async grant(entries: readonly GrantEntry[], now: number, hold?: Hold): Promise<void> {
    traceMark('backend-entered');
    // the fast path first: the kernel adds (or refreshes) what it can now; the transaction below, which also stores
    // the owner, is its confirmation. Callers never overlap changes (the grant manager serialises them), so no revoke
    // of the same element is queued before it. It goes before checkGrants (~0.1 ms with the code cold), which guards
    // nft *text*: a trigger checks what makes the element itself (nft-fastpath.ts trigger), and an entry that
    // checkGrants then refuses (none does: the grant manager's entries are validated) fails as `firewall`.
    const triggered = this.fast.trigger(entries, now);
    if (triggered.length > 0) traceMark('triggered');
    const grants = checkGrants(entries);
    checkNow(now);
    if (grants.length === 0) return;
    // every port is open already: the confirmation waits a moment (CONFIRM_HOLD_MS, less when the grant manager has
    // other work), so that nft's and the kernel's work on it (1–2 ms of CPU) does not compete with the connection the
    // client is opening right then (docs/performance.md: 0.24–0.32 ms sooner from the client side, paired runs)
    if (hold !== undefined && triggered.length === grants.length) await hold(CONFIRM_HOLD_MS);
    traceMark('grant-called');
    const made = new Set(triggered.map(grantKeyString));
    await this.queue.run(async () => {
      traceMark('queue-entered');
      const fast = this.addRefreshes && this.mode === 'persistent';
      const { cmds, applied } = grantCommands(this.t, grants, now, this.mirror, made, fast);
      traceMark('cmds-built');
      try {
        await this.change('grant', cmds);
      } catch (err) {
        // nft may have died after committing: what these elements hold is not known any more
        this.mirror.uncertain(applied, (g) => g.expiresAt);
        throw err;
      }
      this.mirror.remember(applied, false);
      this.mirror.prune(now); // after the change: nothing that does not open the port goes before it
    });
  }

  async revoke(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): Promise<void> {
    const keys = checkKeys(entries);
    if (keys.length === 0) return;
    const cmds = revokeCommands(this.t, keys);
    await this.queue.run(async () => {
      try {
        await this.change('revoke', cmds);
      } catch (err) {
        // the elements may still be there, with whatever owner: never take the one-`add` path for them
        this.mirror.uncertain(keys, () => Number.POSITIVE_INFINITY);
        throw err;
      }
      this.mirror.forget(keys); // gone from the kernel: absent
    });
  }

  /** One atomic change: via the long-lived shell (restarted once if it died), or `nft -f -`. */
  private async change(op: string, cmds: readonly string[]): Promise<void> {
    if (this.mode === 'oneshot') {
      const r = await this.cli.runScript(cmds);
      if (!r.ok) throw firewallError(`nft ${op} failed: ${r.message}`);
      return;
    }
    this.shell ??= new NftShell(this.nftArgv(['-i']), this.timeoutMs, this.recycleAfter);
    const line = cmds.join('; ');
    let r = await this.shell.transact(line);
    if (!r.ok && r.kind === 'process') r = await this.shell.transact(line); // restart once; grant/revoke are idempotent
    if (!r.ok) throw firewallError(`nft ${op} failed: ${r.message}`);
  }

  // ------------------------------------------------------------------------------------------------ read side
  /**
   * The grants in allow4/allow6. expiresAt = now + the kernel's remaining time, which nft's JSON gives in whole
   * seconds (rounded down), so expiresAt may be up to 1 s early. An element without timeout (added by hand) is
   * reported with expiresAt = +Infinity; one without comment (older version, by hand) has no owner.
   */
  list(now: number): Promise<GrantEntry[]> {
    return this.queue.run(async () => {
      const listed = (await this.cli.readGrants(now)) ?? [];
      this.mirror.remember(listed, true);
      return listed.map(({ family, address, prefix, access, expiresAt, owner }) => ({
        family,
        address,
        ...(prefix !== undefined ? { prefix } : {}),
        access,
        expiresAt,
        ...(owner !== undefined ? { owner } : {}),
      }));
    });
  }

  /**
   * Read-only, and outside the queue: every nft read is an atomic snapshot of the ruleset, and a grant or revoke (what
   * the queue mostly runs) changes only elements of allow4/allow6, which the check does not compare. So the healer's
   * check (four reads every heal_interval, through the read sessions: no process started) never holds up a knock.
   * Only an install or uninstall of this object changes what the check compares: a check that overlapped one is read
   * again inside the queue.
   */
  async check(plan: FirewallPlan): Promise<string[]> {
    const checked = checkPlan(plan);
    const gen = this.layoutGen;
    if (!this.layoutBusy) {
      const problems = await this.cli.readCheck(this.fast.checkedAgainst(checked));
      if (gen === this.layoutGen && !this.layoutBusy) return problems;
    }
    return await this.queue.run(() => this.cli.readCheck(this.fast.checkedAgainst(checked)));
  }

  /** Run an install/uninstall (in the queue), marking the layout as changing for check(). */
  private async changingLayout<T>(fn: () => Promise<T>): Promise<T> {
    this.layoutBusy = true;
    this.layoutGen++;
    try {
      return await fn();
    } finally {
      this.layoutGen++;
      this.layoutBusy = false;
    }
  }

  /** The kernel prefilter's drop counter (nft-prefilter.ts); undefined when it is not installed. Outside the queue. */
  prefilterDrops(): Promise<number | undefined> {
    return this.cli.prefilterDrops();
  }

  uninstall(): Promise<void> {
    return this.queue.run(() =>
      this.changingLayout(async () => {
        const r = await this.cli.runScript([`add table ${this.t}`, `delete table ${this.t}`]);
        if (!r.ok) throw firewallError(`nft uninstall failed: ${r.message}`);
        this.mirror.clear();
        this.fast.clear();
      }),
    );
  }

  close(): Promise<void> {
    return this.queue.run(async () => {
      const shell = this.shell;
      this.shell = undefined;
      const session = this.cli.session;
      this.cli.session = undefined;
      this.fast.close();
      await Promise.all([shell?.close(), session?.json.close(), session?.text.close()]);
    });
  }
}
