/**
 * iptables backend (iptables + ip6tables): one chain of our own in the filter table, a gate jumped to from INPUT, and
 * with silencePortUnreachable an output chain jumped to from OUTPUT. Rule text: server/firewall/iptables-rules.ts.
 *
 * RETURN, not ACCEPT: the host's own INPUT rules still apply to what we let through.
 *
 * Every change rebuilds the chain(s) of the affected family in ONE `iptables-restore --noflush` run: declaring
 * `:SPA_KNOCK - [0:0]` flushes the chain and the rules that follow re-fill it, all in one commit (one nft transaction
 * with iptables-nft, one table replace with legacy iptables). The rules are built from an in-memory mirror of the
 * grants, so grant = refresh (the old rule for the same address/access is replaced, owner included), revoke of an
 * absent grant is a no-op, and the chain always matches the mirror. The mirror is loaded from the kernel at install
 * (reconcile at start, with the caller's clock: the `exp=` comments tell which leftovers are still valid; expired ones
 * are dropped; `owner=` gives their owner back) or, lazily, by the first grant/revoke without install.
 *
 * IPv4 and IPv6 are separate tables: a change touching both is two commits; if the second fails the first is put
 * back, so a failed call leaves the firewall as it was (install included: its undo restores the snapshot taken first).
 *
 * The kernel does not expire these rules (kernelExpiry = false): the daemon revokes on time. list() reports every
 * grant rule the kernel holds, including ones already past expiresAt (so the caller can revoke them).
 *
 * Grant and revoke commit through one long-lived `iptables-restore -v -w --noflush` child per family
 * (server/firewall/ipt-restore-shell.ts): ~0.7 ms a change instead of a process start (~10–13 ms here, far more under
 * load). A child that is gone or does not answer is replaced by one one-shot `iptables-restore` run for that change.
 * Install, uninstall and their undo run one-shot (rare; the child notices their changes: see the shell's header).
 * `mode: 'oneshot'` runs every change as its own process.
 *
 * Changes run one at a time (SerialQueue); the read-only `check` (the healer's, every heal_interval) does not take the
 * queue, so a knock never waits behind it (see check() for why that is safe).
 * @module
 */
import { type Access, accessListDiff } from '../../shared/access.js';
import { type Family, grantKeyString } from '../../shared/address.js';
import { IPTABLES_TIMEOUT_MS, MIN_GRANT_MS } from '../../shared/constants.js';
import type { FirewallBackend, FirewallPlan, GrantEntry, KnockSequence } from './backend.js';
import {
  chainText,
  installText,
  type SeqText,
  snapshotProblems,
  undoInstallText,
  uninstallText,
} from './iptables-rules.js';
import { type Snapshot, parseSnapshot } from './iptables-snapshot.js';
import { parsePreCounter, preChainName, preJumpLines } from './iptables-prefilter.js';
import { seqChainName, sequenceChainLines, sequenceMainLines } from './iptables-sequences.js';
import { RestoreShell } from './ipt-restore-shell.js';
import { tableNameProblem } from './names.js';
import { SerialQueue, describeFailure, oneLine, run, withWrap } from './process.js';
import { type CheckedPlan, checkGrants, checkKeys, checkNow, checkPlan, firewallError } from './validate.js';

export interface IptablesOptions {
  /** Our chain in the filter table. Default `SPA_KNOCK`. Checked by names.ts `tableNameProblem`. */
  readonly chain?: string;
  /** Command prefix for every command, e.g. `['ip', 'netns', 'exec', 'NS']` (tests). */
  readonly wrap?: readonly string[];
  /** Per-command timeout in ms. Default IPTABLES_TIMEOUT_MS. */
  readonly timeoutMs?: number;
  /** `persistent` (default): grant/revoke through a long-lived iptables-restore per family; `oneshot`: a process each. */
  readonly mode?: 'persistent' | 'oneshot';
}

const FAMILIES: readonly Family[] = [4, 6];

const TOOLS: Readonly<Record<Family, { readonly list: string; readonly restore: string; readonly label: string }>> = {
  4: { list: 'iptables', restore: 'iptables-restore', label: 'IPv4' },
  6: { list: 'ip6tables', restore: 'ip6tables-restore', label: 'IPv6' },
};

interface Mirror {
  protect: Access[];
  grants: Map<string, GrantEntry>;
  /** The knock-sequence lines of the input chain, per family (kept as they are when grants change). */
  seqMain: Record<Family, readonly string[]>;
  /** The input chain's jump to the prefilter chain, per family (iptables-prefilter.ts; kept when grants change). */
  preMain: Record<Family, readonly string[]>;
}

