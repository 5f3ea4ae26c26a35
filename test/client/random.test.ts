/**
 * client/random.ts: the nonce source of the client. /dev/urandom where it is a character device, node:crypto
 * otherwise (a missing path, a regular file in its place) — never the bytes of something that is not a random device.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { randomBytesFast } from '../../client/random.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-random-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** 64 draws of n bytes: all distinct, and every byte value roughly as often as chance says. */
function looksRandom(draw: () => Uint8Array, n: number): void {
  const seen = new Set<string>();
  const counts = new Array<number>(256).fill(0);
  for (let i = 0; i < 64; i++) {
    const b = draw();
    assert.equal(b.length, n);
    seen.add(Buffer.from(b).toString('hex'));
    for (const x of b) counts[x] = (counts[x] ?? 0) + 1;
  }
  assert.equal(seen.size, 64, 'no draw repeats');
  // 64 * 24 = 1536 bytes: 6 per value on average; a value seen 40 times would mean no randomness at all
  assert.ok(Math.max(...counts) < 40, `byte counts ${Math.max(...counts)}`);
}

describe('randomBytesFast', () => {
  test('from /dev/urandom: n bytes, different every time', () => {
    looksRandom(() => randomBytesFast(24), 24);
    assert.equal(randomBytesFast(0).length, 0);
  });

  test('no device, or a regular file where the device should be: node:crypto, never the file', () => {
    looksRandom(() => randomBytesFast(24, join(dir, 'missing')), 24);
    const fake = join(dir, 'urandom');
    writeFileSync(fake, Buffer.alloc(4096, 0x41));
    looksRandom(() => randomBytesFast(24, fake), 24);
    assert.notDeepEqual([...randomBytesFast(24, fake)], new Array(24).fill(0x41));
  });

  test('a device that gives nothing (/dev/null): node:crypto', () => {
    looksRandom(() => randomBytesFast(24, '/dev/null'), 24);
  });
});
