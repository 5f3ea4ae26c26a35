/**
 * server/grants.ts under a flood of valid knocks (issue 9): coalescing of repeated grants, batching while a change is
 * in flight, the bounded queue (`busy`), and a stop that sheds the backlog. A fake firewall whose `grant` calls wait
 * for the test to release them stands for a slow one; a fake clock drives time.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { GrantEntry } from '../../server/firewall/backend.js';
import { COALESCE_SLACK_MS, GrantManager, type OpenResult } from '../../server/grants.js';
import type { Decision } from '../../server/policy.js';
import { FakeClock } from '../helpers/clock.js';

const TCP22 = { proto: 'tcp', port: 22 } as const;

function dec(address: string, over: Partial<Decision> = {}): Decision {
  return {
    client: 'alice',
    type: 'open',
    family: 4,
    address,
    source: address,
    accesses: [TCP22],
    duration: 60,
    ...over,
  };
}

/** A fake firewall whose grant calls, once `hold` is on, wait until `release()`. */
class GatedBackend extends FakeBackend {
  hold = false;
  #waiters: (() => void)[] = [];
  inFlight = 0;
  override async grant(entries: readonly GrantEntry[], now: number): Promise<void> {
    if (this.hold) {
      this.inFlight++;
      await new Promise<void>((r) => this.#waiters.push(r));
      this.inFlight--;
    }
    return super.grant(entries, now);
  }
  release(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const r of w) r();
  }
}

async function setup(maxQueue = Infinity) {
  const clock = new FakeClock();
  const backend = new GatedBackend();
  await backend.install({ protect: [TCP22] }, clock.now());
  const gm = new GrantManager({ backend, now: clock.now, timers: clock, maxQueue: () => maxQueue });
  await gm.restore();
  return { gm, backend, clock };
}

const grantCalls = (b: FakeBackend) =>
  b.calls.flatMap((c) => (c.op === 'grant' ? [c.entries.map((e) => e.address)] : []));
const tick = () => new Promise((r) => setImmediate(r));
const actions = (r: OpenResult) => (r.ok ? r.outcomes.map((o) => o.action) : [r.reason]);

describe('coalescing repeated grants', () => {
  test('a knock whose grant already ends within the slack changes nothing; later ones renew', async () => {
    const { gm, backend, clock } = await setup();
    const t0 = clock.now();
    assert.deepEqual(actions(await gm.open(dec('192.0.2.1'))), ['opened']);
    await clock.advance(COALESCE_SLACK_MS / 2);
    const r = await gm.open(dec('192.0.2.1'));
    assert.deepEqual(r, {
      ok: true,
      outcomes: [{ access: TCP22, action: 'unchanged', owner: 'alice', expiresAt: t0 + 60_000 }],
    });
    assert.equal(grantCalls(backend).length, 1, 'no second firewall change');
    await clock.advance(COALESCE_SLACK_MS);
    assert.deepEqual(actions(await gm.open(dec('192.0.2.1'))), ['renewed']);
    assert.equal(grantCalls(backend).length, 2);
    // a deliberately shorter grant is still a change
    assert.deepEqual(actions(await gm.open(dec('192.0.2.1', { duration: 5 }))), ['renewed']);
    assert.equal(grantCalls(backend).length, 3);
  });

  test('the slack is at most a tenth of the duration', async () => {
    const { gm, backend, clock } = await setup();
    await gm.open(dec('192.0.2.1', { duration: 2 }));
    await clock.advance(250); // more than 2 s / 10
    assert.deepEqual(actions(await gm.open(dec('192.0.2.1', { duration: 2 }))), ['renewed']);
    assert.equal(grantCalls(backend).length, 2);
  });

  test('a flood of 10,000 valid knocks for one (address, access) is one firewall change', async () => {
    const { gm, backend } = await setup();
    const all: Promise<OpenResult>[] = [];
    for (let i = 0; i < 10_000; i++) all.push(gm.open(dec('192.0.2.1')));
    const rs = await Promise.all(all);
    assert.ok(rs.every((r) => r.ok));
    assert.deepEqual(grantCalls(backend), [['192.0.2.1']]);
  });
});

