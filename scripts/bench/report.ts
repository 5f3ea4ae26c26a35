/**
 * The bench's output: a table for people, or (--json) one JSON object with the raw samples. Progress goes to stderr;
 * only the report goes to stdout.
 * @module
 */
import type { ColdVerify } from './cold-verify.js';
import type { BackendResult } from './knock-to-open.js';
import { type BackendName, E2E, GAP_MS } from './options.js';
import { type Stats, r3, roundStats } from './stats.js';
import type { VerifyCase } from './verify-throughput.js';

export interface Report {
  readonly machine: Record<string, string | number>;
  readonly options: { readonly quick: boolean; readonly backends: readonly BackendName[] };
  readonly verification: readonly VerifyCase[];
  readonly coldVerify: ColdVerify;
  readonly processStart: Stats;
  readonly latency: readonly BackendResult[];
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
    `3. Starting a process (execFile('true'), ${p.n} runs): median ${f2(p.median)} ms, p90 ${f2(p.p90)} ms, max ${f2(p.max)} ms`,
    '',
    `total ${r.elapsedS.toFixed(1)} s`,
    ...r.latency.flatMap((b) => b.failures).map((f) => `WARNING: ${f}`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
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
    verification_cold_us: {
      every_ms: r.coldVerify.gapMs,
      first: r3(r.coldVerify.firstUs),
      rest: roundStats(r.coldVerify.rest),
    },
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
    elapsed_s: r3(r.elapsedS),
  };
}
