/**
 * shared/replay.ts: the time window and the replay guard, driven by an explicit clock (no sleeping).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ReplayRecord, ReplayGuard, checkTime } from '../../shared/replay.js';

const T = 1_767_225_630_000;
const W = 60_000;

describe('checkTime', () => {
  const table: [string, number, number, number, 'ok' | 'stale'][] = [
    // what, ts, now, window, verdict
    ['same instant', T, T, W, 'ok'],
    ['exactly -window', T - W, T, W, 'ok'],
    ['exactly +window', T + W, T, W, 'ok'],
    ['-window - 1 ms', T - W - 1, T, W, 'stale'],
    ['+window + 1 ms', T + W + 1, T, W, 'stale'],
    ['one ms inside', T - W + 1, T, W, 'ok'],
    ['an hour old', T - 3_600_000, T, W, 'stale'],
    ['timestamp 0', 0, T, W, 'stale'],
    ['zero window, same instant', T, T, 0, 'ok'],
    ['zero window, 1 ms off', T + 1, T, 0, 'stale'],
    ['small numbers', 5, 0, 5, 'ok'],
    ['small numbers, past', 0, 6, 5, 'stale'],
  ];
  for (const [what, ts, now, window, verdict] of table) {
    it(`${what} → ${verdict}`, () => assert.equal(checkTime(ts, now, window), verdict));
  }
});

type Step =
  | { readonly at: number; readonly check: string; readonly expect: 'fresh' | 'replay' }
  | { readonly at: number; readonly remember: string; readonly ts: number; readonly expiresAt: number }
  | { readonly at: number; readonly records: readonly string[] }
  | { readonly at: number; readonly prune: true; readonly size: number };

/** Run the steps; when `log` (the guard's persist target) is given, each remember must append to it exactly once. */
function run(guard: ReplayGuard, steps: readonly Step[], log?: ReplayRecord[]): void {
  steps.forEach((s, i) => {
    const where = `step ${i} @ T${s.at - T >= 0 ? '+' : ''}${s.at - T}`;
    if ('check' in s) {
      assert.equal(guard.check(s.check, s.at), s.expect, `${where}: check ${s.check}`);
    } else if ('remember' in s) {
      const before = log?.length ?? 0;
      const r = guard.remember(s.remember, s.ts, s.at);
      assert.deepEqual(r, { id: s.remember, expiresAt: s.expiresAt }, where);
      if (log !== undefined) assert.equal(log.length, before + 1, `${where}: persisted once, before remember returned`);
    } else if ('records' in s) {
      assert.deepEqual(
        guard
          .records(s.at)
          .map((r) => r.id)
          .sort(),
        [...s.records].sort(),
        `${where}: records`,
      );
      for (const r of guard.records(s.at)) assert.ok(r.expiresAt >= s.at, where);
    } else {
      guard.prune(s.at);
      assert.equal(guard.size, s.size, `${where}: size after prune`);
    }
  });
}

