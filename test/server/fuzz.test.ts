/**
 * Fuzzing and properties of the receive path (issue 9, "Security tests"): the REAL verifier (server/verify.ts) with
 * the real formats (spak1 and fwknop side by side on one port, as the daemon runs them) and a real policy parsed
 * from a config text. fast-check with fixed seeds and run counts, so the suite is deterministic and quick.
 *
 * - every single-bit flip of a valid packet (spak1, fwknop from our encoder, and one the REAL fwknop client built) is
 *   refused, with the reason its position implies; the unmodified packet is accepted (the control);
 * - every truncation and extensions by appended bytes are refused by a known reason;
 * - random datagrams (raw bytes, a valid spak1 header with a random rest, base64 text the fwknop format claims) never
 *   throw, never grant, and end in a reason of server/reasons.ts;
 * - authenticated but hostile payloads (a key holder's random plaintext, random TLV extensions) never throw;
 * - time per packet does not grow super-linearly with the datagram's size or its extension count (the
 *   linear-vs-quadratic check of noble-hashes' tests: ratios of the fastest of several rounds, generous margins);
 * - the config loader and the key-file parsers (spak1 and fwknop key files) turn random bytes and mutated files
 *   into one-line SpaErrors, never another exception.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { readFwknopKeyFile } from '../../client/fwknop.js';
import { configText, keyOf } from '../../harness/config.js';
import { fwknopClientToml, fwknopKeyGen, fwknopPacket as realFwknopPacket } from '../../harness/fwknop.js';
import { parseConfig } from '../../server/config.js';
import { loadConfig } from '../../server/config-file.js';
import { FwknopFormat } from '../../server/formats/fwknop.js';
import { Spak1Format } from '../../server/formats/spak1.js';
import { REJECT_REASONS } from '../../server/reasons.js';
import { type Verdict, Verifier } from '../../server/verify.js';
import { concat } from '../../shared/bytes.js';
import { HEADER_LEN, KEY_ID_LEN, MAX_PACKET_LEN, MIN_PACKET_LEN, PROTOCOL_VERSION } from '../../shared/constants.js';
import { deriveKeys, epochOf, keyIdFor, macOf, xorStream } from '../../shared/crypto.js';
import { SpaError } from '../../shared/errors.js';
import { FWKNOP_MAX_LEN, FWKNOP_MIN_LEN, type FwknopKeys, encodePacket } from '../../shared/fwknop/codec.js';
import { readKeyFile } from '../../shared/keyfile.js';
import { formatKey, parseKey } from '../../shared/keys.js';
import { ReplayGuard } from '../../shared/replay.js';
import { type KnockRequest, decodePayload, encodePayload, sealPacket } from '../../shared/wire.js';

const T0 = Date.UTC(2026, 10, 27, 12, 0, 30); // half-way through a key-id epoch
const SRC = '203.0.113.9';
const ALICE = keyOf(1);
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
/** Fixed fwknop keys (deterministic): KEY_BASE64 32 bytes, HMAC_KEY_BASE64 64 bytes. */
const FWK_ENC = keyOf(5);
const FWK_HMAC = concat(keyOf(6), keyOf(7));
const FWK: FwknopKeys = { enc: FWK_ENC, hmac: FWK_HMAC, digest: 'sha256' };

const fwknopTable = (name: string, enc: Uint8Array, hmac: Uint8Array) =>
  [
    '[[client]]',
    `name = "${name}"`,
    'format = "fwknop"',
    `key_base64 = "${b64(enc)}"`,
    `hmac_key_base64 = "${b64(hmac)}"`,
    'open = ["tcp/22"]',
    '',
  ].join('\n');

const CONFIG_TEXT =
  configText({
    protect: ['tcp/22', 'tcp/443', 'udp/53'],
    duration: 30,
    maxDuration: 120,
    clients: [
      { name: 'alice', key: ALICE, open: ['tcp/22', 'tcp/443'] },
      { name: 'bob', key: keyOf(2), open: ['udp/53'], sources: ['192.0.2.0/24'] },
    ],
  }) + fwknopTable('carol', FWK_ENC, FWK_HMAC);
const config = parseConfig(CONFIG_TEXT, 'fuzz.toml');

