/**
 * shared/wire.ts: payload and packet round trips (fast-check), tamper and size rejection, fuzzing, TLV extensions,
 * malformed payloads and encoder range checks.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalIp } from '../../shared/address.js';
import type { Access } from '../../shared/access.js';
import { concat } from '../../shared/bytes.js';
import {
  HEADER_LEN,
  MAX_ACCESSES,
  MAX_PACKET_LEN,
  MIN_PACKET_LEN,
  MIN_PAYLOAD_LEN,
  PROTOCOL_VERSION,
  TAG_LEN,
} from '../../shared/constants.js';
import { type SubKeys, deriveKeys, epochOf, keyIdFor, macOf, xorStream } from '../../shared/crypto.js';
import {
  type KnockRequest,
  authenticate,
  decodePayload,
  decryptPayload,
  encodePayload,
  openPacket,
  sealPacket,
  splitPacket,
} from '../../shared/wire.js';

const rand = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const keys = deriveKeys(rand(32));
const NOW = 1_767_225_630_000;

const accessArb: fc.Arbitrary<Access> = fc.record({
  proto: fc.constantFrom('tcp' as const, 'udp' as const),
  port: fc.integer({ min: 1, max: 65535 }),
});

const requestArb: fc.Arbitrary<KnockRequest> = fc
  .record({
    type: fc.constantFrom('open' as const, 'close' as const),
    timestamp: fc.oneof(
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.integer({ min: NOW - 1e9, max: NOW + 1e9 }),
    ),
    accesses: fc.array(accessArb, { minLength: 0, maxLength: MAX_ACCESSES }),
    duration: fc.integer({ min: 0, max: 65535 }),
    allowAddress: fc.option(fc.oneof(fc.ipV4(), fc.ipV6()), { nil: undefined }),
  })
  .chain((r) =>
    // the prefix request (EXT_PREFIX TLV), present or not, each length or both
    fc
      .record(
        { prefix4: fc.integer({ min: 1, max: 32 }), prefix6: fc.integer({ min: 1, max: 128 }) },
        { requiredKeys: [] },
      )
      .map((p) => ({ ...r, ...p })),
  );

const nonceArb = fc.uint8Array({ minLength: 24, maxLength: 24 });

/** What decoding gives back: the address in canonical form (IPv4-mapped → IPv4, IPv6 RFC 5952-compressed). */
function canonical(req: KnockRequest): KnockRequest {
  return {
    type: req.type,
    timestamp: req.timestamp,
    accesses: req.accesses.map((a) => ({ proto: a.proto, port: a.port })),
    duration: req.duration,
    allowAddress: req.allowAddress === undefined ? undefined : canonicalIp(req.allowAddress),
    ...(req.prefix4 !== undefined ? { prefix4: req.prefix4 } : {}),
    ...(req.prefix6 !== undefined ? { prefix6: req.prefix6 } : {}),
  };
}

function mustDecode(pt: Uint8Array): KnockRequest {
  const d = decodePayload(pt);
  assert.ok(d.ok, d.ok ? '' : d.code);
  return d.value;
}

function code(r: { ok: boolean; code?: string }): string {
  return r.ok ? 'ok' : (r.code ?? '?');
}

/** A packet around an arbitrary plaintext (what sealPacket does, without the encoder), key id of `epoch`. */
function sealRaw(k: SubKeys, payload: Uint8Array, epoch: number, nonce: Uint8Array = rand(24)): Uint8Array {
  const header = concat(bytes(PROTOCOL_VERSION), keyIdFor(k.id, epoch), nonce);
  const authenticated = concat(header, xorStream(k.enc, nonce, payload));
  return concat(authenticated, macOf(k.mac, authenticated));
}

const base: KnockRequest = { type: 'open', timestamp: NOW, accesses: [{ proto: 'tcp', port: 22 }], duration: 30 };
const basePayload = encodePayload(base);

