/**
 * Prefix grants (issue 10) in server/policy.ts and the config keys behind them: `max_prefix4` / `max_prefix6` caps
 * (refused, not clamped), `sources` must hold the whole prefix, special-purpose blocks never, /32 and /128 are the
 * one-address grant, and each family takes its own length. Pure: config text in, decisions out.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseIp } from '../../shared/address.js';
import type { KnockRequest } from '../../shared/wire.js';
import { type ClientConfig, parseConfig } from '../../server/config.js';
import { decide } from '../../server/policy.js';
import { keyOf } from '../../harness/config.js';
import { formatKey } from '../../shared/keys.js';
import { SpaError } from '../../shared/errors.js';

function client(lines: string[] = [], n = 1): ClientConfig {
  const text = [
    'state_dir = "/tmp/spa-knock-test-state"',
    '[firewall]',
    'backend = "nftables"',
    'protect = ["tcp/22"]',
    '[[client]]',
    'name = "alice"',
    `key = "${formatKey(keyOf(n))}"`,
    'open = ["tcp/22"]',
    ...lines,
    '',
  ].join('\n');
  const c = parseConfig(text, 'test.toml').clients[0];
  assert.ok(c);
  return c;
}

const REQ: KnockRequest = { type: 'open', timestamp: 0, accesses: [], duration: 0 };
const OPTS = { defaultDuration: 30 };
const ip = (t: string) => {
  const a = parseIp(t);
  assert.ok(a, t);
  return a;
};
const run = (c: ClientConfig, src: string, over: Partial<KnockRequest> = {}) =>
  decide(c, { ...REQ, ...over }, ip(src), OPTS);
const grantOf = (r: ReturnType<typeof run>) =>
  r.ok ? [r.decision.family, r.decision.address, r.decision.prefix] : r.code;

describe('config: max_prefix4 / max_prefix6', () => {
  test('default 32 / 128 (read back as such); a cap within range is kept', () => {
    const d = client();
    assert.equal(d.maxPrefix4, 32);
    assert.equal(d.maxPrefix6, 128);
    const c = client(['max_prefix4 = 24', 'max_prefix6 = 56']);
    assert.equal(c.maxPrefix4, 24);
    assert.equal(c.maxPrefix6, 56);
  });

  test('out of range or not whole: one-line ERR_SPA_CONFIG naming the key', () => {
    for (const line of [
      'max_prefix4 = 15',
      'max_prefix4 = 33',
      'max_prefix6 = 31',
      'max_prefix6 = 129',
      'max_prefix4 = 24.5',
      'max_prefix6 = "64"',
    ]) {
      assert.throws(
        () => client([line]),
        (e: unknown) =>
          e instanceof SpaError &&
          e.code === 'ERR_SPA_CONFIG' &&
          e.message.includes(line.split(' ')[0] as string) &&
          !e.message.includes('\n'),
        line,
      );
    }
  });
});

describe('policy: prefix requests', () => {
  const capped = client(['max_prefix4 = 24', 'max_prefix6 = 64']);

  test('within the cap: the network of the source at /N', () => {
    assert.deepEqual(grantOf(run(capped, '198.51.100.77', { prefix4: 24 })), [4, '198.51.100.0', 24]);
    assert.deepEqual(grantOf(run(capped, '198.51.100.77', { prefix4: 28 })), [4, '198.51.100.64', 28]);
    assert.deepEqual(grantOf(run(capped, '2001:db8:1:2:a:b:c:d', { prefix6: 64 })), [6, '2001:db8:1:2::', 64]);
    assert.deepEqual(grantOf(run(capped, '2001:db8:1:2:a:b:c:d', { prefix6: 96 })), [6, '2001:db8:1:2:a:b::', 96]);
  });

  test('each family takes its own length; /32 and /128 are the one-address grant', () => {
    assert.deepEqual(grantOf(run(capped, '198.51.100.77', { prefix6: 64 })), [4, '198.51.100.77', undefined]);
    assert.deepEqual(grantOf(run(capped, '2001:db8::5', { prefix4: 24 })), [6, '2001:db8::5', undefined]);
    assert.deepEqual(grantOf(run(capped, '198.51.100.77', { prefix4: 32 })), [4, '198.51.100.77', undefined]);
    assert.deepEqual(grantOf(run(capped, '2001:db8::5', { prefix6: 128 })), [6, '2001:db8::5', undefined]);
    assert.deepEqual(grantOf(run(client(), '198.51.100.77', { prefix4: 32 })), [4, '198.51.100.77', undefined]);
  });

  test('wider than the cap is refused, not clamped (prefix); the default cap allows no prefix at all', () => {
    assert.equal(grantOf(run(capped, '198.51.100.77', { prefix4: 23 })), 'prefix');
    assert.equal(grantOf(run(capped, '2001:db8::5', { prefix6: 48 })), 'prefix');
    assert.equal(grantOf(run(client(), '198.51.100.77', { prefix4: 31 })), 'prefix');
    assert.equal(grantOf(run(client(), '2001:db8::5', { prefix6: 127 })), 'prefix');
  });

  test('the allow-address is the one whose network is granted', () => {
    const r = run(capped, '192.0.2.1', { prefix4: 24, allowAddress: '203.0.113.200' });
    assert.deepEqual(grantOf(r), [4, '203.0.113.0', 24]);
    assert.ok(r.ok && r.decision.source === '192.0.2.1');
  });

  test('sources must hold the whole prefix, not just the address', () => {
    const c = client(['max_prefix4 = 16', 'max_prefix6 = 48', 'sources = ["198.51.100.0/25", "2001:db8:1::/56"]']);
    assert.deepEqual(grantOf(run(c, '198.51.100.7', { prefix4: 25 })), [4, '198.51.100.0', 25]);
    assert.deepEqual(grantOf(run(c, '198.51.100.7', { prefix4: 26 })), [4, '198.51.100.0', 26]);
    assert.equal(grantOf(run(c, '198.51.100.7', { prefix4: 24 })), 'source');
    assert.equal(grantOf(run(c, '198.51.100.7', { prefix4: 16 })), 'source');
    assert.deepEqual(grantOf(run(c, '2001:db8:1::9', { prefix6: 64 })), [6, '2001:db8:1::', 64]);
    assert.equal(grantOf(run(c, '2001:db8:1::9', { prefix6: 48 })), 'source');
  });

  test('a prefix that holds special-purpose addresses is refused (address); the subnet broadcast is not a reason', () => {
    const c = client(['max_prefix4 = 16', 'max_prefix6 = 32']);
    // the source 10.0.0.1 is grantable; its /16 is too; sources allow everything by default
    assert.deepEqual(grantOf(run(c, '10.0.0.1', { prefix4: 16 })), [4, '10.0.0.0', 16]);
    // 0.0.0.0/8 "this network": the address 0.x is refused already; a prefix of an allow-address next to it is fine
    assert.deepEqual(grantOf(run(c, '1.0.0.1', { prefix4: 16 })), [4, '1.0.0.0', 16]);
    // 255.255.1.1 may be granted alone, but its /16 holds the limited broadcast 255.255.255.255
    assert.deepEqual(grantOf(run(c, '192.0.2.1', { allowAddress: '255.255.1.1' })), [4, '255.255.1.1', undefined]);
    assert.equal(grantOf(run(c, '192.0.2.1', { prefix4: 16, allowAddress: '255.255.1.1' })), 'address');
    // IPv6: 0:0:1::1 may be granted, and its /48; its /32 (::/32) holds ::/96 (unspecified, loopback, IPv4-compatible)
    assert.deepEqual(grantOf(run(c, '192.0.2.1', { prefix6: 48, allowAddress: '0:0:1::1' })), [6, '0:0:1::', 48]);
    assert.equal(grantOf(run(c, '192.0.2.1', { prefix6: 32, allowAddress: '0:0:1::1' })), 'address');
    // this host's subnet broadcast inside the prefix: granted (no packet comes from a broadcast address)
    const r = decide(c, { ...REQ, prefix4: 24 }, ip('192.0.2.7'), { ...OPTS, broadcasts: new Set(['192.0.2.255']) });
    assert.deepEqual(grantOf(r), [4, '192.0.2.0', 24]);
  });
});
