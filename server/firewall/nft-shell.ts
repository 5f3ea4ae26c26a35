/**
 * The `nft -i` session protocol: one long-lived nft child, one transaction per request, and how nft's error output
 * becomes one line. Used by the nftables backend (server/firewall/nftables.ts) for grant and revoke.
 * @module
 */
import { NFT_RECYCLE_AFTER } from '../../shared/constants.js';
import { traceMark } from '../grant-trace.js';
import { LongLivedProcess, ToolSession, oneLine } from './process.js';

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

export type ShellResult =
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
 * and is replaced by a fresh one after `recycleAfter` requests (default NFT_RECYCLE_AFTER) to bound its memory.
 */
export class NftShell extends ToolSession {
  private seq = 0;
  private pending: Pending | undefined;
  private skipCaret = false;

  constructor(argv: readonly string[], timeoutMs: number, recycleAfter = NFT_RECYCLE_AFTER) {
    super(argv, timeoutMs, recycleAfter);
  }

  private start(): LongLivedProcess {
    this.skipCaret = false;
    const proc = new LongLivedProcess(this.argv, {
      env: { HOME: '/dev/null' },
      onStdoutLine: () => {
        /* nothing expected without -e */
      },
      onStderrLine: (line) => {
        if (this.child.holds(proc)) this.onStderr(line); // a recycled child's last output is not ours to read
      },
      onExit: (code, signal, spawnError) => {
        this.child.drop(proc);
        const p = this.pending;
        if (!p || p.proc !== proc) return;
        this.pending = undefined;
        clearTimeout(p.timer);
        const why = spawnError ?? (signal !== null ? `killed by ${signal}` : `exit ${code ?? '?'}`);
        const detail = oneLine(p.lines.join('\n'));
        p.resolve({ ok: false, kind: 'process', message: `nft process ended (${why})${detail ? `: ${detail}` : ''}` });
      },
    });
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
      traceMark('confirmed');
      const last = p.lines[p.lines.length - 1];
      if (last?.startsWith('Error: syntax error')) p.lines.pop();
      this.pending = undefined;
      this.skipCaret = true;
      clearTimeout(p.timer);
      const failed = p.lines.some((l) => /(?:^|: )Error: /.test(l));
      p.resolve(failed ? { ok: false, kind: 'nft', message: nftErrorMessage(p.lines) } : { ok: true });
      return;
    }
    if (p.lines.length === 0) traceMark('first-stderr-line');
    p.lines.push(line);
  }

  /** Run one transaction line. Callers serialize (one request at a time). Never rejects. */
  transact(line: string): Promise<ShellResult> {
    if (this.pending) return Promise.resolve({ ok: false, kind: 'process', message: 'nft shell busy' });
    if (line.includes('\n')) return Promise.resolve({ ok: false, kind: 'nft', message: 'newline in nft command' });
    const proc = this.child.next(() => this.start());
    const token = `spak_sync_${++this.seq}`;
    return new Promise<ShellResult>((resolve) => {
      const timer = setTimeout(() => {
        if (this.pending?.token !== token) return;
        this.pending = undefined;
        resolve({ ok: false, kind: 'process', message: `nft did not answer within ${this.timeoutMs} ms` });
        void proc.kill();
        this.child.drop(proc);
      }, this.timeoutMs);
      this.pending = { proc, token, lines: [], resolve, timer };
      const wrote = proc.write(`${line}\n${token}\n`);
      traceMark('written');
      if (!wrote) {
        // the exit handler resolves (it may already have run for a spawn failure)
        if (this.pending?.token === token && !proc.isAlive) {
          this.pending = undefined;
          clearTimeout(timer);
          resolve({ ok: false, kind: 'process', message: 'nft process is not running' });
        }
      }
    });
  }
}
