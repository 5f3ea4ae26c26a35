/**
 * The bench's own machinery, bounded and without timing assertions (`npm run bench` measures; this only checks that
 * what it measures with works): the floor probe against the port already open and the two minimal programs, each in
 * its own namespace pair (scripts/bench/floor.ts, subnets 110–112, removed again), and the client cold start runner
 * (scripts/bench/cold-start.ts: the package is packed and its bin knocks 127.0.0.1 once per run).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { benchColdStart } from '../../scripts/bench/cold-start.js';
import { benchFloor } from '../../scripts/bench/floor.js';
import { Scope } from '../../scripts/bench/lifecycle.js';

describe('bench machinery', { timeout: 300_000 }, () => {
  const scope = new Scope();
  after(() => scope.close());

  test('client cold start: node -e 0 and the packed client, interleaved', async () => {
    const r = await benchColdStart(2, scope);
    assert.ok(r.rows.length >= 2);
    assert.equal(r.rows[0]?.label, 'node -e 0');
    assert.match(r.rows[1]?.label ?? '', /packed bin/);
    for (const row of r.rows) {
      assert.equal(row.stats.n, 2, row.label);
      assert.ok(row.stats.min > 0 && Number.isFinite(row.ratio), row.label);
    }
  });

  if (!requireNetns(['nft'])) return;

  test('the floor probe: port already open, minimal nft -i program, kernel-added element (3 samples each)', async () => {
    const r = await benchFloor({ n: 3, intervalMs: 0.2, rows: ['open', 'mini-nft', 'mini-kernel'] });
    assert.deepEqual(
      r.rows.map((x) => x.row),
      ['open', 'mini-nft', 'mini-kernel'],
    );
    for (const x of r.rows) {
      // each sample of the two minimal programs started from a port checked closed for its source address
      assert.deepEqual(x.failures, [], x.label);
      assert.equal(x.stats.n, 3, x.label);
      assert.ok(x.stats.min > 0 && x.attempts >= 1, x.label);
      // round by round, for the report's paired differences
      assert.equal(x.rounds.length, 3, x.label);
      assert.ok(
        x.rounds.every((ms) => Number.isFinite(ms) && ms > 0),
        x.label,
      );
    }
  });
});
