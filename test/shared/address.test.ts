/**
 * shared/address.ts and the access helpers of shared/access.ts: the one implementation of address syntax,
 * canonical form (RFC 5952), IPv4-mapped handling, CIDR blocks, grantability and grant identity.
 */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { accessListDiff, dedupeAccesses, isPort, toAccess } from '../../shared/access.js';
import {
  type IpAddress,
  canonicalIp,
  cidrContains,
  cidrsOverlap,
  grantKeyString,
  networkOf,
  ungrantablePrefixReason,
  hostPort,
  inAnyCidr,
  ipFamilyOf,
  ipFromBytes,
  ipToBytes,
  isStrictIp,
  parseCidr,
  parseIp,
  parseIpOfFamily,
  subnetBroadcasts,
  ungrantableReason,
} from '../../shared/address.js';

const must = (text: string) => {
  const a = parseIp(text);
  assert.ok(a, text);
  return a;
};

describe('address syntax', () => {
  it('is strict: no IPv4 shorthands or octal, no zones, no junk', () => {
    for (const ok of [
      '1.2.3.4',
      '0.0.0.0',
      '255.255.255.255',
      '::',
      '::1',
      '2001:db8::1',
      '::ffff:192.0.2.1',
      'FE80::1',
    ]) {
      assert.equal(isStrictIp(ok), true, ok);
    }
    for (const bad of [
      '010.0.0.1',
      '1',
      '1.2.3',
      '01.2.3.4',
      '1.2.3.04',
      '1.2.3.4.5',
      '256.1.1.1',
      'fe80::1%eth0',
      '::ffff:010.1.1.1',
      'gg::1',
      '',
      ' 1.2.3.4',
      'localhost',
      '1.2.3.4/32',
    ]) {
      assert.equal(isStrictIp(bad), false, bad);
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  it('writes the canonical form: RFC 5952 §4 for IPv6, IPv4-mapped becomes IPv4', () => {
    const cases: [string, 4 | 6, string][] = [
      ['2001:DB8:0:0:1:0:0:1', 6, '2001:db8::1:0:0:1'], // §4.2.3: the first of two equal zero runs is compressed
      ['2001:db8:0:0:0:0:2:1', 6, '2001:db8::2:1'],
      ['2001:db8:0:1:1:1:1:1', 6, '2001:db8:0:1:1:1:1:1'], // §4.2.2: one 16-bit zero field is not compressed
      ['0:0:0:0:0:0:0:1', 6, '::1'],
      ['::ffff:192.0.2.1', 4, '192.0.2.1'],
      ['::FFFF:c000:0201', 4, '192.0.2.1'],
      ['192.0.2.1', 4, '192.0.2.1'],
      ['::10.0.0.1', 6, '::a00:1'], // IPv4-compatible (RFC 4291 §2.5.5.1) is not IPv4-mapped: it stays IPv6
    ];
    for (const [text, family, canonical] of cases) {
      const a = must(text);
      assert.equal(a.family, family, text);
      assert.equal(a.text, canonical, text);
      assert.equal(canonicalIp(text), canonical, text);
    }
  });

  it('strips a zone only when asked (a socket may report fe80::1%eth0)', () => {
    assert.equal(parseIp('fe80::1%eth0'), undefined);
    assert.equal(parseIp('fe80::1%eth0', { zone: 'strip' })?.text, 'fe80::1');
    assert.equal(parseIp('1.2.3.4%eth0', { zone: 'strip' }), undefined);
  });

  it('of a family: a mapped address is family 4, never 6', () => {
    assert.equal(parseIpOfFamily(4, '::ffff:10.0.0.1')?.text, '10.0.0.1');
    assert.equal(parseIpOfFamily(6, '::ffff:10.0.0.1'), undefined);
    assert.equal(parseIpOfFamily(6, '2001:db8::1')?.text, '2001:db8::1');
    assert.equal(parseIpOfFamily(4, 42), undefined);
  });

  it('bytes round-trip; host:port brackets IPv6', () => {
    for (const t of ['192.0.2.7', '2001:db8::7']) assert.equal(ipFromBytes(ipToBytes(must(t)))?.text, t);
    assert.equal(ipFromBytes(new Uint8Array(5)), undefined);
    assert.equal(
      ipFromBytes(new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]))?.text,
      '10.0.0.1',
    );
    assert.equal(hostPort('2001:db8::1', 22), '[2001:db8::1]:22');
    assert.equal(hostPort('10.0.0.1', 22), '10.0.0.1:22');
  });
});

describe('grantability', () => {
  it('refuses unspecified, loopback, multicast, broadcast, 0/8 and IPv4-compatible addresses', () => {
    for (const t of [
      '0.0.0.0',
      '::',
      '127.0.0.1',
      '127.8.9.10',
      '::1',
      '224.0.0.1',
      '239.1.2.3',
      'ff02::1',
      '255.255.255.255',
      '0.1.2.3',
      '::10.0.0.1',
    ]) {
      assert.ok(ungrantableReason(must(t)), t);
    }
  });

  it('accepts ordinary unicast, private and documentation addresses', () => {
    for (const t of ['192.0.2.1', '10.0.0.1', '203.0.113.9', '2001:db8::1', 'fd00::1', 'fe80::1', '::ffff:192.0.2.1']) {
      assert.equal(ungrantableReason(must(t)), undefined, t);
    }
  });

  it('finds the directed broadcast of each IPv4 subnet of the host, none for /31 and /32', () => {
    const b = subnetBroadcasts({
      eth0: [
        { family: 'IPv4', address: '10.251.7.1', netmask: '255.255.255.0' },
        { family: 'IPv6', address: 'fd00::1', netmask: 'ffff:ffff:ffff:ffff::' },
      ],
      eth1: [{ family: 4, address: '192.0.2.9', netmask: '255.255.255.248' }],
      p2p: [{ family: 'IPv4', address: '198.51.100.1', netmask: '255.255.255.254' }],
      lo: [{ family: 'IPv4', address: '127.0.0.1', netmask: '255.0.0.0' }],
    });
    assert.deepEqual([...b].sort(), ['10.251.7.255', '127.255.255.255', '192.0.2.15']);
  });
});

describe('CIDR blocks', () => {
  it('parses blocks and bare addresses into canonical text', () => {
    const cases: [string, string][] = [
      ['203.0.113.0/24', '203.0.113.0/24'],
      ['0.0.0.0/0', '0.0.0.0/0'],
      ['::/0', '::/0'],
      ['2001:DB8::/32', '2001:db8::/32'],
      ['192.0.2.7', '192.0.2.7/32'],
      ['2001:db8::7', '2001:db8::7/128'],
    ];
    for (const [t, c] of cases) {
      const r = parseCidr(t);
      assert.ok(r.ok, t);
      assert.equal(r.cidr.text, c);
    }
  });

  it('refuses host bits, mapped blocks, zones, bad lengths', () => {
    const hostBits = parseCidr('10.1.2.3/0');
    assert.equal(hostBits.ok, false);
    assert.match(hostBits.ok ? '' : hostBits.reason, /host bits set; the block is 0\.0\.0\.0\/0/);
    for (const t of [
      '10.1.2.3/8',
      '2001:db8::1/32',
      '::ffff:10.0.0.0/104',
      'fe80::/10%eth0',
      '10.0.0.0/33',
      '::/129',
      '10.0.0.0/08',
      '10.0.0.0/',
      '10/8',
      'x',
    ]) {
      assert.equal(parseCidr(t).ok, false, t);
    }
  });

  it('matches within one family only: 0.0.0.0/0 covers no IPv6 address', () => {
    const v4all = parseCidr('0.0.0.0/0');
    const net = parseCidr('2001:db8::/32');
    assert.ok(v4all.ok && net.ok);
    assert.equal(inAnyCidr(must('198.51.100.1'), [v4all.cidr]), true);
    assert.equal(inAnyCidr(must('::ffff:198.51.100.1'), [v4all.cidr]), true);
    assert.equal(inAnyCidr(must('2001:db8::1'), [v4all.cidr]), false);
    assert.equal(inAnyCidr(must('2001:db8:1::1'), [net.cidr]), true);
    assert.equal(inAnyCidr(must('2001:db9::1'), [net.cidr]), false);
  });
});

describe('grant identity and access helpers', () => {
  it('one key string per (family, address, access)', () => {
    assert.equal(
      grantKeyString({ family: 6, address: '2001:db8::1', access: { proto: 'tcp', port: 22 } }),
      '6|2001:db8::1|tcp/22',
    );
  });

  it('isPort is the one port range check', () => {
    for (const p of [1, 22, 65535]) assert.equal(isPort(p), true);
    for (const p of [0, -1, 65536, 22.5, Number.NaN, '22', undefined]) assert.equal(isPort(p), false, String(p));
    assert.deepEqual(toAccess({ proto: 'udp', port: 53, extra: 1 }), { proto: 'udp', port: 53 });
    assert.equal(toAccess({ proto: 'sctp', port: 53 }), undefined);
  });

  it('dedupes in order and compares lists as sets', () => {
    const t22 = { proto: 'tcp', port: 22 } as const;
    const u53 = { proto: 'udp', port: 53 } as const;
    assert.deepEqual(dedupeAccesses([t22, u53, { ...t22 }]), [t22, u53]);
    assert.equal(accessListDiff([u53, t22], [t22, u53, t22]), undefined);
    assert.equal(
      accessListDiff([t22], [t22, u53]),
      'protected list differs: installed [tcp/22], expected [tcp/22, udp/53]',
    );
  });
});

describe('prefixes (issue 10): networkOf, cidrContains, cidrsOverlap, ungrantablePrefixReason, grantKeyString', () => {
  const a = (t: string) => parseIp(t) as IpAddress;
  const c = (t: string) => {
    const r = parseCidr(t);
    assert.ok(r.ok, t);
    return r.cidr;
  };
  it('networkOf clears the host bits; lengths out of range give undefined', () => {
    assert.equal(networkOf(a('10.1.2.3'), 24)?.text, '10.1.2.0/24');
    assert.equal(networkOf(a('10.1.2.3'), 32)?.text, '10.1.2.3/32');
    assert.equal(networkOf(a('2001:db8:1:2:3::4'), 64)?.text, '2001:db8:1:2::/64');
    assert.equal(networkOf(a('10.1.2.3'), 33), undefined);
    assert.equal(networkOf(a('::1'), -1), undefined);
  });
  it('containment and overlap', () => {
    assert.ok(cidrContains(c('10.0.0.0/8'), c('10.1.2.0/24')));
    assert.ok(!cidrContains(c('10.1.2.0/24'), c('10.0.0.0/8')));
    assert.ok(!cidrContains(c('10.0.0.0/8'), c('2001:db8::/32')));
    assert.ok(cidrsOverlap(c('10.1.2.0/24'), c('10.0.0.0/8')));
    assert.ok(!cidrsOverlap(c('10.1.2.0/24'), c('10.1.3.0/24')));
  });
  it('special-purpose blocks', () => {
    assert.equal(ungrantablePrefixReason(c('198.51.100.0/24')), undefined);
    assert.match(ungrantablePrefixReason(c('255.255.0.0/16')) ?? '', /broadcast/);
    assert.match(ungrantablePrefixReason(c('224.0.0.0/3')) ?? '', /multicast/);
    assert.match(ungrantablePrefixReason(c('127.1.0.0/16')) ?? '', /loopback/);
    assert.match(ungrantablePrefixReason(c('::/32')) ?? '', /IPv4-compatible/);
    assert.match(ungrantablePrefixReason(c('ff02::/16')) ?? '', /multicast/);
    assert.equal(ungrantablePrefixReason(c('2001:db8::/32')), undefined);
    assert.match(ungrantablePrefixReason(c('127.0.0.1/32')) ?? '', /loopback/);
  });
  it('the grant key names the prefix; a one-address key stays as it was', () => {
    const access = { proto: 'tcp', port: 22 } as const;
    assert.equal(grantKeyString({ family: 4, address: '10.1.2.0', prefix: 24, access }), '4|10.1.2.0/24|tcp/22');
    assert.equal(grantKeyString({ family: 4, address: '10.1.2.0', access }), '4|10.1.2.0|tcp/22');
  });
});

describe('ipFamilyOf: node:net isIP, without loading node:net for IPv4', () => {
  it('agrees with net.isIP on addresses, near-addresses and junk (seeded)', () => {
    const part = fc.oneof(
      fc.integer({ min: 0, max: 300 }).map(String),
      fc.constantFrom('00', '01', '010', '255', '256', '1e1', '0x1', '-1', '', ' 1'),
    );
    const v4ish = fc.array(part, { minLength: 1, maxLength: 5 }).map((p) => p.join('.'));
    const text = fc.oneof(
      v4ish,
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV6().map((a) => `${a}%eth0`),
      fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%x '.split('')), maxLength: 45 }),
      fc.string(),
    );
    fc.assert(
      fc.property(text, (t) => ipFamilyOf(t) === isIP(t)),
      { seed: 9, numRuns: 5000 },
    );
    for (const t of [
      '127.0.0.1',
      '0.0.0.0',
      '255.255.255.255',
      '::',
      '::1',
      '::ffff:1.2.3.4',
      'fe80::1%lo',
      '1.2.3',
      '01.2.3.4',
      '1.2.3.4\n',
      '',
    ])
      assert.equal(ipFamilyOf(t), isIP(t), JSON.stringify(t));
  });
});