describe('payload encoding', () => {
  it('decodePayload(encodePayload(x)) round-trips (property)', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        const pt = encodePayload(req);
        assert.ok(pt.length >= MIN_PAYLOAD_LEN);
        assert.deepStrictEqual(mustDecode(pt), canonical(req));
      }),
      { numRuns: 500 },
    );
  });

  it('lays the fields out as documented', () => {
    const pt = encodePayload({
      type: 'close',
      timestamp: 0x0102_0304_0506,
      accesses: [
        { proto: 'tcp', port: 22 },
        { proto: 'udp', port: 0xabcd },
      ],
      duration: 0x1234,
      allowAddress: '192.0.2.7',
    });
    assert.equal(Buffer.from(pt).toString('hex'), '000001020304050602123402' + '060016' + '11abcd' + '04c0000207');
    assert.equal(
      Buffer.from(encodePayload({ ...base, accesses: [], allowAddress: '2001:db8::1' }))
        .toString('hex')
        .slice(24),
      '06' + '20010db8000000000000000000000001',
    );
  });

  it('an IPv4-mapped IPv6 allow-address is sent as IPv4; IPv6 comes back RFC 5952-compressed', () => {
    assert.equal(mustDecode(encodePayload({ ...base, allowAddress: '::ffff:192.0.2.1' })).allowAddress, '192.0.2.1');
    assert.equal(
      mustDecode(encodePayload({ ...base, allowAddress: '2001:0DB8:0000:0000:0000:0000:0000:0001' })).allowAddress,
      '2001:db8::1',
    );
    // a family-6 field holding an IPv4-mapped address (another client's encoder) decodes to the IPv4 address it maps
    const mapped = encodePayload({ ...base, allowAddress: '2001:db8::1' });
    mapped.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1], mapped.length - 16);
    assert.equal(mustDecode(mapped).allowAddress, '192.0.2.1');
  });

  it('encodePayload throws RangeError for out-of-range inputs', () => {
    const bad: [string, KnockRequest][] = [
      ['negative timestamp', { ...base, timestamp: -1 }],
      ['fractional timestamp', { ...base, timestamp: 1.5 }],
      ['unsafe timestamp', { ...base, timestamp: 2 ** 53 }],
      ['NaN timestamp', { ...base, timestamp: Number.NaN }],
      ['infinite timestamp', { ...base, timestamp: Number.POSITIVE_INFINITY }],
      ['negative duration', { ...base, duration: -1 }],
      ['duration 65536', { ...base, duration: 65536 }],
      ['fractional duration', { ...base, duration: 0.5 }],
      ['NaN duration', { ...base, duration: Number.NaN }],
      [
        '33 accesses',
        { ...base, accesses: Array.from({ length: 33 }, (_, i) => ({ proto: 'tcp' as const, port: i + 1 })) },
      ],
      ['port 0', { ...base, accesses: [{ proto: 'tcp', port: 0 }] }],
      ['port 65536', { ...base, accesses: [{ proto: 'udp', port: 65536 }] }],
      ['port -1', { ...base, accesses: [{ proto: 'udp', port: -1 }] }],
      ['fractional port', { ...base, accesses: [{ proto: 'tcp', port: 22.5 }] }],
      [
        'second port bad',
        {
          ...base,
          accesses: [
            { proto: 'tcp', port: 22 },
            { proto: 'tcp', port: 70000 },
          ],
        },
      ],
      ['not an address', { ...base, allowAddress: 'example.com' }],
      ['empty address', { ...base, allowAddress: '' }],
      ['address with prefix', { ...base, allowAddress: '192.0.2.0/24' }],
      ['bad octet', { ...base, allowAddress: '256.1.1.1' }],
    ];
    for (const [what, req] of bad) assert.throws(() => encodePayload(req), RangeError, what);
    // the extremes are fine
    assert.equal(
      mustDecode(encodePayload({ ...base, timestamp: Number.MAX_SAFE_INTEGER })).timestamp,
      Number.MAX_SAFE_INTEGER,
    );
    assert.equal(mustDecode(encodePayload({ ...base, timestamp: 0, duration: 65535 })).duration, 65535);
  });

  it('sealPacket refuses a nonce that is not 24 bytes', () => {
    for (const n of [0, 12, 23, 25]) assert.throws(() => sealPacket(keys, base, rand(n)), RangeError);
  });
});