/** A fresh verifier with both formats, as the daemon builds it. */
function verifier(): Verifier {
  return new Verifier({
    formats: [new Spak1Format(config.clients, 60_000), new FwknopFormat(config.clients)],
    replay: new ReplayGuard({ windowMs: 60_000 }),
    defaultDuration: 30,
  });
}

const KNOWN = new Set<string>(REJECT_REASONS);

/** The verdict of a hostile input: no throw (the call itself), not a grant, a known reason. */
function refused(v: Verdict, what: string): string {
  assert.equal(v.ok, false, `${what}: must not be granted`);
  if (v.ok) throw new Error('unreachable');
  assert.ok(KNOWN.has(v.code), `${what}: unknown reason ${v.code}`);
  return v.code;
}

const OPEN22: KnockRequest = { type: 'open', timestamp: T0, accesses: [{ proto: 'tcp', port: 22 }], duration: 0 };
const NONCE = new Uint8Array(24).map((_, i) => (i * 29 + 3) & 0xff);

function spak1Packet(req: KnockRequest = OPEN22, nonce = NONCE): Uint8Array {
  return sealPacket(deriveKeys(ALICE), req, nonce);
}

/** A packet sealed with alice's key around any plaintext (what a key holder, or a bug in a client, could send). */
function sealRaw(plain: Uint8Array, nonce = NONCE, timestamp = T0): Uint8Array {
  const k = deriveKeys(ALICE);
  const header = new Uint8Array(HEADER_LEN);
  header[0] = PROTOCOL_VERSION;
  header.set(keyIdFor(k.id, epochOf(timestamp)), 1);
  header.set(nonce, 1 + KEY_ID_LEN);
  const body = concat(header, xorStream(k.enc, nonce, plain));
  return concat(body, macOf(k.mac, body));
}

function fwknopPacket(salt = new Uint8Array(8).fill(7), rand = '1234567890123456'): Uint8Array {
  const text = encodePacket(
    {
      user: 'carol',
      timestamp: Math.floor(T0 / 1000),
      allowIp: undefined,
      accesses: [{ proto: 'tcp', port: 22 }],
      timeout: 0,
    },
    FWK,
    salt,
    rand,
  );
  return Buffer.from(text, 'latin1');
}

