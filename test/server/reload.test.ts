/**
 * SIGHUP reload in-process (server/reload.ts, Daemon.reload): a daemon object with a fake clock and firewall, its
 * config file rewritten in a temporary directory between reloads. (A real daemon: test/e2e/operations.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { type TestConfigOptions, configText, keyOf } from '../../harness/config.js';
import { loadConfig } from '../../server/config-file.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { Reloader } from '../../server/reload.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-reload-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ALICE = keyOf(1);
const BOB = keyOf(2);
const CAROL = keyOf(3);
const TCP22 = { proto: 'tcp', port: 22 } as const;
const TCP80 = { proto: 'tcp', port: 80 } as const;
const listen: typeof openUdpListener = async (o) => ({
  bound: `[${o.address}]:${o.port}`,
  close: async () => undefined,
});
const both = [
  { name: 'alice', key: ALICE, open: ['tcp/22'] },
  { name: 'bob', key: BOB, open: ['tcp/22'] },
];
let n = 0;

async function setup() {
  const path = join(dir, `c${++n}.toml`);
  const write = (o: TestConfigOptions) =>
    writeFileSync(path, configText({ stateDir: join(dir, 'state'), duration: 30, ...o }), { mode: 0o600 });
  write({ clients: both });
  const clock = new FakeClock(Date.now());
  const backend = new FakeBackend();
  const sink = logSink();
  const daemon = new Daemon({
    config: loadConfig(path),
    backend,
    log: sink.log,
    now: clock.now,
    timers: clock,
    listen,
    warmUp: false,
  });
  await daemon.start();
  const knock = async (key: Uint8Array, src: string) => {
    daemon.handle(buildPacket(key, { type: 'open', accesses: [TCP22], duration: 0 }, clock.now()).bytes, src);
    await daemon.settled();
  };
  return { path, write, clock, backend, sink, daemon, knock, reloader: new Reloader(path, daemon, sink.log) };
}

describe('SIGHUP reload (in-process)', () => {
  test('a removed client loses its grants at once; the others keep theirs; new clients and plan apply', async () => {
    const { write, clock, backend, sink, daemon, knock, reloader } = await setup();
    await knock(ALICE, '192.0.2.1');
    await knock(BOB, '192.0.2.2');
    write({ protect: ['tcp/22', 'tcp/80'], clients: [both[0]!, { name: 'carol', key: CAROL, open: ['tcp/80'] }] });
    assert.equal(await reloader.reload(), 'reloaded');
    const r = sink.events('reload')[0];
    assert.deepEqual(r?.removed, ['bob']);
    assert.deepEqual(r?.added, ['carol']);
    assert.deepEqual(r?.ended, [{ client: 'bob', address: '192.0.2.2', access: 'tcp/22' }]);
    assert.ok(!backend.isOpen(4, '192.0.2.2', TCP22, clock.now()), "bob's grant ended");
    assert.ok(backend.isOpen(4, '192.0.2.1', TCP22, clock.now()), "alice's grant survives");
    assert.deepEqual(backend.installed, [TCP22, TCP80], 'firewall plan change applied');
    await knock(BOB, '192.0.2.3');
    assert.ok(!backend.isOpen(4, '192.0.2.3', TCP22, clock.now()), 'bob is no longer a client');
    assert.equal(daemon.rejects.totals()['unknown-key'], 1);
    daemon.handle(buildPacket(CAROL, { type: 'open', accesses: [TCP80], duration: 0 }, clock.now()).bytes, '192.0.2.4');
    await daemon.settled();
    assert.ok(backend.isOpen(4, '192.0.2.4', TCP80, clock.now()), 'carol knocks in');
    await clock.advance(30_001);
    assert.ok(!backend.isOpen(4, '192.0.2.1', TCP22, clock.now()), 'kept grants still expire on time');
    await daemon.stop();
  });

  test('an invalid config is refused with a logged reason; the old one stays in force', async () => {
    const { path, write, clock, backend, sink, daemon, knock, reloader } = await setup();
    await knock(ALICE, '192.0.2.1');
    writeFileSync(path, 'this is = not [ toml');
    assert.equal(await reloader.reload(), 'refused');
    write({ clients: both, port: 5000 });
    assert.equal(await reloader.reload(), 'refused');
    write({ clients: both, table: 'other' });
    assert.equal(await reloader.reload(), 'refused');
    const reasons = sink.events('reload-refused').map((l) => String(l.reason));
    assert.equal(reasons.length, 3);
    assert.match(reasons[0] ?? '', /line 1/);
    assert.match(reasons[1] ?? '', /listen\.port changed: only a restart/);
    assert.match(reasons[2] ?? '', /firewall\.table changed/);
    assert.equal(sink.events('reload').length, 0);
    assert.ok(backend.isOpen(4, '192.0.2.1', TCP22, clock.now()), 'grant untouched');
    await knock(BOB, '192.0.2.2');
    assert.ok(backend.isOpen(4, '192.0.2.2', TCP22, clock.now()), 'old clients still knock in');
    await daemon.stop();
  });

  test('a plan the firewall refuses: reload refused, old plan and clients in force', async () => {
    const { write, clock, backend, sink, daemon, knock, reloader } = await setup();
    await knock(ALICE, '192.0.2.1');
    write({ protect: ['tcp/22', 'tcp/80'], clients: [both[0]!] });
    backend.failNext('install');
    assert.equal(await reloader.reload(), 'refused');
    assert.match(String(sink.events('reload-refused')[0]?.reason), /firewall plan cannot be installed/);
    assert.deepEqual(backend.installed, [TCP22]);
    await knock(BOB, '192.0.2.2');
    assert.ok(backend.isOpen(4, '192.0.2.2', TCP22, clock.now()), 'bob still a client');
    assert.ok(daemon.healer !== undefined, 'loops running again');
    await daemon.stop();
  });

  test('reloads never overlap; log level applies', async () => {
    const { write, sink, daemon, reloader } = await setup();
    write({ clients: both, extra: '[log]\nlevel = "warn"' });
    const [a, b] = await Promise.all([reloader.reload(), reloader.reload()]);
    assert.deepEqual([a, b], ['reloaded', 'reloaded']);
    assert.equal(sink.log.level, 'warn');
    await daemon.stop();
  });
});
