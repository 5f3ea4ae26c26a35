/**
 * server/ratelimit.ts: token buckets with a fixed-size table (issue 9), driven by a hand-held clock; the /64 key of
 * IPv6 sources; the limiter's place in the verifier (after the key-id lookup, before the MAC) and the per-client
 * limit (before the replay record).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReplayGuard } from '../../shared/replay.js';
import { randomBytes } from 'node:crypto';
import { parseCidr } from '../../shared/address.js';
import { buildPacket } from '../../client/request.js';
import { generateKey } from '../../shared/keys.js';
import { configText } from '../../harness/config.js';
import { type ClientConfig, parseConfig } from '../../server/config.js';
import { Spak1Format } from '../../server/formats/spak1.js';
import { SourceLimiter, TokenBuckets, sourceKey } from '../../server/ratelimit.js';
import { Verifier } from '../../server/verify.js';

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);

describe('TokenBuckets', () => {
  test('a burst, then one per 1/rate seconds', () => {
    const b = new TokenBuckets({ rate: 10, burst: 3, capacity: 10 });
    assert.deepEqual(
      [1, 2, 3, 4].map(() => b.take('a', T0)),
      [true, true, true, false],
    );
    assert.equal(b.take('a', T0 + 50), false, 'half a token is not a token');
    assert.equal(b.take('a', T0 + 100), true, 'one token after 100 ms at 10/s');
    assert.equal(b.take('a', T0 + 100), false);
    // a long idle spell refills up to the burst, not beyond
    assert.deepEqual(
      [1, 2, 3, 4].map(() => b.take('a', T0 + 60_000)),
      [true, true, true, false],
    );
  });

  test('keys are independent: one drained bucket does not touch another', () => {
    const b = new TokenBuckets({ rate: 1, burst: 1, capacity: 10 });
    assert.equal(b.take('flooder', T0), true);
    assert.equal(b.take('flooder', T0), false);
    assert.equal(b.take('victim', T0), true);
  });

  test('a clock that steps back refills nothing and does not throw', () => {
    const b = new TokenBuckets({ rate: 1000, burst: 1, capacity: 10 });
    assert.equal(b.take('a', T0), true);
    assert.equal(b.take('a', T0 - 60_000), false);
    assert.equal(b.take('a', T0 + 1), true, 'and time going forward again refills from the last time seen');
  });

  test('memory is bounded: never more than capacity buckets, whatever the number of keys', () => {
    const b = new TokenBuckets({ rate: 10, burst: 5, capacity: 64 });
    for (let i = 0; i < 100_000; i++) b.take(`k${i}`, T0 + i);
    assert.equal(b.size, 64);
    assert.ok(b.evictions >= 100_000 - 64);
  });

  test('eviction prefers refilled buckets: forged one-off sources do not buy a busy flooder a fresh burst', () => {
    const b = new TokenBuckets({ rate: 1, burst: 2, capacity: 16 });
    let t = T0;
    // the flooder drains its bucket and keeps it drained (one take per ms)
    assert.equal(b.take('flooder', t), true);
    assert.equal(b.take('flooder', t), true);
    // forged sources, one packet each, many times the table size; each then refills in 1 s
    for (let i = 0; i < 1000; i++) {
      t += 1;
      b.take(`forged${i}`, t);
      assert.equal(b.take('flooder', t), false, `flooder still limited after ${i} forged sources`);
      t += 1000; // the forged ones refill; the flooder's bucket is drained again right after
      b.take('flooder', t);
      b.take('flooder', t);
    }
  });

  test('with no refilled bucket in the table the oldest goes (the table never grows)', () => {
    const b = new TokenBuckets({ rate: 0.001, burst: 1, capacity: 4 });
    for (let i = 0; i < 4; i++) assert.equal(b.take(`k${i}`, T0), true);
    assert.equal(b.take('new', T0), true);
    assert.equal(b.size, 4);
  });

  test('bad options are refused', () => {
    assert.throws(() => new TokenBuckets({ rate: 0, burst: 1, capacity: 1 }), RangeError);
    assert.throws(() => new TokenBuckets({ rate: 1, burst: 0, capacity: 1 }), RangeError);
    assert.throws(() => new TokenBuckets({ rate: 1, burst: 1, capacity: 0 }), RangeError);
  });
});

describe('sourceKey', () => {
  test('IPv4 as is, IPv4-mapped as IPv4, a zone dropped', () => {
    assert.equal(sourceKey('203.0.113.9'), '203.0.113.9');
    assert.equal(sourceKey('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(sourceKey('::FFFF:203.0.113.9'), '203.0.113.9');
  });

  test('IPv6 by its /64: every address of one /64 shares a bucket, and spellings agree', () => {
    const k = sourceKey('2001:db8:1:2::1');
    assert.equal(k, '6:2001:db8:1:2');
    for (const a of [
      '2001:db8:1:2:ffff:ffff:ffff:ffff',
      '2001:0db8:0001:0002:0:0:0:9',
      '2001:DB8:1:2:a:b:c:d',
      '2001:db8:1:2::1%eth0',
    ])
      assert.equal(sourceKey(a), k, a);
    assert.notEqual(sourceKey('2001:db8:1:3::1'), k);
    assert.equal(sourceKey('fe80::1%vcli'), '6:fe80:0:0:0');
    assert.equal(sourceKey('::1'), '6:0:0:0:0');
    assert.equal(sourceKey('2001:db8::'), '6:2001:db8:0:0');
    assert.equal(sourceKey('1:2:3:4:5:6:7:8'), '6:1:2:3:4');
    assert.equal(sourceKey('1:2:3:4:5:6:1.2.3.4'), '6:1:2:3:4');
  });

  test('SourceLimiter: a /64 is one source', () => {
    const l = new SourceLimiter({ rate: 1, burst: 2, capacity: 100 });
    assert.equal(l.admit('2001:db8:1:2::1', T0), true);
    assert.equal(l.admit('2001:db8:1:2::2', T0), true);
    assert.equal(l.admit('2001:db8:1:2::3', T0), false, 'a third address of the same /64');
    assert.equal(l.admit('2001:db8:1:3::1', T0), true, 'another /64');
  });

  test('SourceLimiter: scopes are separate buckets (fwknop junk forged with an address spends no spak1 token)', () => {
    const l = new SourceLimiter({ rate: 1, burst: 1, capacity: 100 });
    assert.equal(l.admit('192.0.2.1', T0, 'fwknop|'), true);
    assert.equal(l.admit('192.0.2.1', T0, 'fwknop|'), false);
    assert.equal(l.admit('192.0.2.1', T0), true);
  });
});

function cidr(t: string) {
  const r = parseCidr(t);
  if (!r.ok) throw new Error(r.reason);
  return r.cidr;
}

describe('the limiters in the verifier', () => {
  const key = generateKey();
  const alice: ClientConfig = {
    name: 'alice',
    format: 'spak1',
    key,
    open: [{ proto: 'tcp', port: 22 }],
    sources: [cidr('0.0.0.0/0')],
    maxDuration: 60,
    maxGrants: 16,
    requireSourceAddress: false,
  };

  function verifier(o: { source?: SourceLimiter; client?: TokenBuckets } = {}) {
    const replay = new ReplayGuard({ windowMs: 60_000, initial: [], floor: 0 });
    const asked: string[] = [];
    const v = new Verifier({
      formats: [new Spak1Format([alice], 60_000)],
      replay,
      defaultDuration: 30,
      ...(o.source
        ? {
            sourceLimit: {
              admit: (s: string, now: number) => {
                asked.push(s);
                return o.source?.admit(s, now) ?? true;
              },
            },
          }
        : {}),
      ...(o.client ? { clientLimit: { take: (c: string, now: number) => o.client?.take(c, now) ?? true } } : {}),
    });
    return { v, replay, asked };
  }

  const knock = (at = T0) => buildPacket(key, { type: 'open', accesses: [], duration: 0 }, at).bytes;

  test('junk without a current key id never reaches the limiter: a forged victim source costs the victim nothing', () => {
    const source = new SourceLimiter({ rate: 1, burst: 1, capacity: 100 });
    const { v, asked } = verifier({ source });
    for (let i = 0; i < 1000; i++) {
      const junk = knock();
      junk.set(randomBytes(8), 1); // the key id, right after the version byte
      const r = v.verify(junk, '198.51.100.7', T0);
      assert.equal(r.ok ? 'ok' : r.code, 'unknown-key');
    }
    assert.equal(asked.length, 0);
    const r = v.verify(knock(), '198.51.100.7', T0);
    assert.equal(r.ok, true, 'the victim still gets in');
  });

  test('packets with a current key id spend the source bucket before the MAC: over the rate they are `rate`', () => {
    const source = new SourceLimiter({ rate: 1, burst: 3, capacity: 100 });
    const { v } = verifier({ source });
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) {
      const forged = knock();
      forged[forged.length - 1] = (forged[forged.length - 1] ?? 0) ^ 1; // a bad tag
      const r = v.verify(forged, '198.51.100.8', T0);
      codes.push(r.ok ? 'ok' : r.code);
    }
    assert.deepEqual(codes, ['mac', 'mac', 'mac', 'rate', 'rate']);
    const other = v.verify(knock(), '198.51.100.9', T0);
    assert.equal(other.ok, true, 'another source is not affected');
  });

  test('the per-client limit counts only authentic, allowed, new knocks, and a knock over it is not remembered', () => {
    const client = new TokenBuckets({ rate: 1, burst: 2, capacity: 4 });
    const { v, replay } = verifier({ client });
    const first = knock();
    assert.equal(v.verify(first, '198.51.100.10', T0).ok, true);
    // replays of it do not spend alice's tokens
    for (let i = 0; i < 10; i++) {
      const r = v.verify(first, '198.51.100.10', T0);
      assert.equal(r.ok ? 'ok' : r.code, 'replay');
    }
    assert.equal(v.verify(knock(), '198.51.100.10', T0).ok, true);
    const size = replay.size;
    const over = v.verify(knock(), '198.51.100.10', T0);
    assert.equal(over.ok ? 'ok' : over.code, 'client-rate');
    assert.equal(replay.size, size, 'no replay record for a refused knock');
    assert.equal(v.verify(knock(T0 + 1000), '198.51.100.10', T0 + 1000).ok, true, 'one more after a second');
  });
});

describe('[limit] in the config', () => {
  const base = configText();

  test('defaults, and the values of the docs/config.md example', () => {
    assert.deepEqual(parseConfig(base, 't.toml').limit, {
      sourceRate: 20,
      sourceBurst: 40,
      sourceTable: 16384,
      clientRate: 5,
      clientBurst: 20,
      firewallQueue: 1024,
      kernelPrefilter: true,
    });
    const c = parseConfig(
      configText({
        extra:
          '[limit]\nsource_rate = 1\nsource_burst = 2\nsource_table = 3\nclient_rate = 4\nclient_burst = 5\nfirewall_queue = 6\nkernel_prefilter = false',
      }),
      't.toml',
    );
    assert.deepEqual(c.limit, {
      sourceRate: 1,
      sourceBurst: 2,
      sourceTable: 3,
      clientRate: 4,
      clientBurst: 5,
      firewallQueue: 6,
      kernelPrefilter: false,
    });
  });

  test('zero, fractions and unknown keys are refused with key and line', () => {
    const err = (extra: string) => {
      try {
        parseConfig(configText({ extra }), 't.toml');
      } catch (e) {
        return (e as Error).message;
      }
      return 'parsed';
    };
    assert.match(err('[limit]\nsource_rate = 0'), /line \d+: limit\.source_rate: /);
    assert.match(err('[limit]\nclient_burst = 1.5'), /limit\.client_burst: must be a whole number/);
    assert.match(err('[limit]\nfirewall_queue = 2000000'), /limit\.firewall_queue: /);
    assert.match(err('[limit]\nrate = 5'), /limit: unknown key "rate"/);
    assert.match(err('[limit]\nkernel_prefilter = 1'), /limit\.kernel_prefilter: /);
  });
});
