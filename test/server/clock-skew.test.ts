/**
 * Clock offsets of stale knocks (server/clock-skew.ts): an authenticated packet outside replay.window is remembered
 * with its offset and shows in the status (`clock.stale`); an unauthenticated one never is; the memory is bounded.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { ClockSkews, MAX_SKEW_ENTRIES } from '../../server/clock-skew.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { daemonStatus, formatStatus } from '../../server/status.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const ALICE = keyOf(1);
const MALLORY = keyOf(9);
const listen: typeof openUdpListener = async (o) => ({
  bound: `[${o.address}]:${o.port}`,
  close: async () => undefined,
});

async function daemon() {
  const config = parseConfig(configText({ window: 60 }), 't.toml');
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 12, 0, 10));
  const d = new Daemon({
    config,
    backend: new FakeBackend(),
    log: logSink().log,
    now: clock.now,
    timers: clock,
    listen,
    warmUp: false,
  });
  await d.start();
  return { d, clock };
}

const knockAt = (key: Uint8Array, ts: number) =>
  buildPacket(key, { type: 'open', accesses: [], duration: 0 }, ts).bytes;

describe('clock offsets of stale knocks', () => {
  test('an authenticated knock 65 s ahead and one 62 s behind (window 60 s): offsets per source in status clock.stale', async () => {
    const { d, clock } = await daemon();
    try {
      // the clock is 10 s into a minute: ±65 s still falls in an indexed key-id epoch (docs/protocol.md §4)
      d.handle(knockAt(ALICE, clock.now() + 65_000), '::ffff:203.0.113.9');
      d.handle(knockAt(ALICE, clock.now() - 62_000), '2001:db8::7');
      d.handle(knockAt(ALICE, clock.now() + 65_500), '::ffff:203.0.113.9');
      await d.settled();
      const s = daemonStatus(d, clock.now(), clock.now());
      assert.equal(s.rejects.by.stale, 3);
      assert.deepEqual(
        s.clock.stale.map(({ client, source, offset_s, count }) => ({ client, source, offset_s, count })),
        [
          { client: 'alice', source: '203.0.113.9', offset_s: 65.5, count: 2 },
          { client: 'alice', source: '2001:db8::7', offset_s: -62, count: 1 },
        ],
      );
      assert.equal(s.clock.stale[0]?.seen, new Date(clock.now()).toISOString());
      assert.match(
        formatStatus(s),
        /\nstale knocks from alice at 203\.0\.113\.9: its clock is 65\.5 s ahead \(2, latest /,
      );
      assert.match(formatStatus(s), /\nstale knocks from alice at 2001:db8::7: its clock is 62 s behind \(1, /);
      // control: a knock inside the window is granted and adds no offset
      d.handle(knockAt(ALICE, clock.now() + 30_000), '198.51.100.4');
      await d.settled();
      assert.equal(d.grants.active().length, 1);
      assert.equal(daemonStatus(d, clock.now(), clock.now()).clock.stale.length, 2);
    } finally {
      await d.stop();
    }
  });

  test('a knock with an unknown key is not remembered, whatever its time', async () => {
    const { d, clock } = await daemon();
    try {
      d.handle(knockAt(MALLORY, clock.now() + 65_000), '203.0.113.9');
      // the right key 5 min ahead: its key id is not indexed, so it is unknown-key, and no offset can be known
      d.handle(knockAt(ALICE, clock.now() + 300_000), '203.0.113.9');
      await d.settled();
      assert.equal(d.rejects.totals()['unknown-key'], 2);
      await d.settled();
      assert.deepEqual(daemonStatus(d, clock.now(), clock.now()).clock.stale, []);
    } finally {
      await d.stop();
    }
  });

  test('bounded: the least recently seen pair goes first', () => {
    const k = new ClockSkews();
    for (let i = 0; i < MAX_SKEW_ENTRIES + 5; i++) k.record('alice', `10.0.0.${i}`, 1000 * i, i);
    const r = k.recent();
    assert.equal(r.length, MAX_SKEW_ENTRIES);
    assert.equal(r[0]?.source, `10.0.0.${MAX_SKEW_ENTRIES + 4}`);
    assert.equal(r.at(-1)?.source, '10.0.0.5');
  });
});