describe('ReplayGuard', () => {
  it('fresh → remember → replay; the record lives until max(ts, now) + window', () => {
    const log: ReplayRecord[] = [];
    const guard = new ReplayGuard({ windowMs: W, persist: { append: (r) => log.push(r) } });
    run(
      guard,
      [
        { at: T, check: 'a', expect: 'fresh' },
        // client clock behind: kept until now + window
        { at: T, remember: 'a', ts: T - 1_000, expiresAt: T + W },
        { at: T, check: 'a', expect: 'replay' },
        { at: T, check: 'b', expect: 'fresh' },
        { at: T + W - 1, check: 'a', expect: 'replay' },
        { at: T + W, check: 'a', expect: 'replay' },
        { at: T + W + 1, check: 'a', expect: 'fresh' },
      ],
      log,
    );
  });

  it('a client clock ahead keeps the record until ts + window', () => {
    const log: ReplayRecord[] = [];
    const guard = new ReplayGuard({ windowMs: W, persist: { append: (r) => log.push(r) } });
    run(
      guard,
      [
        { at: T, remember: 'ahead', ts: T + 45_000, expiresAt: T + 45_000 + W },
        { at: T + W + 1, check: 'ahead', expect: 'replay' }, // now + window has passed, ts + window has not
        { at: T + 45_000 + W, check: 'ahead', expect: 'replay' },
        { at: T + 45_000 + W + 1, check: 'ahead', expect: 'fresh' },
      ],
      log,
    );
  });

  it('a record is kept exactly as long as checkTime could still accept its packet', () => {
    for (const skew of [-W, -W / 2, -1, 0, 1, W / 2, W]) {
      const ts = T + skew;
      const guard = new ReplayGuard({ windowMs: W });
      const { expiresAt } = guard.remember('p', ts, T);
      // at the last instant the time check accepts this packet, the record is still there …
      const lastOk = ts + W;
      assert.equal(checkTime(ts, lastOk, W), 'ok');
      assert.ok(expiresAt >= lastOk, `skew ${skew}`);
      assert.equal(guard.check('p', lastOk), 'replay', `skew ${skew}`);
      // … and once it is gone, the time check refuses the packet
      assert.equal(checkTime(ts, expiresAt + 1, W), 'stale', `skew ${skew}`);
    }
  });

  it('persist is called once per remember, synchronously, with the record', () => {
    const calls: ReplayRecord[] = [];
    const guard = new ReplayGuard({ windowMs: W, persist: { append: (r) => calls.push(r) } });
    const r1 = guard.remember('n1', T, T);
    assert.deepEqual(calls, [r1]);
    assert.deepEqual(r1, { id: 'n1', expiresAt: T + W });
    const r2 = guard.remember('n2', T + 10, T + 5);
    assert.deepEqual(calls, [r1, r2]);
    assert.deepEqual(r2, { id: 'n2', expiresAt: T + 10 + W });
    guard.check('n1', T + 6);
    guard.records(T + 6);
    guard.prune(T + 6_000);
    assert.equal(calls.length, 2, 'check, records and prune do not persist');
  });

  it('if persist throws, remember throws and nothing is remembered (no grant without a durable record)', () => {
    const guard = new ReplayGuard({
      windowMs: W,
      persist: {
        append: () => {
          throw new Error('disk full');
        },
      },
    });
    assert.throws(() => guard.remember('x', T, T), /disk full/);
    assert.equal(guard.check('x', T), 'fresh');
    assert.equal(guard.size, 0);
  });

  it('honours initial records after a simulated restart and prunes the expired ones', () => {
    const log: ReplayRecord[] = [];
    const first = new ReplayGuard({ windowMs: W, persist: { append: (r) => log.push(r) } });
    run(
      first,
      [
        { at: T - 50_000, remember: 'early', ts: T - 50_000, expiresAt: T + 10_000 },
        { at: T, remember: 'late', ts: T, expiresAt: T + W },
      ],
      log,
    );
    // kill -9 and restart 20 s later with the persisted log plus an old record from a previous run
    const initial = [...log, { id: 'ancient', expiresAt: T - 1 }];
    const second = new ReplayGuard({ windowMs: W, initial });
    assert.equal(second.size, 3, 'loaded as given');
    run(second, [
      { at: T + 20_000, check: 'late', expect: 'replay' },
      { at: T + 20_000, check: 'ancient', expect: 'fresh' },
      { at: T + 20_000, records: ['late'] },
      { at: T + 20_000, prune: true, size: 1 },
      { at: T + W, check: 'late', expect: 'replay' },
      { at: T + W + 1, check: 'late', expect: 'fresh' },
      { at: T + W + 2_000, prune: true, size: 0 },
    ]);
  });

  it('initial records that are still live right at restart are honoured; duplicates keep the later expiry', () => {
    const guard = new ReplayGuard({
      windowMs: W,
      initial: [
        { id: 'd', expiresAt: T + 1_000 },
        { id: 'd', expiresAt: T + 5_000 },
        { id: 'd', expiresAt: T + 2_000 },
      ],
    });
    assert.equal(guard.size, 1);
    run(guard, [
      { at: T + 5_000, check: 'd', expect: 'replay' },
      { at: T + 5_001, check: 'd', expect: 'fresh' },
    ]);
  });

  it('records(now) lists only live records (expiresAt >= now)', () => {
    const guard = new ReplayGuard({ windowMs: W, initial: [{ id: 'z', expiresAt: T - 5 }] });
    guard.remember('a', T, T); // T + W
    guard.remember('b', T + 1_000, T); // T + 1000 + W
    guard.remember('c', T - 30_000, T - 30_000); // T - 30000 + W
    run(guard, [
      { at: T, records: ['a', 'b', 'c'] },
      { at: T + 30_000, records: ['a', 'b', 'c'] },
      { at: T + 30_001, records: ['a', 'b'] },
      { at: T + W, records: ['a', 'b'] },
      { at: T + W + 1, records: ['b'] },
      { at: T + W + 1_000, records: ['b'] },
      { at: T + W + 1_001, records: [] },
    ]);
    assert.deepEqual(guard.records(T), [
      { id: 'a', expiresAt: T + W },
      { id: 'b', expiresAt: T + 1_000 + W },
      { id: 'c', expiresAt: T - 30_000 + W },
    ]);
  });

  it('check does not depend on when the last prune ran (an expired record it finds is forgotten then)', () => {
    const guard = new ReplayGuard({ windowMs: 100 });
    guard.prune(T); // next prune not before T + 1000
    guard.remember('q', T, T); // expires T + 100
    guard.remember('r', T, T); // expires T + 100
    run(guard, [
      { at: T + 100, check: 'q', expect: 'replay' },
      { at: T + 101, check: 'q', expect: 'fresh' }, // within the prune interval: no prune ran, still fresh
      { at: T + 500, records: [] },
    ]);
    assert.equal(guard.size, 1, 'q was forgotten by check; r waits for a prune');
    assert.equal(guard.floor, T, 'forgetting q raised the floor to its expiry - window');
    run(guard, [{ at: T + 1_000, prune: true, size: 0 }]);
  });

  it('refuses a window that is not positive', () => {
    for (const w of [0, -1, Number.NaN]) assert.throws(() => new ReplayGuard({ windowMs: w }), RangeError);
    assert.equal(new ReplayGuard({ windowMs: 1 }).windowMs, 1);
  });
});