describe('batching and the bounded queue', () => {
  test('knocks that arrive while a change is in flight go together in one call; a repeat waits for the commit', async () => {
    const { gm, backend } = await setup();
    backend.hold = true;
    const a = gm.open(dec('192.0.2.1'));
    await tick();
    assert.equal(backend.inFlight, 1);
    let dSettled = false;
    const b = gm.open(dec('192.0.2.2'));
    const c = gm.open(dec('192.0.2.3'));
    const d = gm.open(dec('192.0.2.1')).then((r) => {
      dSettled = true;
      return r;
    });
    assert.equal(gm.waiting, 3);
    await tick();
    assert.equal(dSettled, false, 'the repeat is not answered before the first change committed');
    backend.hold = false;
    backend.release();
    assert.deepEqual(actions(await a), ['opened']);
    assert.deepEqual(actions(await b), ['opened']);
    assert.deepEqual(actions(await c), ['opened']);
    assert.deepEqual(actions(await d), ['unchanged']);
    assert.deepEqual(grantCalls(backend), [['192.0.2.1'], ['192.0.2.2', '192.0.2.3']]);
    assert.equal(gm.waiting, 0);
  });

  test('within one batch a later knock sees an earlier one: no duplicate entries, the grant limit holds', async () => {
    const clock = new FakeClock();
    const backend = new GatedBackend();
    await backend.install({ protect: [TCP22] }, clock.now());
    const gm = new GrantManager({ backend, now: clock.now, timers: clock, maxGrantsOf: () => 2 });
    backend.hold = true;
    const first = gm.open(dec('192.0.2.9'));
    await tick();
    const rest = ['192.0.2.1', '192.0.2.1', '192.0.2.2', '192.0.2.3'].map((a) => gm.open(dec(a)));
    backend.hold = false;
    backend.release();
    await first;
    assert.deepEqual((await Promise.all(rest)).map(actions), [
      ['opened'],
      ['unchanged'],
      ['grant-limit'],
      ['grant-limit'],
    ]);
    assert.deepEqual(grantCalls(backend), [['192.0.2.9'], ['192.0.2.1']]);
  });

  test('at most maxQueue opens wait; one more is `busy` at once, and the queue takes knocks again once it drains', async () => {
    const { gm, backend } = await setup(3);
    backend.hold = true;
    const a = gm.open(dec('192.0.2.1'));
    await tick();
    const queued = [2, 3, 4].map((i) => gm.open(dec(`192.0.2.${i}`)));
    assert.equal(gm.full, true);
    assert.deepEqual(await gm.open(dec('192.0.2.5')), { ok: false, reason: 'busy' });
    backend.hold = false;
    backend.release();
    await a;
    await Promise.all(queued);
    assert.equal(gm.full, false);
    assert.deepEqual(actions(await gm.open(dec('192.0.2.5'))), ['opened']);
  });

  test('a failed batch fails the knocks that needed a change; one that needed none still holds', async () => {
    const { gm, backend } = await setup();
    await gm.open(dec('192.0.2.1'));
    backend.hold = true;
    const a = gm.open(dec('192.0.2.7'));
    await tick();
    const b = gm.open(dec('192.0.2.2'));
    const c = gm.open(dec('192.0.2.1'));
    backend.hold = false;
    backend.release();
    await a;
    backend.failNext('grant');
    await assert.rejects(b, /fake grant failure/);
    assert.deepEqual(actions(await c), ['unchanged']);
    assert.equal(gm.isOpen('192.0.2.2', TCP22), false);
  });

  test('a close seals the waiting batch: an open after it is not moved before it', async () => {
    const { gm, backend } = await setup();
    backend.hold = true;
    const a = gm.open(dec('192.0.2.8'));
    await tick();
    const o1 = gm.open(dec('192.0.2.1'));
    const cl = gm.close(dec('192.0.2.1', { type: 'close' }));
    const o2 = gm.open(dec('192.0.2.1'));
    backend.hold = false;
    backend.release();
    await a;
    assert.deepEqual(actions(await o1), ['opened']);
    assert.equal((await cl).revoked.length, 1);
    assert.deepEqual(actions(await o2), ['opened']);
    assert.equal(gm.isOpen('192.0.2.1', TCP22), true, 'open, as the last knock asked');
    assert.deepEqual(
      backend.calls.filter((c) => c.op === 'grant' || c.op === 'revoke').map((c) => c.op),
      ['grant', 'grant', 'revoke', 'grant'],
    );
  });
});

describe('stop under a backlog', () => {
  test('stop() sheds the waiting opens (`busy`, nothing written) and lets only the change in flight finish', async () => {
    const { gm, backend } = await setup();
    backend.hold = true;
    const a = gm.open(dec('192.0.2.1'));
    await tick();
    const waiting = [2, 3, 4, 5].map((i) => gm.open(dec(`192.0.2.${i}`)));
    assert.equal(gm.stop(), 4);
    for (const r of await Promise.all(waiting)) assert.deepEqual(r, { ok: false, reason: 'busy' });
    assert.deepEqual(await gm.open(dec('192.0.2.6')), { ok: false, reason: 'busy' }, 'and every open after stop');
    backend.hold = false;
    backend.release();
    assert.deepEqual(actions(await a), ['opened']);
    await tick();
    assert.deepEqual(grantCalls(backend), [['192.0.2.1']], 'nothing shed reached the firewall');
  });
});
