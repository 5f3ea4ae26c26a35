/**
 * The daemon under the three floods of issue 9, in-process (fake clock, fake firewall, no socket): each flood is
 * counted under its reason and summarised in one line, costs the other clients nothing, and a stop during a backlog
 * does not wait for it. The same floods over real sockets in namespaces: test/e2e/flood.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const ALICE = keyOf(1);
const BOB = keyOf(2);
const TCP22 = { proto: 'tcp', port: 22 } as const;

function setup(extra = '', backend = new FakeBackend()) {
  const config = parseConfig(
    configText({
      protect: ['tcp/22'],
      extra: `[log]\nreject_summary_interval = 10\n${extra}`,
      clients: [
        { name: 'alice', key: ALICE, open: ['tcp/22'] },
        { name: 'bob', key: BOB, open: ['tcp/22'] },
      ],
    }),
    'test.toml',
  );
  const clock = new FakeClock();
  const sink = logSink('info');
  const listen: typeof openUdpListener = async (o) => ({ bound: `[${o.address}]:${o.port}`, close: async () => {} });
  const daemon = new Daemon({ config, backend, log: sink.log, now: clock.now, timers: clock, listen, warmUp: false });
  return { daemon, backend, clock, sink };
}

const knock = (key: Uint8Array, now: number) =>
  buildPacket(key, { type: 'open', accesses: [TCP22], duration: 0 }, now).bytes;

describe('floods, in-process', () => {
  test('junk carrying a sniffed key id from one source: one HMAC per token, then `rate`; bob still gets in', async () => {
    const { daemon, backend, clock, sink } = setup('[limit]\nsource_rate = 20\nsource_burst = 40');
    await daemon.start();
    const sniffed = knock(ALICE, clock.now());
    const before = sink.lines.length;
    for (let i = 0; i < 20_000; i++) {
      const junk = Uint8Array.from(sniffed);
      junk.set(randomBytes(sniffed.length - 9), 9); // key id kept, the rest random
      daemon.handle(junk, '198.51.100.66');
    }
    daemon.handle(knock(BOB, clock.now()), '203.0.113.7');
    await daemon.settled();
    assert.ok(backend.isOpen(4, '203.0.113.7', TCP22, clock.now()), 'bob opened');
    assert.deepEqual(daemon.rejects.totals(), { mac: 40, rate: 19_960 });
    assert.equal(sink.lines.length - before, 1, 'one line: the grant for bob, none per junk datagram');
    await clock.advance(10_000);
    const summary = sink.events('rejects');
    assert.equal(summary.length, 1);
    assert.deepEqual(summary[0]?.by, { mac: 40, rate: 19_960 });
    await daemon.stop();
  });

  test("one key holder's valid-knock flood: a few knocks accepted, one firewall change; bob's knock is not delayed", async () => {
    const { daemon, backend, clock } = setup('[limit]\nclient_rate = 5\nclient_burst = 20\nsource_burst = 1000');
    await daemon.start();
    for (let i = 0; i < 500; i++) daemon.handle(knock(ALICE, clock.now()), '198.51.100.5');
    daemon.handle(knock(BOB, clock.now()), '203.0.113.7');
    await daemon.settled();
    assert.ok(backend.isOpen(4, '203.0.113.7', TCP22, clock.now()));
    assert.ok(backend.isOpen(4, '198.51.100.5', TCP22, clock.now()));
    assert.deepEqual(daemon.rejects.totals(), { 'client-rate': 480 });
    const grants = backend.calls.filter((c) => c.op === 'grant');
    assert.ok(grants.length <= 2, `${grants.length} firewall changes`);
    await daemon.stop();
  });

  test('random junk: counted by its cheap reasons, never reaches a bucket', async () => {
    const { daemon, clock } = setup('[limit]\nsource_rate = 1\nsource_burst = 1');
    await daemon.start();
    for (let i = 0; i < 5000; i++) daemon.handle(randomBytes(100), '203.0.113.7');
    daemon.handle(knock(BOB, clock.now()), '203.0.113.7');
    await daemon.settled();
    const t = daemon.rejects.totals();
    assert.equal((t.version ?? 0) + (t['unknown-key'] ?? 0), 5000);
    assert.equal(t.rate, undefined, 'the same source still had its one token for a real knock');
    await daemon.stop();
  });

  test('stop during a backlog of valid knocks for many addresses returns without waiting for it', async () => {
    const backend = new FakeBackend({ latencyMs: 200 });
    const { daemon, clock, sink } = setup('[limit]\nsource_burst = 100000\nclient_burst = 100000', backend);
    await daemon.start();
    // one batch goes to the firewall at once (200 ms); the next knocks wait behind it
    daemon.handle(knock(ALICE, clock.now()), '198.51.100.1');
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 300; i++) daemon.handle(knock(ALICE, clock.now()), `198.51.${100 + (i >> 8)}.${i & 255}`);
    const t0 = Date.now();
    await daemon.stop();
    const ms = Date.now() - t0;
    assert.ok(ms < 1500, `stop took ${ms} ms`);
    const shed = sink.events('shed-on-stop');
    assert.equal(shed.length, 1);
    assert.ok(Number(shed[0]?.knocks) > 0);
    assert.equal(daemon.rejects.totals().busy, shed[0]?.knocks, 'each shed knock counted once, as `busy`');
    assert.equal(
      backend.calls.filter((c) => c.op === 'grant').length,
      1,
      'only the change that was in flight reached the firewall',
    );
  });

  test('the firewall queue is bounded: knocks beyond limit.firewall_queue are `busy`', async () => {
    const backend = new FakeBackend({ latencyMs: 50 });
    const { daemon, clock } = setup(
      '[limit]\nsource_burst = 100000\nclient_burst = 100000\nfirewall_queue = 10',
      backend,
    );
    await daemon.start();
    daemon.handle(knock(ALICE, clock.now()), '198.51.100.1');
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 100; i++) daemon.handle(knock(ALICE, clock.now()), `198.51.101.${i}`);
    await daemon.settled();
    assert.equal(daemon.rejects.totals().busy, 90);
    assert.equal(daemon.grants.active().length, 11);
    await daemon.stop();
  });
});
