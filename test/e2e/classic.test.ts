/**
 * Classic knock sequences end to end, with real peers from Debian's knockd package, in namespaces this file creates:
 * - the real `knock` client opens a real spa-knockd's `[[sequence]]` (IPv4, IPv6, UDP), for both backends, and wrong
 *   ones do not;
 *   the knock-to-open time is measured (client side) and printed as a diagnostic;
 * - `spa-knock --sequence` opens a real `knockd` (its own config in a temporary directory, in the server namespace,
 *   killed by PID). knockd takes a duplicate knock as a wrong one, so its opening also shows one SYN per step.
 * Run: node --import tsx --test test/e2e/classic.test.ts (as root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configText, keyOf } from '../../harness/config.js';
import { DaemonProcess } from '../../harness/daemon-process.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { type Agent, type NetnsPair, createPair, netnsSkip } from '../../harness/netns.js';
import { CLIENT, ROOT, runTs } from '../../harness/run.js';
import { startRpcChild } from '../../harness/stdio-rpc.js';
import type { KnockTimerOps } from './fixtures/knock-timer.js';

const SSH = 2222;
const CONNECT_MS = 300;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1
    ? (s[(s.length - 1) / 2] as number)
    : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
};

const SEQUENCES = `
[[sequence]]
name = "seed"
steps = ["8881", "7777", "9991"]
gap = 5
open = ["tcp/${SSH}"]
duration = 30
ignore = ["tcp/80", "tcp/443"]

[[sequence]]
name = "dgram"
steps = ["8882:udp", "7778:udp", "9992:udp"]
open = ["tcp/${SSH}"]
`;

function daemonSuite(backend: 'nftables' | 'iptables', tag: string, subnet: number): void {
  const skip = netnsSkip([...BACKEND_TOOLS[backend], 'knock']);
  describe(`the real knock client opens spa-knockd classic mode (${backend})`, { skip }, () => {
    let pair: NetnsPair;
    let cli: Agent;
    let dir: string;
    let daemon: DaemonProcess | undefined;

    const knock = async (host: string, ports: readonly string[], opts: string[] = []): Promise<void> => {
      const r = await pair.exec(pair.cli, ['knock', ...opts, host, ...ports]);
      assert.equal(r.code, 0, r.stderr);
    };
    const open = async (host: string): Promise<boolean> => (await cli.tcpConnect(host, SSH, CONNECT_MS)).ok;
    /** Forget every grant a sequence made (SPA grants are not used here). */
    const flush = async (): Promise<void> => {
      const cmds =
        backend === 'nftables'
          ? ['allow4', 'allow6'].map((s) => ({ argv: ['nft', 'flush', 'set', 'inet', 'spa_knock', s], input: '' }))
          : ['seed', 'dgram'].map((n) => ({ argv: ['tee', `/proc/net/xt_recent/SPA_KNOCK_${n}_open`], input: '/\n' }));
      for (const c of cmds) {
        const r = await pair.exec(pair.srv, c.argv, { input: c.input });
        assert.equal(r.code, 0, r.stderr);
      }
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'spak-classic-'));
      pair = await createPair(tag, { subnet });
      const srv = await pair.agent(pair.srv);
      await srv.listenTcp(SSH);
      cli = await pair.agent(pair.cli);
      const path = join(dir, 'spa-knockd.toml');
      writeFileSync(
        path,
        configText({
          backend,
          stateDir: join(dir, 'state'),
          protect: [`tcp/${SSH}`],
          clients: [{ name: 'alice', key: keyOf(3), open: [`tcp/${SSH}`] }],
          extra: SEQUENCES,
        }),
        { mode: 0o600 },
      );
      daemon = new DaemonProcess(pair.srv, path);
      await daemon.start();
    });
    after(async () => {
      await daemon?.stop('SIGKILL');
      await pair?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('closed before, open after the right sequence: IPv4, IPv6, UDP steps', async () => {
      assert.equal(await open(pair.srv4), false);
      await knock(pair.srv4, ['8881', '7777', '9991']);
      assert.equal(await open(pair.srv4), true);
      assert.equal(await open(pair.srv6), false);
      await knock(pair.srv6, ['8881', '7777', '9991'], ['-6']);
      assert.equal(await open(pair.srv6), true);
      await flush();
      await knock(pair.srv6, ['8882', '7778', '9992'], ['-6', '-u']);
      assert.equal(await open(pair.srv6), true);
    });

    test('a wrong order, an interleaved foreign port and a sweep do not open; a repeated step does', async () => {
      await flush();
      await knock(pair.srv4, ['7777', '8881', '9991']);
      await knock(pair.srv4, ['8881', '1234', '7777', '9991']);
      await knock(
        pair.srv4,
        Array.from({ length: 10000 }, (_, i) => String(i + 1)),
      );
      assert.equal(await open(pair.srv4), false);
      await knock(pair.srv4, ['8881', '8881', '7777', '9991']);
      assert.equal(await open(pair.srv4), true);
    });

    test('spa-knock --sequence opens it too (IPv4 and IPv6)', async () => {
      await flush();
      for (const host of [pair.srv4, pair.srv6]) {
        const r = await runTs(CLIENT, [host, '--sequence', '8881,7777,9991'], { prefix: pair.wrap(pair.cli) });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^sent sequence 8881,7777,9991 to /);
        assert.equal(await open(host), true, host);
      }
    });

    test('knock-to-open time, measured in the client namespace, 20 runs per family', async (t) => {
      const timer = await startRpcChild<KnockTimerOps>(
        [...pair.wrap(pair.cli), process.execPath, '--import', 'tsx', join(ROOT, 'test/e2e/fixtures/knock-timer.ts')],
        { name: 'knock-timer', cwd: ROOT },
      );
      try {
        for (const [fam, host, opts] of [
          [4, pair.srv4, []],
          [6, pair.srv6, ['-6']],
        ] as const) {
          const ms: number[] = [];
          const knockMs: number[] = [];
          for (let i = 0; i < 20; i++) {
            await flush();
            const r = await timer.call('time', { args: [...opts, host, '8881', '7777', '9991'], host, port: SSH });
            assert.equal(r.ok, true, r.error);
            assert.equal(r.open, true, 'open at the first connect after the knock');
            ms.push(r.ms as number);
            knockMs.push(r.knockMs as number);
          }
          t.diagnostic(
            `${backend} IPv${fam}: knock started → connect accepted, median ${median(ms).toFixed(2)} ms ` +
              `(the knock process itself ${median(knockMs).toFixed(2)} ms; knock exited → connect accepted ` +
              `${median(ms.map((m, i) => m - (knockMs[i] as number))).toFixed(2)} ms)`,
          );
        }
      } finally {
        await timer.close();
      }
    });
  });
}

