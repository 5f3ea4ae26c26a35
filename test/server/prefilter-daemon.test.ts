/**
 * The daemon's side of the kernel prefilter, in-process (fake clock, fake firewall, a fake counter): the plan it
 * installs carries the prefilter from `[limit]`, the summary line reports the prefilter's drops since the last one
 * (and is written when only the prefilter dropped something), the status reports them since start. The kernel side:
 * test/e2e/prefilter.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configText, keyOf } from '../../harness/config.js';
import { parseConfig } from '../../server/config.js';
import { Daemon, planOf } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { openUdpListener } from '../../server/listener.js';
import { buildStatus, daemonStatus, formatStatus } from '../../server/status.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

function setup(extra = '') {
  const config = parseConfig(
    configText({
      protect: ['tcp/22'],
      port: 62201,
      extra: `[log]\nreject_summary_interval = 10\n${extra}`,
      clients: [{ name: 'alice', key: keyOf(1), open: ['tcp/22'] }],
    }),
    'test.toml',
  );
  const clock = new FakeClock();
  const sink = logSink('info');
  const listen: typeof openUdpListener = async (o) => ({ bound: `[${o.address}]:${o.port}`, close: async () => {} });
  let counter = 1000; // what the kernel counter says (it counts across restarts: the daemon takes its start value)
  const daemon = new Daemon({
    config,
    backend: new FakeBackend(),
    log: sink.log,
    now: clock.now,
    timers: clock,
    listen,
    warmUp: false,
    readPrefilterDrops: async () => counter,
  });
  return { config, daemon, clock, sink, drop: (n: number) => (counter += n) };
}

describe('the daemon and its kernel prefilter', () => {
  test('the plan carries it from [limit]: twice source_rate and source_burst on listen.port; off when asked', () => {
    assert.deepEqual(planOf(setup().config).prefilter, {
      port: 62201,
      rate: 40,
      burst: 80,
      size: 16384,
      timeoutS: 10,
    });
    assert.equal(planOf(setup('[limit]\nkernel_prefilter = false').config).prefilter, undefined);
  });

  test('the summary line has the drops since the last one, and is written for them alone', async () => {
    const { daemon, clock, sink, drop } = setup();
    await daemon.start();
    drop(500);
    await clock.advance(10_000);
    await new Promise((r) => setImmediate(r)); // the counter is read, then the line written
    const lines = sink.lines.filter((l) => l.event === 'rejects');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.prefilter_drops, 500);
    assert.equal(lines[0]?.total, 0);
    await clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(sink.lines.filter((l) => l.event === 'rejects').length, 1, 'nothing new: no line');
    drop(7);
    assert.equal(await daemon.prefilterDrops(), 507, 'since start, not since the kernel counter began');
    const st = daemonStatus(daemon, 0, clock.now(), await daemon.prefilterDrops());
    assert.equal(st.prefilter_drops, 507);
    assert.match(formatStatus(st), /^dropped by the kernel prefilter since start: 507$/m);
    await daemon.stop();
  });

  test('without a prefilter counter: status null, no line in the text', () => {
    const st = buildStatus({ pid: 1, startedAt: 0, backend: 'fake', listen: undefined, grants: [], rejects: {} }, 1000);
    assert.equal(st.prefilter_drops, null);
    assert.doesNotMatch(formatStatus(st), /prefilter/);
  });
});
