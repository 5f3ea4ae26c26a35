import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { concat } from '../../shared/bytes.js';
import { HEADER_LEN, PROTOCOL_VERSION } from '../../shared/constants.js';
import { deriveKeys, epochOf, keyIdFor, macOf, xorStream } from '../../shared/crypto.js';
import { ReplayGuard } from '../../shared/replay.js';
import { type KnockRequest, encodePayload, sealPacket } from '../../shared/wire.js';
import { parseConfig } from '../../server/config.js';
import { Spak1Format } from '../../server/formats/spak1.js';
import { Verifier } from '../../server/verify.js';
import { configText, keyOf } from '../../harness/config.js';

const T0 = Date.UTC(2026, 10, 27, 12, 0, 30); // half-way through a key-id epoch
const ALICE = keyOf(1);
const BOB = keyOf(2);
const config = parseConfig(
  configText({
    protect: ['tcp/22', 'tcp/443', 'udp/53'],
    duration: 30,
    maxDuration: 120,
    clients: [
      { name: 'alice', key: ALICE, open: ['tcp/22', 'tcp/443'] },
      { name: 'bob', key: BOB, open: ['udp/53'], sources: ['192.0.2.0/24', '2001:db8::/32'], max_duration: 60 },
    ],
  }),
  'test.toml',
);

function verifier() {
  const replay = new ReplayGuard({ windowMs: 60_000 });
  return new Verifier({ formats: [new Spak1Format(config.clients, 60_000)], replay, defaultDuration: 30 });
}

let nonceSeq = 0;
function nonce(): Uint8Array {
  return new Uint8Array(24).fill(++nonceSeq & 0xff).map((b, i) => (b + i * 13) & 0xff);
}

function packet(key: Uint8Array, over: Partial<KnockRequest> = {}): Uint8Array {
  const req: KnockRequest = {
    type: 'open',
    timestamp: T0,
    accesses: [{ proto: 'tcp', port: 22 }],
    duration: 0,
    ...over,
  };
  return sealPacket(deriveKeys(key), req, nonce());
}

