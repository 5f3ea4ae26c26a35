/**
 * Issue 11 through the daemon's receive path, in-process (fake clock, fake firewall, fake socket): replay after a
 * clock step, ownership between clients, ungrantable addresses, sender binding, refused replay-record writes,
 * kernel drops in the reject summary, the port-unreachable plan flag.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SpaError } from '../../shared/errors.js';
import { type Config, parseConfig } from '../../server/config.js';
import { Daemon, planOf } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { ReplayFile } from '../../server/replay-file.js';
import type { DropReader } from '../../server/udp-drops.js';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const stateRoot = mkdtempSync(join(tmpdir(), 'spak-daemon-sec-'));
after(() => rmSync(stateRoot, { recursive: true, force: true }));

const ALICE = keyOf(1);
const BOB = keyOf(2);
const CAROL = keyOf(3);
const TCP22 = { proto: 'tcp', port: 22 } as const;
const ALICE_IP = '203.0.113.9';
const BOB_IP = '198.51.100.20';

function config(extra = ''): Config {
  return parseConfig(
    configText({
      protect: ['tcp/22', 'tcp/443'],
      duration: 30,
      window: 60,
      extra: '[log]\nreject_summary_interval = 10',
      clients: [
        { name: 'alice', key: ALICE, open: ['tcp/22', 'tcp/443'] },
        { name: 'bob', key: BOB, open: ['tcp/22'] },
        { name: 'carol', key: CAROL, open: ['tcp/22'] },
      ],
    }) + extra, // appended lines belong to the last client (carol)
    'test.toml',
  );
}

interface SetupOptions {
  /** SO_RCVBUF the fake socket reports. */
  receiveBuffer?: number;
  clock?: FakeClock;
  backend?: FakeBackend;
  replayFile?: ReplayFile;
  extra?: string;
  broadcasts?: ReadonlySet<string>;
  readDrops?: DropReader;
  port?: number;
  /** A clock that can step back (FakeClock only goes forward); its timers are still the FakeClock's. */
  now?: () => number;
}

function setup(o: SetupOptions = {}) {
  const clock = o.clock ?? new FakeClock();
  const backend = o.backend ?? new FakeBackend();
  const sink = logSink();
  const listen: typeof openUdpListener = async (l) => ({
    bound: `[${l.address}]:${l.port}`,
    ...(o.port !== undefined ? { port: o.port } : {}),
    ...(o.receiveBuffer !== undefined ? { receiveBuffer: o.receiveBuffer } : {}),
    close: async () => undefined,
  });
  const daemon = new Daemon({
    config: config(o.extra),
    backend,
    log: sink.log,
    now: o.now ?? clock.now,
    timers: clock,
    listen,
    warmUp: false,
    broadcasts: o.broadcasts ?? new Set(),
    readDrops: o.readDrops ?? (() => undefined),
    ...(o.replayFile ? { replayFile: o.replayFile } : {}),
  });
  return { daemon, backend, clock, sink };
}

function knock(key: Uint8Array, now: number, over: Partial<Parameters<typeof buildPacket>[1]> = {}) {
  return buildPacket(key, { type: 'open', accesses: [TCP22], duration: 0, ...over }, now).bytes;
}

async function send(daemon: Daemon, pkt: Uint8Array, from: string): Promise<void> {
  daemon.handle(pkt, from);
  await daemon.settled();
}

describe('replay after a clock step (11a)', () => {
  test('forward 10 min, knock, back: an old captured packet does not open again; a new knock does', async () => {
    const clock = new FakeClock();
    let step = 0; // what NTP did to the wall clock
    const now = () => clock.now() + step;
    const { daemon, sink } = setup({ clock, now });
    await daemon.start();
    const t0 = now();
    const captured = knock(ALICE, t0);
    await send(daemon, captured, ALICE_IP);
    assert.equal(sink.events('grant').length, 1);
    step = 600_000; // the clock steps 10 minutes forward
    await send(daemon, knock(BOB, now()), BOB_IP); // a knock there forgets the old record
    assert.equal(sink.events('grant').length, 2);
    step = 5_000 - (clock.now() - t0); // … and back, to 5 s after the capture
    assert.equal(now(), t0 + 5_000);
    await send(daemon, captured, '192.0.2.66');
    assert.equal(sink.events('grant').length, 2, 'the captured packet opened nothing');
    assert.deepEqual(daemon.rejects.totals(), { stale: 1 });
    await send(daemon, knock(ALICE, now()), ALICE_IP);
    assert.equal(sink.events('grant').length, 3, 'a fresh knock after the step back is accepted');
    await daemon.stop();
  });

  test('the guarantee survives a restart: the floor is persisted in state_dir', async () => {
    const stateDir = join(stateRoot, 'floor');
    const t0 = new FakeClock().now();
    const captured = knock(ALICE, t0);
    const a = setup({ clock: new FakeClock(t0), replayFile: new ReplayFile(stateDir) });
    await a.daemon.start();
    await send(a.daemon, captured, ALICE_IP);
    await a.daemon.stop();
    // restart while the clock is 10 minutes ahead: the record is expired there and is dropped at load
    const b = setup({ clock: new FakeClock(t0 + 600_000), replayFile: new ReplayFile(stateDir) });
    await b.daemon.start();
    await b.daemon.stop();
    // restart again after the clock stepped back
    const c = setup({ clock: new FakeClock(t0 + 5_000), replayFile: new ReplayFile(stateDir) });
    await c.daemon.start();
    await send(c.daemon, captured, ALICE_IP);
    assert.deepEqual(c.daemon.rejects.totals(), { stale: 1 });
    assert.equal(c.sink.events('grant').length, 0);
    await send(c.daemon, knock(ALICE, t0 + 5_000), ALICE_IP);
    assert.equal(c.sink.events('grant').length, 1);
    await c.daemon.stop();
  });
});

