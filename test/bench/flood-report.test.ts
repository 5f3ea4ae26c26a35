/**
 * The flood bench's report (scripts/bench/flood-report.ts): the knocks of several runs pooled per server and flood —
 * the p99 of all of them, each run's own p99, the count over issue 9's 10 ms — and `--runs` / `--servers` refused with
 * one line when they make no sense (scripts/bench/options.ts), before anything is set up.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { floodTable, poolRuns } from '../../scripts/bench/flood-report.js';
import type { FloodName, FloodRow } from '../../scripts/bench/flood.js';
import { stats } from '../../scripts/bench/stats.js';
import { ROOT } from '../../harness/run.js';

const run = promisify(execFile);

// drops: 'unknown' for a run whose kernel counter could not be read (a default parameter would turn undefined into 0)
function row(run: number, flood: FloodName, samples: number[], lost = 0, drops: number | 'unknown' = 0): FloodRow {
  return {
    server: 'spa-knockd nftables',
    flood,
    sent: 1000,
    perSecond: 50,
    open: stats(samples),
    lost,
    drops: drops === 'unknown' ? undefined : drops,
    prefilterDrops: 0,
    rssKb: [60_000, 61_000],
    cpuMs: 100,
    cpuUsPerDatagram: 100,
    runQueueMs: 1,
    run,
    samples,
  };
}

describe('flood bench report', () => {
  // run 1: 99 knocks at 2 ms and one at 30 ms; run 2: 100 at 3 ms — alone, run 1's p99 is 2.28, pooled it is 3
  const r1 = Array.from({ length: 99 }, () => 2).concat([30]);
  const r2 = Array.from({ length: 100 }, () => 3);
  const rows = [
    row(1, 'none', r1),
    row(1, 'valid knocks', [1, 11], 1),
    row(2, 'none', r2),
    row(2, 'valid knocks', [12], 2, 'unknown'),
  ];

  test('poolRuns: one row per (server, flood), every knock of every run in it', () => {
    const p = poolRuns(rows);
    assert.deepEqual(
      p.map((x) => [x.flood, x.runs, x.open.n, x.lost]),
      [
        ['none', 2, 200, 0],
        ['valid knocks', 2, 3, 3],
      ],
    );
    const none = p[0];
    assert.ok(none);
    assert.equal(none.open.max, 30);
    assert.equal(none.open.p99, 3); // 198th and 199th of 200 sorted: both 3
    assert.equal(none.overGoal, 1);
    assert.deepEqual(
      none.runP99.map((x) => Math.round(x * 100) / 100),
      [2.28, 3],
    );
    assert.equal(none.drops, 0);
    const valid = p[1];
    assert.ok(valid);
    assert.equal(valid.overGoal, 2);
    assert.equal(valid.drops, undefined, 'drops unknown in one run: unknown pooled, not a made-up sum');
  });

  test('floodTable: per-run rows carry their run; the pooled block only with more than one run', () => {
    const many = floodTable({ rows, loadavg: '0.10 0.20 0.30' }, 20);
    assert.ok(many.some((l) => l.startsWith('Pooled over 2 runs')));
    const pooled = many.find((l) => /^spa-knockd nftables\s+none\s+2\s+200\b/.test(l));
    assert.ok(pooled, many.join('\n'));
    assert.match(pooled, /2\.3 3\.0$/);
    const one = floodTable({ rows: rows.filter((x) => x.run === 1), loadavg: '0' }, 20);
    assert.ok(!one.some((l) => l.startsWith('Pooled')));
    assert.ok(!one[1]?.includes('run '));
  });

  for (const [args, msg] of [
    [['--runs', '2'], '--runs needs --flood'],
    [['--flood', '--runs', '0'], '--runs must be a whole number from 1 to 20 (got "0")'],
    [['--flood', '--runs', '2.5'], '--runs must be a whole number from 1 to 20 (got "2.5")'],
    [
      ['--flood', '--servers', 'nftables,knockd'],
      '--servers: no row "knockd" (rows: nftables, rt, no-prefilter, fwknopd)',
    ],
  ] as const)
    test(`npm run bench -- ${args.join(' ')}: exit 2, the reason first`, async () => {
      // bounded: were the flag accepted, the bench would start for real (it cleans up on SIGTERM)
      const e = await run(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', ...args], {
        cwd: ROOT,
        timeout: 30_000,
      }).then(
        () => assert.fail('exit 0'),
        (x: { code: number; stderr: string; stdout: string }) => x,
      );
      assert.equal(e.code, 2);
      assert.equal(e.stdout, '');
      assert.equal(e.stderr.trim().split('\n')[0]?.startsWith(`bench: ${msg} (usage: `), true, e.stderr);
    });
});
