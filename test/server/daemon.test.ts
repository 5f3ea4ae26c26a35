/**
 * The whole receive path in-process: real config, verifier, replay guard, grant manager and logger; a fake clock,
 * a fake firewall and a fake socket. (The real socket and firewall are covered by test/e2e/*.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { formatKey } from '../../shared/keys.js';
import { toHex } from '../../shared/bytes.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { ReplayFile } from '../../server/replay-file.js';
import { buildPacket } from '../../client/request.js';
import { FakeClock } from '../helpers/clock.js';
import { configText, keyOf } from '../../harness/config.js';
import { logSink } from '../helpers/logsink.js';

const stateRoot = mkdtempSync(join(tmpdir(), 'spak-daemon-'));
after(() => rmSync(stateRoot, { recursive: true, force: true }));

const ALICE = keyOf(1);
const BOB = keyOf(2);
const TCP22 = { proto: 'tcp', port: 22 } as const;

function setup(
  opts: { kernelExpiry?: boolean; stateDir?: string; clock?: FakeClock; listenError?: Error; warmUp?: boolean } = {},
) {
  const config = parseConfig(
    configText({
      protect: ['tcp/22', 'tcp/443'],
      duration: 30,
      window: 60,
      extra: '[log]\nreject_summary_interval = 10',
      clients: [
        { name: 'alice', key: ALICE, open: ['tcp/22', 'tcp/443'] },
        { name: 'bob', key: BOB, open: ['tcp/22'] },
      ],
    }),
    'test.toml',
  );
  const clock = opts.clock ?? new FakeClock();
  const backend = new FakeBackend({ kernelExpiry: opts.kernelExpiry ?? true });
  const sink = logSink();
  let bound: { address: string; port: number } | undefined;
  let closed = false;
  const listen: typeof openUdpListener = async (o) => {
    if (opts.listenError) throw opts.listenError;
    bound = { address: o.address, port: o.port };
    return {
      bound: `[${o.address}]:${o.port}`,
      close: async () => {
        closed = true;
      },
    };
  };
  const replayFile = opts.stateDir ? new ReplayFile(opts.stateDir) : undefined;
  const daemon = new Daemon({
    config,
    backend,
    log: sink.log,
    now: clock.now,
    timers: clock,
    listen,
    warmUp: opts.warmUp ?? false,
    ...(replayFile ? { replayFile } : {}),
  });
  return { daemon, backend, clock, sink, config, bound: () => bound, closed: () => closed };
}

function knock(key: Uint8Array, now: number, over: Partial<Parameters<typeof buildPacket>[1]> = {}) {
  return buildPacket(key, { type: 'open', accesses: [TCP22], duration: 0, ...over }, now).bytes;
}

describe('daemon (in-process, fake clock and firewall)', () => {
  test('start installs the plan, adopts kernel grants, listens where configured', async () => {
    const { daemon, backend, bound, sink } = setup({ warmUp: true });
    await daemon.start();
    assert.deepEqual(
      backend.calls.map((c) => c.op),
      ['install', 'list'],
    );
    assert.deepEqual(daemon.rejects.totals(), {}, 'the warm-up leaves no trace in the counters');
    assert.deepEqual(backend.installed, [TCP22, { proto: 'tcp', port: 443 }]);
    assert.deepEqual(bound(), { address: '::', port: 62201 });
    assert.equal(sink.events('start').length, 1);
    await daemon.stop();
  });

  test('a knock opens for its source until the expiry; one log line, no key, no packet', async () => {
    const { daemon, backend, clock, sink } = setup();
    await daemon.start();
    const pkt = knock(ALICE, clock.now());
    daemon.handle(pkt, '::ffff:203.0.113.9');
    await daemon.settled();
    assert.ok(backend.isOpen(4, '203.0.113.9', TCP22, clock.now()));
    assert.ok(!backend.isOpen(4, '203.0.113.9', { proto: 'tcp', port: 443 }, clock.now()), 'only what was asked');
    const g = sink.events('grant');
    assert.equal(g.length, 1);
    assert.equal(g[0]?.client, 'alice');
    assert.equal(g[0]?.address, '203.0.113.9');
    assert.deepEqual(g[0]?.accesses, ['tcp/22']);
    assert.equal(g[0]?.expires, new Date(clock.now() + 30_000).toISOString());
    const all = sink.raw.join('');
    assert.ok(
      !all.includes(formatKey(ALICE)) &&
        !all.includes(toHex(pkt)) &&
        !all.includes(Buffer.from(pkt).toString('base64')),
    );
    await clock.advance(30_001);
    assert.ok(!backend.isOpen(4, '203.0.113.9', TCP22, clock.now()), 'expired');
    await daemon.stop();
  });

  test('a retransmitted packet is harmless: one grant, counted as replay, no error line', async () => {
    const { daemon, backend, clock, sink } = setup();
    await daemon.start();
    const pkt = knock(ALICE, clock.now());
    for (let i = 0; i < 5; i++) daemon.handle(pkt, '203.0.113.9');
    await daemon.settled();
    assert.equal(backend.calls.filter((c) => c.op === 'grant').length, 1);
    assert.deepEqual(daemon.rejects.totals(), { replay: 4 });
    assert.equal(sink.lines.filter((l) => l.level === 'error' || l.level === 'warn').length, 0);
    await daemon.stop();
  });

  test('a flood of junk gives one summary line per interval, counted by reason', async () => {
    const { daemon, clock, sink } = setup();
    await daemon.start();
    const good = knock(ALICE, clock.now());
    for (let i = 0; i < 5000; i++) {
      const junk = new Uint8Array(good);
      junk[40 + (i % 20)]! ^= 1 + (i % 255);
      daemon.handle(junk, `198.51.100.${i % 250}`);
    }
    for (let i = 0; i < 100; i++) daemon.handle(new Uint8Array(3), '198.51.100.1');
    daemon.handle(knock(keyOf(77), clock.now()), '198.51.100.1');
    assert.equal(sink.events('rejects').length, 0, 'nothing logged per packet');
    await clock.advance(10_000);
    const s = sink.events('rejects');
    assert.equal(s.length, 1);
    assert.deepEqual(s[0]?.by, { size: 100, 'unknown-key': 1, mac: 5000 });
    assert.equal(s[0]?.total, 5101);
    await clock.advance(60_000);
    assert.equal(sink.events('rejects').length, 1, 'quiet intervals log nothing');
    assert.ok(sink.lines.length < 10, `log lines: ${sink.lines.length}`);
    await daemon.stop();
  });

  test('close revokes the client grant at once; another client cannot revoke it', async () => {
    const { daemon, backend, clock, sink } = setup();
    await daemon.start();
    daemon.handle(knock(ALICE, clock.now()), '203.0.113.9');
    await daemon.settled();
    daemon.handle(knock(BOB, clock.now(), { type: 'close' }), '203.0.113.9');
    await daemon.settled();
    assert.ok(backend.isOpen(4, '203.0.113.9', TCP22, clock.now()), "bob's close leaves alice's grant");
    daemon.handle(knock(ALICE, clock.now(), { type: 'close', accesses: [] }), '203.0.113.9');
    await daemon.settled();
    assert.ok(!backend.isOpen(4, '203.0.113.9', TCP22, clock.now()));
    assert.equal(sink.events('revoke').length, 2);
    await daemon.stop();
  });

  test('a failing firewall is logged and counted, never thrown; the daemon keeps serving', async () => {
    const { daemon, backend, clock, sink } = setup();
    await daemon.start();
    backend.failNext('grant', 'nft: boom');
    daemon.handle(knock(ALICE, clock.now()), '203.0.113.9');
    await daemon.settled();
    assert.equal(sink.events('firewall-error').length, 1);
    const err = sink.events('firewall-error')[0]?.err as { message?: string; stack?: string } | undefined;
    assert.match(String(err?.message), /boom/);
    assert.ok(err?.stack, 'the error is logged as an object, stack kept');
    assert.deepEqual(daemon.rejects.totals(), { firewall: 1 });
    daemon.handle(knock(ALICE, clock.now()), '203.0.113.9');
    await daemon.settled();
    assert.ok(backend.isOpen(4, '203.0.113.9', TCP22, clock.now()));
    await daemon.stop();
  });

  test('a failing install stops start() with the firewall error and closes the socket', async () => {
    const { daemon, backend, closed } = setup();
    backend.failNext('install', 'nft: no such table');
    await assert.rejects(daemon.start(), /no such table/);
    assert.equal(closed(), true);
  });

  test('a port that cannot be bound stops start() before any firewall change', async () => {
    const { daemon, backend } = setup({ listenError: new Error('cannot listen on udp [::]:62201: EADDRINUSE') });
    await assert.rejects(daemon.start(), /EADDRINUSE/);
    assert.deepEqual(backend.calls, []);
  });

  test('without kernel expiry (iptables) the daemon revokes on time, and revokes live grants on stop', async () => {
    const { daemon, backend, clock, sink } = setup({ kernelExpiry: false });
    await daemon.start();
    daemon.handle(knock(ALICE, clock.now(), { duration: 5 }), '2001:db8::9');
    daemon.handle(knock(BOB, clock.now()), '192.0.2.1');
    await daemon.settled();
    assert.equal(backend.held.length, 2);
    await clock.advance(4_999);
    assert.equal(backend.held.length, 2);
    await clock.advance(2);
    assert.deepEqual(
      backend.held.map((g) => g.address),
      ['192.0.2.1'],
    );
    assert.equal(sink.events('expire').length, 1);
    await daemon.stop();
    assert.equal(backend.held.length, 0, 'nobody would revoke them later: fail closed');
  });

  test('with kernel expiry (nftables) stop leaves grants to the kernel', async () => {
    const { daemon, backend, clock } = setup();
    await daemon.start();
    daemon.handle(knock(ALICE, clock.now()), '203.0.113.9');
    await daemon.settled();
    await daemon.stop();
    assert.equal(backend.calls.filter((c) => c.op === 'revoke').length, 0);
    assert.equal(backend.held.length, 1);
  });

  test('a packet accepted before a restart is refused after it (replay records persist)', async () => {
    const stateDir = join(stateRoot, 'restart');
    const clock = new FakeClock();
    const a = setup({ stateDir, clock });
    await a.daemon.start();
    const pkt = knock(ALICE, clock.now());
    a.daemon.handle(pkt, '203.0.113.9');
    await a.daemon.settled();
    // no stop(): the process "dies"
    await clock.advance(5_000);
    const b = setup({ stateDir, clock });
    await b.daemon.start();
    b.daemon.handle(pkt, '203.0.113.9');
    await b.daemon.settled();
    assert.deepEqual(b.daemon.rejects.totals(), { replay: 1 });
    assert.equal(b.backend.calls.filter((c) => c.op === 'grant').length, 0);
    await a.daemon.stop();
    await b.daemon.stop();
  });
});
