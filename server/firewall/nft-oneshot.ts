/**
 * The nftables backend's one-process commands on its table (server/firewall/nftables.ts): `nft -f -` transactions
 * (install, uninstall, and grant/revoke in `oneshot` mode) and the reads behind install, `list` and `check` (`nft -j
 * list table`, `nft list chain`, the prefilter's counter). The long-lived `nft -i` of grant/revoke is nft-shell.ts.
 * Nothing here is queued or remembered: the backend decides when these run. The reads go through long-lived read
 * sessions (nft-reader.ts) once the backend has given them (`session`: the daemon's gate, after its install); a
 * one-off command (`spa-knockd check`, `list`) spawns `nft` for each.
 * @module
 */
import {
  type NftListedGrant,
  type NftTableListing,
  grantsOfListing,
  parseNftTable,
  parseNftTables,
} from './nft-json.js';
import { nftCheckProblems, parseChainRules } from './nft-check.js';
import { PREFILTER_CHAIN, PREFILTER_COUNTER, parseCounterPackets } from './nft-prefilter.js';
import { type ShellResult, nftErrorMessage } from './nft-shell.js';
import type { NftReader } from './nft-reader.js';
import { type RunResult, describeFailure, run, withWrap } from './process.js';
import { type CheckedPlan, firewallError } from './validate.js';

/** The read sessions: `nft -j -i` for JSON reads, `nft -i` for text (nft-reader.ts). */
export interface NftReadSessions {
  readonly json: NftReader;
  readonly text: NftReader;
}

export class NftOneshot {
  /** Set by the backend once it owns the gate (nft-reader.ts); the reads below spawn `nft` without it. */
  session: NftReadSessions | undefined;

  /**
   * @param table our table's name (family `inet`), already checked
   * @param wrap command prefix for every command (tests: `ip netns exec NS`)
   * @param timeoutMs per-command timeout
   */
  constructor(
    private readonly table: string,
    private readonly wrap: readonly string[],
    private readonly timeoutMs: number,
  ) {}

  /** `nft ARGS`, with the wrap. */
  argv(args: readonly string[]): string[] {
    return withWrap(this.wrap, ['nft', ...args]);
  }

  private get t(): string {
    return `inet ${this.table}`;
  }

  /** `nft -f -` with the lines on stdin: one transaction. */
  async runScript(lines: readonly string[]): Promise<ShellResult> {
    const r = await run(this.argv(['-f', '-']), { input: `${lines.join('\n')}\n`, timeoutMs: this.timeoutMs });
    if (r.code === 0) return { ok: true };
    if (r.spawnError !== undefined || r.timedOut || !/Error: /.test(r.stderr)) {
      return { ok: false, kind: 'process', message: describeFailure(['nft', '-f', '-'], r) };
    }
    return { ok: false, kind: 'nft', message: nftErrorMessage(r.stderr.split('\n')) };
  }

  /** The kernel handle of our table, from `nft -j list tables` (which works whatever the name). */
  async tableHandle(): Promise<number | undefined> {
    const argv = ['nft', '-j', 'list', 'tables'];
    const r = await run(withWrap(this.wrap, argv), { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw firewallError(describeFailure(argv, r));
    return parseNftTables(r.stdout).find((x) => x.family === 'inet' && x.name === this.table)?.handle;
  }

  /** Delete our table by handle (a name nft cannot parse can still be deleted this way). Best effort. */
  async deleteByHandle(): Promise<void> {
    try {
      const handle = await this.tableHandle();
      if (handle !== undefined) await this.runScript([`delete table inet handle ${handle}`]);
    } catch {
      /* the caller's error is what matters */
    }
  }

  // ------------------------------------------------------------------------------------------------ read side
  /** `nft ARGS` for a read: through the read sessions when there are any, else a process of its own. */
  private read(args: readonly string[]): Promise<RunResult> {
    const s = this.session;
    if (s === undefined) return run(this.argv(args), { timeoutMs: this.timeoutMs });
    return args[0] === '-j' ? s.json.run(args.slice(1)) : s.text.run(args);
  }

  /** `nft -j list table`, parsed; undefined if the table does not exist. Throws on other failures. */
  async listTable(): Promise<NftTableListing | undefined> {
    const argv = ['nft', '-j', 'list', 'table', 'inet', this.table];
    const r = await this.read(argv.slice(1));
    if (r.code !== 0) {
      if (r.spawnError === undefined && /Error: No such file or directory/.test(r.stderr)) return undefined;
      throw firewallError(
        r.spawnError === undefined && /Error: /.test(r.stderr)
          ? `nft list failed: ${nftErrorMessage(r.stderr.split('\n'))}`
          : describeFailure(argv, r),
      );
    }
    return parseNftTable(r.stdout, 'inet', this.table);
  }

  async readGrants(now: number): Promise<NftListedGrant[] | undefined> {
    const listing = await this.listTable();
    return listing === undefined ? undefined : grantsOfListing(listing, now);
  }

  /** The problems against the first plan, or none if the table matches any of them. */
  async readCheck(wants: readonly CheckedPlan[]): Promise<string[]> {
    const listing = await this.listTable();
    if (listing === undefined) return [`nft table ${this.t} is missing`];
    const rules = {
      input: listing.chains.has('input') ? await this.listChainRules('input') : undefined,
      output: listing.chains.has('output') ? await this.listChainRules('output') : undefined,
      [PREFILTER_CHAIN]: listing.chains.has(PREFILTER_CHAIN) ? await this.listChainRules(PREFILTER_CHAIN) : undefined,
    };
    const found = wants.map((want) => nftCheckProblems(this.t, listing, want, rules));
    return found.find((p) => p.length === 0) ?? found[0] ?? [];
  }

  /** The rule lines of one of our chains, as `nft list chain` prints them. */
  private async listChainRules(chain: 'input' | 'output' | typeof PREFILTER_CHAIN): Promise<string[]> {
    const argv = ['nft', 'list', 'chain', 'inet', this.table, chain];
    const r = await this.read(argv.slice(1));
    if (r.code !== 0) throw firewallError(describeFailure(argv, r));
    return parseChainRules(r.stdout);
  }

  /** The kernel prefilter's drop counter (nft-prefilter.ts); undefined when it is not installed. */
  async prefilterDrops(): Promise<number | undefined> {
    const r = await this.read(['-j', 'list', 'counter', 'inet', this.table, PREFILTER_COUNTER]);
    return r.code === 0 ? parseCounterPackets(r.stdout) : undefined;
  }
}
