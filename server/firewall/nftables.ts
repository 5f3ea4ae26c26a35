/**
 * nftables backend: one table of our own, grants in kernel-expiring sets.
 *
 * Ruleset (table name configurable, default `spa_knock`):
 *
 * ```
 * table inet spa_knock {
 *   set allow4  { type ipv4_addr . inet_proto . inet_service; flags timeout; }
 *   set allow6  { type ipv6_addr . inet_proto . inet_service; flags timeout; }
 *   set protect { type inet_proto . inet_service; }
 *   chain input {
 *     type filter hook input priority filter - 10; policy accept;
 *     iif "lo" accept
 *     ct state established,related accept
 *     ip saddr . meta l4proto . th dport @allow4 accept
 *     ip6 saddr . meta l4proto . th dport @allow6 accept
 *     meta l4proto . th dport @protect drop
 *   }
 * }
 * ```
 *
 * - install: one `nft -f -` transaction that `add`s table/sets/chain (keeps existing ones, so unexpired grants in
 *   allow4/allow6 survive a restart), flushes and refills `protect`, flushes and refills the chain. If that fails on an
 *   incompatible existing table (e.g. a set declared differently by another version), a second transaction replaces
 *   the whole table and re-adds the grants read from it with their remaining timeouts.
 * - grant: where the kernel's `add element` replaces an existing element's timeout (Linux 6.x; probed at install on
 *   a scratch set), one `add element … timeout T`; elsewhere `add element …; delete element …; add element … timeout T`
 *   in one transaction, so an existing element gets the new timeout either way.
 * - revoke: `add element …; delete element …` in one transaction, so an absent element is not an error.
 * - grant/revoke go through one long-lived `nft -i` child (see {@link NftShell}); a line of `;`-separated commands
 *   is one nft batch, i.e. one atomic transaction.
 * @module
 */
import type { Access } from '../../shared/access.js';
import { FirewallError, type Family, type FirewallBackend, type FirewallPlan, type GrantEntry } from './backend.js';
import {
  LongLivedProcess,
  SerialQueue,
  canonicalAddress,
  checkGrants,
  checkKeys,
  checkProtect,
  describeFailure,
  oneLine,
  run,
  withWrap,
  type GrantKey,
} from './exec.js';

export interface NftablesOptions {
  /** Table name in family `inet`. Default `spa_knock`. Must match /^[a-z][a-z0-9_]{0,30}$/. */
  readonly table?: string;
  /** Command prefix for every command, e.g. `['ip', 'netns', 'exec', 'NS']` (tests). */
  readonly wrap?: readonly string[];
  /**
   * `persistent` (default): grant/revoke are written to one long-lived `nft -i` child (~0.6 ms per grant).
   * `oneshot`: every change spawns `nft -f -` (~3 ms per grant). Install/list/check/uninstall always spawn.
   */
  readonly mode?: 'persistent' | 'oneshot';
  /** Per-command timeout in ms. Default 5000. */
  readonly timeoutMs?: number;
  /** Replace the long-lived child after this many requests (bounds nft's in-memory history). Default 5000. */
  readonly recycleAfter?: number;
}

const TABLE_RE = /^[a-z][a-z0-9_]{0,30}$/;
const MIN_TIMEOUT_MS = 1000;

/** The chain's rules exactly as `nft list chain` prints them (and as we write them). */
export const NFT_RULES: readonly string[] = Object.freeze([
  'iif "lo" accept',
  'ct state established,related accept',
  'ip saddr . meta l4proto . th dport @allow4 accept',
  'ip6 saddr . meta l4proto . th dport @allow6 accept',
  'meta l4proto . th dport @protect drop',
]);

const SET_TYPES: Readonly<Record<'allow4' | 'allow6' | 'protect', readonly string[]>> = {
  allow4: ['ipv4_addr', 'inet_proto', 'inet_service'],
  allow6: ['ipv6_addr', 'inet_proto', 'inet_service'],
  protect: ['inet_proto', 'inet_service'],
};

