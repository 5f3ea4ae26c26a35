/**
 * A long-lived `iptables-restore -v --noflush` (or ip6tables-restore) child, one commit per request: the iptables
 * backend's grant and revoke (server/firewall/iptables.ts) without starting a process for each (~10–13 ms here, far
 * more on a loaded machine, against ~0.7 ms for a commit through the running child; measured 2026-12-05).
 *
 * Protocol: `iptables-restore` reads its input line by line and commits each `*filter … COMMIT` block when it reads
 * the `COMMIT` line (iptables-nft: one nftables transaction, with the generation check that makes it refresh its cache
 * and retry if another process changed the ruleset since; legacy: one table replace, taking the xtables lock for the
 * block only, `-w` waiting for it). With `-v` it copies comment lines to stdout as it reads them (flushed). So each
 * request is the block followed by a sentinel comment `#spak_sync_<n>`: the sentinel on stdout means every line
 * before it was processed and the block committed. A block that fails makes the child print
 * `iptables-restore: line N failed…` on stderr and exit with nothing of that block committed: the request fails with
 * that line (N counted from the start of this request) and the next request starts a new child. Both variants
 * (iptables 1.8.9, nf_tables and legacy) were checked by hand for the sentinel, the lock release after COMMIT, and a
 * chain deleted and re-created by another process between two requests.
 *
 * The child is replaced after `recycleAfter` requests (it keeps no history, but this bounds whatever it might keep).
 * @module
 */
import { LongLivedProcess, ToolSession, oneLine } from './process.js';

export type RestoreResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly kind: 'restore' | 'process'; readonly message: string };

interface Pending {
  readonly proc: LongLivedProcess;
  readonly token: string;
  /** Input lines the child had read before this request (its error line numbers count from its start). */
  readonly lineBase: number;
  readonly errLines: string[];
  readonly resolve: (r: RestoreResult) => void;
  readonly timer: NodeJS.Timeout;
}

/** Requests served by one child before it is replaced. */
export const RESTORE_RECYCLE_AFTER = 1000;

export class RestoreShell extends ToolSession {
  private seq = 0;
  /** Lines written to the current child. */
  private lines = 0;
  private pending: Pending | undefined;

  /** `argv` is the whole command, e.g. `['iptables-restore', '-v', '-w', '--noflush']` after a wrap; `tool` names it. */
  constructor(
    argv: readonly string[],
    private readonly tool: string,
    timeoutMs: number,
    recycleAfter = RESTORE_RECYCLE_AFTER,
  ) {
    super(argv, timeoutMs, recycleAfter);
  }

  private start(): LongLivedProcess {
    this.lines = 0;
    const proc = new LongLivedProcess(this.argv, {
      onStdoutLine: (line) => {
        const p = this.pending;
        if (p?.proc !== proc || line !== p.token) return; // anything else -v prints is not ours to read
        this.pending = undefined;
        clearTimeout(p.timer);
        p.resolve({ ok: true });
      },
      onStderrLine: (line) => {
        const p = this.pending;
        if (p?.proc === proc && line.trim() !== '') p.errLines.push(line);
      },
      onExit: (code, signal, spawnError) => {
        this.child.drop(proc);
        const p = this.pending;
        if (p?.proc !== proc) return;
        this.pending = undefined;
        clearTimeout(p.timer);
        p.resolve(this.failure(p, code, signal, spawnError));
      },
    });
    return proc;
  }

  /** Why the child ended during request `p`: its own error line (a block it refused), or the process. */
  private failure(
    p: Pending,
    code: number | null,
    signal: NodeJS.Signals | null,
    spawnError: string | undefined,
  ): RestoreResult {
    const rel = (n: string): number => Number(n) - p.lineBase;
    const main = p.errLines.find((l) => !l.startsWith('Try ') && !l.startsWith('Error occurred at line')) ?? '';
    const at = /Error occurred at line: ([0-9]+)/.exec(p.errLines.join('\n'));
    if (spawnError === undefined && signal === null && main !== '') {
      const msg = oneLine(main.replace(/line ([0-9]+)/, (_, n: string) => `line ${rel(n)}`));
      const where = at ? ` (line ${rel(at[1] as string)})` : '';
      return { ok: false, kind: 'restore', message: `${this.tool} failed (exit ${code ?? '?'}): ${msg}${where}` };
    }
    const why = spawnError ?? (signal !== null ? `killed by ${signal}` : `exit ${code ?? '?'}`);
    const detail = oneLine(p.errLines.join('\n'));
    return { ok: false, kind: 'process', message: `${this.tool} ended (${why})${detail ? `: ${detail}` : ''}` };
  }

  /**
   * Commit one `*filter … COMMIT` block (text ending in a newline, without comment lines of its own). Callers
   * serialize (one request at a time). Never rejects.
   */
  commit(text: string): Promise<RestoreResult> {
    if (this.pending) return Promise.resolve({ ok: false, kind: 'process', message: `${this.tool} busy` });
    const proc = this.child.next(() => this.start());
    const token = `#spak_sync_${++this.seq}`;
    const input = `${text}${token}\n`;
    const lineBase = this.lines;
    this.lines += input.split('\n').length - 1;
    return new Promise<RestoreResult>((resolve) => {
      const timer = setTimeout(() => {
        if (this.pending?.token !== token) return;
        this.pending = undefined;
        resolve({ ok: false, kind: 'process', message: `${this.tool} did not answer within ${this.timeoutMs} ms` });
        void proc.kill();
        this.child.drop(proc);
      }, this.timeoutMs);
      this.pending = { proc, token, lineBase, errLines: [], resolve, timer };
      if (!proc.write(input) && this.pending?.token === token && !proc.isAlive) {
        // the exit handler resolves if it has not run yet; it may already have (a spawn failure)
        this.pending = undefined;
        clearTimeout(timer);
        resolve({ ok: false, kind: 'process', message: `${this.tool} is not running` });
      }
    });
  }
}
