/**
 * The flood bench's `--trace` breakdown (scripts/bench/flood-trace.ts), on tcpdump text written here: which packets
 * belong to which knock, and the wake / work / probe parts of a slow knock; a trace another datagram restarted is left
 * out rather than trusted.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { breakdown, breakdownText, parseCapture } from '../../scripts/bench/flood-trace.js';

// one knock from .10 and one from .11 (no SYN-ACK: lost), as `tcpdump -n -tt --nano -r` prints them
const CAPTURE = [
  '1000.000100000 IP 10.251.9.10.40000 > 10.251.9.1.62201: UDP, length 82',
  '1000.000200000 IP 10.251.9.10.50001 > 10.251.9.1.22: Flags [S], seq 1, win 64240, length 0',
  '1000.000400000 IP 10.251.9.10.50002 > 10.251.9.1.22: Flags [S], seq 2, win 64240, length 0',
  '1000.005400000 IP 10.251.9.10.50003 > 10.251.9.1.22: Flags [S], seq 3, win 64240, length 0',
  '1000.005450000 IP 10.251.9.1.22 > 10.251.9.10.50003: Flags [S.], seq 9, ack 4, win 65160, length 0',
  '1000.005500000 IP 10.251.9.10.50003 > 10.251.9.1.22: Flags [.], ack 1, win 502, length 0',
  '1000.100000000 IP 10.251.9.11.40001 > 10.251.9.1.62201: UDP, length 82',
  '1000.100100000 IP 10.251.9.11.50004 > 10.251.9.1.22: Flags [S], seq 5, win 64240, length 0',
  '1000.100200000 ARP, Request who-has 10.251.9.11 tell 10.251.9.1, length 28',
  '',
].join('\n');

describe('flood bench --trace', () => {
  test('parseCapture: knock, SYNs and the first SYN-ACK after the knock, per client address', () => {
    const w = parseCapture(CAPTURE, 62201, 22);
    assert.deepEqual([...w.keys()].sort(), ['10.251.9.10', '10.251.9.11']);
    assert.equal(w.get('10.251.9.10')?.knock, 1000.0001);
    assert.deepEqual(w.get('10.251.9.10')?.syns, [1000.0002, 1000.0004, 1000.0054]);
    assert.equal(w.get('10.251.9.10')?.synAck, 1000.00545);
    assert.equal(w.get('10.251.9.11')?.synAck, undefined);
  });

  test('breakdown: the daemon woke 0.3 ms after the knock, worked 0.2 ms; the probe sent no SYN for 5 ms', () => {
    const w = parseCapture(CAPTURE, 62201, 22).get('10.251.9.10');
    const offsetUs = 1_000_000_000 - 5_000_000; // realtime − monotonic
    const at = 1000.0004 * 1e6 - offsetUs; // the handler, on the monotonic clock: 0.3 ms after the knock
    const b = breakdown('10.251.9.10', 6.1, w, { at, triggered: 200 }, offsetUs);
    assert.ok(b);
    assert.ok(Math.abs((b.wakeMs ?? 0) - 0.3) < 1e-6, String(b.wakeMs));
    assert.equal(b.workMs, 0.2);
    assert.ok(Math.abs(b.answeredSynMs - 5.3) < 1e-6, String(b.answeredSynMs));
    assert.ok(Math.abs(b.maxSynGapMs - 5.0) < 1e-6, String(b.maxSynGapMs));
    assert.ok(Math.abs(b.probeRestMs - (6.1 - 5.35)) < 1e-6, String(b.probeRestMs));
    assert.match(breakdownText(b), /^ {2}6\.10 ms: daemon woke {3}0\.30, worked {3}0\.20; .*longest SYN gap {3}5\.00/);
  });

  test('a trace restarted by another datagram (its start after the answered SYN) is left out; a lost knock has none', () => {
    const all = parseCapture(CAPTURE, 62201, 22);
    const late = 1000.006 * 1e6; // offset 0: the handler "started" after the SYN-ACK
    const b = breakdown('10.251.9.10', 6.1, all.get('10.251.9.10'), { at: late, triggered: 100 }, 0);
    assert.equal(b?.wakeMs, undefined);
    assert.equal(b?.workMs, undefined);
    assert.equal(breakdown('10.251.9.11', 3000, all.get('10.251.9.11'), undefined, 0), undefined);
    assert.equal(breakdown('10.251.9.12', 1, undefined, undefined, 0), undefined);
  });
});
