/**
 * server/reject-book.ts: a refused packet is counted by reason, an authenticated `stale` knock's clock offset is noted
 * (with the source's zone stripped), and a replay record that cannot be written is said once, its recovery once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClockSkews } from '../../server/clock-skew.js';
import { RejectBook } from '../../server/reject-book.js';
import { RejectCounter } from '../../server/stats.js';
import { logSink } from '../helpers/logsink.js';

const NOW = Date.UTC(2026, 11, 5, 13, 0, 0);

test('counts by reason, notes stale offsets, logs a failing state write once and its recovery once', () => {
  const rejects = new RejectCounter();
  const skews = new ClockSkews();
  const sink = logSink();
  const book = new RejectBook(rejects, skews, sink.log);
  book.refused({ ok: false, code: 'unknown-key' }, '192.0.2.1', NOW);
  book.refused({ ok: false, code: 'stale', client: 'alice', offsetMs: -95_000 }, 'fe80::1%eth0', NOW);
  for (let i = 0; i < 3; i++)
    book.refused({ ok: false, code: 'state-write', client: 'alice', error: new Error('ENOSPC') }, '192.0.2.1', NOW);
  assert.deepEqual(rejects.drain(), { total: 5, by: { 'unknown-key': 1, stale: 1, 'state-write': 3 } });
  const recent = skews.recent();
  assert.equal(recent.length, 1);
  assert.equal(recent[0]?.client, 'alice');
  assert.equal(recent[0]?.source, 'fe80::1');
  assert.equal(recent[0]?.offsetMs, -95_000);
  assert.equal(sink.events('state-write-error').length, 1, 'said once, not per packet');
  book.accepted();
  book.accepted();
  assert.equal(sink.events('state-write-recovered').length, 1);
  book.refused({ ok: false, code: 'state-write', client: 'alice' }, '192.0.2.1', NOW);
  assert.equal(sink.events('state-write-error').length, 2, 'a new failure after the recovery is said again');
  assert.equal(sink.lines.length, 3, 'nothing else is logged');
});
