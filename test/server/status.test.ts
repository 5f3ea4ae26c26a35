/**
 * `spa-knockd status` in-process: the control socket (server/control.ts) in a temporary directory, answered by a
 * daemon object with a fake clock and firewall; the status text and JSON (server/status.ts).
 * (A real daemon: test/e2e/operations.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { isSpaError } from '../../shared/errors.js';
import { parseConfig } from '../../server/config.js';
import { controlPath, controlRequest, openControl } from '../../server/control.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { type Status, buildStatus, daemonStatus, formatStatus } from '../../server/status.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const root = mkdtempSync(join(tmpdir(), 'spak-status-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => mkdtempSync(join(root, `${++n}-`));

const ALICE = keyOf(1);
const BOB = keyOf(2);
const TCP22 = { proto: 'tcp', port: 22 } as const;
const listen: typeof openUdpListener = async (o) => ({
  bound: `[${o.address}]:${o.port}`,
  close: async () => undefined,
});

async function daemonWithGrants() {
  const config = parseConfig(
    configText({
      protect: ['tcp/22', 'tcp/443'],
      duration: 30,
      clients: [
        { name: 'alice', key: ALICE, open: ['tcp/22', 'tcp/443'] },
        { name: 'bob', key: BOB, open: ['tcp/22'] },
      ],
    }),
    't.toml',
  );
  const clock = new FakeClock(Date.now());
  const daemon = new Daemon({
    config,
    backend: new FakeBackend(),
    log: logSink().log,
    now: clock.now,
    timers: clock,
    listen,
    warmUp: false,
  });
  await daemon.start();
  const open = (key: Uint8Array, src: string, accesses: { proto: 'tcp'; port: number }[] = [TCP22], duration = 0) =>
    daemon.handle(buildPacket(key, { type: 'open', accesses, duration }, clock.now()).bytes, src);
  open(ALICE, '203.0.113.9', [TCP22, { proto: 'tcp', port: 443 }]);
  open(BOB, '2001:db8::7', [TCP22], 60);
  daemon.handle(new Uint8Array(10), '198.51.100.1'); // size
  daemon.handle(new Uint8Array(10), '198.51.100.1');
  await daemon.settled();
  return { daemon, clock };
}

describe('control socket and status (in-process)', () => {
  test('status over the socket: grants with client, address, accesses, seconds left; rejects since start', async () => {
    const { daemon, clock } = await daemonWithGrants();
    const dir = freshDir();
    const path = controlPath(dir);
    const started = clock.now() - 5000;
    const ctl = await openControl(path, (cmd) =>
      cmd === 'status' ? daemonStatus(daemon, started, clock.now()) : undefined,
    );
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600, 'socket mode 0600');
      assert.equal(statSync(path).uid, process.getuid?.());
      await clock.advance(10_000);
      const s = (await controlRequest(path, 'status')) as Status;
      assert.equal(s.pid, process.pid);
      assert.equal(s.backend, 'fake');
      assert.equal(s.listen, '[::]:62201');
      assert.equal(s.uptime_s, 15);
      assert.deepEqual(
        s.grants.map((g) => [g.client, g.address, g.family, g.accesses, g.seconds_left]),
        [
          ['alice', '203.0.113.9', 4, ['tcp/22', 'tcp/443'], 20],
          ['bob', '2001:db8::7', 6, ['tcp/22'], 50],
        ],
      );
      assert.deepEqual(s.rejects, { total: 2, by: { size: 2 } });
      assert.deepEqual(await controlRequest(path, 'nonsense'), { error: 'unknown command' });
      await clock.advance(21_000);
      const later = (await controlRequest(path, 'status')) as Status;
      assert.deepEqual(
        later.grants.map((g) => g.client),
        ['bob'],
        'an expired grant is no longer listed',
      );
    } finally {
      await ctl.close();
      await daemon.stop();
    }
  });

  test('the text output: one row per grant, reject counts by reason', () => {
    const now = Date.UTC(2026, 10, 29, 5, 0, 0);
    const s = buildStatus(
      {
        pid: 42,
        startedAt: now - 61_000,
        backend: 'nftables',
        listen: '[::]:62201',
        grants: [
          { family: 4, address: '192.0.2.1', access: TCP22, expiresAt: now + 1500, owner: 'alice' },
          { family: 4, address: '192.0.2.2', access: TCP22, expiresAt: Infinity },
          { family: 4, address: '192.0.2.3', access: TCP22, expiresAt: now - 1, owner: 'old' },
        ],
        rejects: { replay: 1, mac: 3 },
      },
      now,
    );
    assert.deepEqual(s.rejects, { total: 4, by: { mac: 3, replay: 1 } }, 'reasons in verification order');
    assert.equal(
      formatStatus(s),
      [
        'spa-knockd pid 42, up 61 s (since 2026-11-29T04:58:59.000Z), backend nftables, listening [::]:62201',
        'active grants: 2',
        '  CLIENT     ADDRESS    ACCESSES  SECONDS LEFT',
        '  alice      192.0.2.1  tcp/22    2',
        '  (unknown)  192.0.2.2  tcp/22    -',
        'rejected since start: 4 (mac 3, replay 1)',
        '',
      ].join('\n'),
    );
    const empty = formatStatus({ ...s, grants: [], rejects: { total: 0, by: {} } });
    assert.match(empty, /active grants: none\nrejected since start: 0\n$/);
    assert.equal(s.fast_path, null, 'no fast path in the plan: null, and no line');
    assert.match(formatStatus({ ...s, fast_path: { on: true } }), /\nkernel fast path: on\n$/);
    assert.match(
      formatStatus({ ...s, fast_path: { on: false, reason: 'firewall.fast_path_port 62300: cannot bind' } }),
      /\nkernel fast path: off \(firewall\.fast_path_port 62300: cannot bind\)\n$/,
    );
  });

  test('a stale socket is replaced; a live one, or any other file, is refused', async () => {
    const dir = freshDir();
    const path = controlPath(dir);
    const first = await openControl(path, () => 'one');
    await assert.rejects(
      openControl(path, () => 'two'),
      (e) => isSpaError(e) && /another spa-knockd answers/.test(e.message),
    );
    assert.equal(await controlRequest(path, 'status'), 'one');
    await first.close();
    const dir2 = freshDir();
    writeFileSync(join(dir2, 'control.sock'), 'not a socket');
    await assert.rejects(
      openControl(controlPath(dir2), () => 1),
      /exists and is not a socket/,
    );
    // a daemon killed with SIGKILL leaves its socket file behind, with nobody answering on it
    const leftover = controlPath(freshDir());
    const killed = spawnSync(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(leftover)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    assert.equal(killed.signal, 'SIGKILL');
    assert.ok(statSync(leftover).isSocket(), 'socket file left behind');
    const again = await openControl(leftover, () => 'fresh');
    assert.equal(await controlRequest(leftover, 'status'), 'fresh');
    await again.close();
  });

  test('hostile or slow clients: oversized line dropped, no daemon → ERR_SPA_CONTROL, long path refused', async () => {
    const dir = freshDir();
    const path = controlPath(dir);
    const ctl = await openControl(path, () => 'ok');
    try {
      const closed = await new Promise<string>((resolve) => {
        const s = createConnection(path);
        let got = '';
        s.on('data', (d) => (got += d.toString()));
        s.on('close', () => resolve(got));
        s.on('error', () => undefined);
        s.write('x'.repeat(1000));
      });
      assert.equal(closed, '', 'no answer to a line over the limit');
      assert.equal(await controlRequest(path, 'status'), 'ok', 'still serving');
    } finally {
      await ctl.close();
    }
    await assert.rejects(
      controlRequest(path, 'status'),
      (e) => isSpaError(e) && e.code === 'ERR_SPA_CONTROL' && /no spa-knockd is running/.test(e.message),
    );
    await assert.rejects(
      openControl(join(dir, 'd'.repeat(120), 'control.sock'), () => 1),
      /longer than 107 bytes/,
    );
  });
});
