/**
 * Running the firewall tools: one command from an argument array (never a shell string), or one long-lived child.
 *
 * - {@link run}: run one command, collect `{ code, stdout, stderr }`. It never rejects: a command that cannot be
 *   started comes back with `code: -1` and `spawnError` set.
 * - {@link LongLivedProcess}: one child with line-split stdout/stderr, for `nft -i` (server/firewall/nft-shell.ts).
 * - {@link SerialQueue}: one operation at a time per backend.
 * - {@link withWrap}: every backend accepts a command prefix (e.g. `['ip', 'netns', 'exec', 'NS']`) prepended to every
 *   command it runs; tests use it to drive the real backend against a network namespace.
 *
 * Child-process timeouts here are real timers: they bound I/O, they are not the grant clock.
 * @module
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export interface RunResult {
  /** Exit code; -1 when the process could not be started or was killed by a signal / the timeout. */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Set when the command could not be started at all (e.g. ENOENT). */
  readonly spawnError?: string;
  /** Set when the command was killed after `timeoutMs`. */
  readonly timedOut?: boolean;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. Without it stdin is closed at once. */
  readonly input?: string;
  /** Kill the child (SIGKILL) after this long. Default {@link DEFAULT_RUN_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
}

/** Timeout of {@link run} when the caller gives none (the backends always give theirs). */
export const DEFAULT_RUN_TIMEOUT_MS = 10_000;

/** The environment for firewall tools: the caller's, with a fixed locale so messages are stable. */
function toolEnv(extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: 'C', LANG: 'C', ...extra };
}

/** Run `argv[0]` with `argv.slice(1)`; resolve with exit code and captured output. Never rejects. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.resolve({ code: -1, stdout: '', stderr: '', spawnError: 'empty command' });
  return new Promise((resolve) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv() });
    } catch (err) {
      resolve({ code: -1, stdout: '', stderr: '', spawnError: errorText(err) });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let spawnError: string | undefined;
    let timedOut = false;
    let settled = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => {
      /* EPIPE when the child exits early: its exit code tells the story */
    });
    child.on('error', (e) => {
      spawnError = errorText(e);
    });
    child.on('close', (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const result: RunResult = {
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        ...(spawnError !== undefined ? { spawnError } : {}),
        ...(timedOut ? { timedOut } : {}),
      };
      resolve(result);
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** A one-line description of a failed {@link RunResult}, for an ERR_SPA_FIREWALL message. */
export function describeFailure(argv: readonly string[], r: RunResult): string {
  const name = argv.join(' ');
  if (r.spawnError !== undefined) {
    // with a wrap (tests: ip netns exec) the tool is not argv[0]; name the tool the operator must install
    const tool =
      argv.find((a) => /^(nft|iptables|ip6tables|iptables-restore|ip6tables-restore)$/.test(a)) ?? argv[0] ?? '';
    if (/ENOENT/.test(r.spawnError))
      return `cannot run ${shortCmd(name)}: ${tool} not found (install the ${tool === 'nft' ? 'nftables' : 'iptables'} package)`;
    return `cannot run ${shortCmd(name)}: ${r.spawnError}`;
  }
  if (r.timedOut) return `${shortCmd(name)} timed out`;
  const msg = oneLine(r.stderr) || oneLine(r.stdout) || 'no output';
  return `${shortCmd(name)} failed (exit ${r.code}): ${msg}`;
}

function shortCmd(s: string): string {
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Collapse text to one line (first non-empty lines joined by ' | '), at most `max` characters. */
export function oneLine(text: string, max = 300): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const s = lines.slice(0, 3).join(' | ');
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] ?? e.name;
  return String(e);
}

export interface LongLivedOptions {
  /** Extra environment variables (on top of the caller's environment and LC_ALL=C). */
  readonly env?: Readonly<Record<string, string>>;
  /** Called for each complete stdout line (without the newline). */
  readonly onStdoutLine?: (line: string) => void;
  /** Called for each complete stderr line (without the newline). */
  readonly onStderrLine?: (line: string) => void;
  /** Called once when the process has gone (exit, signal, or spawn failure). */
  readonly onExit?: (code: number | null, signal: NodeJS.Signals | null, spawnError: string | undefined) => void;
}

/**
 * One long-lived child with pipes on all three streams; output is delivered line by line.
 * The process is not restarted here: owners decide (see server/firewall/nft-shell.ts).
 */
export class LongLivedProcess {
  private readonly child: ChildProcessWithoutNullStreams | undefined;
  private alive = true;
  private exitWaiters: (() => void)[] = [];
  private outBuf = '';
  private errBuf = '';

  constructor(
    argv: readonly string[],
    private readonly opts: LongLivedOptions = {},
  ) {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      this.alive = false;
      this.child = undefined;
      queueMicrotask(() => this.finish(null, null, 'empty command'));
      return;
    }
    let spawnError: string | undefined;
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: toolEnv(this.opts.env) });
    } catch (err) {
      this.alive = false;
      this.child = undefined;
      const msg = errorText(err);
      queueMicrotask(() => this.finish(null, null, msg));
      return;
    }
    this.child = child;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      this.outBuf = this.split(this.outBuf + d, this.opts.onStdoutLine);
    });
    child.stderr.on('data', (d: string) => {
      this.errBuf = this.split(this.errBuf + d, this.opts.onStderrLine);
    });
    child.stdin.on('error', () => {
      /* EPIPE: reported through 'close' */
    });
    child.on('error', (e) => {
      spawnError = errorText(e);
    });
    child.on('close', (code, signal) => {
      this.alive = false;
      this.finish(code, signal, spawnError);
    });
  }

  private split(buf: string, cb: ((line: string) => void) | undefined): string {
    let rest = buf;
    for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
      const line = rest.slice(0, i);
      rest = rest.slice(i + 1);
      cb?.(line);
    }
    return rest;
  }

  private finish(code: number | null, signal: NodeJS.Signals | null, spawnError: string | undefined): void {
    // flush partial last lines
    if (this.outBuf !== '') this.opts.onStdoutLine?.(this.outBuf);
    if (this.errBuf !== '') this.opts.onStderrLine?.(this.errBuf);
    this.outBuf = '';
    this.errBuf = '';
    this.opts.onExit?.(code, signal, spawnError);
    const waiters = this.exitWaiters;
    this.exitWaiters = [];
    for (const w of waiters) w();
  }

  get isAlive(): boolean {
    return this.alive;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Write text to stdin. Returns false if the process is gone. */
  write(text: string): boolean {
    if (!this.alive || !this.child || this.child.stdin.destroyed) return false;
    this.child.stdin.write(text);
    return true;
  }

  /** Close stdin and wait up to `graceMs` for the process to exit, then SIGKILL it. */
  async close(graceMs = 1000): Promise<void> {
    if (!this.child || !this.alive) return;
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  }

  /** Kill at once (SIGKILL) and wait for the exit. */
  async kill(): Promise<void> {
    if (!this.child || !this.alive) return;
    const exited = new Promise<void>((r) => this.exitWaiters.push(r));
    this.child.kill('SIGKILL');
    await exited;
  }
}

