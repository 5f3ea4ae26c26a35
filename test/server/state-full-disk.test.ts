/**
 * A state directory on a full file system (issue 5): a tiny tmpfs, filled up. The daemon runs in-process with the
 * real ReplayFile and the fake firewall: valid knocks are refused (`state-write`, no grant), the daemon does not
 * crash, and once there is room again knocks are accepted and their records are on disk. Needs root (mount).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { ReplayFile } from '../../server/replay-file.js';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const isRoot = process.getuid?.() === 0;
const ALICE = keyOf(1);
const TCP22 = { proto: 'tcp', port: 22 } as const;

// Never a silent skip: without root this file fails with the reason (the other tests of the file cannot run).
const skip = isRoot ? false : 'needs root to mount a tmpfs';
if (skip) test('prerequisite: root, to mount a tmpfs', () => assert.fail(`${skip}: run npm test as root`));

describe('replay records on a full file system', { skip }, () => {
  let mnt = '';
  let mounted = false;

  before(() => {
    mnt = mkdtempSync(join(tmpdir(), 'spak-fulldisk-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
    mounted = true;
  });

  after(() => {
    // lazy unmount as a fallback: a failed assertion may leave the replay log open
    if (mounted) {
      try {
        execFileSync('umount', [mnt]);
      } catch {
        execFileSync('umount', ['-l', mnt]);
      }
    }
    if (mnt) rmSync(mnt, { recursive: true, force: true });
  });

  test('knocks are refused while the disk is full, the daemon keeps serving, and recovers', async () => {
    const stateDir = join(mnt, 'state');
    const clock = new FakeClock();
    const backend = new FakeBackend();
    const sink = logSink();
    const config = parseConfig(
      configText({
        stateDir,
        // one client knocks hundreds of times at once here: no per-client or per-source limit in the way
        extra: '[limit]\nclient_rate = 100000\nclient_burst = 100000\nsource_burst = 100000',
        clients: [{ name: 'alice', key: ALICE, open: ['tcp/22'] }],
      }),
      'test.toml',
    );
    const listen: typeof openUdpListener = async (o) => ({
      bound: `[${o.address}]:${o.port}`,
      close: async () => undefined,
    });
    const replayFile = new ReplayFile(stateDir, { timers: clock });
    const daemon = new Daemon({
      config,
      backend,
      log: sink.log,
      now: clock.now,
      timers: clock,
      listen,
      warmUp: false,
      replayFile,
    });
    await daemon.start();
    const knock = (i: number) =>
      buildPacket(ALICE, { type: 'open', accesses: [TCP22], duration: 0 }, clock.now() + (i % 1000)).bytes;

    // fill the file system: a filler file up to ENOSPC
    const filler = join(mnt, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(128 * 1024, 0x78));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    // the replay log's last page may still have room for a few lines: knock until the first refusal
    let i = 0;
    while (!daemon.rejects.totals()['state-write'] && i < 500) {
      daemon.handle(knock(i), '192.0.2.1');
      i++;
    }
    await daemon.settled();
    assert.equal(daemon.rejects.totals()['state-write'], 1, `refused after ${i} knocks`);
    // accepted knocks, by their log lines (repeated knocks for one address coalesce into one firewall change)
    const granted = sink.events('grant').length;
    assert.equal(granted, i - 1);
    for (let j = 0; j < 20; j++) daemon.handle(knock(500 + j), '192.0.2.1');
    await daemon.settled();
    assert.equal(sink.events('grant').length, granted, 'no grant without a durable replay record');
    assert.equal(daemon.rejects.totals()['state-write'], 21);
    const errs = sink.events('state-write-error');
    assert.equal(errs.length, 1);
    assert.match(
      String((errs[0]?.err as { message?: string } | undefined)?.message),
      /^cannot write .*replay\.log: no space left on the device$/,
    );

    // room again
    unlinkSync(filler);
    const good = knock(100);
    daemon.handle(good, '192.0.2.100');
    await daemon.settled();
    assert.equal(sink.events('grant').length, granted + 1);
    assert.ok(backend.isOpen(4, '192.0.2.100', TCP22, clock.now()));
    assert.equal(sink.events('state-write-recovered').length, 1);
    // the record is in the file, on a line of its own (a torn line before it does not swallow it)
    const lines = readFileSync(join(stateDir, 'replay.log'), 'utf8').split('\n');
    assert.ok(
      lines.some((l) => /^\d+ spak1:[0-9a-f]{48}$/.test(l)),
      lines.join('|'),
    );
    daemon.handle(good, '192.0.2.100');
    assert.equal(daemon.rejects.totals().replay, 1);
    // and after a restart it is still refused
    await daemon.stop();
    const again = new Daemon({
      config,
      backend,
      log: logSink().log,
      now: clock.now,
      timers: clock,
      listen,
      warmUp: false,
      replayFile: new ReplayFile(stateDir, { timers: clock }),
    });
    await again.start();
    again.handle(good, '192.0.2.100');
    assert.deepEqual(again.rejects.totals(), { replay: 1 });
    await again.stop();
  });
});
