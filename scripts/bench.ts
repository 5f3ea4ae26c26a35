/**
 * `npm run bench [-- --quick] [-- --json] [-- --backend nftables|iptables|all]` (as root).
 *
 * 1. Verification throughput, in-process on one core, no sockets (scripts/bench/verify-throughput.ts), and in a
 *    fresh process with a cold JIT (cold-verify.ts).
 * 2. Knock-to-open latency per firewall backend, for real, in network namespaces made and removed here
 *    (knock-to-open.ts): daemon side (`latency_ms` of each grant log line), client side (knock sent → TCP connect),
 *    and each backend's grant() alone.
 * 3. Knock to open at the floor, side by side and interleaved (floor.ts): the probe's own cost, two minimal programs,
 *    spa-knockd with each backend, fwknopd and knockd when installed (`--compare PATH` adds another checkout's daemon).
 * 4. Client cold start against `node -e 0` (cold-start.ts).
 * 5. The cost of starting a process on this machine (process-cost.ts; it dominates the iptables backend).
 * Then every part in EXTRA_PARTS (section.ts: flood, 10k-grant scale). `--only PART,…` runs a subset.
 *
 * `--flood` runs only the floods of issue 9 instead (scripts/bench/flood.ts): spa-knockd (nftables) and fwknopd side by
 * side, a legitimate knock timed during each flood; 20 s per flood, 8 s with --quick; `--runs N` repeats every row and
 * pools the knocks (flood-report.ts), `--servers` picks rows. Figures: docs/flood.md.
 * `--scale` runs instead the 10,000-grant scale part alone (scripts/bench/scale.ts) and prints its own block.
 *
 * Traffic: none in part 1; in part 2 only between the two namespaces made for it. Progress goes to stderr; the table
 * (or, with --json, one JSON object) to stdout (report.ts). Everything made is removed in `finally`, on an error and
 * on SIGINT/SIGTERM (lifecycle.ts). Method and figures: docs/performance.md.
 * @module
 */
import { cpus, loadavg, release } from 'node:os';
import { benchColdVerify } from './bench/cold-verify.js';
import { benchFlood } from './bench/flood.js';
import { printFloodTable } from './bench/flood-report.js';
import { type BackendResult, benchBackend } from './bench/knock-to-open.js';
import { Scope, checkInterrupted, handleSignals, isInterrupted, progress, runCleanups } from './bench/lifecycle.js';
import { type ColdStart, benchColdStart } from './bench/cold-start.js';
import { FLOOR_ROWS, type FloorResult, benchFloor } from './bench/floor.js';
import { PARTS, checkPrerequisites, die, parseOptions, runs, sizes, usage } from './bench/options.js';
import type { BenchPart, BenchSection } from './bench/section.js';
import { processStartCost, toolVersion } from './bench/process-cost.js';
import { type Report, jsonReport, printTable } from './bench/report.js';
import { type ScaleResult, benchScale, printScale } from './bench/scale.js';
import { benchVerification } from './bench/verify-throughput.js';

/** `--scale`: the scale part alone (long; not in the default run). */
async function scaleMain(opts: ReturnType<typeof parseOptions>): Promise<void> {
  const results: ScaleResult[] = [];
  try {
    for (const b of opts.backends) {
      checkInterrupted();
      results.push(await benchScale(b, opts.quick));
    }
  } finally {
    await runCleanups();
  }
  if (opts.json)
    process.stdout.write(
      `${JSON.stringify({ machine: { cpus: cpus().length, loadavg: loadavg() }, scale: results })}\n`,
    );
  else printScale(results);
}

/**
 * Parts with their own module and table (section.ts). The flood part (helper "flood", scripts/bench/flood.ts) and the
 * 10,000-grant scale part (helper "sectests", scripts/bench/scale.ts) are added here.
 */
