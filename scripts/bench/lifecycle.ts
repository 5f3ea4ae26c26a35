/**
 * Cleanup for the bench: every namespace, process and directory it makes is registered here when it is made, and
 * removed last-in first-out in `finally`, on an error, and on SIGINT/SIGTERM. Progress lines go to stderr.
 * @module
 */

type Cleanup = () => Promise<void> | void;
/** A cleanup that runs at most once: a second caller waits for the first run to end. */
type Once = () => Promise<void>;

const cleanups: Once[] = [];
let interrupted = false;

export const progress = (msg: string): void => {
  process.stderr.write(`bench: ${msg}\n`);
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function once(fn: Cleanup): Once {
  let p: Promise<void> | undefined;
  return () =>
    (p ??= (async () => {
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`bench: cleanup step failed: ${(e as Error).message}\n`);
      }
    })());
}

export function defer(fn: Cleanup): void {
  cleanups.push(once(fn));
}

/** Run every registered cleanup, last in first out (one that a Scope is running is waited for, not run twice). */
export async function runCleanups(): Promise<void> {
  for (let fn = cleanups.pop(); fn; fn = cleanups.pop()) await fn();
}

/**
 * Cleanups of one part: run by `close()` when the part ends, or by runCleanups() (the signal handler) if it never
 * gets there or is interrupted half-way; each runs once either way.
 */
export class Scope {
  readonly #mine: Once[] = [];

  defer(fn: Cleanup): void {
    const o = once(fn);
    this.#mine.push(o);
    cleanups.push(o);
  }

  async close(): Promise<void> {
    for (let i = this.#mine.length - 1; i >= 0; i--) await this.#mine[i]?.();
    for (const o of this.#mine.splice(0)) {
      const i = cleanups.lastIndexOf(o);
      if (i >= 0) cleanups.splice(i, 1);
    }
  }
}

export function isInterrupted(): boolean {
  return interrupted;
}

export function checkInterrupted(): void {
  if (interrupted) throw new Error('interrupted');
}

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\nbench: ${signal}; stopping the daemons and removing the namespaces\n`);
  const hard = setTimeout(() => process.exit(130), 15_000);
  void runCleanups().finally(() => {
    clearTimeout(hard);
    process.exit(130);
  });
}

export function handleSignals(): void {
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Let a pending signal be handled between timed rounds. */
export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));
