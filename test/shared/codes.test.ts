/**
 * shared/codes.ts: known-answer codes for a fixed key (docs/codes.md's example), the same codes from an independent
 * implementation (node:crypto HKDF and HMAC, base32 written out bit by bit), base32 against
 * RFC 4648 §10, and the cheap datagram parser on hostile input.
 */
import assert from 'node:assert/strict';
import { createHmac, hkdfSync } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  CODE_COUNTER_LIMIT,
  CODE_LEN,
  base32,
  codeBodyOf,
  codeFloorId,
  codeKeyOf,
  codeText,
  looksLikeCode,
} from '../../shared/codes.js';

const KEY_A = Uint8Array.from({ length: 32 }, (_, i) => i);
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));

/** Independent: node:crypto, and base32 bit by bit from a string of 0s and 1s. */
function independentCode(key: Uint8Array, counter: number): string {
  const ck = Buffer.from(hkdfSync('sha256', key, 'spa-knock/v1', 'spa-knock/v1 one-time codes', 32));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha256', ck).update(msg).digest().subarray(0, 15);
  const bits = [...mac].map((b) => b.toString(2).padStart(8, '0')).join('');
  let out = '';
  for (let i = 0; i < bits.length; i += 5) out += 'abcdefghijklmnopqrstuvwxyz234567'[parseInt(bits.slice(i, i + 5), 2)];
  return `spc1-${out}`;
}

describe('one-time codes: generation', () => {
  test('known answers for key A (00 01 … 1f), as docs/codes.md prints them', () => {
    const k = codeKeyOf(KEY_A);
    assert.equal(codeText(k, 0), 'spc1-w2sudsyqirxghy2drupb7iil');
    assert.equal(codeText(k, 1), 'spc1-ezna4j2jgu7u3mu7rb4nyrvn');
    assert.equal(codeText(k, 2), 'spc1-3oy4af5vwdz7sxjxax4eghjl');
    assert.equal(codeFloorId(k), '70296a0c6964e3c8');
  });

  test('the same codes from node:crypto, for several keys and counters (also large ones)', () => {
    for (const seed of [0, 1, 7, 200]) {
      const key = Uint8Array.from({ length: 32 }, (_, i) => (seed * 31 + i * 7) & 0xff);
      const k = codeKeyOf(key);
      for (const c of [0, 1, 2, 19, 20, 1000, 2 ** 32 + 5, CODE_COUNTER_LIMIT - 1])
        assert.equal(codeText(k, c), independentCode(key, c), `seed ${seed} counter ${c}`);
    }
  });

  test('every code is 29 printable characters, and the codes of one key differ', () => {
    const k = codeKeyOf(KEY_A);
    const seen = new Set<string>();
    for (let c = 0; c < 500; c++) {
      const t = codeText(k, c);
      assert.equal(t.length, CODE_LEN);
      assert.match(t, /^spc1-[a-z2-7]{24}$/);
      seen.add(t);
    }
    assert.equal(seen.size, 500);
  });

  test('counters outside 0 … 2^48 − 1 and wrong key lengths are refused', () => {
    const k = codeKeyOf(KEY_A);
    for (const c of [-1, 1.5, CODE_COUNTER_LIMIT, Number.NaN]) assert.throws(() => codeText(k, c), RangeError);
    assert.throws(() => codeKeyOf(new Uint8Array(31)), RangeError);
  });

  test('base32 is RFC 4648 §10 (lower case, no padding)', () => {
    const cases: [string, string][] = [
      ['', ''],
      ['f', 'my'],
      ['fo', 'mzxq'],
      ['foo', 'mzxw6'],
      ['foob', 'mzxw6yq'],
      ['fooba', 'mzxw6ytb'],
      ['foobar', 'mzxw6ytboi'],
    ];
    for (const [i, o] of cases) assert.equal(base32(bytes(i)), o, i);
  });
});

describe('one-time codes: the datagram parser', () => {
  const code = codeText(codeKeyOf(KEY_A), 0);
  const body = code.slice(5);

  test('accepts the code, in either case, with an optional \\n or \\r\\n', () => {
    for (const d of [code, code.toUpperCase(), `${code}\n`, `${code}\r\n`, `SpC1-${body.toUpperCase()}`])
      assert.equal(codeBodyOf(bytes(d)), body, JSON.stringify(d));
  });

  test('refuses everything else without throwing', () => {
    const bad = [
      '',
      code.slice(0, -1),
      `${code}\r`,
      `${code}\n\n`,
      `${code} `,
      `${code}x`,
      `spc2-${body}`,
      `spc1_${body}`,
      `spc1-${body.slice(0, 23)}1`, // '1' is not base32
      `spc1-${body.slice(0, 23)}=`,
      `spc1-${body.slice(0, 23)}\u00e9`.slice(0, 29),
      `spc1\r${body}`,
    ];
    for (const d of bad) assert.equal(codeBodyOf(bytes(d)), undefined, JSON.stringify(d));
    assert.equal(codeBodyOf(new Uint8Array(29)), undefined);
    assert.equal(codeBodyOf(new Uint8Array(29).fill(0xff)), undefined);
  });

  test('looksLikeCode is only length and prefix: a spak1 packet (byte 0x01, ≥ 78 bytes) never looks like one', () => {
    assert.equal(looksLikeCode(bytes(code)), true);
    assert.equal(looksLikeCode(bytes(`SPC1-${'?'.repeat(24)}`)), true);
    assert.equal(looksLikeCode(new Uint8Array(78).fill(1)), false);
    assert.equal(looksLikeCode(bytes(`spc1-${body}\r\n!`)), false);
  });
});
