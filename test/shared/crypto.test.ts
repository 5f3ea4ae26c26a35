/**
 * shared/crypto.ts: known answers from the RFCs, and cross-checks of every primitive against an independent
 * implementation (node:crypto, plus an HChaCha20 written here from draft-irtf-cfrg-xchacha-03 §2.2).
 */
import assert from 'node:assert/strict';
import { createCipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { u64be } from '../../shared/bytes.js';
import {
  KDF_LABEL_ENC,
  KDF_LABEL_ID,
  KDF_LABEL_MAC,
  KDF_SALT,
  KEY_ID_EPOCH_MS,
  KEY_ID_LEN,
  TAG_LEN,
} from '../../shared/constants.js';
import { deriveKeys, epochOf, keyIdFor, macOf, sha256Of, tagMatches, xorStream } from '../../shared/crypto.js';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/[\s:]/g, ''), 'hex'));
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const rand = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const seq = (n: number, start = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

/* ---------- an independent XChaCha20: HChaCha20 here, the ChaCha20 block function from OpenSSL ---------- */

function rotl(x: number, n: number): number {
  return ((x << n) | (x >>> (32 - n))) >>> 0;
}

function quarterRound(s: Uint32Array, a: number, b: number, c: number, d: number): void {
  s[a] = (s[a]! + s[b]!) >>> 0;
  s[d] = rotl(s[d]! ^ s[a]!, 16);
  s[c] = (s[c]! + s[d]!) >>> 0;
  s[b] = rotl(s[b]! ^ s[c]!, 12);
  s[a] = (s[a]! + s[b]!) >>> 0;
  s[d] = rotl(s[d]! ^ s[a]!, 8);
  s[c] = (s[c]! + s[d]!) >>> 0;
  s[b] = rotl(s[b]! ^ s[c]!, 7);
}

/** HChaCha20 (draft-irtf-cfrg-xchacha-03 §2.2): 20 ChaCha rounds, no final addition, words 0..3 ‖ 12..15. */
function hchacha20(key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  assert.equal(key.length, 32);
  assert.equal(nonce16.length, 16);
  const s = new Uint32Array(16);
  s.set([0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]); // "expand 32-byte k"
  const kv = new DataView(key.buffer, key.byteOffset, 32);
  for (let i = 0; i < 8; i++) s[4 + i] = kv.getUint32(4 * i, true);
  const nv = new DataView(nonce16.buffer, nonce16.byteOffset, 16);
  for (let i = 0; i < 4; i++) s[12 + i] = nv.getUint32(4 * i, true);
  for (let r = 0; r < 10; r++) {
    quarterRound(s, 0, 4, 8, 12);
    quarterRound(s, 1, 5, 9, 13);
    quarterRound(s, 2, 6, 10, 14);
    quarterRound(s, 3, 7, 11, 15);
    quarterRound(s, 0, 5, 10, 15);
    quarterRound(s, 1, 6, 11, 12);
    quarterRound(s, 2, 7, 8, 13);
    quarterRound(s, 3, 4, 9, 14);
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  [0, 1, 2, 3, 12, 13, 14, 15].forEach((w, i) => {
    ov.setUint32(4 * i, s[w]!, true);
  });
  return out;
}

/** XChaCha20 (draft §2.3): ChaCha20(HChaCha20(key, nonce[0..16]), 0⁴ ‖ nonce[16..24]), block counter 0. */
function refXChaCha20(key: Uint8Array, nonce: Uint8Array, data: Uint8Array): Uint8Array {
  const subKey = hchacha20(key, nonce.subarray(0, 16));
  // OpenSSL's chacha20 IV: 4-byte little-endian block counter ‖ 12-byte nonce
  const iv = new Uint8Array(16);
  iv.set(nonce.subarray(16, 24), 8);
  const c = createCipheriv('chacha20', subKey, iv);
  return new Uint8Array(Buffer.concat([c.update(data), c.final()]));
}

describe('RFC 4231 HMAC-SHA256 known answers (macOf)', () => {
  it('test case 1', () => {
    const key = new Uint8Array(20).fill(0x0b);
    const data = new TextEncoder().encode('Hi There');
    const expected = 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7';
    assert.equal(toHex(macOf(key, data)), expected);
    assert.equal(createHmac('sha256', key).update(data).digest('hex'), expected);
  });

  it('test case 2', () => {
    const key = new TextEncoder().encode('Jefe');
    const data = new TextEncoder().encode('what do ya want for nothing?');
    const expected = '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843';
    assert.equal(toHex(macOf(key, data)), expected);
    assert.equal(createHmac('sha256', key).update(data).digest('hex'), expected);
  });

  it('agrees with crypto.createHmac on random keys and messages', () => {
    for (const [kl, ml] of [
      [32, 0],
      [32, 1],
      [32, 81],
      [16, 200],
      [64, 63],
      [65, 64],
      [100, 512],
    ] as const) {
      const key = rand(kl);
      const msg = rand(ml);
      assert.equal(toHex(macOf(key, msg)), createHmac('sha256', key).update(msg).digest('hex'), `key ${kl}, msg ${ml}`);
    }
  });
});

describe('RFC 5869 HKDF-SHA256', () => {
  const ikm = new Uint8Array(22).fill(0x0b);
  const salt = seq(13); // 0x00..0x0c
  const info = seq(10, 0xf0); // 0xf0..0xf9
  const okm = '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865';

  it('test case 1 (noble hkdf, as deriveKeys uses it, and crypto.hkdfSync)', () => {
    assert.equal(toHex(hkdf(sha256, ikm, salt, info, 42)), okm);
    assert.equal(Buffer.from(hkdfSync('sha256', ikm, salt, info, 42)).toString('hex'), okm);
  });

  it('deriveKeys = HKDF-SHA256(master, salt = KDF_SALT, info = label, 32) for each label, per crypto.hkdfSync', () => {
    for (let i = 0; i < 5; i++) {
      const master = rand(32);
      const k = deriveKeys(master);
      const ref = (label: string): string =>
        Buffer.from(hkdfSync('sha256', master, KDF_SALT, label, 32)).toString('hex');
      assert.equal(toHex(k.id), ref(KDF_LABEL_ID));
      assert.equal(toHex(k.enc), ref(KDF_LABEL_ENC));
      assert.equal(toHex(k.mac), ref(KDF_LABEL_MAC));
    }
  });
});

describe('deriveKeys', () => {
  it('gives three distinct 32-byte keys, deterministically', () => {
    const master = rand(32);
    const a = deriveKeys(master);
    const b = deriveKeys(Uint8Array.from(master));
    for (const k of [a.id, a.enc, a.mac]) assert.equal(k.length, 32);
    assert.equal(new Set([toHex(a.id), toHex(a.enc), toHex(a.mac), toHex(master)]).size, 4);
    assert.deepEqual([toHex(a.id), toHex(a.enc), toHex(a.mac)], [toHex(b.id), toHex(b.enc), toHex(b.mac)]);
  });

  it('different masters give different keys', () => {
    const a = deriveKeys(new Uint8Array(32));
    const m = new Uint8Array(32);
    m[31] = 1;
    const b = deriveKeys(m);
    assert.notEqual(toHex(a.id), toHex(b.id));
    assert.notEqual(toHex(a.enc), toHex(b.enc));
    assert.notEqual(toHex(a.mac), toHex(b.mac));
  });

  it('refuses a key that is not 32 bytes', () => {
    for (const n of [0, 16, 31, 33, 64]) assert.throws(() => deriveKeys(new Uint8Array(n)), RangeError);
  });
});

describe('epochOf / keyIdFor', () => {
  it('epochs are whole minutes', () => {
    assert.equal(KEY_ID_EPOCH_MS, 60_000);
    assert.equal(epochOf(0), 0);
    assert.equal(epochOf(59_999), 0);
    assert.equal(epochOf(60_000), 1);
    assert.equal(epochOf(1_767_225_600_000), 29_453_760);
    assert.equal(epochOf(1_767_225_659_999), 29_453_760);
  });

  it('is HMAC-SHA256(idKey, u64be(epoch))[0..8]', () => {
    const idKey = rand(32);
    for (const epoch of [
      0,
      1,
      255,
      256,
      2 ** 32 - 1,
      2 ** 32,
      29_453_760,
      Math.floor(Number.MAX_SAFE_INTEGER / 60_000),
    ]) {
      const expected = createHmac('sha256', idKey).update(u64be(epoch)).digest().subarray(0, KEY_ID_LEN);
      assert.equal(toHex(keyIdFor(idKey, epoch)), expected.toString('hex'), `epoch ${epoch}`);
    }
  });

  it('changes with the epoch, is stable within one, and differs between keys', () => {
    const idKey = rand(32);
    const ids = new Set<string>();
    for (let e = 29_453_700; e < 29_453_800; e++) {
      const id = keyIdFor(idKey, e);
      assert.equal(id.length, KEY_ID_LEN);
      assert.equal(toHex(keyIdFor(idKey, e)), toHex(id));
      ids.add(toHex(id));
    }
    assert.equal(ids.size, 100);
    assert.notEqual(toHex(keyIdFor(rand(32), 29_453_760)), toHex(keyIdFor(idKey, 29_453_760)));
  });
});

describe('xorStream (XChaCha20)', () => {
  it('our reference HChaCha20 reproduces draft-irtf-cfrg-xchacha-03 §2.2.1', () => {
    const out = hchacha20(seq(32), hex('000000090000004a0000000031415927'));
    assert.equal(toHex(out), '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
  });

  it('agrees with HChaCha20 + node:crypto chacha20 on random keys, nonces and messages', () => {
    for (const len of [0, 1, 13, 16, 63, 64, 65, 100, 127, 128, 129, 191, 192, 193, 479, 512, 1000]) {
      for (let i = 0; i < 3; i++) {
        const key = rand(32);
        const nonce = rand(24);
        const msg = rand(len);
        const ours = xorStream(key, nonce, msg);
        assert.equal(ours.length, len);
        assert.equal(toHex(ours), toHex(refXChaCha20(key, nonce, msg)), `length ${len}`);
      }
    }
  });

  it('is its own inverse, and depends on every nonce byte', () => {
    const key = rand(32);
    const nonce = rand(24);
    const msg = rand(100);
    const ct = xorStream(key, nonce, msg);
    assert.equal(toHex(xorStream(key, nonce, ct)), toHex(msg));
    for (let i = 0; i < 24; i++) {
      const n2 = Uint8Array.from(nonce);
      n2[i]! ^= 1;
      assert.notEqual(toHex(xorStream(key, n2, msg)), toHex(ct), `nonce byte ${i}`);
    }
  });

  it('refuses a nonce that is not 24 bytes', () => {
    for (const n of [0, 8, 12, 16, 23, 25]) assert.throws(() => xorStream(rand(32), rand(n), rand(10)), RangeError);
  });
});

describe('tagMatches', () => {
  const macKey = rand(32);
  const msg = rand(49);
  const tag = macOf(macKey, msg);

  it('accepts the right tag', () => {
    assert.equal(tag.length, TAG_LEN);
    assert.equal(tagMatches(macKey, msg, tag), true);
    assert.equal(tagMatches(macKey, msg, Uint8Array.from(tag)), true);
  });

  it('rejects every single-byte change of the tag', () => {
    for (let i = 0; i < TAG_LEN; i++) {
      for (let v = 0; v < 256; v++) {
        if (v === tag[i]) continue;
        const t = Uint8Array.from(tag);
        t[i] = v;
        assert.equal(tagMatches(macKey, msg, t), false, `byte ${i} = ${v}`);
      }
    }
  });

  it('rejects every single-byte change of the message and a wrong key', () => {
    for (let i = 0; i < msg.length; i++) {
      const m = Uint8Array.from(msg);
      m[i]! ^= 0x80;
      assert.equal(tagMatches(macKey, m, tag), false, `message byte ${i}`);
    }
    assert.equal(tagMatches(rand(32), msg, tag), false);
  });

  it('rejects a tag of the wrong length (truncated, extended, empty)', () => {
    assert.equal(tagMatches(macKey, msg, tag.subarray(0, 31)), false);
    assert.equal(tagMatches(macKey, msg, tag.subarray(0, 16)), false);
    assert.equal(tagMatches(macKey, msg, new Uint8Array(0)), false);
    const longer = new Uint8Array(33);
    longer.set(tag);
    assert.equal(tagMatches(macKey, msg, longer), false);
  });
});

describe('sha256Of', () => {
  it('is SHA-256 (FIPS 180-4 "abc")', () => {
    assert.equal(
      toHex(sha256Of(new TextEncoder().encode('abc'))),
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
});
