import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ReplayGuard } from '../../shared/replay.js';
import { SpaError } from '../../shared/errors.js';
import { ReplayFile } from '../../server/replay-file.js';
import { REPLAY_SYNC_DELAY_MS } from '../../shared/constants.js';
import { FakeClock } from '../helpers/clock.js';

const root = mkdtempSync(join(tmpdir(), 'spak-replayfile-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('replay file (persistence across restarts)', () => {
  test('records written by one process are refused by the next', () => {
    const dir = join(root, 'a');
    const f1 = new ReplayFile(dir);
    const g1 = new ReplayGuard({ windowMs: 60_000, initial: f1.load(1000), persist: f1 });
    g1.remember('spak1:aa', 1000, 1000);
    g1.remember('spak1:bb', 2000, 2000);
    // no close(): as after kill -9, only what write(2) put in the file counts
    const f2 = new ReplayFile(dir);
    const g2 = new ReplayGuard({ windowMs: 60_000, initial: f2.load(5000) });
    assert.equal(g2.check('spak1:aa', 5000), 'replay');
    assert.equal(g2.check('spak1:bb', 5000), 'replay');
    assert.equal(g2.check('spak1:cc', 5000), 'fresh');
    f1.close();
    f2.close();
  });

  test('load drops expired records and torn or garbage lines, and compacts the file', () => {
    const dir = join(root, 'b');
    const f = new ReplayFile(dir);
    f.load(0);
    f.close();
    writeFileSync(
      join(dir, 'replay.log'),
      '100 spak1:old\n900000 spak1:live\nnot a line\n99999999 spak1:torn-no-newline',
    );
    appendFileSync(join(dir, 'replay.log'), '');
    const f2 = new ReplayFile(dir);
    const recs = f2.load(1000);
    assert.deepEqual(recs.map((r) => r.id).sort(), ['spak1:live', 'spak1:torn-no-newline']);
    // the expired record raised the floor (shared/replay.ts): 100 - 0 (no window given: expiries as written)
    assert.equal(f2.floor, 100);
    assert.equal(
      readFileSync(join(dir, 'replay.log'), 'utf8'),
      '#floor 100 window 0\n900000 spak1:live\n99999999 spak1:torn-no-newline\n',
    );
    assert.equal(statSync(join(dir, 'replay.log')).mode & 0o777, 0o600);
    f2.close();
  });

  test('the state directory is created 0700; an unusable one is a one-line error', () => {
    const dir = join(root, 'c', 'deep');
    new ReplayFile(dir).close();
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    const file = join(root, 'plainfile');
    writeFileSync(file, 'x');
    assert.throws(
      () => new ReplayFile(file),
      (e: Error) =>
        e instanceof SpaError &&
        e.code === 'ERR_SPA_STATE_DIR' &&
        e.message === `state_dir ${file} cannot be created: exists and is not a directory`,
    );
    assert.throws(
      () => new ReplayFile(join(file, 'sub')),
      (e: Error) =>
        e instanceof SpaError &&
        e.code === 'ERR_SPA_STATE_DIR' &&
        e.message === `state_dir ${file}/sub cannot be created: a part of the path is not a directory`,
    );
  });

  test('the floor and the window are persisted; expiries move with a changed window; a log without header is kept longer', () => {
    const dir = join(root, 'd');
    const f = new ReplayFile(dir);
    f.load(1_000_000, 60_000);
    f.append({ id: 'spak1:a', expiresAt: 1_060_000 }); // anchor 1_000_000
    f.compact({ records: [{ id: 'spak1:a', expiresAt: 1_060_000 }], floor: 900_000 });
    f.close();
    assert.equal(readFileSync(join(dir, 'replay.log'), 'utf8'), '#floor 900000 window 60000\n1060000 spak1:a\n');
    const g = new ReplayFile(dir);
    assert.deepEqual(
      g.load(1_070_000, 120_000),
      [{ id: 'spak1:a', expiresAt: 1_120_000 }],
      'window raised: anchor + new window',
    );
    assert.equal(g.floor, 900_000);
    g.close();
    // the same record under a smaller window is expired: dropped, and the floor covers its packet
    const h = new ReplayFile(dir);
    assert.deepEqual(h.load(1_050_000, 30_000), []);
    assert.equal(h.floor, 1_000_000);
    h.close();
    writeFileSync(join(dir, 'replay.log'), '1060000 spak1:legacy\n');
    const k = new ReplayFile(dir);
    assert.deepEqual(k.load(1_070_000, 60_000), [{ id: 'spak1:legacy', expiresAt: 1_120_000 }]);
    k.close();
  });

  test('the batched fdatasync runs on the injected timers, once per burst', async () => {
    const clock = new FakeClock();
    const f = new ReplayFile(join(root, 'e'), { timers: clock });
    f.load(0, 60_000);
    f.append({ id: 'spak1:x', expiresAt: 1 });
    f.append({ id: 'spak1:y', expiresAt: 2 });
    assert.equal(clock.pending, 1);
    await clock.advance(REPLAY_SYNC_DELAY_MS);
    assert.equal(clock.pending, 0);
    f.close();
  });

  test('a write error is an ERR_SPA_STATE_DIR SpaError naming the file', () => {
    const dir = join(root, 'f');
    const f = new ReplayFile(dir);
    f.load(0, 60_000);
    f.close();
    rmSync(dir, { recursive: true });
    writeFileSync(dir, 'now a file');
    assert.throws(
      () => f.append({ id: 'spak1:z', expiresAt: 1 }),
      (e: Error) =>
        e instanceof SpaError &&
        e.code === 'ERR_SPA_STATE_DIR' &&
        e.message === `cannot write ${dir}/replay.log: a part of the path is not a directory`,
    );
  });
});
