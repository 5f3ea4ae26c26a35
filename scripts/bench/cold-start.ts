/**
 * Client cold start (issue 9, "Scale and the client"): how long `spa-knock HOST` takes as a fresh process, against
 * `node -e 0` on the same machine. What is measured is what ships: `npm pack` (whose `prepack` builds dist/ from the
 * checkout: tsc, then scripts/build-client.ts with the build-time code cache), the tarball unpacked into a temporary
 * directory, and its `bin` run with node — the launcher, the knock bundle and the code cache of this Node. Rows: the
 * bin; the same bin with its code cache turned off (`SPA_KNOCK_CODE_CACHE=0`: what another Node version pays on its
 * first run, before it has written its own cache); the unbundled tsc output of the same sources
 * (dist/client/cli.js, with the checkout's node_modules). Runs are interleaved (node -e 0, the bin, …, round after
 * round) so that load hits every row alike; each figure is the wall time from spawn to exit. The knock is a real one
 * to 127.0.0.1 (a port nobody listens on: one datagram on loopback, nothing else), with HOME and XDG_CACHE_HOME set
 * to an empty temporary directory, so that no profile and no code cache of the user's is read.
 * @module
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../../harness/run.js';
import { formatKey, generateKey } from '../../shared/keys.js';
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

/** No npm_* variables of a surrounding `npm run bench`, no NODE_OPTIONS (e.g. --import tsx) in the children. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') && k !== 'NODE_OPTIONS'),
  );
  return { ...env, ...extra };
}

function sh(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0] ?? 'false', argv.slice(1), { cwd, env, timeout: 300_000, maxBuffer: 16 << 20 }, (e, out, err) =>
      e ? reject(new Error(`${argv.join(' ')}: ${err.trim() || e.message}`)) : resolve(out),
    );
  });
}

/** `npm pack` of the checkout, unpacked into dir/package; returns the path of the `spa-knock` bin in it. */
async function packedBin(dir: string): Promise<string> {
  const env = cleanEnv({});
  const out = await sh(['npm', 'pack', '--json', '--pack-destination', dir], ROOT, env);
  const [info] = JSON.parse(out) as { filename: string }[];
  if (info === undefined) throw new Error('npm pack printed no file name');
  await sh(['tar', '-xzf', join(dir, info.filename), '-C', dir], dir, env);
  const bin = join(dir, 'package', 'dist', 'client', 'spa-knock.cjs');
  if (!existsSync(bin)) throw new Error(`the packed package has no ${bin}`);
  return bin;
}

export async function benchColdStart(runs: number, scope: Scope): Promise<ColdStart> {
  const dir = mkdtempSync(join(tmpdir(), 'spak-cold-start-'));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  progress(
    'client cold start: npm pack (prepack builds dist/ and the code cache), unpacked into a temporary directory',
  );
  const bin = await packedBin(dir);
  const key = join(dir, 'k.key');
  writeFileSync(key, `${formatKey(generateKey())}\n`, { mode: 0o600 });
  const knock = ['127.0.0.1', '--port', '62299', '--key', key];
  const env = cleanEnv({ HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') });
  const rows: { label: string; argv: string[]; env: NodeJS.ProcessEnv }[] = [
    { label: 'node -e 0', argv: [process.execPath, '-e', '0'], env },
    { label: 'spa-knock HOST (the packed bin)', argv: [process.execPath, bin, ...knock], env },
    {
      label: 'the packed bin, code cache off',
      argv: [process.execPath, bin, ...knock],
      env: { ...env, SPA_KNOCK_CODE_CACHE: '0' },
    },
  ];
  const unbundled = join(ROOT, 'dist/client/cli.js');
  if (existsSync(unbundled))
    rows.push({
      label: 'spa-knock HOST, unbundled (dist/client/cli.js)',
      argv: [process.execPath, unbundled, ...knock],
      env,
    });
  progress(`client cold start: ${runs} runs each, interleaved (${rows.map((r) => r.label).join('; ')})`);
  const ms = rows.map(() => [] as number[]);
  for (const r of rows) await timeRun(r.argv, r.env); // one unrecorded run each (page cache)
  if (existsSync(join(dir, 'cache', 'spa-knock')))
    progress(
      'client cold start: WARNING: V8 refused the packed code cache (another Node ran prepack?); the bin runs on the cache it wrote on its first run',
    );
  for (let i = 0; i < runs; i++) {
    checkInterrupted();
    for (const [j, r] of rows.entries()) ms[j]?.push(await timeRun(r.argv, r.env));
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