daemonSuite('nftables', 'classic-e2e', 63);
daemonSuite('iptables', 'classic-e2i', 66);

describe('spa-knock --sequence opens a real knockd', { skip: netnsSkip(['knock', 'knockd']) }, () => {
  let pair: NetnsPair;
  let dir: string;
  let knockd: ChildProcess | undefined;
  const opened = (): string => (existsSync(join(dir, 'opened')) ? readFileSync(join(dir, 'opened'), 'utf8') : '');
  const waitOpened = async (what: string): Promise<boolean> => {
    for (let i = 0; i < 40; i++) {
      if (opened().split('\n').includes(what)) return true;
      await sleep(50);
    }
    return false;
  };
  const spaKnock = async (args: string[]): Promise<void> => {
    const r = await runTs(CLIENT, args, { prefix: pair.wrap(pair.cli) });
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spak-knockd-'));
    pair = await createPair('classic-kd', { subnet: 64 });
    const conf = join(dir, 'knockd.conf');
    writeFileSync(
      conf,
      [
        '[options]',
        `  LogFile = ${join(dir, 'knockd.log')}`,
        '  Interface = vsrv',
        '[tcpdoor]',
        '  Sequence = 8881,7777,9991',
        '  Seq_Timeout = 5',
        '  TCPFlags = syn',
        `  Start_Command = echo tcp %IP% >> ${join(dir, 'opened')}`,
        '[udpdoor]',
        '  Sequence = 8882:udp,7778:udp,9992:udp',
        '  Seq_Timeout = 5',
        `  Start_Command = echo udp %IP% >> ${join(dir, 'opened')}`,
        '',
      ].join('\n'),
    );
    const child = spawn('ip', ['netns', 'exec', pair.srv, 'knockd', '-c', conf], { stdio: 'ignore' });
    knockd = child;
    // knockd is ready once it logs that it listens
    for (let i = 0; i < 100; i++) {
      const log = existsSync(join(dir, 'knockd.log')) ? readFileSync(join(dir, 'knockd.log'), 'utf8') : '';
      if (/listening on vsrv/.test(log)) break;
      if (child.exitCode !== null) assert.fail(`knockd exited: ${log}`);
      await sleep(50);
    }
  });
  after(async () => {
    const child = knockd;
    if (child?.pid !== undefined && child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL'); // by PID; knockd blocks in wait() on SIGTERM (reference: classic-knock.md)
      await gone;
    }
    await pair?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('TCP steps over IPv4 and IPv6', async () => {
    await spaKnock([pair.srv4, '--sequence', '8881,7777,9991']);
    assert.ok(await waitOpened(`tcp ${pair.cli4}`), `knockd log: ${readFileSync(join(dir, 'knockd.log'), 'utf8')}`);
    await spaKnock([pair.srv6, '-6', '--sequence', '8881,7777,9991', '--delay', '20']);
    assert.ok(await waitOpened(`tcp ${pair.cli6}`), `knockd log: ${readFileSync(join(dir, 'knockd.log'), 'utf8')}`);
  });

  test('UDP steps', async () => {
    await spaKnock([pair.srv4, '--sequence', '8882:udp,7778:udp,9992:udp']);
    assert.ok(await waitOpened(`udp ${pair.cli4}`), `knockd log: ${readFileSync(join(dir, 'knockd.log'), 'utf8')}`);
  });

  test('a wrong order sent by spa-knock does not open knockd (the control)', async () => {
    const before = opened();
    await spaKnock([pair.srv4, '--sequence', '7777,8881,9991']);
    await sleep(400);
    assert.equal(opened(), before);
  });
});