describe('fuzz: every single-bit flip of a valid packet', () => {
  test('spak1: the packet itself is granted; each of its bit flips is refused by the reason of its position', () => {
    const p = spak1Packet();
    const control = verifier().verify(p, SRC, T0);
    assert.ok(control.ok, `control: the unmodified packet is granted (${JSON.stringify(control)})`);
    const v = verifier(); // one verifier for all flips: a flip that were accepted would also show as replay state
    const counts: Record<string, number> = {};
    for (let bit = 0; bit < p.length * 8; bit++) {
      const f = Uint8Array.from(p);
      f[bit >> 3]! ^= 1 << (bit & 7);
      const code = refused(v.verify(f, SRC, T0), `bit ${bit}`);
      const byte = bit >> 3;
      const expected = byte === 0 ? 'version' : byte <= KEY_ID_LEN ? 'unknown-key' : 'mac';
      assert.equal(code, expected, `bit ${bit} (byte ${byte})`);
      counts[code] = (counts[code] ?? 0) + 1;
    }
    assert.deepEqual(counts, { version: 8, 'unknown-key': 64, mac: (p.length - 1 - KEY_ID_LEN) * 8 });
    assert.ok(v.verify(p, SRC, T0).ok, 'control: after all flips the original still grants (no state was touched)');
  });

  test('fwknop: the packet itself is granted; each of its bit flips is refused (not base64 → version, else mac)', () => {
    const p = fwknopPacket();
    const control = verifier().verify(p, SRC, T0);
    assert.ok(control.ok, `control: the unmodified fwknop packet is granted (${JSON.stringify(control)})`);
    const v = verifier();
    const counts: Record<string, number> = {};
    for (let bit = 0; bit < p.length * 8; bit++) {
      const f = Uint8Array.from(p);
      f[bit >> 3]! ^= 1 << (bit & 7);
      const code = refused(v.verify(f, SRC, T0), `bit ${bit}`);
      assert.ok(code === 'version' || code === 'mac', `bit ${bit}: ${code}`);
      counts[code] = (counts[code] ?? 0) + 1;
    }
    assert.ok((counts.mac ?? 0) > 0 && (counts.version ?? 0) > 0, JSON.stringify(counts));
    assert.ok(v.verify(p, SRC, T0).ok, 'control: the original still grants');
  });

  test('fwknop, a packet of the REAL fwknop client (`fwknop -T`): granted as it is, every bit flip refused', () => {
    const keys = fwknopKeyGen();
    const cfg = parseConfig(
      configText({ clients: [{ name: 'alice', key: ALICE, open: ['tcp/22'] }] }) +
        fwknopClientToml({ name: 'dave', keys, open: ['tcp/22'] }),
      'real.toml',
    );
    const fresh = () =>
      new Verifier({
        formats: [new Spak1Format(cfg.clients, 60_000), new FwknopFormat(cfg.clients)],
        replay: new ReplayGuard({ windowMs: 60_000 }),
        defaultDuration: 30,
      });
    const real = realFwknopPacket(keys, ['-A', 'tcp/22', '-a', SRC]);
    const p = Buffer.from(real.text, 'latin1');
    const now = Number(real.dump.Timestamp) * 1000;
    const control = fresh().verify(p, SRC, now);
    assert.ok(control.ok && control.decision.client === 'dave', `control: granted (${JSON.stringify(control)})`);
    const v = fresh();
    for (let bit = 0; bit < p.length * 8; bit++) {
      const f = Uint8Array.from(p);
      f[bit >> 3]! ^= 1 << (bit & 7);
      const code = refused(v.verify(f, SRC, now), `bit ${bit}`);
      assert.ok(code === 'version' || code === 'mac', `bit ${bit}: ${code}`);
    }
    assert.ok(v.verify(p, SRC, now).ok, 'control: the original still grants');
  });
});

describe('fuzz: truncations and extensions', () => {
  test('every truncation of a spak1 and an fwknop packet is refused (size, version or mac)', () => {
    const v = verifier();
    for (const p of [spak1Packet(), fwknopPacket()]) {
      for (let n = 0; n < p.length; n++) {
        const code = refused(v.verify(p.subarray(0, n), SRC, T0), `first ${n} of ${p.length} bytes`);
        assert.ok(['size', 'version', 'mac'].includes(code), `first ${n} bytes: ${code}`);
      }
    }
  });

  test('appended bytes (1 .. past the largest datagram) are refused: the MAC covers the length', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('spak1', 'fwknop'),
        fc.uint8Array({ minLength: 1, maxLength: FWKNOP_MAX_LEN + 64, size: 'max' }),
        fc.boolean(),
        (which, tail, asBase64) => {
          const p = which === 'spak1' ? spak1Packet() : fwknopPacket();
          const t = asBase64 ? Buffer.from(b64(tail).replace(/=/g, ''), 'latin1') : tail;
          refused(verifier().verify(concat(p, t), SRC, T0), `${which} + ${t.length} bytes`);
        },
      ),
      { seed: 9001, numRuns: 400 },
    );
  });
});

