/**
 * Long-lived `nft -i` sessions for the nftables backend's reads (the healer's check every `heal_interval`, the
 * prefilter's counter), so that the daemon does not fork itself several times a second: a fork copies the page tables
 * of a ~100 MB process and blocks the event loop until the child has exec'd, which under load held knocks for
 * 5–25 ms (docs/flood.md, `npm run bench -- --flood --trace`). Two sessions, one per output form: `nft -j -i` for the
 * JSON reads (`list table`, `list counter`), `nft -i` for the text of `list chain`.
 *
 * Protocol, one request at a time: the command line, then `describe meta mark`, then a sentinel line
 * `spak_sync_<n>` (a syntax error by design). nft runs the lines in order; stdout and stderr are separate pipes, so
 * their order is lost on the way, and each gets its own end mark: on stdout, the one line `describe` prints
 * (`meta expression, datatype mark …`); on stderr, the sentinel's own error block. The request is done when both have
 * come: an `Error:` on stderr before the sentinel's is the command's failure, else everything on stdout before the
 * mark is its output. The answer has the shape of a spawned `nft` (process.ts RunResult), so the callers parse it as
 * before. A session that dies is started again at the next request; it is replaced after `recycleAfter` requests (nft
 * keeps every line in its history) and runs with `HOME=/dev/null` (no history file), as the grant session does
 * (nft-shell.ts).
 * @module
 */
import { NFT_RECYCLE_AFTER } from '../../shared/constants.js';
import { LongLivedProcess, type RunResult, ToolSession } from './process.js';

const STDOUT_MARK_CMD = 'describe meta mark';
const STDOUT_MARK = /^meta expression, datatype mark\b/;

interface Pending {
  readonly proc: LongLivedProcess;
  readonly token: string;
  readonly out: string[];
  readonly err: string[];
  outDone: boolean;
  errDone: boolean;
  readonly resolve: (r: RunResult) => void;
  readonly timer: NodeJS.Timeout;
}

export class NftReader extends ToolSession {
  private pending: Pending | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private seq = 0;
  private skipCaret = false;

  /** @param argv the session's command, e.g. `['nft', '-j', '-i']` (with the backend's wrap) */
  constructor(argv: readonly string[], timeoutMs: number, recycleAfter = NFT_RECYCLE_AFTER) {
    super(argv, timeoutMs, recycleAfter);
  }

  /** Run one `nft` command (its words, as the command line would give them). One at a time, in order. Never rejects. */
  run(words: readonly string[]): Promise<RunResult> {
    const next = this.chain.then(() => this.once(words.join(' ')));
    this.chain = next;
    return next;
  }

  private start(): LongLivedProcess {
    this.skipCaret = false;
    const proc: LongLivedProcess = new LongLivedProcess(this.argv, {
      env: { HOME: '/dev/null' },
      onStdoutLine: (line) => {
        if (this.child.holds(proc)) this.onStdout(line);
      },
      onStderrLine: (line) => {
        if (this.child.holds(proc)) this.onStderr(line);
      },
      onExit: (code, signal, spawnError) => {
        this.child.drop(proc);
        const p = this.pending;
        if (!p || p.proc !== proc) return;
        this.settle(p, {
          code: -1,
          stdout: '',
          stderr: p.err.join('\n'),
          spawnError:
            spawnError ?? `the nft read session ended (${signal !== null ? `killed by ${signal}` : `exit ${code}`})`,
        });
      },
    });
    return proc;
  }

  private once(line: string): Promise<RunResult> {
    if (line.includes('\n')) return Promise.resolve({ code: -1, stdout: '', stderr: 'newline in nft command' });
    const proc = this.child.next(() => this.start());
    const token = `spak_sync_${++this.seq}`;
    return new Promise<RunResult>((resolve) => {
      const timer = setTimeout(() => {
        const p = this.pending;
        if (p?.token !== token) return;
        this.settle(p, { code: -1, stdout: '', stderr: p.err.join('\n'), timedOut: true });
        this.child.drop(proc);
        void proc.kill();
      }, this.timeoutMs);
      const p: Pending = { proc, token, out: [], err: [], outDone: false, errDone: false, resolve, timer };
      this.pending = p;
      if (!proc.write(`${line}\n${STDOUT_MARK_CMD}\n${token}\n`) && !proc.isAlive)
        this.settle(p, { code: -1, stdout: '', stderr: '', spawnError: 'the nft read session is not running' });
    });
  }

  private onStdout(line: string): void {
    const p = this.pending;
    if (!p || p.outDone) return;
    if (STDOUT_MARK.test(line)) {
      p.outDone = true;
      this.finishIfDone(p);
    } else p.out.push(line);
  }

  private onStderr(line: string): void {
    if (this.skipCaret) {
      this.skipCaret = false;
      if (/^\s*\^+\s*$/.test(line)) return;
    }
    const p = this.pending;
    if (!p || p.errDone) return;
    if (line === p.token) {
      if (p.err.at(-1)?.startsWith('Error: syntax error')) p.err.pop();
      p.errDone = true;
      this.skipCaret = true;
      this.finishIfDone(p);
    } else p.err.push(line);
  }

  private finishIfDone(p: Pending): void {
    if (!p.outDone || !p.errDone) return;
    const failed = p.err.some((l) => /(?:^|: )Error: /.test(l));
    this.settle(
      p,
      failed
        ? { code: 1, stdout: '', stderr: `${p.err.join('\n')}\n` }
        : { code: 0, stdout: p.out.length > 0 ? `${p.out.join('\n')}\n` : '', stderr: '' },
    );
  }

  private settle(p: Pending, r: RunResult): void {
    if (this.pending !== p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve(r);
  }
}