describe('verify: reject reasons, cheapest first', () => {
  test('a good knock is accepted with the decision the policy makes', () => {
    const v = verifier().verify(packet(ALICE), '203.0.113.9', T0);
    assert.ok(v.ok);
    assert.deepEqual(v.decision, {
      client: 'alice',
      type: 'open',
      family: 4,
      address: '203.0.113.9',
      source: '203.0.113.9',
      accesses: [{ proto: 'tcp', port: 22 }],
      duration: 30,
    });
  });

  test('IPv4-mapped sources from a dual-stack socket are normalised; IPv6 is compressed', () => {
    const v = verifier();
    const a = v.verify(packet(ALICE), '::ffff:198.51.100.7', T0);
    assert.ok(a.ok);
    assert.equal(a.decision.family, 4);
    assert.equal(a.decision.address, '198.51.100.7');
    const b = v.verify(packet(ALICE), '2001:0db8:0000::0001', T0);
    assert.ok(b.ok);
    assert.equal(b.decision.family, 6);
    assert.equal(b.decision.address, '2001:db8::1');
  });

  const cases: [string, () => Uint8Array, string, number?][] = [
    ['empty datagram', () => new Uint8Array(0), 'size'],
    ['too long', () => new Uint8Array(600).fill(1), 'size'],
    ['too short for v1', () => new Uint8Array(40).fill(1), 'size'],
    [
      'unknown version byte',
      () => {
        const p = packet(ALICE);
        p[0] = 2;
        return p;
      },
      'version',
    ],
    [
      'text (not our format)',
      () => new TextEncoder().encode('8QGj3Z4qGx2fVd3lQ0sYbQ8mHhJ5UuNn1p3y8n6zN0gq1f2x'.repeat(3)),
      'version',
    ],
    ['key not configured', () => packet(keyOf(9)), 'unknown-key'],
    [
      'one ciphertext byte flipped',
      () => {
        const p = packet(ALICE);
        p[HEADER_LEN + 3]! ^= 1;
        return p;
      },
      'mac',
    ],
    [
      'one tag byte flipped',
      () => {
        const p = packet(ALICE);
        p[p.length - 1]! ^= 0x80;
        return p;
      },
      'mac',
    ],
    [
      'nonce changed',
      () => {
        const p = packet(ALICE);
        p[10]! ^= 1;
        return p;
      },
      'mac',
    ],
    ['timestamp 61 s old', () => packet(ALICE, { timestamp: T0 - 61_000 }), 'stale'],
    ['timestamp 61 s ahead', () => packet(ALICE, { timestamp: T0 + 61_000 }), 'stale'],
    [
      'timestamp 10 min old: its key id is no longer indexed',
      () => packet(ALICE, { timestamp: T0 - 600_000 }),
      'unknown-key',
    ],
    ['access outside the policy', () => packet(ALICE, { accesses: [{ proto: 'tcp', port: 23 }] }), 'policy'],
    [
      'one of two accesses outside the policy: refused whole',
      () =>
        packet(ALICE, {
          accesses: [
            { proto: 'tcp', port: 22 },
            { proto: 'udp', port: 53 },
          ],
        }),
      'policy',
    ],
    ['source outside the client sources', () => packet(BOB, { accesses: [] }), 'source'],
    [
      'allow-address outside the client sources',
      () => packet(BOB, { accesses: [], allowAddress: '198.51.100.1' }),
      'source',
      1,
    ],
  ];
  for (const [name, make, code, src] of cases) {
    test(`${name} → ${code}`, () => {
      const v = verifier().verify(make(), src === 1 ? '192.0.2.5' : '203.0.113.9', T0);
      assert.equal(v.ok, false);
      assert.equal((v as { code: string }).code, code);
    });
  }

  test('a key id from another epoch than the timestamp inside is malformed', () => {
    // hand-built: valid MAC and encryption, but the clear key id is that of the previous epoch
    const k = deriveKeys(ALICE);
    const header = new Uint8Array(HEADER_LEN);
    header[0] = PROTOCOL_VERSION;
    header.set(keyIdFor(k.id, epochOf(T0) - 1), 1);
    const n = nonce();
    header.set(n, 9);
    const ct = xorStream(k.enc, n, encodePayload({ type: 'open', timestamp: T0, accesses: [], duration: 0 }));
    const auth = concat(header, ct);
    const v = verifier().verify(concat(auth, macOf(k.mac, auth)), '203.0.113.9', T0);
    assert.deepEqual(v, { ok: false, code: 'malformed' });
  });

  test('the same packet twice: accepted once, then replay (no second grant)', () => {
    const v = verifier();
    const p = packet(ALICE);
    assert.equal(v.verify(p, '203.0.113.9', T0).ok, true);
    assert.deepEqual(v.verify(p, '203.0.113.9', T0 + 10), { ok: false, code: 'replay', client: 'alice' });
    assert.deepEqual(v.verify(p, '198.51.100.1', T0 + 50_000), { ok: false, code: 'replay', client: 'alice' });
    // after the window the record may go: the time check refuses it then
    assert.deepEqual(v.verify(p, '203.0.113.9', T0 + 61_000), {
      ok: false,
      code: 'stale',
      client: 'alice',
      offsetMs: -61_000,
    });
  });

  test('a refused packet is not remembered (refused again for the same reason, not as a replay)', () => {
    const v = verifier();
    const p = packet(ALICE, { accesses: [{ proto: 'tcp', port: 23 }] });
    assert.equal((v.verify(p, '203.0.113.9', T0) as { code: string }).code, 'policy');
    assert.equal((v.verify(p, '203.0.113.9', T0) as { code: string }).code, 'policy');
  });

  test('no accesses asked = everything the client may open; durations default and clamp', () => {
    const v = verifier();
    const a = v.verify(packet(ALICE, { accesses: [] }), '203.0.113.9', T0);
    assert.ok(a.ok);
    assert.deepEqual(a.decision.accesses, [
      { proto: 'tcp', port: 22 },
      { proto: 'tcp', port: 443 },
    ]);
    const b = v.verify(packet(ALICE, { duration: 10 }), '203.0.113.9', T0);
    assert.ok(b.ok && b.decision.duration === 10);
    const c = v.verify(packet(ALICE, { duration: 9999 }), '203.0.113.9', T0);
    assert.ok(c.ok && c.decision.duration === 120, 'clamped to grant.max_duration');
    const d = v.verify(packet(BOB, { accesses: [], duration: 9999 }), '192.0.2.5', T0);
    assert.ok(d.ok && d.decision.duration === 60, 'clamped to the client max_duration');
  });

  test('allow-address inside the sources is granted instead of the source', () => {
    const v = verifier().verify(packet(BOB, { accesses: [], allowAddress: '2001:db8::42' }), '192.0.2.5', T0);
    assert.ok(v.ok);
    assert.equal(v.decision.address, '2001:db8::42');
    assert.equal(v.decision.family, 6);
    assert.equal(v.decision.source, '192.0.2.5');
  });

  test('close requests come through as type close', () => {
    const v = verifier().verify(packet(ALICE, { type: 'close' }), '203.0.113.9', T0);
    assert.ok(v.ok && v.decision.type === 'close');
  });

  test('the key-id index follows the clock across epochs', () => {
    const v = verifier();
    for (let i = 0; i < 10; i++) {
      const now = T0 + i * 47_000;
      const r = v.verify(packet(ALICE, { timestamp: now - 20_000 }), '203.0.113.9', now);
      assert.equal(r.ok, true, `step ${i}`);
    }
  });

  test('hostile input never throws', () => {
    const v = verifier();
    const base = packet(ALICE);
    for (let i = 0; i < 3000; i++) {
      const len = i % 7 === 0 ? (i * 37) % 700 : base.length;
      const b = new Uint8Array(len).map(() => (Math.random() * 256) | 0);
      if (i % 2 === 0 && len > 9) b.set(base.subarray(0, 9)); // valid version and key id, random rest
      const r = v.verify(b, '203.0.113.9', T0);
      assert.equal(r.ok, false);
    }
  });

  test('a replay record that cannot be persisted: state-write, not remembered, never thrown', () => {
    let fail = true;
    const replay = new ReplayGuard({
      windowMs: 60_000,
      persist: {
        append: () => {
          if (fail) throw new Error('ENOSPC');
        },
      },
    });
    const v = new Verifier({ formats: [new Spak1Format(config.clients, 60_000)], replay, defaultDuration: 30 });
    const p = packet(ALICE);
    const r = v.verify(p, '203.0.113.9', T0);
    assert.equal(r.ok, false);
    assert.equal((r as { code: string }).code, 'state-write');
    assert.match(String((r as { error?: Error }).error?.message), /ENOSPC/);
    fail = false;
    assert.equal(v.verify(p, '203.0.113.9', T0 + 1).ok, true, 'it was never accepted, so it is not a replay');
    assert.equal((v.verify(p, '203.0.113.9', T0 + 2) as { code: string }).code, 'replay');
  });

  test('ungrantable addresses → address; a source with a zone is stripped of it', () => {
    const v = new Verifier({
      formats: [new Spak1Format(config.clients, 60_000)],
      replay: new ReplayGuard({ windowMs: 60_000 }),
      defaultDuration: 30,
      broadcasts: new Set(['203.0.113.255']),
    });
    for (const allowAddress of [
      '255.255.255.255',
      '127.0.0.1',
      '224.0.0.1',
      '::1',
      'ff02::1',
      '203.0.113.255',
      '0.1.2.3',
    ]) {
      assert.equal(
        (v.verify(packet(ALICE, { allowAddress }), '203.0.113.9', T0) as { code: string }).code,
        'address',
        allowAddress,
      );
    }
    const z = v.verify(packet(ALICE), 'fe80::1%eth0', T0);
    assert.ok(z.ok && z.decision.address === 'fe80::1');
  });
});