describe('fuzz: random datagrams never throw, never grant', () => {
  const v = verifier();
  const header = spak1Packet().subarray(0, HEADER_LEN);
  const base64Text = fc
    .string({
      unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'),
      minLength: FWKNOP_MIN_LEN,
      maxLength: FWKNOP_MAX_LEN,
      size: 'max',
    })
    .map((s) => Buffer.from(s, 'latin1') as Uint8Array);
  const datagram = fc.oneof(
    fc.uint8Array({ minLength: 0, maxLength: FWKNOP_MAX_LEN + 100, size: 'max' }),
    // a valid version and key id of a configured client: every stage up to the MAC runs
    fc.uint8Array({ minLength: 0, maxLength: MAX_PACKET_LEN, size: 'max' }).map((rest) => concat(header, rest)),
    fc.uint8Array({ minLength: MIN_PACKET_LEN, maxLength: MAX_PACKET_LEN, size: 'max' }).map((b) => {
      b[0] = PROTOCOL_VERSION;
      return b;
    }),
    // text the fwknop format claims: every fwknop client's HMAC runs
    base64Text,
  );

  test('raw bytes, a valid spak1 header with a random rest, base64 text: a known reason, never a grant', () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(datagram, fc.integer({ min: -120_000, max: 120_000 }), (d, dt) => {
        seen.add(refused(v.verify(d, SRC, T0 + dt), `${d.length} bytes`));
      }),
      { seed: 4242, numRuns: 3000 },
    );
    for (const r of ['size', 'version', 'unknown-key', 'mac'])
      assert.ok(seen.has(r), `the runs reached ${r}: ${[...seen]}`);
  });

  test('authenticated hostile payloads (random plaintext under a real key) never throw; a grant only for a payload that decodes', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 13, maxLength: MAX_PACKET_LEN - HEADER_LEN - 32, size: 'max' }),
        fc.uint8Array({ minLength: 24, maxLength: 24 }),
        (plain, nonce) => {
          // a timestamp in the window, so most payloads get past the time check to the parser and the policy
          const pt = Uint8Array.from(plain);
          new DataView(pt.buffer).setBigUint64(0, BigInt(T0));
          const r = v.verify(sealRaw(pt, nonce), SRC, T0); // a repeated nonce may be a `replay`: still a reason
          if (r.ok) assert.ok(decodePayload(pt).ok, 'granted only what parses');
          else assert.ok(KNOWN.has(r.code), r.code);
        },
      ),
      { seed: 77, numRuns: 1500 },
    );
  });

  test('random TLV extensions on a valid payload: critical (type ≥ 0x80) or broken ones refused as malformed, others ignored', () => {
    const ext = fc.record({ type: fc.integer({ min: 0, max: 255 }), data: fc.uint8Array({ maxLength: 40 }) });
    fc.assert(
      fc.property(fc.array(ext, { maxLength: 12, size: 'max' }), fc.integer({ min: 0, max: 3 }), (exts, cut) => {
        let tlv = concat(...exts.map((e) => concat(Uint8Array.of(e.type, e.data.length), e.data)));
        const broken = cut > 0 && tlv.length >= cut;
        if (broken) tlv = tlv.subarray(0, tlv.length - cut);
        const plain = concat(encodePayload(OPEN22), tlv);
        if (HEADER_LEN + plain.length + 32 > MAX_PACKET_LEN) return;
        const r = verifier().verify(sealRaw(plain), SRC, T0);
        const decodes = decodePayload(plain).ok;
        if (exts.some((e) => e.type >= 0x80) && !broken) assert.equal(decodes, false);
        if (decodes) assert.ok(r.ok, `a valid payload with ignorable extensions is granted: ${JSON.stringify(r)}`);
        else assert.deepEqual(r, { ok: false, code: 'malformed' });
      }),
      { seed: 31337, numRuns: 800 },
    );
  });
});

/**
 * For each set of inputs, the fastest of `rounds` passes of `run` over it, in ns per input. The sets take turns in
 * every round, so a burst of load from the other processes of a loaded machine falls on all sizes alike, and the
 * fastest pass of each is the one least disturbed.
 */
function nsPerInput(
  run: (b: Uint8Array) => unknown,
  sets: readonly (readonly Uint8Array[])[],
  rounds: number,
): number[] {
  const best = sets.map(() => Number.POSITIVE_INFINITY);
  for (let r = 0; r < rounds; r++) {
    sets.forEach((inputs, i) => {
      const t = process.hrtime.bigint();
      for (const b of inputs) run(b);
      const ns = Number(process.hrtime.bigint() - t) / inputs.length;
      if (ns < best[i]!) best[i] = ns;
    });
  }
  return best;
}

/**
 * Linear, not quadratic: the time per input at the largest `x` over the time at the smallest is at most `margin` ×
 * the ratio of the two `x` (a quadratic path takes about the square of it). `x` is the hostile dimension: bytes, or
 * extensions. Retried up to 3 times before it fails, so one disturbed measurement on a loaded 2-core machine does not
 * fail it. Returns the figures, for the test's diagnostics.
 */
