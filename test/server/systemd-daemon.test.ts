/**
 * The daemon's side of systemd, without systemd: the LISTEN_* variables (server/listen-fds.ts, sd_listen_fds(3)),
 * readiness messages through an injected exec (server/notify.ts), the listener refusing a descriptor that is not a
 * UDP socket, the order of a socket-activated start (gate first, then the passed socket), and the log format by
 * terminal (server/log.ts). The real thing, with systemd's tools in a namespace pair: test/e2e/systemd.test.ts.
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { configText, keyOf } from '../../harness/config.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import { LISTEN_FDS_START, takeListenFd } from '../../server/listen-fds.js';
import { type openUdpListener, openUdpListener as realListen } from '../../server/listener.js';
import { createLogger, logDestination, logFormatFor } from '../../server/log.js';
import { type NotifyExec, createNotifier } from '../../server/notify.js';
import { SpaError } from '../../shared/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'spak-sysd-unit-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('takeListenFd (sd_listen_fds(3))', () => {
  test('LISTEN_PID is us and LISTEN_FDS=1: fd 3, and every LISTEN_* variable is removed', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '4242', LISTEN_FDS: '1', LISTEN_FDNAMES: 'spa-knockd.socket', X: 'y' };
    assert.equal(takeListenFd(env, 4242), LISTEN_FDS_START);
    assert.equal(LISTEN_FDS_START, 3);
    assert.deepEqual(env, { X: 'y' });
  });

  test("another process's variables (a parent's, inherited) are ignored, and removed", () => {
    const env: NodeJS.ProcessEnv = { LISTEN_PID: '17', LISTEN_FDS: '1' };
    assert.equal(takeListenFd(env, 4242), undefined);
    assert.deepEqual(env, {});
  });

  test('none, or LISTEN_FDS=0: nothing passed', () => {
    assert.equal(takeListenFd({}, 1), undefined);
    assert.equal(takeListenFd({ LISTEN_PID: '1', LISTEN_FDS: '0' }, 1), undefined);
    assert.equal(takeListenFd({ LISTEN_FDS: '1' }, 1), undefined, 'no LISTEN_PID: not for us');
    assert.equal(takeListenFd({ LISTEN_PID: '1x', LISTEN_FDS: '1' }, 1), undefined);
  });

  test('two sockets or a malformed count: ERR_SPA_LISTEN, one line naming the fix', () => {
    assert.throws(
      () => takeListenFd({ LISTEN_PID: '9', LISTEN_FDS: '2' }, 9),
      (e: unknown) =>
        e instanceof SpaError &&
        e.code === 'ERR_SPA_LISTEN' &&
        e.message ===
          'systemd passed 2 sockets (LISTEN_FDS=2); spa-knockd takes exactly one: one ListenDatagram= in spa-knockd.socket',
    );
    assert.throws(
      () => takeListenFd({ LISTEN_PID: '9', LISTEN_FDS: 'one' }, 9),
      (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_LISTEN' && /not a number/.test(e.message),
    );
  });
});

describe('createNotifier (sd_notify(3) through systemd-notify)', () => {
  const recorder = (code = 0) => {
    const calls: { argv: readonly string[]; env: NodeJS.ProcessEnv }[] = [];
    const exec: NotifyExec = async (argv, env) => {
      calls.push({ argv, env });
      return { code, stderr: code ? 'Failed to notify init system: No such file or directory\n' : '' };
    };
    return { calls, exec };
  };

  test('without NOTIFY_SOCKET it does nothing', async () => {
    const { calls, exec } = recorder();
    const n = createNotifier({ env: {}, exec });
    assert.equal(n.enabled, false);
    await n.ready('x');
    await n.reloading('x');
    await n.stopping('x');
    assert.deepEqual(calls, []);
  });

  test('READY=1, RELOADING=1, STOPPING=1 as argument arrays, in order, with --pid and a one-line status', async () => {
    const { calls, exec } = recorder();
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '/run/systemd/notify', PATH: '/usr/bin' };
    const n = createNotifier({ env, pid: 321, exec });
    assert.equal(n.enabled, true);
    assert.deepEqual(env, { PATH: '/usr/bin' }, 'NOTIFY_SOCKET is taken out of the environment children inherit');
    await Promise.all([n.reloading('reloading /etc/x'), n.ready('listening\non udp [::]:62201'), n.stopping('bye')]);
    assert.deepEqual(
      calls.map((c) => c.argv),
      [
        ['systemd-notify', '--pid=321', 'RELOADING=1', '--status=reloading /etc/x'],
        ['systemd-notify', '--pid=321', '--ready', '--status=listening on udp [::]:62201'],
        ['systemd-notify', '--pid=321', 'STOPPING=1', '--status=bye'],
      ],
    );
    for (const c of calls) assert.equal(c.env.NOTIFY_SOCKET, '/run/systemd/notify');
  });

  test('a failing systemd-notify is reported, not thrown', async () => {
    const { exec } = recorder(1);
    const errors: string[] = [];
    const n = createNotifier({ env: { NOTIFY_SOCKET: '/nope' }, exec, onError: (m) => errors.push(m) });
    await n.ready('x');
    assert.deepEqual(errors, [
      'systemd-notify READY=1 failed (exit 1): Failed to notify init system: No such file or directory',
    ]);
  });
});

describe('the listener refuses a passed descriptor that is not a UDP socket', () => {
  const refuse = async (fd: number, what: RegExp) => {
    await assert.rejects(
      realListen({ address: '::', port: 0, fd, onMessage: () => undefined, onError: () => undefined }),
      (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_LISTEN' && what.test(e.message),
    );
  };
  test('a regular file', async () => {
    const fd = openSync(join(tmp, 'f'), 'w');
    try {
      await refuse(fd, new RegExp(`^the socket systemd passed \\(fd ${fd}\\) is a FILE descriptor, not a UDP socket`));
    } finally {
      closeSync(fd);
    }
  });
  test('a descriptor that is not open', async () => {
    await refuse(1000, /^the socket systemd passed \(fd 1000\) is not an open socket, not a UDP socket/);
  });
});

describe('a socket-activated start', () => {
  const config = parseConfig(configText({ clients: [{ name: 'alice', key: keyOf(1), open: ['tcp/22'] }] }), 't.toml');
  const start = async (listenFd: number | undefined) => {
    const backend = new FakeBackend();
    const order: string[] = [];
    const listen: typeof openUdpListener = async (o) => {
      order.push(`listen fd=${o.fd} installed=${backend.installed !== undefined}`);
      return { bound: '10.0.0.1:62201', close: async () => undefined };
    };
    const log = createLogger('fatal');
    const daemon = new Daemon({
      config,
      backend,
      log,
      listen,
      warmUp: false,
      ...(listenFd !== undefined ? { listenFd } : {}),
    });
    await daemon.start();
    await daemon.stop();
    return order;
  };
  test('adopts the passed socket after the gate is installed (its queued knocks are then served)', async () => {
    assert.deepEqual(await start(3), ['listen fd=3 installed=true']);
  });
  test('binds its own socket before touching the firewall otherwise', async () => {
    assert.deepEqual(await start(undefined), ['listen fd=undefined installed=false']);
  });
});

describe('log format (server/log.ts)', () => {
  const capture = (format: 'json' | 'pretty') => {
    const out: string[] = [];
    const log = createLogger('info', logDestination(format, { out: { write: (s: string) => out.push(s) } }));
    log.info({ event: 'start', listen: '[::]:62201', key: 'spak1_secret' }, 'spa-knockd listening');
    return out;
  };
  test('a terminal gets pino-pretty lines, anything else NDJSON; --log-format overrides', () => {
    assert.equal(logFormatFor(undefined, true), 'pretty');
    assert.equal(logFormatFor(undefined, false), 'json');
    assert.equal(logFormatFor('json', true), 'json');
    assert.equal(logFormatFor('pretty', false), 'pretty');
  });
  test('pretty: one readable line per record, no JSON object line, key still redacted', () => {
    const [line, ...rest] = capture('pretty');
    assert.deepEqual(rest, []);
    assert.match(
      line ?? '',
      /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: start: spa-knockd listening \{"listen":"\[::\]:62201","key":"\[redacted\]"\}\n$/,
    );
    assert.doesNotMatch(line ?? '', /spak1_secret/);
  });
  test('json: NDJSON for journald', () => {
    const [line] = capture('json');
    const j = JSON.parse(line ?? '') as Record<string, unknown>;
    assert.equal(j.level, 'info');
    assert.equal(j.event, 'start');
    assert.equal(j.key, '[redacted]');
    assert.equal(j.msg, 'spa-knockd listening');
  });
});
