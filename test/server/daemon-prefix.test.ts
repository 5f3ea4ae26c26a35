/**
 * Prefix grants (issue 10) through the whole in-process receive path: real config (`max_prefix4`/`max_prefix6`),
 * verifier, policy, grant manager and logger; a fake clock, firewall and socket. The log names the grant's network
 * (`203.0.113.0/24`); `prefix` and `prefix-overlap` are counted reject reasons; a daemon whose backend does not
 * expire grants revokes prefix grants on stop.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { configText, keyOf } from '../../harness/config.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const ALICE = keyOf(1);
const BOB = keyOf(2);
const TCP22 = { proto: 'tcp', port: 22 } as const;

function setup(kernelExpiry = true) {
  const config = parseConfig(
    configText({
      protect: ['tcp/22'],
      clients: [
        { name: 'alice', key: ALICE, open: ['tcp/22'], max_prefix4: 24, max_prefix6: 64 },
        { name: 'bob', key: BOB, open: ['tcp/22'] },
      ],
    }),
    'test.toml',
  );
  const clock = new FakeClock();
  const backend = new FakeBackend({ kernelExpiry });
  const sink = logSink();
  const listen: typeof openUdpListener = async (o) => ({ bound: `[${o.address}]:${o.port}`, close: async () => {} });
  const daemon = new Daemon({ config, backend, log: sink.log, now: clock.now, timers: clock, listen, warmUp: false });
  return { daemon, backend, clock, sink };
}

const knock = (key: Uint8Array, now: number, over: Partial<Parameters<typeof buildPacket>[1]> = {}) =>
  buildPacket(key, { type: 'open', accesses: [TCP22], duration: 0, ...over }, now).bytes;

describe('daemon: prefix grants', () => {
  test('a knock with --prefix4 24 grants the network; the log names it; close revokes it', async () => {
    const { daemon, backend, clock, sink } = setup();
    await daemon.start();
    daemon.handle(knock(ALICE, clock.now(), { prefix4: 24 }), '::ffff:203.0.113.9');
    await daemon.settled();
    assert.deepEqual(
      backend.held.map((g) => [g.family, g.address, g.prefix, g.owner]),
      [[4, '203.0.113.0', 24, 'alice']],
    );
    const g = sink.events('grant')[0];
    assert.equal(g?.['address'], '203.0.113.0/24');
    assert.equal(g?.['source'], '203.0.113.9');
    daemon.handle(knock(ALICE, clock.now(), { prefix6: 64 }), '2001:db8:1:2::99');
    await daemon.settled();
    assert.equal(sink.events('grant')[1]?.['address'], '2001:db8:1:2::/64');
    daemon.handle(knock(ALICE, clock.now(), { type: 'close', prefix4: 24 }), '203.0.113.200');
    await daemon.settled();
    assert.equal(sink.events('revoke')[0]?.['address'], '203.0.113.0/24');
    assert.deepEqual(sink.events('revoke')[0]?.['revoked'], ['tcp/22']);
    assert.deepEqual(
      backend.held.map((g) => [g.address, g.prefix]),
      [['2001:db8:1:2::', 64]],
    );
    await daemon.stop();
  });

  test('over the cap or without one: prefix; an overlapping length: prefix-overlap; nothing granted', async () => {
    const { daemon, backend, clock } = setup();
    await daemon.start();
    daemon.handle(knock(ALICE, clock.now(), { prefix4: 23 }), '203.0.113.9');
    daemon.handle(knock(BOB, clock.now(), { prefix4: 24 }), '203.0.113.9');
    await daemon.settled();
    assert.deepEqual(daemon.rejects.totals(), { prefix: 2 });
    assert.equal(backend.held.length, 0);
    daemon.handle(knock(ALICE, clock.now(), { prefix4: 24 }), '203.0.113.9');
    await daemon.settled();
    daemon.handle(knock(ALICE, clock.now(), { prefix4: 28 }), '203.0.113.9');
    await daemon.settled();
    assert.deepEqual(daemon.rejects.totals(), { prefix: 2, 'prefix-overlap': 1 });
    assert.deepEqual(
      backend.held.map((g) => [g.address, g.prefix]),
      [['203.0.113.0', 24]],
    );
    await daemon.stop();
  });

  test('without kernel expiry (iptables) stop revokes prefix grants too', async () => {
    const { daemon, backend, clock } = setup(false);
    await daemon.start();
    daemon.handle(knock(ALICE, clock.now(), { prefix4: 24 }), '203.0.113.9');
    await daemon.settled();
    assert.equal(backend.held.length, 1);
    await daemon.stop();
    assert.equal(backend.held.length, 0);
    const revoke = backend.calls.find((c) => c.op === 'revoke');
    assert.deepEqual(revoke?.op === 'revoke' ? revoke.entries : undefined, [
      { family: 4, address: '203.0.113.0', prefix: 24, access: TCP22 },
    ]);
  });
});