describe('grants between clients (11b)', () => {
  test("bob --allow-ip ALICE --duration 1 leaves alice's grant as it was; the log says so", async () => {
    const { daemon, backend, clock, sink } = setup();
    await daemon.start();
    await send(daemon, knock(ALICE, clock.now(), { duration: 300 }), ALICE_IP);
    await send(daemon, knock(BOB, clock.now(), { duration: 1, allowAddress: ALICE_IP }), BOB_IP);
    assert.deepEqual(
      backend.held.map((g) => [g.owner, g.expiresAt - clock.now()]),
      [['alice', 300_000]],
    );
    const g = sink.events('grant')[1];
    assert.deepEqual([g?.client, g?.opened, g?.unchanged], ['bob', [], ['tcp/22']]);
    await daemon.stop();
  });

  test("bob's close of alice's address revokes nothing, also after a restart", async () => {
    const backend = new FakeBackend();
    const clock = new FakeClock();
    const a = setup({ backend, clock });
    await a.daemon.start();
    await send(a.daemon, knock(ALICE, clock.now()), ALICE_IP);
    await a.daemon.stop();
    const b = setup({ backend, clock });
    await b.daemon.start();
    await send(b.daemon, knock(BOB, clock.now(), { type: 'close', allowAddress: ALICE_IP }), BOB_IP);
    assert.equal(backend.held.length, 1);
    assert.deepEqual(b.sink.events('revoke')[0]?.not_owned, ['tcp/22']);
    await b.daemon.stop();
  });

  test('one key cannot fill the sets: beyond max_grants distinct addresses → grant-limit', async () => {
    const { daemon, backend, clock } = setup({ extra: 'max_grants = 3\n' });
    await daemon.start();
    for (let i = 1; i <= 5; i++)
      await send(daemon, knock(CAROL, clock.now(), { allowAddress: `192.0.2.${i}` }), BOB_IP);
    assert.equal(backend.held.length, 3);
    assert.deepEqual(daemon.rejects.totals(), { 'grant-limit': 2 });
    await daemon.stop();
  });
});

describe('ungrantable addresses (11c)', () => {
  const cases = ['255.255.255.255', '127.0.0.1', '224.0.0.1', '::1', 'ff02::1', '0.0.0.0', '::', '192.0.2.255'];
  test(`--allow-ip ${cases.join(', ')} → address; nothing granted`, async () => {
    const { daemon, backend, clock } = setup({ broadcasts: new Set(['192.0.2.255']) });
    await daemon.start();
    for (const a of cases) await send(daemon, knock(ALICE, clock.now(), { allowAddress: a }), ALICE_IP);
    assert.equal(backend.held.length, 0);
    assert.deepEqual(daemon.rejects.totals(), { address: cases.length });
    await daemon.stop();
  });

  test("the packet's own source is checked too (a subnet broadcast source, a loopback source)", async () => {
    const { daemon, backend, clock } = setup({ broadcasts: new Set(['10.9.255.255']) });
    await daemon.start();
    await send(daemon, knock(ALICE, clock.now()), '10.9.255.255');
    await send(daemon, knock(ALICE, clock.now()), '::ffff:127.0.0.1');
    assert.equal(backend.held.length, 0);
    assert.deepEqual(daemon.rejects.totals(), { address: 2 });
    await daemon.stop();
  });

  test('a loopback source may name another address to open; a multicast or broadcast source never may', async () => {
    const { daemon, backend, clock } = setup({ broadcasts: new Set(['10.9.255.255']) });
    await daemon.start();
    await send(daemon, knock(ALICE, clock.now(), { allowAddress: ALICE_IP }), '127.0.0.1');
    assert.deepEqual(
      backend.held.map((g) => g.address),
      [ALICE_IP],
    );
    for (const src of ['224.0.0.9', '10.9.255.255', '255.255.255.255', 'ff02::1']) {
      await send(daemon, knock(ALICE, clock.now(), { allowAddress: BOB_IP }), src);
    }
    assert.equal(backend.held.length, 1);
    assert.deepEqual(daemon.rejects.totals(), { address: 4 });
    await daemon.stop();
  });

  test("by default the broadcasts come from this host's interfaces", () => {
    // no `broadcasts` given: constructing computes them from os.networkInterfaces() without error
    const d = new Daemon({ config: config(), backend: new FakeBackend(), log: logSink().log, warmUp: false });
    assert.ok(d);
  });
});

