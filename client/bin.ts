/**
 * The knock bundle of the installed `spa-knock` (dist/client/knock.cjs, run by client/launch.ts; built by
 * scripts/build-client.ts): a plain knock (`spa-knock HOST [knock options]`, client/fast-args.ts) runs from here,
 * with only the modules a knock needs; for every other command line — commands, `--help`, `--version`, mistakes —
 * the launcher runs the whole command line (client/cli.ts, yargs), which parses it from the start as
 * `npm run knock` does. Client cold start: docs/benchmarks.md.
 * @module
 */
import { die } from '../shared/cli.js';
import { fastKnockArgs } from './fast-args.js';
import { knock } from './knock.js';
import { withProfile } from './profile.js';

/**
 * Start a plain knock and return true, or return false at once for any other command line (the launcher then runs
 * the whole CLI). The knock ends the process: exit 0 when done (stdout is written with write(2), client/out.ts, so
 * everything is out: no waiting for sockets to close or the heap to be torn down), or its error line and status.
 */
export function fastKnock(argv: readonly string[]): boolean {
  const fast = fastKnockArgs(argv);
  if (fast === undefined) return false;
  new Promise<void>((resolve) => resolve(knock(withProfile(fast)))).then(
    () => process.exit(),
    (e: unknown) => die('spa-knock', e),
  );
  return true;
}
