/**
 * Classic knock sequences in the iptables backend (the `recent` match): the rule text, then the shared kernel suite
 * (classic-suite.ts) with the real `knock` client. Run: node --import tsx --test test/server/classic-iptables.test.ts
 * (as root).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sequenceChainLines, sequenceMainLines } from '../../server/firewall/iptables-sequences.js';
import { SEED, classicKernelSuite } from './classic-suite.js';

describe('iptables sequence rules (text)', () => {
  test('grants and jumps in the input chain; the sequence chain highest stage first, reset, start, silence', () => {
    const m4 = ' --mask 255.255.255.255 --rsource';
    assert.deepEqual(sequenceMainLines('SPA_KNOCK', 4, [SEED]), [
      `-A SPA_KNOCK -p tcp -m tcp --dport 2222 -m recent --rcheck --seconds 30 --name SPA_KNOCK_seed_open${m4} -j RETURN`,
      '-A SPA_KNOCK -p udp -j SPA_KNOCK_Q0',
      '-A SPA_KNOCK -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j SPA_KNOCK_Q0',
    ]);
    const q = sequenceChainLines('SPA_KNOCK', 6, SEED, 0);
    const m6 = ' --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource';
    assert.equal(q[0], '-A SPA_KNOCK_Q0 -p tcp -m tcp --dport 2280 -j RETURN');
    assert.equal(
      q[1],
      `-A SPA_KNOCK_Q0 -p tcp -m tcp --dport 9991 -m recent --rcheck --seconds 1 --name SPA_KNOCK_seed_1${m6} ` +
        `-m recent --remove --name SPA_KNOCK_seed_1${m6} -m recent --set --name SPA_KNOCK_seed_open${m6} -j DROP`,
    );
    assert.ok(q.includes(`-A SPA_KNOCK_Q0 -m recent --remove --name SPA_KNOCK_seed_0${m6}`));
    assert.equal(q.at(-1), '-A SPA_KNOCK_Q0 -p tcp -m tcp --dport 9991 -j DROP');
  });
});

classicKernelSuite('iptables', 'classic-ipt', 65);