describe('sender binding: require_source_address (11d)', () => {
  test('a knock without an address is refused; with one, only that address is opened, never the sender', async () => {
    const { daemon, backend, clock } = setup({ extra: 'require_source_address = true\n' });
    await daemon.start();
    const original = knock(CAROL, clock.now());
    await send(daemon, original, BOB_IP);
    assert.deepEqual(daemon.rejects.totals(), { 'source-required': 1 });
    // carol's knock names her address; an on-path copier races it from elsewhere
    const named = knock(CAROL, clock.now(), { allowAddress: ALICE_IP });
    await send(daemon, named, '192.0.2.200');
    assert.deepEqual(
      backend.held.map((g) => g.address),
      [ALICE_IP],
      'the copier got nothing',
    );
    await send(daemon, named, ALICE_IP); // the original, arriving second: a replay, harmless
    assert.deepEqual(daemon.rejects.totals(), { 'source-required': 1, replay: 1 });
    await daemon.stop();
  });
});

describe('replay records that cannot be written (issue 5)', () => {
  class FlakyReplayFile extends ReplayFile {
    failing = false;
    override append(r: Parameters<ReplayFile['append']>[0]): void {
      if (this.failing)
        throw new SpaError('ERR_SPA_STATE_DIR', `cannot write ${this.path}: no space left on the device`);
      super.append(r);
    }
  }

  test('refused and counted (fail closed), logged once, the daemon keeps serving and recovers', async () => {
    const rf = new FlakyReplayFile(join(stateRoot, 'flaky'));
    const { daemon, backend, clock, sink } = setup({ replayFile: rf });
    await daemon.start();
    rf.failing = true;
    for (let i = 0; i < 3; i++) await send(daemon, knock(ALICE, clock.now()), ALICE_IP);
    assert.equal(backend.held.length, 0, 'no grant without a durable record');
    assert.deepEqual(daemon.rejects.totals(), { 'state-write': 3 });
    const errs = sink.events('state-write-error');
    assert.equal(errs.length, 1, 'one line, not one per knock');
    assert.match(String((errs[0]?.err as { message?: string } | undefined)?.message), /no space left/);
    rf.failing = false;
    await send(daemon, knock(ALICE, clock.now()), ALICE_IP);
    assert.equal(backend.held.length, 1);
    assert.equal(sink.events('state-write-recovered').length, 1);
    await daemon.stop();
  });
});

describe('kernel drops in the reject summary (11h)', () => {
  test('"drops" since the last summary, from the injected /proc reader, even when nothing was rejected', async () => {
    let total = 100; // drops before the daemon started are not counted
    const { daemon, clock, sink } = setup({ port: 62201, readDrops: (port) => (port === 62201 ? total : undefined) });
    await daemon.start();
    total = 130;
    daemon.handle(new Uint8Array(3), '192.0.2.1');
    await clock.advance(10_000);
    total = 135;
    await clock.advance(10_000);
    await clock.advance(10_000);
    const s = sink.events('rejects');
    assert.deepEqual(
      s.map((l) => [l.total, l.drops]),
      [
        [1, 30],
        [0, 5],
      ],
    );
    await daemon.stop();
  });
});

describe('receive buffer (11h)', () => {
  test('the size the kernel gave is in the start line; less than asked is a warning that names the sysctl', async () => {
    const a = setup({ receiveBuffer: 425_984 });
    await a.daemon.start();
    assert.equal(a.sink.events('start')[0]?.receive_buffer, 425_984);
    const w = a.sink.events('receive-buffer')[0];
    assert.deepEqual([w?.asked, w?.got], [4 * 1024 * 1024, 425_984]);
    assert.match(String(w?.msg), /net\.core\.rmem_max/);
    await a.daemon.stop();
    const b = setup({ receiveBuffer: 8 * 1024 * 1024 });
    await b.daemon.start();
    assert.equal(b.sink.events('receive-buffer').length, 0);
    await b.daemon.stop();
  });
});

describe('silence_port_unreachable (11i)', () => {
  test('planOf carries firewall.silence_port_unreachable to the backend', async () => {
    assert.equal(planOf(config()).silencePortUnreachable, false);
    const c = parseConfig(
      configText({ extra: '' }).replace('[firewall]', '[firewall]\nsilence_port_unreachable = true'),
      'x',
    );
    assert.equal(planOf(c).silencePortUnreachable, true);
    const { daemon, backend } = setup();
    await daemon.start();
    const install = backend.calls.find((x) => x.op === 'install');
    assert.ok(install && install.op === 'install' && install.plan.silencePortUnreachable === false);
    await daemon.stop();
  });
});
