/**
 * Client expiry (`expires` in a [[client]]): the config key, the `expired` verdict, grants clamped to the expiry and
 * live grants ended at it (server/client-expiry.ts), all with a fake clock and a fake firewall.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { ExpiryWatch } from '../../server/client-expiry.js';
import { parseConfig } from '../../server/config.js';
import { loadConfig } from '../../server/config-file.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { REJECT_REASONS } from '../../server/reasons.js';
import { Reloader } from '../../server/reload.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-expiry-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ALICE = keyOf(1);
const BOB = keyOf(2);
const TCP22 = { proto: 'tcp', port: 22 } as const;
const listen: typeof openUdpListener = async (o) => ({
  bound: `[${o.address}]:${o.port}`,
  close: async () => undefined,
});
const START = Date.UTC(2026, 10, 27, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();

/** A config whose clients alice and bob have these `expires` lines (TOML values, unquoted), if any. */
function text(alice?: string, bob?: string): string {
  const base = configText({ stateDir: join(dir, 'state'), duration: 30, clients: [] });
  const client = (name: string, key: Uint8Array, exp?: string) => {
    const t = configText({ clients: [{ name, key, open: ['tcp/22'] }] });
    return t.slice(t.indexOf('[[client]]')) + (exp !== undefined ? `expires = ${exp}\n` : '');
  };
  return base + client('alice', ALICE, alice) + client('bob', BOB, bob);
}

let n = 0;
async function setup(alice?: string, bob?: string) {
  const path = join(dir, `c${++n}.toml`);
  const write = (a?: string, b?: string) => writeFileSync(path, text(a, b), { mode: 0o600 });
  write(alice, bob);
  const clock = new FakeClock(START);
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
  const knock = async (key: Uint8Array, src: string, duration = 0) => {
    daemon.handle(buildPacket(key, { type: 'open', accesses: [TCP22], duration }, clock.now()).bytes, src);
    await daemon.settled();
  };
  return { write, clock, backend, sink, daemon, knock, reloader: new Reloader(path, daemon, sink.log) };
}