const CHAIN_SPEC = '{ type filter hook input priority filter - 10; policy accept; }';

/** `90061500` → `1d1h1m1s500ms` (nft refuses large plain `NNNms` values; the compound form has no such limit). */
export function nftDuration(ms: number): string {
  let rest = Math.max(0, Math.round(ms));
  const parts: string[] = [];
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [u, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n}${u}`);
  }
  if (rest > 0 || parts.length === 0) parts.push(`${rest}ms`);
  return parts.join('');
}

function setName(f: Family): 'allow4' | 'allow6' {
  return f === 4 ? 'allow4' : 'allow6';
}

function elemKey(k: GrantKey): string {
  // address canonical (validated), proto from the union, port integer: safe to interpolate.
  return `${k.address} . ${k.access.proto} . ${k.access.port}`;
}

/** One-line summary of nft's error output: `Error: …` lines, each with the span its carets point at. */
export function nftErrorMessage(lines: readonly string[]): string {
  const msgs: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const m = /(?:^|: )Error: (.*)$/.exec(line);
    if (!m) continue;
    let msg = (m[1] ?? '').trim();
    const input = lines[i + 1];
    const caret = lines[i + 2];
    if (input !== undefined && caret !== undefined && /^\s*[\^~]+\s*$/.test(caret)) {
      const start = caret.search(/[\^~]/);
      const near = input.slice(start, caret.trimEnd().length).trim();
      if (near !== '') msg += ` (at "${near.length > 60 ? `${near.slice(0, 57)}...` : near}")`;
      i += 2;
    }
    if (!msgs.includes(msg)) msgs.push(msg);
  }
  return oneLine(msgs.length > 0 ? msgs.join('; ') : lines.join('\n')) || 'unknown nft error';
}

type ShellResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly kind: 'nft' | 'process'; readonly message: string };

interface Pending {
  readonly proc: LongLivedProcess;
  readonly token: string;
  readonly lines: string[];
  readonly resolve: (r: ShellResult) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * A long-lived `nft -i` (interactive mode, stdin a pipe: no prompt, no echo).
 *
 * Protocol: for each request we write the transaction as ONE line (commands separated by `;` — nft runs a line as
 * one batch, so it commits all or nothing) followed by a sentinel line `spak_sync_<n>`, which is a syntax error by
 * design. nft processes lines in order and writes errors to stderr, so the sentinel's own error block
 * (`Error: syntax error…` / `spak_sync_<n>` / `^`) marks the end of the request on stderr: any `Error:` before it
 * belongs to the transaction (failure, nothing committed), none means it committed (nft waits for the kernel's ack
 * of the batch before reading the next line). stdout is not needed (no `-e`), so there is no stdout/stderr ordering
 * problem. Parsing the sentinel does not touch the kernel (~0.1 ms).
 *
 * Interactive nft keeps every line in its (libedit) history, in memory and, at exit, in `$HOME/.nft.history` (read
 * back at the next start). So the child runs with `HOME=/dev/null` (the history file can never be read or written)
 * and is replaced by a fresh one after `recycleAfter` requests (default 5000) to bound its memory.
 */
export class NftShell {
  private proc: LongLivedProcess | undefined;
  private seq = 0;
  private served = 0;
  private pending: Pending | undefined;
  private skipCaret = false;

  constructor(
    private readonly argv: readonly string[],
    private readonly timeoutMs: number,
    private readonly recycleAfter = 5000,
  ) {}

  get pid(): number | undefined {
    return this.proc?.isAlive ? this.proc.pid : undefined;
  }

  private start(): LongLivedProcess {
    this.skipCaret = false;
    this.served = 0;
    const proc = new LongLivedProcess(this.argv, {
      env: { HOME: '/dev/null' },
      onStdoutLine: () => {
        /* nothing expected without -e */
      },
      onStderrLine: (line) => {
        if (this.proc === proc) this.onStderr(line); // a recycled child's last output is not ours to read
      },
      onExit: (code, signal, spawnError) => {
        if (this.proc === proc) this.proc = undefined;
        const p = this.pending;
        if (!p || p.proc !== proc) return;
        this.pending = undefined;
        clearTimeout(p.timer);
        const why = spawnError ?? (signal !== null ? `killed by ${signal}` : `exit ${code ?? '?'}`);
        const detail = oneLine(p.lines.join('\n'));
        p.resolve({ ok: false, kind: 'process', message: `nft process ended (${why})${detail ? `: ${detail}` : ''}` });
      },
    });
    this.proc = proc;
    return proc;
  }

  private onStderr(line: string): void {
    if (this.skipCaret) {
      this.skipCaret = false;
      if (/^\s*\^+\s*$/.test(line)) return;
    }
    const p = this.pending;
    if (!p) return; // stray output between requests: nothing waits for it
    if (line === p.token) {
      const last = p.lines[p.lines.length - 1];
      if (last !== undefined && last.startsWith('Error: syntax error')) p.lines.pop();
      this.pending = undefined;
      this.skipCaret = true;
      clearTimeout(p.timer);
      const failed = p.lines.some((l) => /(?:^|: )Error: /.test(l));
      p.resolve(failed ? { ok: false, kind: 'nft', message: nftErrorMessage(p.lines) } : { ok: true });
      return;
    }
    p.lines.push(line);
  }

  /** Run one transaction line. Callers serialize (one request at a time). Never rejects. */
  transact(line: string): Promise<ShellResult> {
    if (this.pending) return Promise.resolve({ ok: false, kind: 'process', message: 'nft shell busy' });
    if (line.includes('\n')) return Promise.resolve({ ok: false, kind: 'nft', message: 'newline in nft command' });
    if (this.proc?.isAlive && this.served >= this.recycleAfter) {
      const old = this.proc;
      this.proc = undefined;
      void old.close();
    }
    const proc = this.proc?.isAlive ? this.proc : this.start();
    this.served++;
    const token = `spak_sync_${++this.seq}`;
    return new Promise<ShellResult>((resolve) => {
      const timer = setTimeout(() => {
        if (this.pending?.token !== token) return;
        this.pending = undefined;
        resolve({ ok: false, kind: 'process', message: `nft did not answer within ${this.timeoutMs} ms` });
        void proc.kill();
        if (this.proc === proc) this.proc = undefined;
      }, this.timeoutMs);
      this.pending = { proc, token, lines: [], resolve, timer };
      if (!proc.write(`${line}\n${token}\n`)) {
        // the exit handler resolves (it may already have run for a spawn failure)
        if (this.pending?.token === token && !proc.isAlive) {
          this.pending = undefined;
          clearTimeout(timer);
          resolve({ ok: false, kind: 'process', message: 'nft process is not running' });
        }
      }
    });
  }

  async close(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc) await proc.close();
  }

  /** For tests: kill the child as if it crashed. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (proc) await proc.kill();
  }
}

interface ListedGrant extends GrantEntry {
  /** Remaining ms from the kernel (seconds precision in nft JSON), or undefined for an element without timeout. */
  readonly remainingMs: number | undefined;
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

  constructor(opts: NftablesOptions = {}) {
    const table = opts.table ?? 'spa_knock';
    if (typeof table !== 'string' || !TABLE_RE.test(table)) {
      throw new FirewallError(`invalid nft table name ${JSON.stringify(String(table)).slice(0, 40)}`);
    }
    if (opts.wrap !== undefined && !opts.wrap.every((w) => typeof w === 'string')) {
      throw new FirewallError('invalid wrap: not a list of strings');
    }
    this.table = table;
    this.wrap = [...(opts.wrap ?? [])];
    this.mode = opts.mode ?? 'persistent';
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.recycleAfter = opts.recycleAfter ?? 5000;
  }

  /** Pid of the long-lived `nft -i` child, if running (for diagnostics and tests). */
  get helperPid(): number | undefined {
    return this.shell?.pid;
  }

  /** For tests: kill the long-lived child as if it had crashed. */
  async killHelper(): Promise<void> {
    await this.shell?.kill();
  }

  private nftArgv(args: readonly string[]): string[] {
    return withWrap(this.wrap, ['nft', ...args]);
  }

  private get t(): string {
    return `inet ${this.table}`;
  }

  // ------------------------------------------------------------------------------------------------ install
  async install(plan: FirewallPlan): Promise<void> {
    const protect = checkProtect(plan?.protect);
    return await this.queue.run(async () => {
      const first = await this.runScript(this.installScript(protect));
      if (first.ok) return;
      if (first.kind === 'process') throw new FirewallError(`nft install failed: ${first.message}`);
      // Maybe an incompatible table of the same name (older/newer layout): replace it whole, keeping the grants.
      const listed = await this.readGrants(Date.now());
      if (listed === undefined) throw new FirewallError(`nft install failed: ${first.message}`);
      const second = await this.runScript(this.replaceScript(protect, listed));
      if (!second.ok) throw new FirewallError(`nft install failed: ${first.message}`);
    }).then(() => this.queue.run(() => this.prepareShell()));
  }

  /**
   * Persistent mode: start the `nft -i` child now rather than at the first knock (which would pay ~25 ms for it), and
   * find out whether this kernel's `add element` replaces the timeout of an existing element (Linux 6.x does); if so a
   * grant is one command instead of three (~0.5 ms instead of ~0.9 ms). The probe uses a scratch set that no rule
   * references, so it has no effect on traffic. Any failure here only means the slower, always-correct path.
   */
  private async prepareShell(): Promise<void> {
    if (this.mode !== 'persistent') return;
    this.shell ??= new NftShell(this.nftArgv(['-i']), this.timeoutMs, this.recycleAfter);
    this.addRefreshes = false;
    const set = `${this.t} spak_probe`;
    const made = await this.shell.transact(`add set ${set} { type ipv4_addr; flags timeout; }; add element ${set} { 127.0.0.1 timeout 10s }`);
    if (!made.ok) return;
    try {
      const again = await this.shell.transact(`add element ${set} { 127.0.0.1 timeout 1h }`);
      if (!again.ok) return;
      const r = await run(this.nftArgv(['-j', 'list', 'set', 'inet', this.table, 'spak_probe']), { timeoutMs: this.timeoutMs });
      const m = /"expires":\s*([0-9]+)/.exec(r.stdout);
      this.addRefreshes = r.code === 0 && m !== null && Number(m[1]) > 60;
    } finally {
      await this.shell.transact(`delete set ${set}`);
    }
  }

  /** Does a plain `add element` refresh an existing element's timeout here (probed at install)? */
  get refreshesWithAdd(): boolean {
    return this.addRefreshes;
  }

  private protectElements(protect: readonly Access[]): string {
    return protect.map((a) => `${a.proto} . ${a.port}`).join(', ');
  }

  private setDecl(name: 'allow4' | 'allow6' | 'protect'): string {
    const flags = name === 'protect' ? '' : ' flags timeout;';
    return `{ type ${SET_TYPES[name].join(' . ')};${flags} }`;
  }

  /** Keep-the-grants install: `add` leaves existing table/sets alone; protect set and chain are refilled. */
  installScript(protect: readonly Access[]): string {
    const t = this.t;
    const lines = [
      `add table ${t}`,
      `add set ${t} allow4 ${this.setDecl('allow4')}`,
      `add set ${t} allow6 ${this.setDecl('allow6')}`,
      `add set ${t} protect ${this.setDecl('protect')}`,
      `flush set ${t} protect`,
      ...(protect.length > 0 ? [`add element ${t} protect { ${this.protectElements(protect)} }`] : []),
      `add chain ${t} input ${CHAIN_SPEC}`,
      `flush chain ${t} input`,
      ...NFT_RULES.map((r) => `add rule ${t} input ${r}`),
    ];
    return `${lines.join('\n')}\n`;
  }

  /** Replace the table whole (one transaction), re-adding the given grants with their remaining timeouts. */
  private replaceScript(protect: readonly Access[], grants: readonly ListedGrant[]): string {
    const t = this.t;
    const lines = [`add table ${t}`, `delete table ${t}`];
    const body = this.installScript(protect);
    lines.push(body.trimEnd());
    for (const f of [4, 6] as const) {
      const els = grants
        .filter((g) => g.family === f && (g.remainingMs === undefined || g.remainingMs >= MIN_TIMEOUT_MS))
        .map((g) => (g.remainingMs === undefined ? elemKey(g) : `${elemKey(g)} timeout ${nftDuration(g.remainingMs)}`));
      if (els.length > 0) lines.push(`add element ${t} ${setName(f)} { ${els.join(', ')} }`);
    }
    return `${lines.join('\n')}\n`;
  }

  // ------------------------------------------------------------------------------------------------ grant / revoke
  async grant(entries: readonly GrantEntry[], now: number): Promise<void> {
    const grants = checkGrants(entries);
    if (typeof now !== 'number' || !Number.isFinite(now)) throw new FirewallError('invalid grant time');
    if (grants.length === 0) return;
    const cmds: string[] = [];
    for (const f of [4, 6] as const) {
      const mine = grants.filter((g) => g.family === f);
      if (mine.length === 0) continue;
      const set = `${this.t} ${setName(f)}`;
      const withTimeout = mine
        .map((g) => `${elemKey(g)} timeout ${nftDuration(Math.max(MIN_TIMEOUT_MS, g.expiresAt - now))}`)
        .join(', ');
      const keys = mine.map(elemKey).join(', ');
      if (this.addRefreshes && this.mode === 'persistent') cmds.push(`add element ${set} { ${withTimeout} }`);
      else cmds.push(`add element ${set} { ${withTimeout} }`, `delete element ${set} { ${keys} }`, `add element ${set} { ${withTimeout} }`);
    }
    await this.queue.run(() => this.change('grant', cmds));
  }

  async revoke(entries: readonly Omit<GrantEntry, 'expiresAt'>[]): Promise<void> {
    const keys = checkKeys(entries);
    if (keys.length === 0) return;
    const cmds: string[] = [];
    for (const f of [4, 6] as const) {
      const mine = keys.filter((k) => k.family === f);
      if (mine.length === 0) continue;
      const set = `${this.t} ${setName(f)}`;
      const els = mine.map(elemKey).join(', ');
      cmds.push(`add element ${set} { ${els} }`, `delete element ${set} { ${els} }`);
    }
    await this.queue.run(() => this.change('revoke', cmds));
  }

  /** One atomic change: via the long-lived shell (restarted once if it died), or `nft -f -`. */
  private async change(op: string, cmds: readonly string[]): Promise<void> {
    if (this.mode === 'oneshot') {
      const r = await this.runScript(`${cmds.join('\n')}\n`);
      if (!r.ok) throw new FirewallError(`nft ${op} failed: ${r.message}`);
      return;
    }
    this.shell ??= new NftShell(this.nftArgv(['-i']), this.timeoutMs, this.recycleAfter);
    const line = cmds.join('; ');
    let r = await this.shell.transact(line);
    if (!r.ok && r.kind === 'process') r = await this.shell.transact(line); // restart once; grant/revoke are idempotent
    if (!r.ok) throw new FirewallError(`nft ${op} failed: ${r.message}`);
  }

  /** `nft -f -` with the script on stdin: one transaction. */
  private async runScript(script: string): Promise<ShellResult> {
    const argv = this.nftArgv(['-f', '-']);
    const r = await run(argv, { input: script, timeoutMs: this.timeoutMs });
    if (r.code === 0) return { ok: true };
    if (r.spawnError !== undefined || r.timedOut || !/Error: /.test(r.stderr)) {
      return { ok: false, kind: 'process', message: describeFailure(['nft', '-f', '-'], r) };
    }
    return { ok: false, kind: 'nft', message: nftErrorMessage(r.stderr.split('\n')) };
  }

  // ------------------------------------------------------------------------------------------------ read side
  /** `nft -j list table`: parsed JSON items, or undefined if the table does not exist. Throws on other failures. */
  private async listTableJson(): Promise<unknown[] | undefined> {
    const argv = this.nftArgv(['-j', 'list', 'table', 'inet', this.table]);
    const r = await run(argv, { timeoutMs: this.timeoutMs });
    if (r.code !== 0) {
      if (r.spawnError === undefined && /Error: No such file or directory/.test(r.stderr)) return undefined;
      throw new FirewallError(
        r.spawnError === undefined && /Error: /.test(r.stderr)
          ? `nft list failed: ${nftErrorMessage(r.stderr.split('\n'))}`
          : describeFailure(['nft', '-j', 'list', 'table', 'inet', this.table], r),
      );
    }
    let doc: unknown;
    try {
      doc = JSON.parse(r.stdout);
    } catch {
      throw new FirewallError('nft list failed: output is not JSON');
    }
    const items = (doc as { nftables?: unknown } | null)?.nftables;
    if (!Array.isArray(items)) throw new FirewallError('nft list failed: unexpected JSON shape');
    return items as unknown[];
  }

  private async readGrants(now: number): Promise<ListedGrant[] | undefined> {
    const items = await this.listTableJson();
    if (items === undefined) return undefined;
    const out: ListedGrant[] = [];
    for (const item of items) {
      const set = obj(obj(item)?.['set']);
      if (!set || set['table'] !== this.table || set['family'] !== 'inet') continue;
      const family: Family | undefined = set['name'] === 'allow4' ? 4 : set['name'] === 'allow6' ? 6 : undefined;
      if (family === undefined) continue;
      const elems = set['elem'];
      if (!Array.isArray(elems)) continue;
      for (const raw of elems as unknown[]) {
        const wrapped = obj(obj(raw)?.['elem']);
        const val = wrapped ? wrapped['val'] : raw;
        const parts = obj(val)?.['concat'];
        if (!Array.isArray(parts) || parts.length !== 3) continue;
        const [addr, proto, port] = parts as unknown[];
        if ((proto !== 'tcp' && proto !== 'udp') || typeof port !== 'number' || typeof addr !== 'string') continue;
        if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
        let address: string;
        try {
          address = canonicalAddress(family, addr);
        } catch {
          continue;
        }
        const expires = wrapped?.['expires'];
        const timeout = wrapped?.['timeout'];
        const remainingS = typeof expires === 'number' ? expires : typeof timeout === 'number' ? timeout : undefined;
        const remainingMs = remainingS === undefined ? undefined : remainingS * 1000;
        out.push({
          family,
          address,
          access: { proto, port },
          expiresAt: remainingMs === undefined ? Number.POSITIVE_INFINITY : now + remainingMs,
          remainingMs,
        });
      }
    }
    return out;
  }

  /**
   * The grants in allow4/allow6. expiresAt = now + the kernel's remaining time, which nft's JSON gives in whole
   * seconds (rounded down), so expiresAt may be up to 1 s early. An element without timeout (added by hand) is
   * reported with expiresAt = +Infinity. A missing table means no grants.
   */
  list(now: number): Promise<GrantEntry[]> {
    return this.queue.run(async () => {
      const listed = (await this.readGrants(now)) ?? [];
      return listed.map(({ family, address, access, expiresAt }) => ({ family, address, access, expiresAt }));
    });
  }

  async check(plan: FirewallPlan): Promise<string[]> {
    const protect = checkProtect(plan?.protect);
    return await this.queue.run(async () => {
      const items = await this.listTableJson();
      if (items === undefined) return [`nft table ${this.t} is missing`];
      const problems: string[] = [];
      const sets = new Map<string, Record<string, unknown>>();
      let chain: Record<string, unknown> | undefined;
      for (const item of items) {
        const o = obj(item);
        const set = obj(o?.['set']);
        if (set && set['table'] === this.table && typeof set['name'] === 'string') sets.set(set['name'], set);
        const ch = obj(o?.['chain']);
        if (ch && ch['table'] === this.table && ch['name'] === 'input') chain = ch;
      }
      for (const name of ['allow4', 'allow6', 'protect'] as const) {
        const set = sets.get(name);
        if (!set) {
          problems.push(`nft set ${this.t} ${name} is missing`);
          continue;
        }
        const type = set['type'];
        if (!Array.isArray(type) || type.join(' . ') !== SET_TYPES[name].join(' . ')) {
          problems.push(`nft set ${name} has type ${Array.isArray(type) ? type.join(' . ') : String(type)}`);
        }
        const flags = Array.isArray(set['flags']) ? (set['flags'] as unknown[]) : [];
        if (name !== 'protect' && !flags.includes('timeout')) problems.push(`nft set ${name} lacks flags timeout`);
      }
      const pset = sets.get('protect');
      if (pset) {
        const have: string[] = [];
        const elems = Array.isArray(pset['elem']) ? (pset['elem'] as unknown[]) : [];
        for (const e of elems) {
          const parts = obj(e)?.['concat'];
          if (Array.isArray(parts) && parts.length === 2) have.push(`${String(parts[0])}/${String(parts[1])}`);
          else have.push(JSON.stringify(e));
        }
        const want = protect.map((a) => `${a.proto}/${a.port}`);
        const sortedHave = [...have].sort();
        const sortedWant = [...want].sort();
        if (sortedHave.join(',') !== sortedWant.join(',')) {
          problems.push(
            `protected list differs: installed [${sortedHave.join(', ')}], expected [${sortedWant.join(', ')}]`,
          );
        }
      }
      if (!chain) {
        problems.push(`nft chain ${this.t} input is missing`);
      } else {
        if (chain['type'] !== 'filter' || chain['hook'] !== 'input' || chain['prio'] !== -10) {
          problems.push(
            `nft chain input is not "type filter hook input priority filter - 10" (found ${String(chain['type'])} ${String(chain['hook'])} ${String(chain['prio'])})`,
          );
        }
        if (chain['policy'] !== 'accept') problems.push(`nft chain input has policy ${String(chain['policy'])}`);
        const rules = await this.listChainRules();
        if (rules.join('\n') !== NFT_RULES.join('\n')) {
          problems.push(`nft chain input rules differ: found [${rules.join('; ')}]`);
        }
      }
      return problems;
    });
  }

  /** The rule lines of our input chain, as `nft list chain` prints them. */
  private async listChainRules(): Promise<string[]> {
    const argv = this.nftArgv(['list', 'chain', 'inet', this.table, 'input']);
    const r = await run(argv, { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw new FirewallError(describeFailure(['nft', 'list', 'chain', 'inet', this.table, 'input'], r));
    const lines = r.stdout.split('\n').map((l) => l.trim());
    const start = lines.findIndex((l) => l.startsWith('type filter hook'));
    if (start < 0) return [];
    const rules: string[] = [];
    for (const l of lines.slice(start + 1)) {
      if (l === '}') break;
      if (l !== '') rules.push(l);
    }
    return rules;
  }

  uninstall(): Promise<void> {
    return this.queue.run(async () => {
      const r = await this.runScript(`add table ${this.t}\ndelete table ${this.t}\n`);
      if (!r.ok) throw new FirewallError(`nft uninstall failed: ${r.message}`);
    });
  }

  close(): Promise<void> {
    return this.queue.run(async () => {
      const shell = this.shell;
      this.shell = undefined;
      await shell?.close();
    });
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}
