/**
 * spa-knockd's command line: every operator mistake is one line carrying its code and the exit status the code
 * gives. These run in the root namespace, so PATH holds no firewall tool: nothing here can touch the host's
 * firewall (the real backends are exercised inside namespaces by test/e2e/*).
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { configText } from '../../harness/config.js';
import { DAEMON, ROOT, type RunResult, runTs } from '../../harness/run.js';
import { logInternalError } from '../../shared/cli.js';
import { errorLine } from '../../shared/errors.js';
import { logSink } from '../helpers/logsink.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-daemon-cli-'));
const emptyBin = join(dir, 'bin');
mkdirSync(emptyBin);
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, PATH: emptyBin };
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function oneLine(r: RunResult, code: number, re: RegExp): void {
  assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', re);
  assert.doesNotMatch(r.stderr, /internal error/);
}

function cfg(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

const usage: [string, string[], RegExp][] = [
  ['--config without a value', ['--config'], /--config needs a value/],
  ['check --config without a value', ['check', '--config'], /--config needs a value/],
  ['uninstall --config without a value', ['uninstall', '--config'], /--config needs a value/],
  ['--config twice', ['--config', 'a', '--config', 'b'], /--config may be given only once/],
  ['check --config twice', ['check', '--config', 'a', '--config', 'b'], /--config may be given only once/],
  ['--log-level not a level', ['--log-level', 'loud'], /--log-level must be one of fatal, error/],
  ['--log-level twice', ['--log-level', 'info', '--log-level', 'debug'], /--log-level may be given only once/],
  ['--log-format not a format', ['--log-format', 'xml'], /--log-format must be one of json, pretty/],
  ['install-systemd --unit-dir without a value', ['install-systemd', '--unit-dir'], /--unit-dir needs a value/],
  ['an unknown option', ['--config', 'x', '--bogus'], /Unknown argument: bogus/],
  ['an unknown command', ['frobnicate', '--config', 'x'], /Unknown argument: frobnicate/],
];

describe('spa-knockd usage errors', { concurrency: 4 }, () => {
  for (const [name, args, re] of usage) {
    test(`exit 2, one line with ERR_SPA_USAGE: ${name}`, async () => {
      const r = await runTs(DAEMON, args, { env });
      oneLine(r, 2, /^spa-knockd: \[ERR_SPA_USAGE\] /);
      assert.match(r.stderr, re);
    });
  }

  test('--version, -V, -h, --help and completion work', async () => {
    for (const v of ['--version', '-V']) {
      const r = await runTs(DAEMON, [v], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${VERSION}\n`);
    }
    for (const h of ['-h', '--help']) {
      const r = await runTs(DAEMON, [h], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /spa-knockd --config FILE/);
      assert.match(r.stdout, /check/);
    }
    const c = await runTs(DAEMON, ['completion'], { env });
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /###-begin-spa-knockd-completions-###/);
  });
});

describe('spa-knockd default config path', () => {
  test('no --config: SPA_KNOCKD_CONFIG, else /etc/spa-knock/spa-knockd.toml', async () => {
    const noEnv: NodeJS.ProcessEnv = { ...env };
    delete noEnv.SPA_KNOCKD_CONFIG;
    for (const args of [[], ['check'], ['status']]) {
      const r = await runTs(DAEMON, args, { env: noEnv });
      oneLine(r, 1, /^spa-knockd: \[ERR_SPA_CONFIG\] .*\/etc\/spa-knock\/spa-knockd\.toml/);
    }
    const p = join(dir, 'from-env.toml');
    const r = await runTs(DAEMON, ['check'], { env: { ...env, SPA_KNOCKD_CONFIG: p } });
    oneLine(r, 1, new RegExp(`^spa-knockd: \\[ERR_SPA_CONFIG\\] .*${p.replaceAll('.', '\\.')}`));
    const given = join(dir, 'given.toml');
    const g = await runTs(DAEMON, ['check', '--config', given], { env: { ...env, SPA_KNOCKD_CONFIG: p } });
    oneLine(g, 1, /given\.toml/);
  });
});

// These rely on config, replay-file, listener and the backends throwing SpaError (ERR_SPA_CONFIG, …).
describe('spa-knockd operator errors', () => {
  test('config errors carry ERR_SPA_CONFIG and name file, line and key', async () => {
    oneLine(
      await runTs(DAEMON, ['--config', join(dir, 'none.toml')], { env }),
      1,
      /^spa-knockd: \[ERR_SPA_CONFIG\] .*none\.toml: no such file/,
    );
    const bad = cfg('bad.toml', configText().replace('port = 62201', 'port = "62201"'));
    oneLine(
      await runTs(DAEMON, ['check', '--config', bad], { env }),
      1,
      /^spa-knockd: \[ERR_SPA_CONFIG\] config .*bad\.toml line 3: listen\.port: /,
    );
  });

  test('an unusable state_dir is one line with ERR_SPA_STATE_DIR, in words', async () => {
    const file = join(dir, 'afile');
    writeFileSync(file, '');
    const p = cfg('state.toml', configText({ stateDir: join(file, 'sub') }));
    const r = await runTs(DAEMON, ['--config', p], { env });
    oneLine(r, 1, /^spa-knockd: \[ERR_SPA_STATE_DIR\] .*afile\/sub.*not a directory/);
    assert.doesNotMatch(r.stderr, /\bENOTDIR\b/);
  });

  test('a UDP port in use fails with ERR_SPA_LISTEN before the firewall is touched', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    try {
      const port = sock.address().port;
      const p = cfg('busy.toml', configText({ stateDir: join(dir, 'state-busy'), address: '127.0.0.1', port }));
      // nft is not on PATH: had the daemon tried the firewall first, the error would be about nft
      const re = new RegExp(
        `^spa-knockd: \\[ERR_SPA_LISTEN\\] cannot listen on udp 127\\.0\\.0\\.1:${port}: (EADDRINUSE|address already in use)$`,
      );
      oneLine(await runTs(DAEMON, ['--config', p], { env }), 1, re);
    } finally {
      sock.close();
    }
  });

  test('a missing firewall tool is one line with ERR_SPA_FIREWALL, for run, check and uninstall', async () => {
    const p = cfg('nonft.toml', configText({ stateDir: join(dir, 'state-nonft'), address: '127.0.0.1', port: 39871 }));
    oneLine(
      await runTs(DAEMON, ['--config', p], { env }),
      1,
      /^spa-knockd: \[ERR_SPA_FIREWALL\] .*nft.*(not found|ENOENT)/i,
    );
    oneLine(
      await runTs(DAEMON, ['check', '--config', p], { env }),
      1,
      /^spa-knockd: \[ERR_SPA_FIREWALL\] .*nft.*(not found|ENOENT)/i,
    );
    const ipt = cfg(
      'noipt.toml',
      configText({ stateDir: join(dir, 'state-noipt'), backend: 'iptables', address: '127.0.0.1', port: 39871 }),
    );
    oneLine(
      await runTs(DAEMON, ['uninstall', '--config', ipt], { env }),
      1,
      /^spa-knockd: \[ERR_SPA_FIREWALL\] .*iptables.*(not found|ENOENT)/i,
    );
  });
});

describe('spa-knockd internal errors', () => {
  test('are logged with their stack (pino err) and printed as one line with ERR_SPA_INTERNAL', () => {
    const sink = logSink();
    const bug = new TypeError('cannot read properties of undefined');
    logInternalError(sink.log, 'crash', bug);
    assert.equal(sink.raw.length, 1);
    const [line] = sink.events('crash');
    assert.equal(line?.level, 'fatal');
    const err = line?.err as { type: string; message: string; stack: string };
    assert.equal(err.type, 'TypeError');
    assert.equal(err.message, 'cannot read properties of undefined');
    assert.match(err.stack, /\n\s+at .*daemon-cli\.test\.ts/);
    assert.equal(
      errorLine('spa-knockd', bug),
      'spa-knockd: [ERR_SPA_INTERNAL] internal error: cannot read properties of undefined',
    );
  });
});