/** The sequence part of the plan for one family, as iptables text. */
function seqText(chain: string, f: Family, sequences: readonly KnockSequence[]): SeqText {
  return {
    main: sequenceMainLines(chain, f, sequences),
    chains: new Map(sequences.map((s, i) => [seqChainName(chain, i), sequenceChainLines(chain, f, s, i)])),
  };
}

export class IptablesBackend implements FirewallBackend {
  readonly name = 'iptables' as const;
  readonly kernelExpiry = false;
  readonly chain: string;
  private readonly wrap: readonly string[];
  private readonly timeoutMs: number;
  private readonly mode: 'persistent' | 'oneshot';
  private readonly queue = new SerialQueue();
  /** The long-lived iptables-restore per family (persistent mode), started at install or the first change. */
  private readonly shells = new Map<Family, RestoreShell>();
  /** Mirror of the chain content; undefined until install or the first lazy load. */
  private state: Mirror | undefined;
  /** Bumped when an install/uninstall starts and ends (a check that overlapped one reads again, in the queue). */
  private layoutGen = 0;
  /** Installs/uninstalls queued or running. */
  private layoutBusy = 0;

  constructor(opts: IptablesOptions = {}) {
    const chain = opts.chain ?? 'SPA_KNOCK';
    const problem = typeof chain === 'string' ? tableNameProblem('iptables', chain) : 'not a string';
    if (problem !== undefined)
      throw firewallError(`invalid firewall.table ${JSON.stringify(String(chain)).slice(0, 40)}: ${problem}`);
    if (opts.wrap !== undefined && !opts.wrap.every((w) => typeof w === 'string')) {
      throw firewallError('invalid wrap: not a list of strings');
    }
    this.chain = chain;
    this.wrap = [...(opts.wrap ?? [])];
    this.timeoutMs = opts.timeoutMs ?? IPTABLES_TIMEOUT_MS;
    this.mode = opts.mode ?? 'persistent';
  }

  /** Pids of the long-lived iptables-restore children (for diagnostics and tests). */
  get helperPids(): number[] {
    return [...this.shells.values()].map((s) => s.pid).filter((p) => p !== undefined);
  }

  /** For tests: kill the long-lived children as if they had crashed. */
  async killHelpers(): Promise<void> {
    for (const s of this.shells.values()) await s.kill();
  }

  // ------------------------------------------------------------------------------------------------ commands
  /** A grant/revoke change: through the family's long-lived child; if that is gone or stuck, one one-shot run. */
  private async change(f: Family, text: string): Promise<void> {
    if (this.mode === 'oneshot') return await this.restore(f, text);
    const r = await this.shellOf(f).commit(text);
    if (r.ok) return;
    if (r.kind === 'restore') throw firewallError(r.message);
    await this.restore(f, text); // the child died or hung: the change is idempotent (the whole chain), run it alone
  }

  private async restore(f: Family, text: string): Promise<void> {
    const tool = TOOLS[f];
    const r = await run(withWrap(this.wrap, [tool.restore, '-w', '--noflush']), {
      input: text,
      timeoutMs: this.timeoutMs,
    });
    if (r.code === 0) return;
    if (r.spawnError === undefined && !r.timedOut && r.stderr.trim() !== '') {
      const main = r.stderr.split('\n').find((l) => l.trim() !== '' && !l.startsWith('Try ')) ?? '';
      const at = /Error occurred at line: ([0-9]+)/.exec(r.stderr);
      throw firewallError(`${tool.restore} failed (exit ${r.code}): ${oneLine(main)}${at ? ` (line ${at[1]})` : ''}`);
    }
    throw firewallError(describeFailure([tool.restore, '--noflush'], r));
  }

