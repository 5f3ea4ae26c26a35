/**
 * Cleanup for the bench: every namespace, process and directory it makes is registered here when it is made, and
 * removed last-in first-out in `finally`, on an error, and on SIGINT/SIGTERM. Progress lines go to stderr.
 * @module
 */

type Cleanup = () => Promise<void> | void;

const cleanups: Cleanup[] = [];
let interrupted = false;

export const progress = (msg: string): void => {
  process.stderr.write(`bench: ${msg}\n`);
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function defer(fn: Cleanup): void {
  cleanups.push(fn);
}

async function runEach(fns: Cleanup[]): Promise<void> {
  for (let fn = fns.pop(); fn; fn = fns.pop()) {
    try {
      await fn();
    } catch (e) {
      process.stderr.write(`bench: cleanup step failed: ${(e as Error).message}\n`);
    }
  }
}

export async function runCleanups(): Promise<void> {
  await runEach(cleanups);
}

/** Cleanups of one part: run by `close()` when the part ends, or by runCleanups() if it never gets there. */
export class Scope {
  readonly #mine: Cleanup[] = [];

  defer(fn: Cleanup): void {
    this.#mine.push(fn);
    defer(fn);
  }

  async close(): Promise<void> {
    for (const fn of this.#mine) {
      const i = cleanups.lastIndexOf(fn);
      if (i >= 0) cleanups.splice(i, 1);
    }
    await runEach(this.#mine);
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