/**
 * Serialize async operations: each call to `run` starts after the previous one settled (success or failure).
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** Wrap + command: the full argv. */
export function withWrap(wrap: readonly string[] | undefined, argv: readonly string[]): string[] {
  return [...(wrap ?? []), ...argv];
}

/**
 * The child of a long-lived session (nft-shell.ts, nft-reader.ts, ipt-restore-shell.ts): started on demand, replaced
 * by a fresh one after `recycleAfter` requests (a session tool keeps every line it read: this bounds its memory), and
 * forgotten when it exits or is given up, so that the next request starts another.
 */
export class SessionChild {
  #proc: LongLivedProcess | undefined;
  #served = 0;

  constructor(private readonly recycleAfter: number) {}

  get pid(): number | undefined {
    return this.#proc?.isAlive ? this.#proc.pid : undefined;
  }

  /** Is `p` the session's child now? (A replaced child's last output is not the session's to read.) */
  holds(p: LongLivedProcess): boolean {
    return this.#proc === p;
  }

  /** Forget `p` if it is the session's child (it exited, or a request gave up on it). */
  drop(p: LongLivedProcess): void {
    if (this.#proc === p) this.#proc = undefined;
  }

  /** The child for the next request: the one running, or a new one from `start` (the old one closed if it is spent). */
  next(start: () => LongLivedProcess): LongLivedProcess {
    if (this.#proc?.isAlive && this.#served >= this.recycleAfter) {
      const old = this.#proc;
      this.#proc = undefined;
      void old.close();
    }
    if (!this.#proc?.isAlive) {
      this.#served = 0;
      this.#proc = start();
    }
    this.#served++;
    return this.#proc;
  }

  async close(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    if (proc) await proc.close();
  }

  /** Kill the child as if it crashed (tests). */
  async kill(): Promise<void> {
    await this.#proc?.kill();
  }
}

/** What the long-lived sessions share (nft-shell.ts, nft-reader.ts, ipt-restore-shell.ts): the command and its child. */
export abstract class ToolSession {
  protected readonly child: SessionChild;

  constructor(
    protected readonly argv: readonly string[],
    protected readonly timeoutMs: number,
    recycleAfter: number,
  ) {
    this.child = new SessionChild(recycleAfter);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  close(): Promise<void> {
    return this.child.close();
  }

  /** For tests: kill the child as if it crashed. */
  kill(): Promise<void> {
    return this.child.kill();
  }
}