  private async snapshot(f: Family): Promise<Snapshot> {
    const tool = TOOLS[f];
    const r = await run(withWrap(this.wrap, [tool.list, '-w', '-S']), { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw firewallError(describeFailure([tool.list, '-S'], r));
    return parseSnapshot(this.chain, f, r.stdout);
  }

  // ------------------------------------------------------------------------------------------------ install
  async install(plan: FirewallPlan, now: number): Promise<void> {
    const { protect, silencePortUnreachable: silence, sequences, prefilter } = checkPlan(plan);
    checkNow(now);
    const seq = { 4: seqText(this.chain, 4, sequences), 6: seqText(this.chain, 6, sequences) };
    this.layoutBegin();
    const installed = this.queue.run(async () => {
      const snaps = new Map<Family, Snapshot>();
      for (const f of FAMILIES) snaps.set(f, await this.snapshot(f));
      const grants = new Map<string, GrantEntry>();
      for (const snap of snaps.values()) {
        for (const g of snap.grants) if (g.expiresAt > now) grants.set(grantKeyString(g), g);
      }
      const done: Family[] = [];
      for (const f of FAMILIES) {
        const snap = snaps.get(f) as Snapshot;
        try {
          await this.restore(f, installText(this.chain, f, snap, protect, grants.values(), silence, seq[f], prefilter));
        } catch (err) {
          for (const d of done)
            await this.bestEffort(d, undoInstallText(this.chain, snaps.get(d) as Snapshot, silence, seq[d], prefilter));
          throw err;
        }
        done.push(f);
      }
      const preMain = preJumpLines(this.chain, prefilter);
      this.state = {
        protect,
        grants,
        seqMain: { 4: seq[4].main, 6: seq[6].main },
        preMain: { 4: preMain, 6: preMain },
      };
    });
    await installed.finally(() => this.layoutEnd());
    await this.queue.run(() => this.prepareShells());
  }

  /**
   * Persistent mode: start both children now rather than at the first knock (whose grant would otherwise wait for the
   * child's start, 40–70 ms on this loaded machine), each with an empty block (`*filter` / `COMMIT`: no change).
   * Best effort: a failure here only means the first change starts its child.
   */
  private async prepareShells(): Promise<void> {
    if (this.mode !== 'persistent') return;
    for (const f of FAMILIES) await this.shellOf(f).commit('*filter\nCOMMIT\n');
  }

  private shellOf(f: Family): RestoreShell {
    let shell = this.shells.get(f);
    if (shell === undefined) {
      const argv = withWrap(this.wrap, [TOOLS[f].restore, '-v', '-w', '--noflush']);
      shell = new RestoreShell(argv, TOOLS[f].restore, this.timeoutMs);
      this.shells.set(f, shell);
    }
    return shell;
  }

  /** An install/uninstall is queued or running: check() reads inside the queue until it ends. */
  private layoutBegin(): void {
    this.layoutBusy++;
    this.layoutGen++;
  }

  private layoutEnd(): void {
    this.layoutGen++;
    this.layoutBusy--;
  }

  private async bestEffort(f: Family, text: string): Promise<void> {
    try {
      await this.restore(f, text);
    } catch {
      /* best effort: the original error is what the caller needs */
    }
  }

  /** The mirror, loading it from the kernel if install() has not run in this process. */
  private async ensureState(): Promise<Mirror> {
    if (this.state) return this.state;
    const grants = new Map<string, GrantEntry>();
    let protect: Access[] | undefined;
    const seqMain: Record<Family, readonly string[]> = { 4: [], 6: [] };
    const preMain: Record<Family, readonly string[]> = { 4: [], 6: [] };
    for (const f of FAMILIES) {
      const snap = await this.snapshot(f);
      seqMain[f] = snap.seqMain;
      preMain[f] = snap.preMain;
      if (!snap.input.exists) {
        throw firewallError(`iptables chain ${this.chain} (${TOOLS[f].label}) is not installed; run install first`);
      }
      for (const g of snap.grants) grants.set(grantKeyString(g), g);
      protect ??= [...snap.protect];
    }
    this.state = { protect: protect ?? [], grants, seqMain, preMain };
    return this.state;
  }

  /** Rebuild the input chains of `families` from `next`; on failure restore the ones already changed. */
  private async apply(families: ReadonlySet<Family>, next: Map<string, GrantEntry>): Promise<void> {
    const state = await this.ensureState();
    const done: Family[] = [];
    for (const f of FAMILIES) {
      if (!families.has(f)) continue;
      try {
        await this.change(
          f,
          chainText(this.chain, f, state.protect, next.values(), state.seqMain[f], state.preMain[f]),
        );
      } catch (err) {
        for (const d of done)
          await this.bestEffort(
            d,
            chainText(this.chain, d, state.protect, state.grants.values(), state.seqMain[d], state.preMain[d]),
          );
        throw err;
      }
      done.push(f);
    }
    state.grants = next;
  }

  // ------------------------------------------------------------------------------------------------ grant / revoke
  /** Add or refresh grants. expiresAt (at least now + MIN_GRANT_MS) and owner are stored in the rule comment. */
  async grant(entries: readonly GrantEntry[], now: number): Promise<void> {
    const grants = checkGrants(entries);
    checkNow(now);
    if (grants.length === 0) return;
    await this.queue.run(async () => {
      const state = await this.ensureState();
      const next = new Map(state.grants);
      const families = new Set<Family>();
      for (const g of grants) {
        next.set(grantKeyString(g), { ...g, expiresAt: Math.round(Math.max(g.expiresAt, now + MIN_GRANT_MS)) });
        families.add(g.family);
      }
      await this.apply(families, next);
    });
  }

  async revoke(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): Promise<void> {
    const keys = checkKeys(entries);
    if (keys.length === 0) return;
    await this.queue.run(async () => {
      const state = await this.ensureState();
      const next = new Map(state.grants);
      const families = new Set<Family>();
      for (const k of keys) if (next.delete(grantKeyString(k))) families.add(k.family);
      if (families.size > 0) await this.apply(families, next);
    });
  }

  // ------------------------------------------------------------------------------------------------ read side
  /** Every grant rule the kernel holds (both families), expiresAt and owner from the rule comment; expired included. */
  async list(_now: number): Promise<GrantEntry[]> {
    return await this.queue.run(async () => {
      const out: GrantEntry[] = [];
      for (const f of FAMILIES) out.push(...(await this.snapshot(f)).grants);
      return out;
    });
  }

  /**
   * Read-only, and outside the queue, so the healer's check (two `iptables -S` runs every heal_interval) never holds
   * up a knock. Safe because each `-S` is a snapshot of one family's table (legacy: one IPT_SO_GET_ENTRIES copy of
   * the table; iptables-nft: a ruleset dump retried until the nftables generation did not change under it), and a
   * grant or revoke rebuilds our input chain in ONE `iptables-restore` commit (`:CHAIN` flush and refill together),
   * so a check racing one sees the chain before or after, never half-filled; and the chain is compared with the grant
   * rules the same snapshot holds, never with the mirror, so a grant just committed is not a difference. Only an
   * install or uninstall of this object changes what the check compares: a check that overlapped one is read again
   * inside the queue (as nftables.ts does).
   */
  async check(plan: FirewallPlan): Promise<string[]> {
    const want = checkPlan(plan);
    const gen = this.layoutGen;
    if (this.layoutBusy === 0) {
      const problems = await this.readCheck(want);
      if (gen === this.layoutGen && this.layoutBusy === 0) return problems;
    }
    return await this.queue.run(() => this.readCheck(want));
  }

  private async readCheck(want: CheckedPlan): Promise<string[]> {
    const { protect, silencePortUnreachable, sequences, prefilter } = want;
    const problems: string[] = [];
    for (const f of FAMILIES) {
      const snap = await this.snapshot(f);
      const diff = accessListDiff(snap.protect, protect);
      const seq = seqText(this.chain, f, sequences);
      problems.push(
        ...snapshotProblems(this.chain, f, snap, protect, silencePortUnreachable, TOOLS[f].label, diff, seq, prefilter),
      );
    }
    return problems;
  }

  /**
   * The kernel prefilter's drops (both families): the packet counters of the prefilter chains' rules. Undefined when
   * neither family has the chain. Read-only, outside the queue (`iptables -S` reads a snapshot).
   */
  async prefilterDrops(): Promise<number | undefined> {
    let total: number | undefined;
    for (const f of FAMILIES) {
      const r = await run(withWrap(this.wrap, [TOOLS[f].list, '-w', '-v', '-S', preChainName(this.chain)]), {
        timeoutMs: this.timeoutMs,
      });
      const n = r.code === 0 ? parsePreCounter(this.chain, r.stdout) : undefined;
      if (n !== undefined) total = (total ?? 0) + n;
    }
    return total;
  }

  /** Remove every jump to our chains, then flush and delete them, per family; absent = fine. */
  async uninstall(): Promise<void> {
    this.layoutBegin();
    const removed = this.queue.run(async () => {
      for (const f of FAMILIES) {
        const text = uninstallText(this.chain, await this.snapshot(f));
        if (text !== undefined) await this.restore(f, text);
      }
      this.state = undefined;
    });
    await removed.finally(() => this.layoutEnd());
  }

  /** Stop the long-lived children; rules stay. */
  async close(): Promise<void> {
    await this.queue.run(async () => {
      const shells = [...this.shells.values()];
      this.shells.clear();
      for (const s of shells) await s.close();
    });
  }
}
