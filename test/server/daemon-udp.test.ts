/**
 * The daemon with its REAL UDP listener on loopback (127.0.0.1 and ::1, port 0 → an ephemeral port; no root), the
 * fake firewall and the real clock: a knock sent with node:dgram opens a grant, junk is counted, the receive buffer
 * is raised and reported, the reject summary carries the socket's kernel drops read from /proc.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { describe, test } from 'node:test';
import { type Config, parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import { openUdpListener } from '../../server/listener.js';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { logSink } from '../helpers/logsink.js';

const ALICE = keyOf(1);
const TCP22 = { proto: 'tcp', port: 22 } as const;

function configOn(address: string): Config {
  const c = parseConfig(configText({ clients: [{ name: 'alice', key: ALICE, open: ['tcp/22'] }] }), 'udp.toml');
  // port 0 is not a valid config value; the test asks the kernel for an ephemeral port
  return { ...c, listen: { ...c.listen, address, port: 0, receiveBuffer: 1 << 20 } };
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function sendTo(
  family: 'udp4' | 'udp6',
  address: string,
  port: number,
  datagrams: readonly Uint8Array[],
): Promise<void> {
  const s = createSocket(family);
  try {
    for (const d of datagrams) await new Promise((r, j) => s.send(d, port, address, (e) => (e ? j(e) : r(undefined))));
  } finally {
    s.close();
  }
}

for (const [family, address, source] of [
  ['udp4', '127.0.0.1', 4],
  ['udp6', '::1', 6],
] as const) {
  describe(`daemon on a real UDP socket, ${address}`, () => {
    test('a knock opens a grant for the sender; junk is counted; the summary has the kernel drops', async () => {
      const backend = new FakeBackend();
      const sink = logSink();
      // loopback is never granted (issue 11): let the knock name a documentation address instead
      const daemon = new Daemon({
        config: configOn(address),
        backend,
        log: sink.log,
        warmUp: false,
        broadcasts: new Set(),
      });
      await daemon.start();
      try {
        const start = sink.events('start')[0];
        const m = /:(\d+)$/.exec(daemon.bound ?? '');
        assert.ok(m, daemon.bound);
        const port = Number(m[1]);
        assert.ok(port > 0);
        // Linux reports double what it grants, up to 2 × net.core.rmem_max
        assert.ok(typeof start?.receive_buffer === 'number' && start.receive_buffer > 0);
        const allow = source === 4 ? '192.0.2.10' : '2001:db8::10';
        await sendTo(family, address, port, [
          buildPacket(ALICE, { type: 'open', accesses: [TCP22], duration: 0, allowAddress: allow }, Date.now()).bytes,
        ]);
        await until('the grant', () => backend.held.length === 1);
        assert.deepEqual(
          backend.held.map((g) => [g.family, g.address, g.owner]),
          [[source, allow, 'alice']],
        );
        // a knock for the loopback sender itself is refused as `address`
        await sendTo(family, address, port, [
          buildPacket(ALICE, { type: 'open', accesses: [TCP22], duration: 0 }, Date.now()).bytes,
        ]);
        await sendTo(family, address, port, [new Uint8Array(3), new Uint8Array(600), new Uint8Array(100).fill(7)]);
        await until(
          'the rejects',
          () => Object.values(daemon.rejects.totals()).reduce((a, b) => a + (b ?? 0), 0) === 4,
        );
        assert.deepEqual(daemon.rejects.totals(), { address: 1, size: 2, version: 1 });
        daemon.flushRejectSummary();
        const s = sink.events('rejects')[0];
        assert.equal(s?.total, 4);
        assert.equal(s?.drops, 0, 'the /proc reader found this socket (no drops on an idle loopback)');
      } finally {
        await daemon.stop();
      }
    });
  });
}

test('a port in use is one ERR_SPA_LISTEN line, with errno words', async () => {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  try {
    const port = s.address().port;
    await assert.rejects(
      openUdpListener({ address: '127.0.0.1', port, onMessage: () => undefined, onError: () => undefined }),
      (e: Error & { code?: string }) =>
        e.code === 'ERR_SPA_LISTEN' && e.message === `cannot listen on udp 127.0.0.1:${port}: address already in use`,
    );
  } finally {
    s.close();
  }
});

test('each datagram reaches the daemon as a plain Uint8Array over the same bytes, not a Buffer (server/warmup.ts)', async () => {
  let got: Uint8Array | undefined;
  let from = '';
  const l = await openUdpListener({
    address: '127.0.0.1',
    port: 0,
    onMessage: (buf, source) => {
      got = buf;
      from = source;
    },
    onError: () => undefined,
  });
  const s = createSocket('udp4');
  try {
    await new Promise<void>((r) => s.send(Buffer.from([1, 2, 3, 250]), l.port ?? 0, '127.0.0.1', () => r()));
    for (let i = 0; i < 100 && got === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(got, 'received');
    assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype, 'the map the warm-up warmed, not a Buffer');
    assert.deepEqual([...got], [1, 2, 3, 250]);
    assert.equal(from, '127.0.0.1');
  } finally {
    s.close();
    await l.close();
  }
});
