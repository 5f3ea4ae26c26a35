/**
 * The `spa-knock` program as installed (package.json `bin`, bundled by scripts/build-client.ts): a plain knock
 * (`spa-knock HOST [knock options]`, client/fast-args.ts) runs from here, with only the modules a knock needs;
 * every other command line — commands, `--help`, `--version`, mistakes — loads the whole command line
 * (client/cli.ts, yargs), which parses it from the start as `npm run knock` does. Client cold start:
 * docs/benchmarks.md.
 * @module
 */
import { die } from '../shared/cli.js';
import { fastKnockArgs } from './fast-args.js';
import { knock } from './knock.js';
import { withProfile } from './profile.js';

const fast = fastKnockArgs(process.argv.slice(2));
if (fast === undefined) {
  // client/cli.ts runs its main() when loaded; its own failures end there (die)
  import('./cli.js').catch((e: unknown) => die('spa-knock', e));
} else {
  // stdout is written with write(2) (client/out.ts), so everything is out when the knock is done: exit then, without
  // waiting for the sockets to close and the heap to be torn down
  new Promise<void>((resolve) => resolve(knock(withProfile(fast)))).then(
    () => process.exit(),
    (e: unknown) => die('spa-knock', e),
  );
}