function assertLinear(
  what: string,
  xs: readonly number[],
  make: (x: number, i: number) => Uint8Array,
  run: (b: Uint8Array) => unknown,
  margin = 3,
): string {
  const sets = xs.map((x) => Array.from({ length: 150 }, (_, i) => make(x, i)));
  nsPerInput(run, sets, 2); // warm up every path
  const growth = xs[xs.length - 1]! / xs[0]!;
  let last = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const t = nsPerInput(run, sets, 15);
    const ratio = t[t.length - 1]! / t[0]!;
    last = `${what}: ${xs.map((x, i) => `${x}→${Math.round(t[i]!)} ns`).join(', ')}; time ×${ratio.toFixed(2)} for input ×${growth.toFixed(1)} (bound ×${(margin * growth).toFixed(1)})`;
    if (ratio <= margin * growth) return last;
  }
  return assert.fail(`time per packet grows faster than the input: ${last}`);
}

describe('fuzz: time per packet grows at most linearly with hostile input', () => {
  const rnd = (n: number, seed: number) => {
    let x = seed * 2654435761 + 1;
    return new Uint8Array(n).map(() => {
      x = (x * 1103515245 + 12345) >>> 0;
      return x >>> 24;
    });
  };
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const v = verifier();
  const verify = (b: Uint8Array) => v.verify(b, SRC, T0);
  // tcp/23 is outside alice's policy: a packet goes through every stage and is refused at the policy, so the same
  // packets can be verified again in every round (no replay record is written)
  const base = encodePayload({ ...OPEN22, accesses: [{ proto: 'tcp', port: 23 }] });
  const withExtensions = (count: number) =>
    concat(
      base,
      new Uint8Array(2 * count).map((_, j) => (j % 2 ? 0 : 0x10)),
    );

  test('base64 junk of 150 .. 1500 bytes through the verifier (the fwknop path: an HMAC over the text)', (t) => {
    const make = (size: number, i: number) => Uint8Array.from(rnd(size, i + 1), (b) => B64.charCodeAt(b & 63));
    t.diagnostic(assertLinear('fwknop junk (bytes)', [150, 500, 1500], make, verify));
  });

  test('a valid spak1 header with a random rest, 80 .. 512 bytes, through the verifier (key id found, HMAC)', (t) => {
    const header = spak1Packet().subarray(0, HEADER_LEN);
    const make = (size: number, i: number) => concat(header, rnd(size - HEADER_LEN, i + 7));
    t.diagnostic(assertLinear('spak1 junk (bytes)', [80, 256, 512], make, verify));
  });

  test('authenticated packets with 1 .. 200 TLV extensions, through the verifier (bytes on the wire)', (t) => {
    const sizes = [1, 20, 200].map((n) => HEADER_LEN + base.length + 2 * n + 32);
    const make = (size: number, i: number) => {
      const n = (size - HEADER_LEN - base.length - 32) / 2;
      return sealRaw(withExtensions(n), rnd(24, i + 1000 * n));
    };
    t.diagnostic(assertLinear('TLV packets (bytes)', sizes, make, verify));
  });

  test('the payload parser alone, 10 .. 200 extensions (no crypto to hide a quadratic walk)', (t) => {
    const make = (n: number) => withExtensions(n);
    const figures = assertLinear('decodePayload (extensions)', [10, 50, 200], make, (b) => {
      if (!decodePayload(b).ok) throw new Error('the payload must parse');
    });
    t.diagnostic(figures);
  });
});

