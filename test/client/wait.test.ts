/** The --wait schedule (client/wait.ts) on a fake clock: knocks, probes, backoff, outcome. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Target } from '../../client/targets.js';
import {
  FIRST_INTERVAL_MS,
  MAX_INTERVAL_MS,
  PROBE_MS,
  type WaitSeams,
  knockUntilOpen,
  parseWait,
  waitOutcome,
} from '../../client/wait.js';
import { SpaError } from '../../shared/errors.js';

const v4: Target = { address: '192.0.2.7', family: 4 };
const v6: Target = { address: '2001:db8::7', family: 6 };

/** A fake world: `opensAfter(t)` knocks open t (Infinity: never); a closed port drops (the probe times out). */
function world(opensAfter: (t: Target) => number, refuse = false) {
  let now = 0;
  const knocks = new Map<string, number[]>();
  const seams: WaitSeams = {
    now: () => now,
    sleep: async (ms) => {
      now += ms;
    },
    probe: async (t, _port, timeoutMs) => {
      const n = knocks.get(t.address)?.length ?? 0;
      if (n >= opensAfter(t)) {
        now += 1;
        return true;
      }
      now += refuse ? 1 : timeoutMs;
      return false;
    },
  };
  const knock = async (t: Target): Promise<void> => {
    const list = knocks.get(t.address) ?? [];
    list.push(now);
    knocks.set(t.address, list);
  };
  return { seams, knock, knocks, now: () => now };
}

describe('knockUntilOpen', () => {
  test('open after the first knock: one knock, the outcome line names the address', async () => {
    const w = world(() => 1);
    const r = await knockUntilOpen([v4], 22, 20_000, w.knock, w.seams);
    assert.deepEqual(r.knocks, [1]);
    assert.deepEqual(r.open, [v4]);
    assert.match(waitOutcome('srv', 22, r), /^open: tcp\/22 on 192\.0\.2\.7 after 1 knock \(/);
  });

  test('a lost first knock: a second knock, about one interval later, opens it', async () => {
    const w = world(() => 2);
    const r = await knockUntilOpen([v4], 22, 20_000, w.knock, w.seams);
    assert.deepEqual(r.knocks, [2]);
    const times = w.knocks.get(v4.address) ?? [];
    assert.equal(times[0], 0);
    assert.ok((times[1] ?? 0) >= FIRST_INTERVAL_MS && (times[1] ?? 0) < FIRST_INTERVAL_MS + PROBE_MS, String(times));
  });

  test('backoff doubles up to the cap, and a closed port ends at the deadline with ERR_SPA_NOT_OPEN', async () => {
    for (const refuse of [false, true]) {
      const w = world(() => Number.POSITIVE_INFINITY, refuse);
      const r = await knockUntilOpen([v4], 22, 30_000, w.knock, w.seams);
      assert.deepEqual(r.open, []);
      assert.ok(w.now() <= 30_000 + 1, `stopped at the deadline (${w.now()})`);
      const times = w.knocks.get(v4.address) ?? [];
      const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
      // 1 s, 2 s, 4 s, 8 s, 8 s …: each gap at least its interval, less than it plus one probe
      let expect = FIRST_INTERVAL_MS;
      for (const g of gaps) {
        assert.ok(g >= expect && g < expect + PROBE_MS + 1, `gap ${g} for interval ${expect} (refuse ${refuse})`);
        expect = Math.min(expect * 2, MAX_INTERVAL_MS);
      }
      assert.ok(gaps.length >= 4, `re-knocked ${gaps.length} times`);
      assert.throws(
        () => waitOutcome('srv', 22, r),
        (e: unknown) =>
          e instanceof SpaError && e.code === 'ERR_SPA_NOT_OPEN' && /did not open on 192\.0\.2\.7/.test(e.message),
      );
    }
  });

  test('dual stack: only the family still closed is knocked again; partly open is still NOT_OPEN', async () => {
    const w = world((t) => (t.family === 4 ? 1 : 3));
    const r = await knockUntilOpen([v6, v4], 22, 20_000, w.knock, w.seams);
    assert.deepEqual(r.knocks, [3, 1]);
    assert.match(waitOutcome('srv', 22, r), /on \[2001:db8::7\] and 192\.0\.2\.7 after 4 knocks/);
    const never = world((t) => (t.family === 4 ? 1 : Number.POSITIVE_INFINITY));
    const r2 = await knockUntilOpen([v6, v4], 22, 5_000, never.knock, never.seams);
    assert.throws(() => waitOutcome('srv', 22, r2), /did not open on \[2001:db8::7\].*\(open on 192\.0\.2\.7\)/);
  });

  test("knockedOnce: the first round is the caller's, counted, and the next knock comes one interval later", async () => {
    const w = world(() => 1); // the caller's knock is lost (this world never saw it)
    const r = await knockUntilOpen([v4], 22, 20_000, w.knock, w.seams, true);
    const times = w.knocks.get(v4.address) ?? [];
    assert.equal(times.length, 1);
    assert.ok((times[0] ?? 0) >= FIRST_INTERVAL_MS, String(times));
    assert.deepEqual(r.knocks, [2]);
    assert.deepEqual(r.open, [v4]);
  });
});

test('parseWait: a TCP access only', () => {
  assert.equal(parseWait('tcp/22').port, 22);
  for (const bad of ['udp/53', '22', 'tcp/0', 'tcp/99999'])
    assert.throws(
      () => parseWait(bad),
      (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_USAGE',
    );
});