describe('client expiry', () => {
  test('config: a TOML date is 00:00 UTC that day; a date-time keeps its offset; no offset reads as UTC', () => {
    const at = (v: string) => parseConfig(text(v), 'x.toml').clients[0]?.expiresAt;
    assert.equal(at('2027-01-31'), Date.UTC(2027, 0, 31));
    assert.equal(at('2027-01-31T18:30:00+02:00'), Date.UTC(2027, 0, 31, 16, 30));
    assert.equal(at('2027-01-31T18:30:00'), Date.UTC(2027, 0, 31, 18, 30));
    assert.equal(parseConfig(text(), 'x.toml').clients[0]?.expiresAt, undefined, 'no expires: never');
  });

  test('config: a quoted date, a time alone, a number are refused with the line and the key', () => {
    for (const v of ['"2027-01-31"', '18:30:00', '1801353600']) {
      assert.throws(
        () => parseConfig(text(v), 'x.toml'),
        (e: Error & { code?: string }) =>
          e.code === 'ERR_SPA_CONFIG' && /line \d+: client\[0\]\.expires: must be a TOML date/.test(e.message),
        v,
      );
    }
  });

  test('`expired` comes after authentication and before the replay checks (cheapest first)', () => {
    const i = (r: string) => REJECT_REASONS.indexOf(r as (typeof REJECT_REASONS)[number]);
    assert.ok(i('expired') > i('mac') && i('expired') > i('malformed'));
    assert.ok(i('expired') < i('stale') && i('expired') < i('replay') && i('expired') < i('policy'));
  });

  test('a knock before expiry is granted, no longer than the time left; after it: `expired`, nothing opens', async () => {
    const { clock, backend, daemon, knock } = await setup(iso(START + 10_000));
    await knock(ALICE, '192.0.2.1');
    const g = backend.list(clock.now());
    assert.equal((await g).length, 1);
    assert.equal((await g)[0]?.expiresAt, START + 10_000, 'clamped to the expiry, not the 30 s default');
    await clock.advance(10_000);
    assert.ok(!backend.isOpen(4, '192.0.2.1', TCP22, clock.now()), 'the grant ended at the expiry');
    await knock(ALICE, '192.0.2.1');
    assert.ok(!backend.isOpen(4, '192.0.2.1', TCP22, clock.now()), 'an expired client opens nothing');
    assert.equal(daemon.rejects.totals().expired, 1);
    await knock(BOB, '192.0.2.2');
    assert.ok(backend.isOpen(4, '192.0.2.2', TCP22, clock.now()), 'bob has no expires: unaffected');
    await daemon.stop();
  });

  test('one millisecond before the expiry is accepted, the expiry instant itself is refused', async () => {
    const { clock, daemon, backend, knock } = await setup(iso(START + 5_000));
    await clock.advance(4_999);
    await knock(ALICE, '192.0.2.1');
    assert.ok(backend.isOpen(4, '192.0.2.1', TCP22, clock.now()));
    await clock.advance(1);
    await knock(ALICE, '192.0.2.9');
    assert.equal(daemon.rejects.totals().expired, 1);
    assert.ok(!backend.isOpen(4, '192.0.2.9', TCP22, clock.now()));
    await daemon.stop();
  });

  test('a live grant ends at the expiry a reload set (client-expired logged); others keep theirs', async () => {
    const { write, clock, backend, sink, daemon, knock, reloader } = await setup();
    await knock(ALICE, '192.0.2.1');
    await knock(BOB, '192.0.2.2');
    write(iso(START + 5_000));
    assert.equal(await reloader.reload(), 'reloaded');
    await clock.advance(4_999);
    assert.ok(backend.isOpen(4, '192.0.2.1', TCP22, clock.now()), 'still open before the expiry');
    await clock.advance(1);
    await daemon.settled();
    assert.ok(!backend.isOpen(4, '192.0.2.1', TCP22, clock.now()), "alice's 30 s grant ended at her expiry");
    assert.ok(backend.isOpen(4, '192.0.2.2', TCP22, clock.now()), "bob's grant runs on");
    const e = sink.events('client-expired');
    assert.equal(e.length, 1);
    assert.deepEqual(e[0]?.ended, [{ client: 'alice', address: '192.0.2.1', access: 'tcp/22' }]);
    await daemon.stop();
  });

  test('a reload to an expiry already past ends the grants at once', async () => {
    const { write, clock, backend, daemon, knock, reloader } = await setup();
    await knock(ALICE, '192.0.2.1');
    write('2020-01-01');
    assert.equal(await reloader.reload(), 'reloaded');
    await daemon.settled();
    assert.ok(!backend.isOpen(4, '192.0.2.1', TCP22, clock.now()));
    await daemon.stop();
  });

  test('ExpiryWatch: an expiry months away (beyond setTimeout range) fires on time, once', async () => {
    const clock = new FakeClock(START);
    const fired: string[][] = [];
    const w = new ExpiryWatch({ now: clock.now, timers: clock, onExpired: (c) => fired.push([...c]) });
    const DAY = 86_400_000;
    const cl = (name: string, at?: number) =>
      ({ name, ...(at !== undefined ? { expiresAt: at } : {}) }) as Parameters<ExpiryWatch['watch']>[0][number];
    w.watch([cl('a', START + 90 * DAY), cl('b', START + 2 * DAY), cl('c')]);
    await clock.advance(2 * DAY - 1);
    assert.deepEqual(fired, []);
    await clock.advance(1);
    assert.deepEqual(fired, [['b']]);
    await clock.advance(88 * DAY - 1);
    assert.deepEqual(fired, [['b']], 'not early, although setTimeout cannot wait 88 days at once');
    await clock.advance(1);
    assert.deepEqual(fired, [['b'], ['a']]);
    await clock.advance(100 * DAY);
    assert.equal(fired.length, 2, 'never twice');
    assert.equal(clock.pending, 0);
    w.watch([cl('d', START)]);
    assert.deepEqual(fired.at(-1), ['d'], 'already past: at once');
    w.stop();
  });
});
