/**
 * The grant manager's call queue (server/grant-queue.ts) and its hold: the call in flight may wait a moment (the
 * nftables fast path's confirmation, server/firewall/nftables.ts), unless another call waits — then not at all.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { GrantEntry, Hold } from '../../server/firewall/backend.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import { CallQueue } from '../../server/grant-queue.js';
import { GrantManager } from '../../server/grants.js';
import type { Decision } from '../../server/policy.js';
import { FakeClock } from '../helpers/clock.js';

const TCP22 = { proto: 'tcp', port: 22 } as const;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Resolves to true once `p` settled, false if it has not after a few turns of the event loop. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  for (let i = 0; i < 5; i++) await tick();
  return done;
}

describe('CallQueue.hold', () => {
  test('alone, the call in flight waits the whole time, on the timers it is given', async () => {
    const clock = new FakeClock();
    const q = new CallQueue();
    let held: Promise<void> | undefined;
    const call = q.run(async () => {
      held = q.hold(5, clock);
      await held;
    });
    assert.equal(await settled(call), false);
    await clock.advance(4);
    assert.equal(await settled(call), false, 'not before 5 ms');
    await clock.advance(1);
    assert.equal(await settled(call), true);
    assert.equal(clock.pending, 0);
  });

  test('a call queued during the hold ends it at once', async () => {
    const clock = new FakeClock();
    const q = new CallQueue();
    const order: string[] = [];
    const first = q.run(async () => {
      await q.hold(5_000, clock);
      order.push('first');
    });
    await tick();
    const second = q.run(async () => {
      order.push('second');
    });
    assert.equal(await settled(Promise.all([first, second])), true, 'no clock advance needed');
    assert.deepEqual(order, ['first', 'second'], 'still one at a time, in order');
    assert.equal(clock.pending, 0, 'its timer cleared');
  });

  test('with a call already queued behind it, no hold at all; release() ends a hold', async () => {
    const clock = new FakeClock();
    const q = new CallQueue();
    let gate: () => void = () => undefined;
    const first = q.run(
      () =>
        new Promise<void>((r) => {
          gate = r;
        }),
    );
    const second = q.run(() => q.hold(5_000, clock));
    void q.run(async () => undefined); // queued behind the second
    gate();
    await first;
    assert.equal(await settled(second), true, 'the second does not hold: a call waits behind it');
    const third = q.run(() => q.hold(5_000, clock));
    assert.equal(await settled(third), false);
    q.release();
    assert.equal(await settled(third), true);
  });
});

/** A backend that takes the hold before writing, as the nftables backend does after a fast-path trigger. */
class HoldingBackend extends FakeBackend {
  holds: number[] = [];
  override async grant(entries: readonly GrantEntry[], now: number, hold?: Hold): Promise<void> {
    if (hold) {
      this.holds.push(Date.now());
      await hold(5);
    }
    await super.grant(entries, now);
  }
}

function dec(address: string): Decision {
  return { client: 'alice', type: 'open', family: 4, address, source: address, accesses: [TCP22], duration: 60 };
}

describe('the grant manager gives its backend the hold', () => {
  async function setup() {
    const clock = new FakeClock();
    const backend = new HoldingBackend();
    await backend.install({ protect: [TCP22] }, clock.now());
    const gm = new GrantManager({ backend, now: clock.now, timers: clock, maxGrantsOf: () => 16 });
    await gm.restore();
    return { clock, backend, gm };
  }

  test('an open alone waits for the hold; the next open ends it without waiting', async () => {
    const { clock, backend, gm } = await setup();
    const a = gm.open(dec('203.0.113.1'));
    assert.equal(await settled(a), false, 'held');
    assert.equal(backend.holds.length, 1);
    const b = gm.open(dec('203.0.113.2'));
    assert.equal(await settled(a), true, 'a queued open ends the hold');
    assert.equal(await settled(b), false, 'and then holds itself, alone again');
    await clock.advance(5);
    assert.equal(await settled(b), true);
    assert.deepEqual(
      backend.held.map((g) => g.address),
      ['203.0.113.1', '203.0.113.2'],
    );
  });

  test('stop() ends a hold in progress, and later calls do not hold', async () => {
    const { backend, gm } = await setup();
    const a = gm.open(dec('203.0.113.1'));
    assert.equal(await settled(a), false);
    gm.stop();
    assert.equal(await settled(a), true, 'the change in flight completes, without its wait');
    assert.equal(backend.held.length, 1);
  });
});
