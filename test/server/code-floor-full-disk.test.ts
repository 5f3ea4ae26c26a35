/**
 * One-time codes on a full file system: the real CodeFloorFile on a tiny tmpfs, filled up, behind the daemon
 * in-process (fake clock and firewall). A code whose floor cannot be written is refused (`state-write`, no grant) and
 * not used up; the daemon keeps serving; once there is room the same code is accepted, and after a restart it is
 * refused. Needs root (mount).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configText, keyOf } from '../../harness/config.js';
import { CodeFloorFile, openCodeFloors } from '../../server/code-floor.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { codeFloorId, codeKeyOf, codeText } from '../../shared/codes.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const isRoot = process.getuid?.() === 0;
const ALICE = keyOf(1);
const codeKey = codeKeyOf(ALICE);
const code = (c: number) => new Uint8Array(Buffer.from(codeText(codeKey, c), 'latin1'));

// Never a silent skip: without root this file fails with the reason.
const skip = isRoot ? false : 'needs root to mount a tmpfs';
if (skip) test('prerequisite: root, to mount a tmpfs', () => assert.fail(`${skip}: run npm test as root`));

describe('one-time code floors on a full file system', { skip }, () => {
  let mnt = '';
  let mounted = false;

  before(() => {
    mnt = mkdtempSync(join(tmpdir(), 'spak-codes-fulldisk-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', mnt]);
    mounted = true;
  });

  after(() => {
    if (mounted) {
      try {
        execFileSync('umount', [mnt]);
      } catch {
        execFileSync('umount', ['-l', mnt]);
      }
    }
    if (mnt) rmSync(mnt, { recursive: true, force: true });
  });

  test('refused while the floor cannot be written, not used up, accepted once there is room, refused after restart', async () => {
    const stateDir = join(mnt, 'state');
    const clock = new FakeClock();
    const backend = new FakeBackend();
    const sink = logSink();
    const config = parseConfig(
      `${configText({
        stateDir,
        // codes sent back to back: no per-client limit in the way (issue 9's `client-rate`)
        extra: '[limit]\nclient_rate = 100000\nclient_burst = 100000',
        clients: [{ name: 'alice', key: ALICE, open: ['tcp/22'], codes: true }],
      })}`,
      'test.toml',
    );
    const listen: typeof openUdpListener = async (o) => ({
      bound: `[${o.address}]:${o.port}`,
      close: async () => undefined,
    });
    const start = async (log = sink.log) => {
      const d = new Daemon({
        config,
        backend,
        log,
        now: clock.now,
        timers: clock,
        listen,
        warmUp: false,
        codeFloors: openCodeFloors(new CodeFloorFile(stateDir)),
      });
      await d.start();
      return d;
    };
    const daemon = await start();
    const sink2 = logSink();
    // accepted knocks, by their grant lines: repeated knocks for one address coalesce into one firewall change
    const grants = () => sink.events('grant').length + sink2.events('grant').length;

    const filler = join(mnt, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(128 * 1024, 0x78));
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
    }
    // the floor file's last page may still have room for some lines: send codes in order until the first refusal
    let c = 0;
    while (!daemon.rejects.totals()['state-write'] && c < 1000) {
      daemon.handle(code(c), '192.0.2.1');
      c++;
    }
    await daemon.settled();
    const refused = c - 1;
    assert.equal(daemon.rejects.totals()['state-write'], 1, `refused after ${c} codes`);
    assert.equal(grants(), refused, 'a grant for each code before, none for the refused one');
    for (let i = 0; i < 5; i++) daemon.handle(code(refused), '192.0.2.1');
    await daemon.settled();
    assert.equal(grants(), refused, 'no grant without a durable floor');
    assert.equal(daemon.rejects.totals()['state-write'], 6);
    const errs = sink.events('state-write-error');
    assert.equal(errs.length, 1);
    assert.match(
      String((errs[0]?.err as { message?: string } | undefined)?.message),
      /^cannot write .*code-floors\.log: no space left on the device$/,
    );

    unlinkSync(filler);
    daemon.handle(code(refused), '192.0.2.100');
    await daemon.settled();
    assert.equal(grants(), refused + 1, 'the refused code was not used up: it works once there is room');
    assert.ok(backend.isOpen(4, '192.0.2.100', { proto: 'tcp', port: 22 }, clock.now()));
    assert.equal(sink.events('state-write-recovered').length, 1);
    const lines = readFileSync(join(stateDir, 'code-floors.log'), 'utf8').split('\n');
    assert.ok(lines.includes(`${codeFloorId(codeKey)} ${refused + 1}`), 'its floor is on a line of its own');
    await daemon.stop();

    const again = await start(sink2.log);
    again.handle(code(refused), '192.0.2.100');
    assert.deepEqual(again.rejects.totals(), { 'code-used': 1 });
    again.handle(code(refused + 1), '192.0.2.100');
    await again.settled();
    assert.equal(grants(), refused + 2, 'the next code opens after the restart');
    await again.stop();
  });
});
