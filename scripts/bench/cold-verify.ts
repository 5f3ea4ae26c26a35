/**
 * Verification in a fresh process (cold-verify-child.ts), one valid packet every GAP_MS ms: what the daemon's JIT
 * would see between knocks without the warm-up it does at start.
 * @module
 */
import { startChild } from './child.js';
import type { ColdVerifyOps } from './cold-verify-child.js';
import { progress, type Scope } from './lifecycle.js';
import { GAP_MS } from './options.js';
import { type Stats, stats } from './stats.js';

export interface ColdVerify {
  readonly n: number;
  readonly gapMs: number;
  readonly firstUs: number;
  /** Packets 2..n. */
  readonly rest: Stats;
}

export async function benchColdVerify(n: number, scope: Scope): Promise<ColdVerify> {
  progress(`verification in a fresh process, one valid packet every ${GAP_MS} ms (${n} packets)`);
  const child = await startChild<ColdVerifyOps>('cold-verify-child.ts');
  scope.defer(() => child.kill());
  const r = await child.call('verifyCold', { n, gapMs: GAP_MS }, n * GAP_MS + 30_000);
  await child.close();
  if (!r.ok || !r.us) throw new Error(`cold verification probe: ${r.error ?? '?'}`);
  return { n, gapMs: GAP_MS, firstUs: r.us[0] ?? NaN, rest: stats(r.us.slice(1)) };
}
