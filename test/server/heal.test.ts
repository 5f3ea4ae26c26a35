/**
 * The gate heals (server/heal.ts), in-process: a real daemon object with a fake clock and a fake firewall whose
 * "kernel" the test flushes behind the daemon's back, as `nft flush ruleset` or `iptables -F` does.
 * (The real backends: test/e2e/heal.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend, newFakeKernel } from '../../server/firewall/fake.js';
import { DEFAULT_HEAL_INTERVAL_S, GateHealer } from '../../server/heal.js';
import type { openUdpListener } from '../../server/listener.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const ALICE = keyOf(1);
const TCP22 = { proto: 'tcp', port: 22 } as const;
const SRC = '203.0.113.9';

const listen: typeof openUdpListener = async (o) => ({
  bound: `[${o.address}]:${o.port}`,
  close: async () => undefined,
});

function setup(healLine = '', kernelExpiry = true) {
  const text = configText({ duration: 30, clients: [{ name: 'alice', key: ALICE, open: ['tcp/22'] }] });
  const config = parseConfig(text.replace('protect = ["tcp/22"]', `protect = ["tcp/22"]\n${healLine}`), 't.toml');
  const clock = new FakeClock();
  const kernel = newFakeKernel();
  const backend = new FakeBackend({ kernel, kernelExpiry });
  const sink = logSink();
  const daemon = new Daemon({ config, backend, log: sink.log, now: clock.now, timers: clock, listen, warmUp: false });
  const flush = () => {
    kernel.plan = undefined;
    kernel.grants.clear();
  };
  return { daemon, backend, clock, sink, flush, config };
}

describe('the gate heals (fake firewall, fake clock)', () => {
  test('the default interval is a named default and reaches the config', () => {
    assert.equal(setup().config.firewall.healInterval, DEFAULT_HEAL_INTERVAL_S);
    assert.equal(setup('heal_interval = 0').config.firewall.healInterval, 0);
    assert.throws(() => setup('heal_interval = 1.5'), /firewall\.heal_interval: must be a whole number/);
    assert.throws(() => setup('heal_interval = 3601'), /firewall\.heal_interval/);
  });

  for (const kernelExpiry of [true, false]) {
    test(`flushed while a grant is live: gate and grant back within one interval (kernelExpiry ${kernelExpiry})`, async () => {
      const { daemon, backend, clock, sink, flush } = setup('heal_interval = 5', kernelExpiry);
      await daemon.start();
      daemon.handle(buildPacket(ALICE, { type: 'open', accesses: [TCP22], duration: 0 }, clock.now()).bytes, SRC);
      await daemon.settled();
      const expiresAt = clock.now() + 30_000;
      await clock.advance(5000);
      await daemon.healer?.current;
      assert.equal(sink.events('heal').length, 0, 'nothing to heal while the gate is intact');
      flush();
      assert.equal(backend.installed, undefined);
      await clock.advance(4999);
      await daemon.healer?.current;
      assert.equal(sink.events('heal').length, 0, 'not before the interval');
      await clock.advance(1);
      await daemon.healer?.current;
      const h = sink.events('heal');
      assert.equal(h.length, 1);
      assert.equal(h[0]?.grants, 1);
      assert.match(String(h[0]?.problems), /not installed/);
      assert.deepEqual(backend.installed, [TCP22]);
      assert.ok(backend.isOpen(4, SRC, TCP22, clock.now()), 'the live grant is back');
      const held = backend.held.find((g) => g.address === SRC);
      assert.equal(held?.expiresAt, expiresAt, 'with its own expiry');
      assert.equal(held?.owner, 'alice', 'and its owner');
      await clock.advance(20_001);
      assert.ok(!backend.isOpen(4, SRC, TCP22, clock.now()), 'and it still ends on time');
      await daemon.stop();
    });
  }

  test('flushed with no grant: the gate alone comes back; a changed plan is put back too', async () => {
    const { daemon, backend, clock, sink, flush } = setup();
    await daemon.start();
    flush();
    await clock.advance(DEFAULT_HEAL_INTERVAL_S * 1000);
    await daemon.healer?.current;
    assert.equal(sink.events('heal')[0]?.grants, 0);
    assert.deepEqual(backend.installed, [TCP22]);
    await backend.install({ protect: [{ proto: 'tcp', port: 80 }] }, clock.now()); // someone else's change
    await clock.advance(DEFAULT_HEAL_INTERVAL_S * 1000);
    await daemon.healer?.current;
    assert.equal(sink.events('heal').length, 2);
    assert.deepEqual(backend.installed, [TCP22]);
    await daemon.stop();
  });

  test('heal_interval = 0: no check ever', async () => {
    const { daemon, backend, clock } = setup('heal_interval = 0');
    await daemon.start();
    await clock.advance(60_000);
    assert.equal(daemon.healer, undefined);
    assert.equal(backend.calls.filter((c) => c.op === 'check').length, 0);
    await daemon.stop();
  });

  test('a failing install is logged and retried at the next tick; a failing check re-installs at once; stop ends the checks', async () => {
    const { daemon, backend, clock, sink, flush } = setup();
    await daemon.start();
    flush();
    backend.failNext('install');
    await clock.advance(2000);
    await daemon.healer?.current;
    assert.equal(sink.events('heal-error').length, 1);
    assert.equal(backend.installed, undefined);
    backend.failNext('check');
    await clock.advance(2000);
    await daemon.healer?.current;
    assert.equal(sink.events('heal-error').length, 1, 'a check that cannot tell is no error: the gate is re-installed');
    assert.equal(sink.events('heal').length, 1);
    assert.match(String((sink.events('heal')[0]?.problems as string[] | undefined)?.[0]), /^the check failed: /);
    assert.deepEqual(backend.installed, [TCP22]);
    await daemon.stop();
    const checks = backend.calls.filter((c) => c.op === 'check').length;
    await clock.advance(20_000);
    assert.equal(backend.calls.filter((c) => c.op === 'check').length, checks);
    assert.equal(clock.pending, 0);
  });

  test('GateHealer.tick reports healed or not', async () => {
    const clock = new FakeClock();
    const backend = new FakeBackend();
    let reinstalls = 0;
    const h = new GateHealer({
      backend,
      plan: () => ({ protect: [TCP22] }),
      now: clock.now,
      timers: clock,
      intervalMs: 1000,
      reinstall: async () => {
        reinstalls++;
        await backend.install({ protect: [TCP22] }, clock.now());
        return 0;
      },
      onHeal: () => undefined,
      onError: (e) => assert.fail(String(e)),
    });
    assert.equal(await h.tick(), true);
    assert.equal(await h.tick(), false);
    assert.equal(reinstalls, 1);
  });

  test('after a clean check a fast path left off is tried again: installed when its ports are held, else nothing', async () => {
    const clock = new FakeClock();
    const backend = new FakeBackend();
    await backend.install({ protect: [TCP22] }, clock.now());
    const calls: string[] = [];
    let free = false;
    const h = new GateHealer({
      backend,
      plan: () => ({ protect: [TCP22] }),
      now: clock.now,
      timers: clock,
      intervalMs: 1000,
      reinstall: async () => {
        calls.push('reinstall');
        return 0;
      },
      retryFastPath: async () => {
        calls.push('retry');
        return free;
      },
      onHeal: () => assert.fail('a retry is not a heal'),
      onError: (e) => assert.fail(String(e)),
    });
    assert.equal(await h.tick(), false);
    assert.deepEqual(calls, ['retry'], 'still taken: no install');
    free = true;
    assert.equal(await h.tick(), false);
    assert.deepEqual(calls, ['retry', 'retry', 'reinstall'], 'held now: installed again');
  });
});
