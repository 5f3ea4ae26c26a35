/** The daemon's count of the kernel prefilter's drops (server/prefilter-count.ts), from a scripted kernel counter. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrefilterCount } from '../../server/prefilter-count.js';

test('counts from the first reading on; a lower reading is a fresh counter; a failed read changes nothing', async () => {
  const readings: (number | undefined | Error)[] = [1000, 1500, new Error('nft failed'), 1700, 30, undefined, 5];
  const c = new PrefilterCount(async () => {
    const r = readings.shift();
    if (r instanceof Error) throw r;
    return r;
  });
  await c.refresh();
  assert.equal(c.sinceStart, 0, 'what the counter held before the start does not count');
  await c.refresh();
  assert.equal(c.takeSinceLast(), 500);
  await c.refresh(); // fails
  assert.equal(c.sinceStart, 500);
  await c.refresh();
  assert.equal(c.takeSinceLast(), 200);
  await c.refresh(); // 30: the counter started again (rewritten)
  assert.equal(c.sinceStart, 730);
  await c.refresh(); // gone (prefilter turned off)
  assert.equal(c.sinceStart, undefined);
  assert.equal(c.takeSinceLast(), undefined);
  await c.refresh(); // back, fresh
  assert.equal(c.sinceStart, 735);
  assert.equal(c.takeSinceLast(), 35, 'the 30 counted before it went, and 5 since');
});

test('overlapping reads: a reading that comes back after a newer one is not taken for a reset', async () => {
  const resolvers: ((n: number) => void)[] = [];
  const c = new PrefilterCount(() => new Promise<number>((r) => resolvers.push(r)));
  const first = c.refresh();
  resolvers[0]?.(100);
  await first;
  const older = c.refresh();
  const newer = c.refresh();
  resolvers[2]?.(150);
  await newer;
  resolvers[1]?.(120);
  await older;
  assert.equal(c.sinceStart, 50);
});
