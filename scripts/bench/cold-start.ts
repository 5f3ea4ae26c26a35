/**
 * Client cold start (issue 9, "Scale and the client"): how long `spa-knock HOST` takes as a fresh process, against
 * `node -e 0` on the same machine. Runs are interleaved (node -e 0, the bundle, the unbundled build, …, round after
 * round) so that load hits every row alike; each row's figure is the wall time from spawn to exit. The knock is a real
 * one to 127.0.0.1 (a port nobody listens on: one datagram on loopback, nothing else), with HOME set to an empty
 * temporary directory so that no profile of the user's is read. The bundle is built fresh from the sources here
 * (scripts/build-client.ts, the same as `npm run build`), so the figure is for the code in the checkout.
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../harness/run.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import { buildClient } from '../build-client.js';
import { type Scope, checkInterrupted, progress } from './lifecycle.js';
import { type Stats, r3, stats } from './stats.js';

export interface ColdStartRow {
  readonly label: string;
  readonly stats: Stats;
  /** Median relative to `node -e 0`'s median. */
  readonly ratio: number;
  readonly samples: readonly number[];
}

export interface ColdStart {
  readonly runs: number;
  readonly rows: readonly ColdStartRow[];
}

function timeRun(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const [cmd, ...args] = argv;
    const child = spawn(cmd ?? 'false', args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code === 0) resolve(ms);
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${err.trim().split('\n')[0] ?? ''}`));
    });
  });
}

export async function benchColdStart(runs: number, scope: Scope): Promise<ColdStart> {
  const dir = mkdtempSync(join(tmpdir(), 'spak-cold-start-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = join(dir, 'client', 'spa-knock.cjs');
  progress('client cold start: bundling the client (scripts/build-client.ts)');
  await buildClient(join(dir, 'client'));
  const key = join(dir, 'k.key');
  writeFileSync(key, `${formatKey(generateKey())}\n`, { mode: 0o600 });
  const knock = ['127.0.0.1', '--port', '62299', '--key', key];
  const env = { ...process.env, HOME: dir };
  const rows: { label: string; argv: string[] }[] = [
    { label: 'node -e 0', argv: [process.execPath, '-e', '0'] },
    { label: 'spa-knock HOST (the bin: one bundled file)', argv: [process.execPath, bundle, ...knock] },
  ];
  const unbundled = join(ROOT, 'dist/client/cli.js');
  if (existsSync(unbundled))
    rows.push({
      label: 'spa-knock HOST, unbundled (dist/client/cli.js)',
      argv: [process.execPath, unbundled, ...knock],
    });
  progress(`client cold start: ${runs} runs each, interleaved (${rows.map((r) => r.label).join('; ')})`);
  const ms = rows.map(() => [] as number[]);
  for (const r of rows) await timeRun(r.argv, env); // one unrecorded run each (page cache)
  for (let i = 0; i < runs; i++) {
    checkInterrupted();
    for (const [j, r] of rows.entries()) ms[j]?.push(await timeRun(r.argv, env));
  }
  const base = stats(ms[0] ?? []).median;
  return {
    runs,
    rows: rows.map((r, j) => {
      const s = stats(ms[j] ?? []);
      return { label: r.label, stats: s, ratio: s.median / base, samples: (ms[j] ?? []).map(r3) };
    }),
  };
}
