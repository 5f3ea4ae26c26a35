/**
 * Classic knock sequences in the nftables backend: the rule text, then the shared kernel suite (classic-suite.ts)
 * with the real `knock` client. Run: node --import tsx --test test/server/classic-nft.test.ts (as root).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sequenceRules } from '../../server/firewall/nft-sequences.js';
import { SEED, WEB, classicKernelSuite } from './classic-suite.js';

describe('nft sequence rules (text)', () => {
  test('highest stage first, then reset, then start; knock ports dropped last; both families', () => {
    const r = sequenceRules(SEED);
    assert.equal(r[0], `meta l4proto . th dport { tcp . ${WEB} } return`);
    assert.equal(
      r[1],
      'ip saddr @seq_seed_1_4 meta l4proto tcp th dport 9991 update @allow4 { ip saddr . 6 . 2222 timeout 30s } ' +
        'delete @seq_seed_1_4 { ip saddr } drop',
    );
    assert.equal(r[2], 'ip saddr @seq_seed_1_4 meta l4proto tcp th dport 7777 drop');
    assert.ok(r.includes('ip6 saddr @seq_seed_0_6 delete @seq_seed_0_6 { ip6 saddr }'));
    assert.ok(
      r.includes('meta nfproto ipv6 meta l4proto tcp th dport 8881 update @seq_seed_0_6 { ip6 saddr timeout 1s } drop'),
    );
    assert.equal(r.at(-1), 'meta l4proto . th dport { tcp . 8881, tcp . 7777, tcp . 9991 } drop');
  });
});

classicKernelSuite('nftables', 'classic-nft', 61);
