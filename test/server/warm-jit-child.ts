/**
 * Run by test/server/warm-jit.test.ts under `node --allow-natives-syntax`: a daemon as spa-knockd runs it (its own
 * warm-up, a replay file, real clock and timers; a fake firewall and a listener seam fed as server/listener.ts feeds
 * the daemon: plain Uint8Arrays, fresh source strings), knocks twice (the knocks after which the daemon warms up
 * again), waits for that, then knocks one at a time, 30 ms apart, and prints as JSON whether V8 holds optimized code
 * for the verifier's entry point after each of those.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { REWARM_KNOCKS } from '../../shared/constants.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import type { ListenOptions } from '../../server/listener.js';
import { ReplayFile } from '../../server/replay-file.js';
import { Verifier } from '../../server/verify.js';
import { logSink } from '../helpers/logsink.js';

/** V8's optimization status bit "optimized" (src/runtime/runtime-test.cc, OptimizationStatus::kOptimized). */
const OPTIMIZED = 1 << 4;
const status = new Function('f', 'return %GetOptimizationStatus(f)') as (f: unknown) => number;
/** Knocks after the re-warm, each followed by a look at `verify` (its optimized code inlines the MAC and the rest). */
const KNOCKS = Number(process.argv[2] ?? 6);
const FIRST = REWARM_KNOCKS;
const key = keyOf(7);
const dir = mkdtempSync(join(tmpdir(), 'spak-warm-jit-'));
try {
  const config = parseConfig(
    configText({
      stateDir: dir,
      protect: ['tcp/22'],
      clients: [{ name: 'alice', key, open: ['tcp/22'] }],
      extra: '[limit]\nclient_rate = 1000\nclient_burst = 1000',
    }),
    'warm-jit.toml',
  );
  // every packet made before the daemon starts: the client's code shares functions with the daemon's (the MAC, the
  // cipher), and running it in between would change what V8 saw, which no real daemon does
  const packets = Array.from({ length: FIRST + KNOCKS }, () =>
    Buffer.from(buildPacket(key, { type: 'open', accesses: [{ proto: 'tcp', port: 22 }], duration: 0 }).bytes),
  );
  let onMessage: ListenOptions['onMessage'] | undefined;
  const sink = logSink('info');
  const daemon = new Daemon({
    config,
    backend: new FakeBackend(),
    log: sink.log,
    replayFile: new ReplayFile(dir),
    listen: async (o) => {
      onMessage = o.onMessage;
      return { bound: `127.0.0.1:${o.port}`, close: async () => undefined };
    },
  });
  await daemon.start();
  const knock = async (i: number): Promise<void> => {
    const buf = packets[i] as Buffer; // as node:dgram hands it over, then as the listener passes it on
    onMessage?.(new Uint8Array(buf.buffer, buf.byteOffset, buf.length), ['198', '51', '100', String(10 + i)].join('.'));
    await daemon.settled();
    await new Promise((r) => setTimeout(r, 30));
  };
  for (let i = 0; i < FIRST; i++) await knock(i);
  await new Promise((r) => setTimeout(r, 1000)); // the re-warm, in steps of the event loop
  const optimized: boolean[] = [];
  for (let i = FIRST; i < FIRST + KNOCKS; i++) {
    await knock(i);
    optimized.push((status(Verifier.prototype.verify) & OPTIMIZED) !== 0);
  }
  await daemon.stop();
  process.stdout.write(`${JSON.stringify({ grants: sink.events('grant').length, optimized })}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
