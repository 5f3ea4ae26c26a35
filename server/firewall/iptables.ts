/**
 * iptables backend (iptables + ip6tables): one chain of our own in the filter table, a gate jumped to from INPUT.
 *
 * Chain content, per family, exactly as `iptables -S` prints it (and as we write it with `iptables-restore`):
 *
 * ```
 * -A INPUT -j SPA_KNOCK                                   (rule 1 of INPUT)
 * -A SPA_KNOCK -i lo -j RETURN
 * -A SPA_KNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN
 * -A SPA_KNOCK -s 10.0.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "spa-knock exp=1700000000000" -j RETURN
 * -A SPA_KNOCK -p tcp -m tcp --dport 22 -j DROP
 * ```
 *
 * RETURN, not ACCEPT: the host's own INPUT rules still apply to what we let through.
 *
 * Every change rebuilds the chain of the affected family in ONE `iptables-restore --noflush` run: declaring
 * `:SPA_KNOCK - [0:0]` flushes the chain and the rules that follow re-fill it, all in one commit (one nft transaction
 * with iptables-nft, one table replace with legacy iptables). The rules are built from an in-memory mirror of the
 * grants, so grant = refresh (the old rule for the same address/access is replaced), revoke of an absent grant is a
 * no-op, and the chain always matches the mirror. The mirror is loaded from the kernel at install (reconcile at
 * start: the `exp=` comments tell which leftovers are still valid; expired ones are dropped) or, lazily, by the first
 * grant/revoke without install.
 *
 * IPv4 and IPv6 are separate tables: a change touching both is two commits; if the second fails the first is put
 * back (best effort), so a failed call leaves the firewall as it was.
 *
 * The kernel does not expire these rules (kernelExpiry = false): the daemon revokes on time. list() reports every
 * grant rule the kernel holds, including ones already past expiresAt (so the caller can revoke them).
 * @module
 */
import type { Access } from '../../shared/access.js';
import { FirewallError, type Family, type FirewallBackend, type FirewallPlan, type GrantEntry } from './backend.js';
import {
  SerialQueue,
  canonicalAddress,
  checkGrants,
  checkKeys,
  checkProtect,
  describeFailure,
  grantKeyString,
  oneLine,
  run,
  withWrap,
} from './exec.js';

export interface IptablesOptions {
  /** Our chain in the filter table. Default `SPA_KNOCK`. Must match /^[A-Za-z][A-Za-z0-9_-]{0,27}$/. */
  readonly chain?: string;
  /** Command prefix for every command, e.g. `['ip', 'netns', 'exec', 'NS']` (tests). */
  readonly wrap?: readonly string[];
  /** Per-command timeout in ms. Default 10 000. */
  readonly timeoutMs?: number;
}

const CHAIN_RE = /^[A-Za-z][A-Za-z0-9_-]{0,27}$/;
const BUILTIN = new Set(['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING']);
const MIN_GRANT_MS = 1000;
const COMMENT_RE = /^spa-knock exp=([0-9]{1,16})$/;
const FAMILIES: readonly Family[] = [4, 6];

interface Tools {
  readonly list: string;
  readonly restore: string;
  readonly label: string;
}

const TOOLS: Readonly<Record<Family, Tools>> = {
  4: { list: 'iptables', restore: 'iptables-restore', label: 'IPv4' },
  6: { list: 'ip6tables', restore: 'ip6tables-restore', label: 'IPv6' },
};

/** What `iptables -S` told us about our chain in one family. */
interface Snapshot {
  readonly exists: boolean;
  /** Our chain's rules as printed (`-A CHAIN ...`), in order. */
  readonly lines: readonly string[];
  /** Grant rules found in the chain. */
  readonly grants: readonly GrantEntry[];
  /** DROP rules found in the chain. */
  readonly protect: readonly Access[];
  /** Rules elsewhere that jump to our chain (`-A X ... -j CHAIN`). */
  readonly jumps: readonly string[];
  /** 1-based positions in INPUT of the plain `-A INPUT -j CHAIN` rules. */
  readonly inputJumpPositions: readonly number[];
}