describe('ReplayGuard across clock steps (issue 11)', () => {
  it('clock forward, record forgotten, clock back: the old packet is refused (forgotten), a new one is not', () => {
    const guard = new ReplayGuard({ windowMs: W });
    guard.remember('old', T, T); // accepted at T, expires T + W
    // the clock steps 10 minutes forward; any check or prune there forgets the record
    const ahead = T + 600_000;
    assert.equal(guard.check('other', ahead), 'fresh');
    assert.equal(guard.size, 0);
    // the clock steps back to T + 5 s: the old packet is inside the window again, its record is gone …
    const back = T + 5_000;
    assert.equal(checkTime(T, back, W), 'ok');
    assert.equal(guard.check('old', back), 'fresh');
    // … but it is at or below the floor
    assert.equal(guard.forgotten(T, back), true);
    // a packet stamped after every forgotten one is fine
    assert.equal(guard.forgotten(T + 1, back), false);
    assert.equal(guard.forgotten(back, back), false);
  });

  it('records are forgotten only once the clock passes them: a step back keeps them (no floor needed)', () => {
    const guard = new ReplayGuard({ windowMs: W });
    guard.remember('p', T + 600_000, T + 600_000); // accepted while the clock was 10 min ahead
    assert.equal(guard.check('p', T), 'replay', 'clock back: the record is still live');
    assert.equal(guard.forgotten(T, T), false);
    assert.equal(guard.floor, 0);
  });

  it('the floor never goes down, and survives a restart through state()', () => {
    const guard = new ReplayGuard({ windowMs: W });
    guard.remember('a', T, T);
    guard.remember('b', T + 10_000, T + 10_000);
    const st = guard.state(T + 10_000 + W + 1);
    assert.deepEqual(st, { records: [], floor: T + 10_000 });
    guard.prune(T); // clock back: nothing raises or lowers the floor
    assert.equal(guard.floor, T + 10_000);
    const next = new ReplayGuard({ windowMs: W, initial: st.records, floor: st.floor });
    assert.equal(next.forgotten(T + 10_000, T + 20_000), true);
    assert.equal(next.forgotten(T + 10_001, T + 20_000), false);
  });

  it('state() forgets expired records first, so compaction can never drop a record without raising the floor', () => {
    const guard = new ReplayGuard({ windowMs: W });
    guard.prune(T);
    guard.remember('x', T, T);
    const st = guard.state(T + W + 1); // within the prune interval of T's prune: state() prunes anyway
    assert.deepEqual(st.records, []);
    assert.equal(st.floor, T);
  });

  it('a prune interval set while the clock was ahead does not stop pruning after a step back', () => {
    const guard = new ReplayGuard({ windowMs: W });
    guard.prune(T + 600_000); // next prune "not before" T + 601 s
    guard.remember('y', T, T);
    guard.prune(T + W + 1); // clock stepped back, then past y's expiry
    assert.equal(guard.size, 0);
    assert.equal(guard.floor, T);
  });
});
