/**
 * `spa-knock HOST --sequence …` (client/sequence.ts): parsing, usage errors, and what reaches the wire on loopback
 * (a UDP listener sees exactly one 1-byte datagram per udp step, in order). The real peers (knockd, spa-knockd's
 * kernel rules) are in test/e2e/classic.test.ts.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { SpaError } from '../../shared/errors.js';
import { formatSequence, parseSequence, sendSequence } from '../../client/sequence.js';
import { CLIENT, runTs } from '../../harness/run.js';

const usage = (e: unknown): boolean => e instanceof SpaError && e.code === 'ERR_SPA_USAGE';

describe('--sequence parsing', () => {
  test('ports are tcp, PORT:udp is udp; formatted back as knockd writes them', () => {
    const s = parseSequence('8881, 7777:tcp,9991:udp');
    assert.deepEqual(s, [
      { proto: 'tcp', port: 8881 },
      { proto: 'tcp', port: 7777 },
      { proto: 'udp', port: 9991 },
    ]);
    assert.equal(formatSequence(s), '8881,7777,9991:udp');
  });
  test('anything else is a usage error naming --sequence', () => {
    for (const bad of ['', '8881,', '0', '65536', 'tcp/22', '80:sctp', '1,,2']) {
      assert.throws(
        () => parseSequence(bad),
        (e: unknown) => usage(e) && /--sequence/.test((e as Error).message),
        bad,
      );
    }
    assert.throws(() => parseSequence(Array.from({ length: 65 }, (_, i) => i + 1).join(',')), usage);
  });
});

describe('--sequence on the wire (loopback)', () => {
  test('one datagram of one byte 0x00 per udp step, in order; tcp steps reach the listener', async () => {
    const got: { port: number; bytes: string }[] = [];
    const socks = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<ReturnType<typeof createSocket>>((resolve) => {
            const s = createSocket('udp4');
            s.bind(0, '127.0.0.1', () => resolve(s));
          }),
      ),
    );
    for (const s of socks) s.on('message', (m) => got.push({ port: s.address().port, bytes: m.toString('hex') }));
    let syns = 0;
    const srv = createServer((c) => {
      syns++;
      c.destroy();
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const tcpPort = (srv.address() as { port: number }).port;
    const [a, b] = socks.map((s) => s.address().port) as [number, number];
    await sendSequence(
      [
        { proto: 'udp', port: a },
        { proto: 'tcp', port: tcpPort },
        { proto: 'udp', port: b },
        { proto: 'udp', port: a },
      ],
      '127.0.0.1',
      4,
      5,
    );
    await new Promise((r) => setTimeout(r, 100));
    for (const s of socks) s.close();
    srv.close();
    assert.deepEqual(got, [
      { port: a, bytes: '00' },
      { port: b, bytes: '00' },
      { port: a, bytes: '00' },
    ]);
    assert.ok(syns <= 1, 'at most one connection from one tcp step');
  });
});

describe('spa-knock --sequence command line', () => {
  const cases: [string[], RegExp][] = [
    [['127.0.0.1', '--sequence', '1,x'], /--sequence: "x" is not a step/],
    [['127.0.0.1', '--sequence', '1,2', '--close'], /--sequence cannot be used with --close/],
    [['127.0.0.1', '--sequence', '1,2', '--open', 'tcp/22'], /--sequence cannot be used with --open/],
    [['127.0.0.1', '--sequence', '1,2', '--delay', '-1'], /--delay/],
    [['127.0.0.1', '--delay', '5'], /--delay needs --sequence/],
    [['127.0.0.1', '-6', '--sequence', '1,2'], /IPv4 address but -6/],
  ];
  for (const [args, re] of cases) {
    test(`${args.join(' ')}: exit 2, one line`, async () => {
      const r = await runTs(CLIENT, args);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    });
  }
  test('sends and says what it sent (--json too)', async () => {
    const r = await runTs(CLIENT, ['127.0.0.1', '--sequence', '9,9:udp', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { host: '127.0.0.1', address: '127.0.0.1', sequence: '9,9:udp' });
  });
});
