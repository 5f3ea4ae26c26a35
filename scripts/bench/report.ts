/**
 * The bench's output: a table for people, or (--json) one JSON object with the raw samples. Progress goes to stderr;
 * only the report goes to stdout.
 * @module
 */
import type { ColdStart } from './cold-start.js';
import type { ColdVerify } from './cold-verify.js';
import type { FloorResult } from './floor.js';
import type { BackendResult } from './knock-to-open.js';
import { type BackendName, E2E, GAP_MS } from './options.js';
import { type Stats, r3, roundStats, stats } from './stats.js';
import type { BenchSection } from './section.js';
import type { VerifyCase } from './verify-throughput.js';

export interface Report {
  readonly machine: Record<string, string | number>;
  readonly options: {
    readonly quick: boolean;
    readonly backends: readonly BackendName[];
    readonly only: readonly string[] | 'all';
  };
  readonly verification: readonly VerifyCase[];
  readonly coldVerify?: ColdVerify;
  readonly processStart: Stats;
  readonly latency: readonly BackendResult[];
  readonly floor?: FloorResult;
  readonly coldStart?: ColdStart;
  /** Parts plugged in through section.ts (flood, scale). */
  readonly extra: readonly { readonly name: string; readonly section: BenchSection }[];
  readonly elapsedS: number;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
const thousands = (x: number): string => Math.round(x).toLocaleString('en-US');

function table(rows: readonly (readonly string[])[], right: readonly boolean[]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows
    .map((r, i) => {
      const line = r
        .map((cell, c) => (right[c] ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
        .join('  ');
      return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

function verificationTable(r: Report): string[] {
  const v = r.verification[0];
  const cv = r.coldVerify;
  if (v === undefined || cv === undefined) return [];
  return [
    `1. Verification, in-process, one core (median of ${v?.rounds ?? '?'} rounds after 2 warm-up rounds)`,
    table(
      [
        ['case', 'clients', 'packets/round', 'packets/s', 'µs/packet', 'µs min..max'],
        ...r.verification.map((c) => [
          c.name,
          String(c.clients),
          String(c.packetsPerRound),
          thousands(c.pps),
          f2(c.usPerPacket),
          `${f2(c.usMin)}..${f2(c.usMax)}`,
        ]),
      ],
      [false, true, true, true, true, true],
    ),
    `   valid packet in a fresh process, one every ${cv.gapMs} ms (as a daemon sees knocks; JIT cold): ` +
      `first ${f1(cv.firstUs)} µs, then median ${f1(cv.rest.median)} µs, p90 ${f1(cv.rest.p90)} µs (n=${cv.rest.n})`,
  ];
}

function latencyTable(r: Report): string[] {
  if (r.latency.length === 0) return [];
  const rows: string[][] = [['backend', 'figure', 'n', 'median', 'p90', 'p99', 'max']];
  const row = (backend: string, figure: string, s: Stats) =>
    rows.push([backend, figure, String(s.n), f2(s.median), f2(s.p90), f2(s.p99), f2(s.max)]);
  for (const b of r.latency) {
    row(b.backend, 'daemon: datagram → firewall committed', b.daemon);
    row(b.backend, 'client: knock sent → TCP connect', b.e2e);
    row(b.backend, '  (daemon side of those samples)', b.e2eDaemon);
    rows.push([b.backend, 'first grant after start (cold)', '1', f2(b.firstGrantMs), '', '', '']);
    row(b.backend, 'backend grant() alone, back to back', b.fwAlone.backToBack);
    row(b.backend, `backend grant() alone, after ${GAP_MS} ms idle`, b.fwAlone.afterIdle);
    row(b.backend, 'backend grant() alone, a new address each', b.fwAlone.newAddress);
    if (b.fwAlone.oneshot) row(b.backend, '  same, oneshot mode (nft -f - per grant)', b.fwAlone.oneshot);
  }
  return [
    '2. Knock to open, real daemon in a network namespace, real firewall (ms)',
    table(rows, [false, false, true, true, true, true, true]),
    `   client side: a fresh TCP connect attempt every ${E2E.intervalMs} ms (each dropped after ${E2E.attemptTimeoutMs} ms), ` +
      `so it reads up to ~${E2E.intervalMs} ms high; median attempts: ${r.latency.map((b) => `${b.backend} ${b.e2eAttempts}`).join(', ')}`,
    `   rejected packets during the runs: ${r.latency.map((b) => `${b.backend} ${JSON.stringify(b.rejects)}`).join(', ')}`,
  ];
}

function floorTable(f: FloorResult | undefined): string[] {
  if (f === undefined) return [];
  const rows: string[][] = [['setup', 'n', 'min', 'median', 'p90', 'p99', 'attempts']];
  for (const x of f.rows) {
    if (x.skipped !== undefined) {
      rows.push([x.label, '-', '', `not measured: ${x.skipped}`, '', '', '']);
      continue;
    }
    const s = x.stats;
    rows.push([x.label, String(s.n), f2(s.min), f2(s.median), f2(s.p90), f2(s.p99), String(x.attempts)]);
  }
  const daemon = f.rows.filter((x) => x.daemon !== undefined && x.daemon.n > 0);
  const med = (row: string) => f.rows.find((x) => x.row === row)?.stats.median ?? Number.NaN;
  const spa = med('spa-nft');
  return [
    `3. Knock to open at the floor, side by side: datagram sent → first TCP connect, ms (${f.n} samples per row, interleaved)`,
    table(rows, [false, true, true, true, true, true, true]),
    `   probe: a fresh SYN every ${f.intervalMs} ms (futex nap in between), each sample from a new source address`,
    `   spa-knockd nftables (default, kernel fast path) − minimal nft program: ${f2(med('spa-nft-fast') - med('mini-nft'))} ms; ` +
      `− minimal, kernel adds the element: ${f2(med('spa-nft-fast') - med('mini-kernel'))} ms (medians); ` +
      `fwknopd / spa-knockd: ${f2(med('fwknopd') / med('spa-nft-fast'))}×`,
    `   spa-knockd nftables, fast_path = false − minimal nft program: ${f2(spa - med('mini-nft'))} ms (median); ` +
      `fwknopd / it: ${f2(med('fwknopd') / spa)}×`,
    `   paired (median of the per-round differences, rounds where both rows opened): default − minimal nft program ${f2(paired(f, 'spa-nft-fast', 'mini-nft'))} ms` +
      (f.rows.some((x) => x.row === 'spa-nft-b')
        ? `; ${f.compareFast ? 'default' : 'fast_path = false'} − the --compare checkout ${f2(paired(f, f.compareFast ? 'spa-nft-fast' : 'spa-nft', 'spa-nft-b'))} ms`
        : ''),
    ...daemon.map(
      (x) =>
        `   ${x.label}, daemon side (datagram handed over → committed${x.row === 'spa-nft-fast' ? ', confirmed after the CONFIRM_HOLD_MS wait; the port opened before' : ''}): median ${f2(x.daemon?.median ?? Number.NaN)}, p90 ${f2(x.daemon?.p90 ?? Number.NaN)}` +
        (x.trace ? `; trace (µs, min/median): ${JSON.stringify(x.trace)}` : ''),
    ),
  ];
}

/** Median of a[i] − b[i] over the rounds where both rows opened (FloorRowResult.rounds). */
function paired(f: FloorResult, a: string, b: string): number {
  const ra = f.rows.find((x) => x.row === a)?.rounds;
  const rb = f.rows.find((x) => x.row === b)?.rounds;
  if (!ra || !rb) return Number.NaN;
  const d: number[] = [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i];
    const y = rb[i];
    if (x !== undefined && y !== undefined && Number.isFinite(x) && Number.isFinite(y)) d.push(x - y);
  }
  return stats(d).median;
}

function coldStartTable(c: ColdStart | undefined): string[] {
  if (c === undefined) return [];
  const rows: string[][] = [['command', 'n', 'min', 'median', 'p90', '× node -e 0']];
  for (const x of c.rows)
    rows.push([x.label, String(x.stats.n), f1(x.stats.min), f1(x.stats.median), f1(x.stats.p90), f2(x.ratio)]);
  return [
    `4. Client cold start, wall time from spawn to exit, ms (${c.runs} runs each, interleaved; a real knock to 127.0.0.1)`,
    table(rows, [false, true, true, true, true, true]),
  ];
}

function extraTables(r: Report): string[] {
  return r.extra.flatMap(({ section: s }) => [
    s.title,
    table(
      [s.header, ...s.rows],
      s.header.map((_, i) => i > 0),
    ),
    ...(s.notes ?? []).map((n) => `   ${n}`),
    '',
  ]);
}

export function printTable(r: Report): void {
  const m = r.machine;
  const p = r.processStart;
  const out = [
    `spa-knock bench${r.options.quick ? ' (--quick)' : ''}: ${m['cpus']} cores (${m['cpu']}), Node ${m['node']}, kernel ${m['kernel']}`,
    `${m['nft']}; ${m['iptables']}; load average at start ${m['loadavg_at_start']}`,
    '',
    ...verificationTable(r),
    '',
    ...latencyTable(r),
    '',
    ...floorTable(r.floor),
    '',
    ...coldStartTable(r.coldStart),
    '',
    ...extraTables(r),
    `5. Starting a process (execFile('true'), ${p.n} runs): median ${f2(p.median)} ms, p90 ${f2(p.p90)} ms, max ${f2(p.max)} ms`,
    '',
    `total ${r.elapsedS.toFixed(1)} s`,
    ...r.latency.flatMap((b) => b.failures).map((f) => `WARNING: ${f}`),
    ...(r.floor?.rows ?? []).flatMap((x) => x.failures.map((f) => `WARNING: ${x.label}: ${f}`)),
    ...r.extra.flatMap((e) => (e.section.failures ?? []).map((f) => `WARNING: ${e.name}: ${f}`)),
  ];
  const lines = out.filter((l, i) => l !== '' || (i > 0 && out[i - 1] !== '')); // one blank line between parts
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function jsonReport(r: Report): unknown {
  return {
    machine: r.machine,
    options: r.options,
    verification: r.verification.map((c) => ({
      case: c.name,
      clients: c.clients,
      packets_per_round: c.packetsPerRound,
      rounds: c.rounds,
      packets_per_s: Math.round(c.pps),
      us_per_packet: r3(c.usPerPacket),
      us_per_packet_min: r3(c.usMin),
      us_per_packet_max: r3(c.usMax),
    })),
    ...(r.coldVerify
      ? {
          verification_cold_us: {
            every_ms: r.coldVerify.gapMs,
            first: r3(r.coldVerify.firstUs),
            rest: roundStats(r.coldVerify.rest),
          },
        }
      : {}),
    process_start_ms: roundStats(r.processStart),
    latency_ms: Object.fromEntries(
      r.latency.map((b) => [
        b.backend,
        {
          daemon: roundStats(b.daemon),
          end_to_end: {
            ...roundStats(b.e2e),
            attempts_median: b.e2eAttempts,
            attempt_interval_ms: E2E.intervalMs,
            attempt_timeout_ms: E2E.attemptTimeoutMs,
          },
          end_to_end_daemon_side: roundStats(b.e2eDaemon),
          first_grant_cold: r3(b.firstGrantMs),
          backend_grant_alone: {
            back_to_back: roundStats(b.fwAlone.backToBack),
            after_idle: roundStats(b.fwAlone.afterIdle),
            idle_ms: GAP_MS,
            new_address: roundStats(b.fwAlone.newAddress),
            ...(b.fwAlone.oneshot ? { new_address_oneshot: roundStats(b.fwAlone.oneshot) } : {}),
          },
          samples: b.samples,
          rejects: b.rejects,
          failures: b.failures,
        },
      ]),
    ),
    ...(r.floor
      ? {
          floor_ms: {
            n: r.floor.n,
            interval_ms: r.floor.intervalMs,
            rows: r.floor.rows.map((x) => ({
              row: x.row,
              label: x.label,
              ...(x.skipped !== undefined ? { skipped: x.skipped } : { ...roundStats(x.stats), attempts: x.attempts }),
              ...(x.daemon ? { daemon_side: roundStats(x.daemon) } : {}),
              ...(x.trace ? { trace_us: x.trace } : {}),
              samples: x.samples,
              failures: x.failures,
            })),
          },
        }
      : {}),
    ...(r.coldStart
      ? {
          cold_start_ms: r.coldStart.rows.map((x) => ({
            command: x.label,
            ...roundStats(x.stats),
            ratio_to_node_e_0: r3(x.ratio),
            samples: x.samples,
          })),
        }
      : {}),
    ...Object.fromEntries(r.extra.map((e) => [e.name, e.section.json])),
    elapsed_s: r3(r.elapsedS),
  };
}