const EXTRA_PARTS: readonly BenchPart[] = [];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opts = parseOptions(args.filter((a) => a !== '--scale'));
  const known = [...PARTS, ...EXTRA_PARTS.map((p) => p.name)];
  const unknown = opts.only?.find((p) => !known.includes(p));
  if (unknown !== undefined) usage(`--only: no part "${unknown}" (parts: ${known.join(', ')})`);
  checkPrerequisites(opts);
  handleSignals();
  if (args.includes('--scale')) return scaleMain(opts);
  const sz = sizes(opts);
  if (opts.flood) {
    // `--flood`: the floods of issue 9 only, spa-knockd and fwknopd side by side (scripts/bench/flood.ts)
    try {
      const seconds = opts.quick ? 8 : 20;
      const r = await benchFlood({ seconds, trace: opts.trace, runs: opts.runs, servers: opts.servers });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else printFloodTable(r, seconds);
    } finally {
      await runCleanups();
    }
    return;
  }
  const t0 = Date.now();
  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? '?',
    node: process.version,
    kernel: release(),
    loadavg_at_start: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    nft: await toolVersion(['nft', '--version']),
    iptables: await toolVersion(['iptables', '--version']),
  };
  try {
    // first, while this process is still small (fork cost grows with the parent's memory)
    progress('process start cost');
    const processStart = await processStartCost(sz.processStarts);
    let verification: Report['verification'] = [];
    let coldVerify: Report['coldVerify'] | undefined;
    if (runs(opts, 'verify')) {
      const part1 = new Scope();
      verification = await benchVerification(sz, part1);
      await part1.close();
      checkInterrupted();
      const cold = new Scope();
      coldVerify = await benchColdVerify(sz.cold, cold);
      await cold.close();
    }
    const latency: BackendResult[] = [];
    if (runs(opts, 'backends')) {
      for (const b of opts.backends) {
        checkInterrupted();
        latency.push(await benchBackend(b, sz));
      }
    }
    let floor: FloorResult | undefined;
    if (runs(opts, 'floor')) {
      checkInterrupted();
      const rows = FLOOR_ROWS.filter((r) => r !== 'spa-nft-b' || opts.compare !== undefined);
      floor = await benchFloor({
        n: sz.floor,
        intervalMs: 0.2,
        rows,
        ...(opts.compare !== undefined ? { compare: opts.compare, compareFast: opts.compareFast } : {}),
      });
    }
    let coldStart: ColdStart | undefined;
    if (runs(opts, 'cold-start')) {
      checkInterrupted();
      const scope = new Scope();
      coldStart = await benchColdStart(sz.coldStart, scope);
      await scope.close();
    }
    const extra: { name: string; section: BenchSection }[] = [];
    for (const part of EXTRA_PARTS) {
      if (!runs(opts, part.name)) continue;
      checkInterrupted();
      const scope = new Scope();
      extra.push({ name: part.name, section: await part.run(opts, scope) });
      await scope.close();
    }
    const report: Report = {
      machine,
      options: { quick: opts.quick, backends: opts.backends, only: opts.only ?? 'all' },
      verification,
      ...(coldVerify ? { coldVerify } : {}),
      processStart,
      latency,
      ...(floor ? { floor } : {}),
      ...(coldStart ? { coldStart } : {}),
      extra,
      elapsedS: (Date.now() - t0) / 1000,
    };
    if (opts.json) process.stdout.write(`${JSON.stringify(jsonReport(report))}\n`);
    else printTable(report);
    const failed =
      latency.some((b) => b.failures.length > 0) ||
      (floor?.rows.some((r) => r.failures.length > 0) ?? false) ||
      extra.some((e) => (e.section.failures?.length ?? 0) > 0);
    if (failed) process.exitCode = 1;
  } finally {
    await runCleanups();
  }
}

main().then(
  () => {
    if (!isInterrupted()) process.exit(process.exitCode ?? 0);
  },
  async (e: unknown) => {
    if (isInterrupted()) return; // the signal handler cleans up and exits
    await runCleanups();
    die((e as Error).message.split('\n')[0] ?? String(e));
  },
);
