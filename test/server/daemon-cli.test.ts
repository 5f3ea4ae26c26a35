/**
 * spa-knockd's command line: every operator mistake is one line and a non-zero exit. These run in the root
 * namespace, so PATH holds no firewall tool: nothing here can touch the host's firewall (the real backends are
 * exercised inside namespaces by test/e2e/*).
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { configText, keyOf } from '../../harness/config.js';
import { DAEMON, runTs } from '../../harness/run.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-daemon-cli-'));
const emptyBin = join(dir, 'bin');
mkdirSync(emptyBin);
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { ...process.env, PATH: emptyBin };

function oneLine(r: { code: number | null; stderr: string }, code: number, re: RegExp): void {
  assert.equal(r.code, code, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', re);
}

function cfg(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('spa-knockd command line', () => {
  test('usage errors exit 2', async () => {
    oneLine(await runTs(DAEMON, [], { env }), 2, /^spa-knockd: Missing required argument: config/);
    oneLine(await runTs(DAEMON, ['--config', 'x', '--bogus'], { env }), 2, /^spa-knockd: Unknown argument: bogus/);
  });

  test('config errors name file, line and key', async () => {
    oneLine(await runTs(DAEMON, ['--config', join(dir, 'none.toml')], { env }), 1, /^spa-knockd: cannot read config .*none\.toml: no such file$/);
    const bad = cfg('bad.toml', configText().replace('port = 62201', 'port = "62201"'));
    oneLine(await runTs(DAEMON, ['check', '--config', bad], { env }), 1, /^spa-knockd: config .*bad\.toml line 3: listen\.port: /);
  });

  test('an unusable state_dir is one line', async () => {
    const file = join(dir, 'afile');
    writeFileSync(file, '');
    const p = cfg('state.toml', configText({ stateDir: join(file, 'sub') }));
    oneLine(await runTs(DAEMON, ['--config', p], { env }), 1, /^spa-knockd: state_dir .*afile\/sub is not usable: ENOTDIR$/);
  });

  test('a UDP port in use fails before the firewall is touched', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    try {
      const port = sock.address().port;
      const p = cfg('busy.toml', configText({ stateDir: join(dir, 'state-busy'), address: '127.0.0.1', port }));
      // nft is not on PATH: had the daemon tried the firewall first, the error would be about nft
      oneLine(await runTs(DAEMON, ['--config', p], { env }), 1, new RegExp(`^spa-knockd: cannot listen on udp 127\\.0\\.0\\.1:${port}: EADDRINUSE$`));
    } finally {
      sock.close();
    }
  });

  test('a missing firewall tool is one line, for run and for check', async () => {
    const p = cfg('nonft.toml', configText({ stateDir: join(dir, 'state-nonft'), address: '127.0.0.1', port: 39871 }));
    oneLine(await runTs(DAEMON, ['--config', p], { env }), 1, /^spa-knockd: .*nft.*(not found|ENOENT)/i);
    oneLine(await runTs(DAEMON, ['check', '--config', p], { env }), 1, /^spa-knockd: .*nft.*(not found|ENOENT)/i);
    const ipt = cfg('noipt.toml', configText({ stateDir: join(dir, 'state-noipt'), backend: 'iptables', address: '127.0.0.1', port: 39871 }));
    oneLine(await runTs(DAEMON, ['uninstall', '--config', ipt], { env }), 1, /^spa-knockd: .*iptables.*(not found|ENOENT)/i);
  });
});