/** Split an `iptables -S` line into words, honouring double quotes (with backslash escapes). */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quoted) {
      if (c === '\\' && i + 1 < line.length) {
        cur += line[++i];
      } else if (c === '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

export class IptablesBackend implements FirewallBackend {
  readonly name = 'iptables' as const;
  readonly kernelExpiry = false;
  readonly chain: string;
  private readonly wrap: readonly string[];
  private readonly timeoutMs: number;
  private readonly queue = new SerialQueue();
  /** Mirror of the chain content; undefined until install or the first lazy load. */
  private state: { protect: Access[]; grants: Map<string, GrantEntry> } | undefined;

  constructor(opts: IptablesOptions = {}) {
    const chain = opts.chain ?? 'SPA_KNOCK';
    if (typeof chain !== 'string' || !CHAIN_RE.test(chain) || BUILTIN.has(chain.toUpperCase())) {
      throw new FirewallError(`invalid iptables chain name ${JSON.stringify(String(chain)).slice(0, 40)}`);
    }
    if (opts.wrap !== undefined && !opts.wrap.every((w) => typeof w === 'string')) {
      throw new FirewallError('invalid wrap: not a list of strings');
    }
    this.chain = chain;
    this.wrap = [...(opts.wrap ?? [])];
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  // ------------------------------------------------------------------------------------------------ rule text
  private loRule(): string {
    return `-A ${this.chain} -i lo -j RETURN`;
  }

  private ctRule(): string {
    return `-A ${this.chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`;
  }

  private grantRule(g: GrantEntry): string {
    const prefix = g.family === 4 ? 32 : 128;
    const { proto, port } = g.access;
    const exp = Math.round(g.expiresAt);
    return `-A ${this.chain} -s ${g.address}/${prefix} -p ${proto} -m ${proto} --dport ${port} -m comment --comment "spa-knock exp=${exp}" -j RETURN`;
  }

  private dropRule(a: Access): string {
    return `-A ${this.chain} -p ${a.proto} -m ${a.proto} --dport ${a.port} -j DROP`;
  }

  /** The full chain content for one family. */
  private chainLines(f: Family, protect: readonly Access[], grants: Iterable<GrantEntry>): string[] {
    const lines = [this.loRule(), this.ctRule()];
    for (const g of grants) if (g.family === f) lines.push(this.grantRule(g));
    for (const a of protect) lines.push(this.dropRule(a));
    return lines;
  }

  /** `iptables-restore --noflush` input that replaces our chain (and optionally fixes the INPUT jump). */
  private restoreText(body: readonly string[], pre: readonly string[] = []): string {
    return ['*filter', `:${this.chain} - [0:0]`, ...pre, ...body, 'COMMIT', ''].join('\n');
  }

  // ------------------------------------------------------------------------------------------------ commands
  private async restore(f: Family, text: string): Promise<void> {
    const tool = TOOLS[f];
    const argv = withWrap(this.wrap, [tool.restore, '-w', '--noflush']);
    const r = await run(argv, { input: text, timeoutMs: this.timeoutMs });
    if (r.code !== 0) {
      if (r.spawnError === undefined && !r.timedOut && r.stderr.trim() !== '') {
        const main = r.stderr.split('\n').find((l) => l.trim() !== '' && !l.startsWith('Try ')) ?? '';
        const at = /Error occurred at line: ([0-9]+)/.exec(r.stderr);
        throw new FirewallError(
          `${tool.restore} failed (exit ${r.code}): ${oneLine(main)}${at ? ` (line ${at[1]})` : ''}`,
        );
      }
      throw new FirewallError(describeFailure([tool.restore, '--noflush'], r));
    }
  }

  private async snapshot(f: Family): Promise<Snapshot> {
    const tool = TOOLS[f];
    const argv = withWrap(this.wrap, [tool.list, '-w', '-S']);
    const r = await run(argv, { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw new FirewallError(describeFailure([tool.list, '-S'], r));
    const c = this.chain;
    let exists = false;
    const lines: string[] = [];
    const grants: GrantEntry[] = [];
    const protect: Access[] = [];
    const jumps: string[] = [];
    const inputJumpPositions: number[] = [];
    let inputPos = 0;
    for (const raw of r.stdout.split('\n')) {
      const line = raw.trim();
      if (line === '') continue;
      const w = splitRuleLine(line);
      if (w[0] === '-N' && w[1] === c) {
        exists = true;
        continue;
      }
      if (w[0] !== '-A') continue;
      if (w[1] === 'INPUT') inputPos++;
      if (w[1] === c) {
        lines.push(line);
        const g = this.parseGrant(f, w);
        if (g) grants.push(g);
        const d = this.parseDrop(w);
        if (d) protect.push(d);
        continue;
      }
      const j = w.indexOf('-j');
      if (j >= 0 && w[j + 1] === c) {
        jumps.push(line);
        if (w[1] === 'INPUT' && w.length === 4) inputJumpPositions.push(inputPos);
      }
    }
    return { exists, lines, grants, protect, jumps, inputJumpPositions };
  }

  /** Parse the options of an `-A CHAIN ...` line into a map; undefined if an option appears we do not know. */
  private options(w: readonly string[]): Map<string, string[]> | undefined {
    const known = new Set(['-s', '-p', '-m', '--dport', '--comment', '-j', '-i', '--ctstate']);
    const m = new Map<string, string[]>();
    for (let i = 2; i < w.length; i += 2) {
      const k = w[i] as string;
      const v = w[i + 1];
      if (!known.has(k) || v === undefined) return undefined;
      m.set(k, [...(m.get(k) ?? []), v]);
    }
    return m;
  }

  private parseGrant(f: Family, w: readonly string[]): GrantEntry | undefined {
    const o = this.options(w);
    if (!o) return undefined;
    const src = o.get('-s')?.[0];
    const proto = o.get('-p')?.[0];
    const port = Number(o.get('--dport')?.[0]);
    const comment = o.get('--comment')?.[0];
    if (o.get('-j')?.[0] !== 'RETURN' || src === undefined || comment === undefined) return undefined;
    if (proto !== 'tcp' && proto !== 'udp') return undefined;
    if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
    const cm = COMMENT_RE.exec(comment);
    if (!cm) return undefined;
    const slash = src.indexOf('/');
    const addr = slash >= 0 ? src.slice(0, slash) : src;
    const len = slash >= 0 ? src.slice(slash + 1) : f === 4 ? '32' : '128';
    if (len !== (f === 4 ? '32' : '128')) return undefined;
    let address: string;
    try {
      address = canonicalAddress(f, addr);
    } catch {
      return undefined;
    }
    return { family: f, address, access: { proto, port }, expiresAt: Number(cm[1]) };
  }

  private parseDrop(w: readonly string[]): Access | undefined {
    const o = this.options(w);
    if (!o || o.get('-j')?.[0] !== 'DROP' || o.has('-s') || o.has('-i')) return undefined;
    const proto = o.get('-p')?.[0];
    const port = Number(o.get('--dport')?.[0]);
    if (proto !== 'tcp' && proto !== 'udp') return undefined;
    if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
    return { proto, port };
  }

  /** Restore text that puts a family back to how `snap` saw it (used to undo a half-applied change). */
  private undoText(snap: Snapshot, jumpAdded: boolean): string {
    const lines = ['*filter'];
    if (snap.exists) {
      lines.push(`:${this.chain} - [0:0]`, ...snap.lines);
      if (jumpAdded) lines.push(`-D INPUT -j ${this.chain}`);
    } else {
      lines.push(`:${this.chain} - [0:0]`, `-D INPUT -j ${this.chain}`, `-X ${this.chain}`);
    }
    lines.push('COMMIT', '');
    return lines.join('\n');
  }

  // ------------------------------------------------------------------------------------------------ install
  async install(plan: FirewallPlan): Promise<void> {
    const protect = checkProtect(plan?.protect);
    await this.queue.run(async () => {
      const now = Date.now();
      const snaps = new Map<Family, Snapshot>();
      for (const f of FAMILIES) snaps.set(f, await this.snapshot(f));
      const grants = new Map<string, GrantEntry>();
      for (const snap of snaps.values()) {
        for (const g of snap.grants) if (g.expiresAt > now) grants.set(grantKeyString(g), g);
      }
      const done: { f: Family; snap: Snapshot; jumpAdded: boolean }[] = [];
      for (const f of FAMILIES) {
        const snap = snaps.get(f) as Snapshot;
        // exactly one plain jump, at position 1 of INPUT; otherwise remove every jump and insert one at the top
        // (only our plain INPUT jumps are touched; a jump the admin added elsewhere is theirs)
        const jumpOk = snap.inputJumpPositions.length === 1 && snap.inputJumpPositions[0] === 1;
        const pre = jumpOk
          ? []
          : [...snap.inputJumpPositions.map(() => `-D INPUT -j ${this.chain}`), `-I INPUT 1 -j ${this.chain}`];
        try {
          await this.restore(f, this.restoreText(this.chainLines(f, protect, grants.values()), pre));
        } catch (err) {
          await this.undo(done);
          throw err;
        }
        done.push({ f, snap, jumpAdded: snap.inputJumpPositions.length === 0 });
      }
      this.state = { protect, grants };
    });
  }

  private async undo(done: readonly { f: Family; snap: Snapshot; jumpAdded: boolean }[]): Promise<void> {
    for (const d of done) {
      try {
        await this.restore(d.f, this.undoText(d.snap, d.jumpAdded));
      } catch {
        /* best effort: the original error is what the caller needs */
      }
    }
  }

  /** The mirror, loading it from the kernel if install() has not run in this process. */
  private async ensureState(): Promise<{ protect: Access[]; grants: Map<string, GrantEntry> }> {
    if (this.state) return this.state;
    const grants = new Map<string, GrantEntry>();
    let protect: Access[] | undefined;
    for (const f of FAMILIES) {
      const snap = await this.snapshot(f);
      if (!snap.exists) {
        throw new FirewallError(`iptables chain ${this.chain} (${TOOLS[f].label}) is not installed; run install first`);
      }
      for (const g of snap.grants) grants.set(grantKeyString(g), g);
      protect ??= [...snap.protect];
    }
    this.state = { protect: protect ?? [], grants };
    return this.state;
  }

  /** Rebuild the chains of `families` from `next`; on failure restore the ones already changed. */
  private async apply(families: ReadonlySet<Family>, next: Map<string, GrantEntry>): Promise<void> {
    const state = await this.ensureState();
    const done: Family[] = [];
    for (const f of FAMILIES) {
      if (!families.has(f)) continue;
      try {
        await this.restore(f, this.restoreText(this.chainLines(f, state.protect, next.values())));
      } catch (err) {
        for (const d of done) {
          try {
            await this.restore(d, this.restoreText(this.chainLines(d, state.protect, state.grants.values())));
          } catch {
            /* best effort */
          }
        }
        throw err;
      }
      done.push(f);
    }
    state.grants = next;
  }

  // ------------------------------------------------------------------------------------------------ grant / revoke
  /** Add or refresh grants. expiresAt is stored in the rule comment; it is at least now + 1 s (like nft). */
  async grant(entries: readonly GrantEntry[], now: number): Promise<void> {
    const grants = checkGrants(entries);
    if (typeof now !== 'number' || !Number.isFinite(now)) throw new FirewallError('invalid grant time');
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
      let changed = false;
      for (const k of keys) {
        if (next.delete(grantKeyString(k))) {
          changed = true;
          families.add(k.family);
        }
      }
      if (changed) await this.apply(families, next);
    });
  }

  // ------------------------------------------------------------------------------------------------ read side
  /** Every grant rule the kernel holds (both families), expiresAt from the rule comment; expired ones included. */
  async list(_now: number): Promise<GrantEntry[]> {
    return await this.queue.run(async () => {
      const out: GrantEntry[] = [];
      for (const f of FAMILIES) out.push(...(await this.snapshot(f)).grants);
      return out;
    });
  }

  async check(plan: FirewallPlan): Promise<string[]> {
    const protect = checkProtect(plan?.protect);
    return await this.queue.run(async () => {
      const problems: string[] = [];
      for (const f of FAMILIES) {
        const label = TOOLS[f].label;
        const snap = await this.snapshot(f);
        if (!snap.exists) {
          problems.push(`iptables chain ${this.chain} is missing (${label})`);
          if (snap.jumps.length > 0) problems.push(`${snap.jumps.length} rule(s) jump to the missing chain (${label})`);
          continue;
        }
        if (snap.inputJumpPositions.length === 0) problems.push(`no jump from INPUT to ${this.chain} (${label})`);
        else if (snap.inputJumpPositions.length > 1)
          problems.push(`${snap.inputJumpPositions.length} jumps from INPUT to ${this.chain} (${label})`);
        else if (snap.inputJumpPositions[0] !== 1)
          problems.push(`jump to ${this.chain} is rule ${snap.inputJumpPositions[0]} of INPUT, not rule 1 (${label})`);
        const have = snap.protect.map((a) => `${a.proto}/${a.port}`).sort();
        const want = protect.map((a) => `${a.proto}/${a.port}`).sort();
        if (have.join(',') !== want.join(',')) {
          problems.push(`protected list differs (${label}): installed [${have.join(', ')}], expected [${want.join(', ')}]`);
        }
        const expected = this.chainLines(f, protect, snap.grants);
        if (expected.join('\n') !== snap.lines.join('\n') && have.join(',') === want.join(',')) {
          problems.push(`iptables chain ${this.chain} rules differ from the plan (${label})`);
        }
      }
      return problems;
    });
  }

  /** Remove every jump to our chain, then flush and delete it, per family; absent = fine. */
  async uninstall(): Promise<void> {
    await this.queue.run(async () => {
      for (const f of FAMILIES) {
        const snap = await this.snapshot(f);
        const lines = snap.jumps.map((l) => l.replace(/^-A /, '-D '));
        if (snap.exists) lines.push(`-F ${this.chain}`, `-X ${this.chain}`);
        if (lines.length === 0) continue;
        await this.restore(f, ['*filter', ...lines, 'COMMIT', ''].join('\n'));
      }
      this.state = undefined;
    });
  }

  /** Nothing long-lived to release; rules stay. */
  async close(): Promise<void> {
    await this.queue.run(async () => undefined);
  }
}
