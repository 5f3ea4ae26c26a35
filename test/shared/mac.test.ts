/** shared/mac.ts: the precomputed-state HMAC gives RFC 4231's tags and the same tags as macOf, call after call. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { macOf } from '../../shared/crypto.js';
import { MacState } from '../../shared/mac.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('MacState', () => {
  it('gives the RFC 4231 test case 1 and 2 tags (HMAC-SHA256)', () => {
    const one = new MacState(hex('0b'.repeat(20)));
    assert.equal(
      toHex(one.mac(Buffer.from('Hi There'))),
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    );
    const two = new MacState(Buffer.from('Jefe'));
    assert.equal(
      toHex(two.mac(Buffer.from('what do ya want for nothing?'))),
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
    // again on the same instance: the kept states are not consumed by a tag
    assert.equal(
      toHex(one.mac(Buffer.from('Hi There'))),
      'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7',
    );
  });

  it('equals macOf for any key and message, over many calls on one instance', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 6 }),
        (key, msgs) => {
          const s = new MacState(key);
          for (const m of msgs) assert.equal(toHex(s.mac(m)), toHex(macOf(key, m)));
        },
      ),
    );
  });

  it('matches the right tag only: one flipped bit, a short or a long tag is refused', () => {
    const key = new Uint8Array(32).fill(7);
    const msg = Buffer.from('the authenticated bytes of a packet');
    const s = new MacState(key);
    const tag = macOf(key, msg);
    assert.equal(s.matches(msg, tag), true);
    for (const i of [0, 15, 31]) {
      const bad = tag.slice();
      bad[i] = (bad[i] ?? 0) ^ 1;
      assert.equal(s.matches(msg, bad), false);
    }
    assert.equal(s.matches(msg, tag.subarray(0, 31)), false);
    assert.equal(s.matches(msg, new Uint8Array([...tag, 0])), false);
    assert.equal(s.matches(msg, tag), true);
    assert.equal(s.matches(Buffer.from('other bytes'), tag), false);
  });
});
