/**
 * The known-answer vectors (test/vectors/knock-v1.json) through the daemon's own receive path — Spak1Format and
 * Verifier with the keys of the accept cases configured — so the vectors and the server cannot drift apart.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fromHex } from '../../shared/bytes.js';
import { parseKey } from '../../shared/keys.js';
import { ReplayGuard } from '../../shared/replay.js';
import { parseConfig } from '../../server/config.js';
import { Spak1Format } from '../../server/formats/spak1.js';
import { Verifier } from '../../server/verify.js';
import { configText } from '../../harness/config.js';

interface Case {
  name: string;
  key: string;
  now_ms: number;
  window_s: number;
  packet_hex: string;
  expect:
    | {
        result: 'accept';
        request: {
          type: string;
          duration_s: number;
          accesses: { proto: string; port: number }[];
          allow_address: string | null;
          prefix4?: number;
          prefix6?: number;
        };
      }
    | { result: 'reject'; reason: string };
}

const file = JSON.parse(readFileSync(new URL('../vectors/knock-v1.json', import.meta.url), 'utf8')) as {
  cases: Case[];
};
const acceptKeys = [...new Set(file.cases.filter((c) => c.expect.result === 'accept').map((c) => c.key))];
const protect = ['tcp/22', 'tcp/443', 'udp/51820'];

function verifier(windowS: number): Verifier {
  const config = parseConfig(
    configText({
      protect,
      window: windowS,
      maxDuration: 3600,
      clients: acceptKeys.map((k, i) => {
        const p = parseKey(k);
        assert.ok(p.ok);
        // the prefix case (open-prefix-request) asks for /24 and /64: within these caps
        return { name: `client${i}`, key: p.key, open: protect, max_prefix4: 24, max_prefix6: 64 };
      }),
    }),
    'vectors.toml',
  );
  return new Verifier({
    formats: [new Spak1Format(config.clients, windowS * 1000)],
    replay: new ReplayGuard({ windowMs: windowS * 1000 }),
    defaultDuration: 30,
  });
}

describe('vectors through the server receive path', () => {
  for (const c of file.cases) {
    test(`${c.name}: ${c.expect.result === 'accept' ? 'accept' : `reject ${c.expect.reason}`}`, () => {
      const pkt = fromHex(c.packet_hex);
      assert.ok(pkt);
      const v = verifier(c.window_s).verify(pkt, '203.0.113.50', c.now_ms);
      if (c.expect.result === 'reject') {
        assert.equal(v.ok, false);
        assert.equal((v as { code: string }).code, c.expect.reason);
        return;
      }
      assert.ok(v.ok, `rejected: ${JSON.stringify(v)}`);
      const want = c.expect.request;
      assert.equal(v.decision.type, want.type);
      // the source is IPv4: a prefix4 request grants its network, 203.0.113.0/24
      const address = want.allow_address ?? '203.0.113.50';
      if (want.prefix4 !== undefined && want.allow_address === null) {
        assert.equal(v.decision.address, '203.0.113.0');
        assert.equal(v.decision.prefix, want.prefix4);
      } else {
        assert.equal(v.decision.address, address);
        assert.equal(v.decision.prefix, undefined);
      }
      const expectAccesses =
        want.accesses.length > 0
          ? want.accesses
          : protect.map((a) => ({ proto: a.split('/')[0], port: Number(a.split('/')[1]) }));
      assert.deepEqual(v.decision.accesses, expectAccesses);
      assert.equal(v.decision.duration, want.duration_s === 0 ? 30 : want.duration_s);
    });
  }
});
