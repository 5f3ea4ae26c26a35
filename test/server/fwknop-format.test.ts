/**
 * server/formats/fwknop.ts and the fwknop client config, through the one verify path (time window → replay →
 * policy), with packets the REAL fwknop client builds at test time (`fwknop -T -B FILE`, never sent).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { configText, keyOf } from '../../harness/config.js';
import { fwknopClientToml, fwknopKeyGen, fwknopPacket } from '../../harness/fwknop.js';
import { parseConfig } from '../../server/config.js';
import { FwknopFormat } from '../../server/formats/fwknop.js';
import { Spak1Format } from '../../server/formats/spak1.js';
import { Verifier } from '../../server/verify.js';
import { deriveKeys } from '../../shared/crypto.js';
import { ReplayGuard } from '../../shared/replay.js';
import { sealPacket } from '../../shared/wire.js';

const BOB = fwknopKeyGen();
const CAROL = fwknopKeyGen();
const NATIVE = keyOf(1);
const text =
  configText({
    protect: ['tcp/22', 'tcp/2222', 'udp/53'],
    clients: [{ name: 'alice', key: NATIVE, open: ['tcp/22'] }],
  }) +
  fwknopClientToml({ name: 'bob', keys: BOB, open: ['tcp/22', 'tcp/2222'], sources: ['10.0.0.0/8'] }) +
  fwknopClientToml({ name: 'carol', keys: CAROL, open: ['tcp/22'], requireSourceAddress: true, digest: 'sha512' });
const config = parseConfig(text, 'test.toml');

function verifier(replay = new ReplayGuard({ windowMs: 60_000 })) {
  return new Verifier({
    formats: [new Spak1Format(config.clients, 60_000), new FwknopFormat(config.clients)],
    replay,
    defaultDuration: 30,
  });
}

const SRC = '10.1.0.2';
function real(keys = BOB, extra: string[] = ['-A', 'tcp/22', '-a', SRC]) {
  const p = fwknopPacket(keys, extra);
  return { buf: Buffer.from(p.text, 'latin1'), now: Number(p.dump.Timestamp) * 1000 };
}

describe('fwknop packets on the spak1 port: one verify path', () => {
  test('-a X grants X; the -f client timeout is the duration; -s means the packet source', () => {
    const a = real(BOB, ['-A', 'tcp/22', '-a', '10.9.9.9']);
    const v = verifier().verify(a.buf, SRC, a.now);
    assert.ok(v.ok, JSON.stringify(v));
    assert.deepEqual(
      { client: v.decision.client, address: v.decision.address, source: v.decision.source, d: v.decision.duration },
      { client: 'bob', address: '10.9.9.9', source: SRC, d: 30 },
    );
    const f = real(BOB, ['-A', 'tcp/2222', '-s', '-f', '45']);
    const w = verifier().verify(f.buf, SRC, f.now);
    assert.ok(w.ok, JSON.stringify(w));
    assert.equal(w.decision.address, SRC);
    assert.equal(w.decision.duration, 45);
    assert.deepEqual(w.decision.accesses, [{ proto: 'tcp', port: 2222 }]);
  });

  test('spak1 and fwknop clients side by side', () => {
    const v = verifier();
    const now = Date.now();
    const n = v.verify(
      sealPacket(deriveKeys(NATIVE), { type: 'open', timestamp: now, accesses: [], duration: 0 }, new Uint8Array(24)),
      SRC,
      now,
    );
    assert.ok(n.ok && n.decision.client === 'alice');
    const c = real(CAROL, ['-A', 'tcp/22', '-a', SRC, '--hmac-digest-type', 'sha512']);
    const r = v.verify(c.buf, SRC, c.now);
    assert.ok(r.ok && r.decision.client === 'carol', JSON.stringify(r));
  });

  test('reject reasons: wrong key, flipped byte, replay, port outside policy, source, stale, NAT, command', () => {
    const v = verifier();
    const wrong = real(fwknopKeyGen());
    assert.deepEqual(v.verify(wrong.buf, SRC, wrong.now), { ok: false, code: 'mac' });
    const good = real();
    const flipped = Buffer.from(good.buf);
    flipped[50] = flipped[50] === 0x41 ? 0x42 : 0x41;
    assert.deepEqual(v.verify(flipped, SRC, good.now), { ok: false, code: 'mac' });
    assert.ok(v.verify(good.buf, SRC, good.now).ok);
    assert.deepEqual(v.verify(good.buf, SRC, good.now), { ok: false, code: 'replay', client: 'bob' });
    const port = real(BOB, ['-A', 'tcp/23', '-a', SRC]);
    assert.deepEqual(v.verify(port.buf, SRC, port.now), { ok: false, code: 'policy', client: 'bob' });
    const outside = real();
    assert.deepEqual(v.verify(outside.buf, '192.0.2.1', outside.now), { ok: false, code: 'source', client: 'bob' });
    const late = real(BOB, ['-A', 'tcp/22', '-a', SRC, '--time-offset-plus', '600']);
    assert.deepEqual(v.verify(late.buf, SRC, late.now - 600_000), {
      ok: false,
      code: 'stale',
      client: 'bob',
      offsetMs: 600_000,
    });
    const nat = real(BOB, ['-A', 'tcp/22', '-a', SRC, '-N', '192.168.1.2:22']);
    assert.deepEqual(v.verify(nat.buf, SRC, nat.now), { ok: false, code: 'fwknop-nat' });
    const cmd = real(BOB, ['-C', 'id', '-a', SRC]);
    assert.deepEqual(v.verify(cmd.buf, SRC, cmd.now), { ok: false, code: 'fwknop-command' });
    assert.deepEqual(v.verify(Buffer.from(`U2FsdGVkX1${good.buf}`), SRC, good.now), { ok: false, code: 'version' });
  });

  test('require_source_address refuses -s (0.0.0.0) and accepts -a', () => {
    const s = real(CAROL, ['-A', 'tcp/22', '-s', '--hmac-digest-type', 'sha512']);
    assert.deepEqual(verifier().verify(s.buf, SRC, s.now), { ok: false, code: 'source-required', client: 'carol' });
    const a = real(CAROL, ['-A', 'tcp/22', '-a', SRC, '--hmac-digest-type', 'sha512']);
    assert.ok(verifier().verify(a.buf, SRC, a.now).ok);
  });
});

test('the replay id is a replay-log id (server/replay-file.ts: [A-Za-z0-9:_-]) for every packet', () => {
  const f = new FwknopFormat(config.clients);
  for (let i = 0; i < 8; i++) {
    const p = real();
    const r = f.authenticate(p.buf, p.now);
    assert.ok(r.ok);
    assert.match(r.value.replayId, /^fwknop:[A-Za-z0-9_-]{43}$/);
  }
});

describe('fwknop client config', () => {
  const base = configText({ protect: ['tcp/22'] });
  const bad = (extra: string, re: RegExp) => assert.throws(() => parseConfig(base + extra, 'c.toml'), re);
  test('both keys required, checked, and only for format = "fwknop"', () => {
    const k = fwknopKeyGen();
    bad('[[client]]\nname = "x"\nformat = "fwknop"\nopen = ["tcp/22"]\n', /key_base64: is required/);
    bad(
      `[[client]]\nname = "x"\nformat = "fwknop"\nkey_base64 = "${k.keyB64}"\nopen = ["tcp/22"]\n`,
      /hmac_key_base64: is required/,
    );
    bad(
      `[[client]]\nname = "x"\nformat = "fwknop"\nkey_base64 = "!!"\nhmac_key_base64 = "${k.hmacB64}"\nopen = ["tcp/22"]\n`,
      /key_base64: KEY_BASE64 is not base64/,
    );
    bad(
      `[[client]]\nname = "x"\nkey = "spak1_x"\nkey_base64 = "${k.keyB64}"\nopen = ["tcp/22"]\n`,
      /only for format = "fwknop"/,
    );
    bad(fwknopClientToml({ name: 'x', keys: k, open: ['tcp/22'], digest: 'sha999' }), /hmac_digest/);
    bad(
      fwknopClientToml({ name: 'x', keys: k, open: ['tcp/22'] }) +
        fwknopClientToml({ name: 'y', keys: k, open: ['tcp/22'] }),
      /same key as client "x"/,
    );
    const c = parseConfig(base + fwknopClientToml({ name: 'x', keys: k, open: ['tcp/22'] }), 'c.toml');
    const x = c.clients.find((cl) => cl.name === 'x');
    assert.equal(x?.fwknop?.digest, 'sha256');
    assert.ok(c.inlineKeys.includes('x'), 'the config then holds secrets (0600 rule)');
  });
});