describe('fuzz: the config loader and the key-file parsers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spak-fuzz-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let seq = 0;
  const file = (content: Uint8Array | string): string => {
    const f = join(dir, `f${++seq}`);
    writeFileSync(f, content, { mode: 0o600 });
    chmodSync(f, 0o600);
    return f;
  };
  /** `fn` returns, or throws a SpaError with one of `codes` and a one-line message; anything else fails. */
  const oneLine = (fn: () => unknown, codes: readonly string[], what: string): 'ok' | 'error' => {
    try {
      fn();
      return 'ok';
    } catch (e) {
      if (!(e instanceof SpaError)) throw new Error(`${what}: not a SpaError: ${String((e as Error)?.stack ?? e)}`);
      assert.ok(codes.includes(e.code), `${what}: ${e.code}`);
      assert.ok(!/[\r\n]/.test(e.message), `${what}: message is not one line: ${JSON.stringify(e.message)}`);
      assert.ok(e.message.length > 0 && e.message.length < 2000, `${what}: message length ${e.message.length}`);
      return 'error';
    }
  };
  /** Random bytes, the valid text with bits flipped, or with a slice cut out or repeated. */
  const mutated = (valid: string) => {
    const bytes = Buffer.from(valid, 'utf8');
    return fc.oneof(
      fc.uint8Array({ maxLength: 3000, size: 'max' }),
      fc.array(fc.nat({ max: bytes.length * 8 - 1 }), { minLength: 1, maxLength: 6 }).map((bits) => {
        const b = Uint8Array.from(bytes);
        for (const bit of bits) b[bit >> 3]! ^= 1 << (bit & 7);
        return b;
      }),
      fc.tuple(fc.nat({ max: bytes.length }), fc.nat({ max: bytes.length })).map(([a, c]) => {
        const [x, y] = a < c ? [a, c] : [c, a];
        return concat(bytes.subarray(0, x), bytes.subarray(y));
      }),
      fc
        .tuple(fc.nat({ max: bytes.length }), fc.nat({ max: 200 }))
        .map(([a, n]) => concat(bytes.subarray(0, a), bytes.subarray(a, a + n), bytes.subarray(a))),
    );
  };

  test('config: random and mutated files → a config or a one-line ERR_SPA_CONFIG*, never another exception', () => {
    assert.equal(
      oneLine(() => loadConfig(file(CONFIG_TEXT)), [], 'control'),
      'ok',
      'control: the valid config loads',
    );
    const outcomes = { ok: 0, error: 0 };
    fc.assert(
      fc.property(mutated(CONFIG_TEXT), (b) => {
        const f = file(b);
        outcomes[oneLine(() => loadConfig(f), ['ERR_SPA_CONFIG', 'ERR_SPA_CONFIG_PERMS'], `config ${f}`)]++;
        rmSync(f);
        // the same text through the parser alone (no file rules)
        oneLine(() => parseConfig(Buffer.from(b).toString('utf8'), 'fuzz.toml'), ['ERR_SPA_CONFIG'], 'parseConfig');
      }),
      { seed: 2026, numRuns: 400 },
    );
    assert.ok(outcomes.error > 0, JSON.stringify(outcomes));
  });

  test('spak1 key file: random and mutated files → one-line ERR_SPA_KEYFILE_INVALID; parseKey never throws', () => {
    const valid = `# alice\n${formatKey(ALICE)}\n`;
    assert.deepEqual(readKeyFile(file(valid)), ALICE, 'control: the valid key file reads');
    const outcomes = { ok: 0, error: 0 };
    fc.assert(
      fc.property(mutated(valid), (b) => {
        const f = file(b);
        outcomes[oneLine(() => readKeyFile(f), ['ERR_SPA_KEYFILE_INVALID'], `key file ${f}`)]++;
        rmSync(f);
        const r = parseKey(Buffer.from(b).toString('utf8'));
        assert.equal(typeof r.ok, 'boolean');
      }),
      { seed: 1, numRuns: 800 },
    );
    assert.ok(outcomes.error > 0, JSON.stringify(outcomes));
  });

  test('fwknop key file: random and mutated files → one-line ERR_SPA_KEYFILE_INVALID', () => {
    const valid = `KEY_BASE64: ${b64(FWK_ENC)}\nHMAC_KEY_BASE64: ${b64(FWK_HMAC)}\n`;
    assert.deepEqual(readFwknopKeyFile(file(valid)), FWK, 'control: the valid key file reads');
    const outcomes = { ok: 0, error: 0 };
    fc.assert(
      fc.property(mutated(valid), (b) => {
        const f = file(b);
        outcomes[oneLine(() => readFwknopKeyFile(f), ['ERR_SPA_KEYFILE_INVALID'], `fwknop key file ${f}`)]++;
        rmSync(f);
      }),
      { seed: 2, numRuns: 800 },
    );
    assert.ok(outcomes.error > 0, JSON.stringify(outcomes));
  });
});
