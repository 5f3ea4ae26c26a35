/**
 * A real spa-knockd inside a test namespace: started with `ip netns exec NS node --import tsx server/main.ts`,
 * its NDJSON log collected line by line, stopped (or `kill -9`ed) by PID.
 *
 * `launcher` runs in the namespace in front of node and must exec it in place (same PID), e.g.
 * `['systemd-socket-activate', '--datagram', '-l', 'ADDR:PORT']` (socket activation as systemd does it: the daemon
 * then starts on the first datagram, so start() takes a `trigger` that sends one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { DAEMON, ROOT } from './run.js';

export class DaemonProcess {
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  #child: ChildProcess | undefined;
  #exited: Promise<number | null> | undefined;

  constructor(
    readonly ns: string,
    readonly configPath: string,
    readonly opts: {
      readonly launcher?: readonly string[];
      readonly args?: readonly string[];
      /** The daemon's entry point (default: this checkout's server/main.ts; the bench's A/B row runs another one). */
      readonly entry?: string;
      /**
       * Run `entry` (built JavaScript) with plain node, as spa-knockd runs, not through tsx: the bench's knock-to-open
       * rows (scripts/bench/floor.ts; tsx's loader thread can throw the daemon's optimized code away, server/warmup.ts).
       */
      readonly plain?: boolean;
    } = {},
  ) {}

  /** Whatever the process wrote to stdout and could not be parsed as JSON. */
  get unparsed(): string[] {
    return this.lines.filter((l) => typeof l.unparsed === 'string').map((l) => String(l.unparsed));
  }

  /** Resolves with the exit status once the process has exited (undefined when never started). */
  exited(): Promise<number | null> | undefined {
    return this.#exited;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(timeoutMs = 15_000, trigger?: () => Promise<void>): Promise<void> {
    const from = this.lines.length;
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns,
        ...(this.opts.launcher ?? []),
        process.execPath,
        ...(this.opts.plain === true ? [] : ['--import', 'tsx']),
        this.opts.entry ?? DAEMON,
        '--config',
        this.configPath,
        ...(this.opts.args ?? []),
      ],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.#child = child;
    this.#exited = new Promise((r) => child.on('exit', (code) => r(code)));
    let buf = '';
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ unparsed: line });
        }
      }
    });
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    await trigger?.();
    const ok = await Promise.race([
      this.waitFor((l) => l.event === 'start', timeoutMs, from).then(() => true),
      this.#exited.then(() => false),
    ]);
    if (!ok) throw new Error(`spa-knockd exited at start: ${this.stderr.trim()}`);
  }

  events(name: string, from = 0): Record<string, unknown>[] {
    return this.lines.slice(from).filter((l) => l.event === name);
  }

  /** Resolve with the first log line from index `from` on that matches. */
  async waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs = 5000,
    from = 0,
  ): Promise<Record<string, unknown>> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.slice(from).find(pred);
      if (hit) return hit;
      if (Date.now() > end)
        throw new Error(
          `no such log line within ${timeoutMs} ms; log: ${JSON.stringify(this.lines.slice(from))} stderr: ${this.stderr}`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SIGTERM (graceful) or SIGKILL, by PID; resolves when the process is gone. */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<number | null> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    child.kill(signal);
    const code = await this.#exited;
    this.#child = undefined;
    return code ?? null;
  }
}