describe('packets', () => {
  it('openPacket(sealPacket(req)) round-trips; the length is 33 + payload + 32 (property)', () => {
    fc.assert(
      fc.property(requestArb, nonceArb, (req, nonce) => {
        const pkt = sealPacket(keys, req, nonce);
        assert.equal(pkt.length, HEADER_LEN + encodePayload(req).length + TAG_LEN);
        assert.ok(pkt.length >= MIN_PACKET_LEN && pkt.length <= MAX_PACKET_LEN);
        assert.equal(pkt[0], PROTOCOL_VERSION);
        assert.deepEqual(pkt.subarray(1, 9), keyIdFor(keys.id, epochOf(req.timestamp)));
        assert.deepEqual(pkt.subarray(9, 33), nonce);
        const o = openPacket(keys, pkt);
        assert.ok(o.ok, code(o));
        assert.deepStrictEqual(o.value, canonical(req));
      }),
      { numRuns: 300 },
    );
  });

  it('the staged API gives the same result as openPacket', () => {
    const pkt = sealPacket(keys, base, rand(24));
    const s = splitPacket(pkt);
    assert.ok(s.ok);
    assert.equal(s.value.ciphertext.length, pkt.length - HEADER_LEN - TAG_LEN);
    assert.equal(s.value.authenticated.length, pkt.length - TAG_LEN);
    assert.equal(authenticate(keys, s.value), true);
    assert.equal(authenticate(deriveKeys(rand(32)), s.value), false);
    const d = decryptPayload(keys, s.value);
    assert.ok(d.ok);
    assert.deepStrictEqual(d.value, canonical(base));
  });

  it('the same request under two nonces gives unrelated ciphertexts', () => {
    const a = sealPacket(keys, base, rand(24));
    const b = sealPacket(keys, base, rand(24));
    assert.deepEqual(a.subarray(0, 9), b.subarray(0, 9));
    assert.notDeepEqual(a.subarray(HEADER_LEN), b.subarray(HEADER_LEN));
  });

  it('a one-port packet is 81 bytes (97 with an IPv6 allow-address), well under 160', () => {
    const p = sealPacket(keys, base, rand(24));
    assert.equal(p.length, 81);
    const p6 = sealPacket(keys, { ...base, allowAddress: '2001:db8::1' }, rand(24));
    assert.equal(p6.length, 97);
    assert.ok(p.length <= 160 && p6.length <= 160);
    assert.equal(sealPacket(keys, { ...base, accesses: [] }, rand(24)).length, MIN_PACKET_LEN);
    assert.equal(MIN_PACKET_LEN, 78);
  });

  it('EVERY single-bit flip is rejected: byte 0 → version, any other → mac', () => {
    fc.assert(
      fc.property(requestArb, nonceArb, (req, nonce) => {
        const pkt = sealPacket(keys, req, nonce);
        for (let i = 0; i < pkt.length; i++) {
          for (let bit = 0; bit < 8; bit++) {
            const m = Uint8Array.from(pkt);
            m[i]! ^= 1 << bit;
            const r = openPacket(keys, m);
            assert.equal(code(r), i === 0 ? 'version' : 'mac', `byte ${i} bit ${bit}`);
          }
        }
      }),
      { numRuns: 12 },
    );
  });

  it('a packet under another key is rejected with mac', () => {
    assert.equal(code(openPacket(deriveKeys(rand(32)), sealPacket(keys, base, rand(24)))), 'mac');
  });

  it('every length outside [MIN_PACKET_LEN, MAX_PACKET_LEN] is size, checked before the version', () => {
    const lengths = [
      ...Array.from({ length: MIN_PACKET_LEN }, (_, i) => i),
      MAX_PACKET_LEN + 1,
      MAX_PACKET_LEN + 2,
      600,
      1280,
      1500,
      9000,
      65507,
    ];
    for (const n of lengths) {
      for (const first of [PROTOCOL_VERSION, 0x00, 0xff]) {
        const b = rand(n);
        if (n > 0) b[0] = first;
        assert.equal(code(splitPacket(b)), 'size', `length ${n}`);
        assert.equal(code(openPacket(keys, b)), 'size', `length ${n}`);
      }
    }
    // a real packet cut short or padded out is size too
    const pkt = sealPacket(keys, { ...base, accesses: [] }, rand(24));
    assert.equal(code(openPacket(keys, pkt.subarray(0, pkt.length - 1))), 'size');
    assert.equal(code(openPacket(keys, concat(pkt, new Uint8Array(MAX_PACKET_LEN + 1 - pkt.length)))), 'size');
  });

  it('the bounds themselves pass the size stage', () => {
    for (const n of [MIN_PACKET_LEN, MIN_PACKET_LEN + 1, MAX_PACKET_LEN - 1, MAX_PACKET_LEN]) {
      const b = rand(n);
      b[0] = PROTOCOL_VERSION;
      assert.equal(code(splitPacket(b)), 'ok', `length ${n}`);
      assert.equal(code(openPacket(keys, b)), 'mac', `length ${n}`);
      b[0] = 0x02;
      assert.equal(code(splitPacket(b)), 'version', `length ${n}`);
    }
  });

  it('the key id must be the id of the timestamp inside (else malformed)', () => {
    const payload = encodePayload(base);
    const e = epochOf(base.timestamp);
    assert.equal(code(openPacket(keys, sealRaw(keys, payload, e))), 'ok');
    for (const other of [e - 1, e + 1, e - 60, 0])
      assert.equal(code(openPacket(keys, sealRaw(keys, payload, other))), 'malformed');
  });
});

