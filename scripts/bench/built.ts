/**
 * spa-knockd as it ships, for the bench's rows that time it (floor.ts, flood.ts).
 * @module
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { ROOT } from '../../harness/run.js';
import { progress } from './lifecycle.js';

const built = new Map<string, string>();

/**
 * The daemon as it ships, for a checkout's server/main.ts: its dist/server/main.js, built now (tsc -p
 * tsconfig.build.json, once per run), run by plain node. Under tsx the loader's thread can throw the daemon's
 * optimized code away at moments of its own (test/server/warm-jit.test.ts); spa-knockd never runs that way.
 */
export function builtDaemon(main: string): string {
  const known = built.get(main);
  if (known !== undefined) return known;
  const checkout = dirname(dirname(main));
  progress(`building ${checkout}/dist (tsc -p tsconfig.build.json)`);
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(checkout, 'tsconfig.build.json')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building ${checkout}: ${(r.stdout + r.stderr).trim()}`);
  const entry = join(checkout, 'dist', 'server', 'main.js');
  built.set(main, entry);
  return entry;
}