describe('fuzzing: hostile bytes never throw, only codes', () => {
  const WIRE = new Set(['ok', 'size', 'version', 'mac', 'malformed']);

  it('2000 random buffers through splitPacket, decodePayload and openPacket', () => {
    for (let i = 0; i < 2000; i++) {
      const len = i % 4 === 0 ? Math.floor(Math.random() * 1600) : Math.floor(Math.random() * 200);
      const b = rand(len);
      if (i % 2 === 0 && len > 0) b[0] = PROTOCOL_VERSION;
      let results: string[] = [];
      assert.doesNotThrow(
        () => {
          results = [code(splitPacket(b)), code(decodePayload(b)), code(openPacket(keys, b))];
        },
        `input ${Buffer.from(b).toString('hex')}`,
      );
      for (const r of results) assert.ok(WIRE.has(r), r);
      assert.notEqual(results[2], 'ok'); // no forgery by chance
    }
  });

  it('authentic packets around random plaintexts decode or are malformed, never throw', () => {
    const e = epochOf(NOW);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 13, maxLength: 400 }), fc.boolean(), (pt, plausible) => {
        if (plausible) {
          // a valid-looking head so the parser gets past the fixed fields more often
          pt.set(basePayload.subarray(0, 12));
          pt[8] = 1 + (pt[12]! & 1);
          pt[11] = pt[13]! % 4;
        }
        let r = '';
        assert.doesNotThrow(() => {
          r = code(openPacket(keys, sealRaw(keys, pt, e)));
        });
        assert.ok(r === 'ok' || r === 'malformed', r);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('TLV extensions', () => {
  const withExt = (...ext: number[]): Uint8Array => concat(basePayload, Uint8Array.from(ext));
  const expected = canonical(base);

  it('padding (type 0) and unknown non-critical types (< 0x80) are skipped', () => {
    const cases: [string, Uint8Array][] = [
      ['empty padding', withExt(0, 0)],
      ['padding', withExt(0, 10, ...new Array<number>(10).fill(0))],
      ['max-length padding', withExt(0, 255, ...new Array<number>(255).fill(0xaa))],
      ['unknown 0x02', withExt(0x02, 3, 1, 2, 3)],
      ['unknown 0x42', withExt(0x42, 0)],
      ['unknown 0x7f', withExt(0x7f, 2, 0xff, 0xff)],
      ['several', withExt(0x10, 1, 9, 0, 2, 0, 0, 0x7f, 1, 0x80)],
    ];
    for (const [what, pt] of cases) {
      assert.deepStrictEqual(mustDecode(pt), expected, what);
      const o = openPacket(keys, sealRaw(keys, pt, epochOf(base.timestamp)));
      assert.ok(o.ok, `${what}: ${code(o)}`);
      assert.deepStrictEqual(o.value, expected, what);
    }
  });

  it('an unknown critical type (>= 0x80) is malformed', () => {
    for (const t of [0x80, 0x81, 0xc0, 0xfe, 0xff]) {
      assert.equal(code(decodePayload(withExt(t, 0))), 'malformed', `type ${t}`);
      assert.equal(code(decodePayload(withExt(t, 2, 0, 0))), 'malformed', `type ${t}`);
      assert.equal(code(decodePayload(withExt(0, 1, 0, t, 1, 5))), 'malformed', `type ${t} after padding`);
      assert.equal(code(openPacket(keys, sealRaw(keys, withExt(t, 0), epochOf(base.timestamp)))), 'malformed');
    }
  });

  it('type 1 is the prefix request: IPv4 length, IPv6 length, 0 = not asked (issue 10)', () => {
    assert.deepStrictEqual(mustDecode(withExt(0x01, 2, 24, 0)), { ...expected, prefix4: 24 });
    assert.deepStrictEqual(mustDecode(withExt(0x01, 2, 0, 64)), { ...expected, prefix6: 64 });
    assert.deepStrictEqual(mustDecode(withExt(0x01, 2, 32, 128)), { ...expected, prefix4: 32, prefix6: 128 });
    assert.deepStrictEqual(mustDecode(withExt(0x01, 2, 0, 0)), expected);
    assert.deepStrictEqual(mustDecode(withExt(0, 1, 0, 0x01, 2, 16, 48, 0x42, 0)), {
      ...expected,
      prefix4: 16,
      prefix6: 48,
    });
    // the encoder writes exactly that TLV after the address
    const pt = encodePayload({ ...base, prefix4: 24, prefix6: 64 });
    assert.equal(Buffer.from(pt.subarray(basePayload.length)).toString('hex'), '01021840');
    assert.deepStrictEqual(encodePayload({ ...base, prefix4: undefined }), basePayload);
    const o = openPacket(keys, sealPacket(keys, { ...base, prefix6: 56 }, rand(24)));
    assert.ok(o.ok);
    assert.equal(o.value.prefix6, 56);
  });

  it('a prefix request of another length, out of range or given twice is malformed', () => {
    const cases: [string, Uint8Array][] = [
      ['length 1', withExt(0x01, 1, 24)],
      ['length 3', withExt(0x01, 3, 24, 64, 0)],
      ['IPv4 33', withExt(0x01, 2, 33, 0)],
      ['IPv4 255', withExt(0x01, 2, 255, 0)],
      ['IPv6 129', withExt(0x01, 2, 0, 129)],
      ['twice', withExt(0x01, 2, 24, 0, 0x01, 2, 24, 0)],
      ['truncated', withExt(0x01, 2, 24)],
    ];
    for (const [what, pt] of cases) assert.equal(code(decodePayload(pt)), 'malformed', what);
  });

  it('the encoder refuses prefix lengths the TLV cannot carry', () => {
    for (const bad of [{ prefix4: 0 }, { prefix4: 33 }, { prefix6: 0 }, { prefix6: 129 }, { prefix4: 2.5 }])
      assert.throws(() => encodePayload({ ...base, ...bad }), RangeError, JSON.stringify(bad));
  });

  it('a truncated TLV is malformed', () => {
    const cases: [string, Uint8Array][] = [
      ['type only', withExt(0x42)],
      ['padding type only', withExt(0)],
      ['value short by one', withExt(0x42, 3, 1, 2)],
      ['value missing', withExt(0x00, 1)],
      ['second TLV truncated', withExt(0x42, 1, 7, 0x43)],
      ['length 255, 254 bytes', withExt(0, 255, ...new Array<number>(254).fill(0))],
    ];
    for (const [what, pt] of cases) {
      assert.equal(code(decodePayload(pt)), 'malformed', what);
      assert.equal(code(openPacket(keys, sealRaw(keys, pt, epochOf(base.timestamp)))), 'malformed', what);
    }
  });
});

describe('malformed payloads', () => {
  /** ts(8) type(1) duration(2) count(1) accesses family [addr] — built by hand. */
  const head = (type: number, count: number): number[] => [...basePayload.subarray(0, 8), type, 0, 30, count];

  it('anything shorter than 13 bytes', () => {
    for (let n = 0; n < MIN_PAYLOAD_LEN; n++)
      assert.equal(code(decodePayload(basePayload.subarray(0, n))), 'malformed', `length ${n}`);
    assert.equal(code(decodePayload(bytes(...head(1, 0), 0))), 'ok');
  });

  it('a type byte other than 1 (open) or 2 (close)', () => {
    for (let t = 0; t < 256; t++) {
      const r = code(decodePayload(bytes(...head(t, 0), 0)));
      assert.equal(r, t === 1 || t === 2 ? 'ok' : 'malformed', `type ${t}`);
    }
    assert.equal(code(openPacket(keys, sealRaw(keys, bytes(...head(3, 0), 0), epochOf(NOW)))), 'malformed');
  });

  it('a protocol other than 6 (tcp) or 17 (udp)', () => {
    for (let p = 0; p < 256; p++) {
      const r = decodePayload(bytes(...head(1, 1), p, 0, 22, 0));
      assert.equal(code(r), p === 6 || p === 17 ? 'ok' : 'malformed', `proto ${p}`);
      if (r.ok) assert.deepEqual(r.value.accesses, [{ proto: p === 6 ? 'tcp' : 'udp', port: 22 }]);
    }
  });

  it('port 0', () => {
    assert.equal(code(decodePayload(bytes(...head(1, 1), 6, 0, 0, 0))), 'malformed');
    assert.equal(code(decodePayload(bytes(...head(1, 2), 6, 0, 22, 17, 0, 0, 0))), 'malformed');
    assert.equal(code(decodePayload(bytes(...head(1, 1), 6, 0xff, 0xff, 0))), 'ok');
  });

  it('an access count above 32, or more accesses than bytes', () => {
    const accesses = (n: number): number[] => Array.from({ length: n }, () => [17, 0, 53]).flat();
    assert.equal(mustDecode(bytes(...head(1, 32), ...accesses(32), 0)).accesses.length, 32);
    for (const n of [33, 34, 100, 255])
      assert.equal(code(decodePayload(bytes(...head(1, n), ...accesses(n), 0))), 'malformed', `count ${n}`);
    assert.equal(code(decodePayload(bytes(...head(1, 2), 6, 0, 22, 0))), 'malformed'); // count 2, one access + family
    assert.equal(code(decodePayload(bytes(...head(1, 1), 6, 0, 22))), 'malformed'); // family byte missing
  });

  it('an address family other than 0, 4, 6, or a short address', () => {
    for (let f = 0; f < 256; f++) {
      const addr = f === 4 ? [192, 0, 2, 1] : f === 6 ? new Array<number>(16).fill(1) : [];
      const r = code(decodePayload(bytes(...head(1, 0), f, ...addr)));
      assert.equal(r, f === 0 || f === 4 || f === 6 ? 'ok' : 'malformed', `family ${f}`);
    }
    assert.equal(code(decodePayload(bytes(...head(1, 0), 4, 192, 0, 2))), 'malformed');
    assert.equal(code(decodePayload(bytes(...head(1, 0), 6, ...new Array<number>(15).fill(1)))), 'malformed');
    assert.equal(mustDecode(bytes(...head(1, 0), 4, 192, 0, 2, 1)).allowAddress, '192.0.2.1');
  });

  it('a timestamp beyond 2^53 - 1', () => {
    const ts = (hex: string): Uint8Array => concat(Buffer.from(hex, 'hex'), basePayload.subarray(8));
    assert.equal(mustDecode(ts('001fffffffffffff')).timestamp, Number.MAX_SAFE_INTEGER);
    for (const h of ['0020000000000000', '8000000000000000', 'ffffffffffffffff'])
      assert.equal(code(decodePayload(ts(h))), 'malformed', h);
  });
});
