/**
 * test/vectors/knock-v1.json: the file equals what scripts/gen-vectors.ts produces now (no drift); every packet is
 * re-derived byte for byte from its recorded inputs; every expectation is checked stage by stage with shared/, in the
 * verification order test/vectors/README.md prescribes for other implementations.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  type VectorCase,
  type VectorFile,
  type VectorRequest,
  VECTORS_PATH,
  nonceFor,
  renderVectors,
} from '../../harness/vectors.js';
import { concat, fromHex, toHex } from '../../shared/bytes.js';
import {
  KDF_LABEL_ENC,
  KDF_LABEL_ID,
  KDF_LABEL_MAC,
  KDF_SALT,
  MAX_PACKET_LEN,
  MIN_PACKET_LEN,
  PROTOCOL_VERSION,
} from '../../shared/constants.js';
import { type SubKeys, deriveKeys, epochOf, keyIdFor, macOf, xorStream } from '../../shared/crypto.js';
import { parseKey } from '../../shared/keys.js';
import { checkTime } from '../../shared/replay.js';
import {
  type KnockRequest,
  authenticate,
  decryptPayload,
  encodePayload,
  openPacket,
  sealPacket,
  splitPacket,
} from '../../shared/wire.js';

const text = readFileSync(VECTORS_PATH, 'utf8');
const file = JSON.parse(text) as VectorFile;

function hex(s: string): Uint8Array {
  const b = fromHex(s);
  assert.ok(b, `not hex: ${s}`);
  return b;
}

const toRequest = (r: VectorRequest): KnockRequest => ({
  type: r.type,
  timestamp: r.timestamp_ms,
  duration: r.duration_s,
  accesses: r.accesses.map((a) => ({ proto: a.proto, port: a.port })),
  ...(r.allow_address === null ? {} : { allowAddress: r.allow_address }),
  ...(r.prefix4 !== undefined ? { prefix4: r.prefix4 } : {}),
  ...(r.prefix6 !== undefined ? { prefix6: r.prefix6 } : {}),
});

const fromRequest = (r: KnockRequest): VectorRequest => ({
  type: r.type,
  timestamp_ms: r.timestamp,
  duration_s: r.duration,
  accesses: r.accesses.map((a) => ({ proto: a.proto, port: a.port })),
  allow_address: r.allowAddress ?? null,
  ...(r.prefix4 !== undefined ? { prefix4: r.prefix4 } : {}),
  ...(r.prefix6 !== undefined ? { prefix6: r.prefix6 } : {}),
});

function keysOf(c: VectorCase): SubKeys {
  const p = parseKey(c.key);
  assert.ok(p.ok, p.ok ? '' : p.reason);
  return deriveKeys(p.key);
}

/** The epochs whose key ids a verifier indexes at now_ms: epochOf(now - window) … epochOf(now + window). */
function indexedEpochs(c: VectorCase): number[] {
  const w = c.window_s * 1000;
  const out: number[] = [];
  for (let e = epochOf(c.now_ms - w); e <= epochOf(c.now_ms + w); e++) out.push(e);
  return out;
}

function matchingEpoch(c: VectorCase, keys: SubKeys, keyId: Uint8Array): number | undefined {
  return indexedEpochs(c).find((e) => toHex(keyIdFor(keys.id, e)) === toHex(keyId));
}

type Outcome = { result: 'accept'; request: VectorRequest } | { result: 'reject'; reason: string };

/** The verification order of README.md, with shared/'s staged functions. */
function verify(c: VectorCase): Outcome {
  const keys = keysOf(c);
  const s = splitPacket(hex(c.packet_hex));
  if (!s.ok) return { result: 'reject', reason: s.code };
  const epoch = matchingEpoch(c, keys, s.value.keyId);
  if (epoch === undefined) return { result: 'reject', reason: 'unknown-key' };
  if (!authenticate(keys, s.value)) return { result: 'reject', reason: 'mac' };
  const d = decryptPayload(keys, s.value);
  if (!d.ok) return { result: 'reject', reason: d.code };
  if (epochOf(d.value.timestamp) !== epoch) return { result: 'reject', reason: 'malformed' };
  if (checkTime(d.value.timestamp, c.now_ms, c.window_s * 1000) !== 'ok') return { result: 'reject', reason: 'stale' };
  return { result: 'accept', request: fromRequest(d.value) };
}

describe('vector file', () => {
  it('equals what scripts/gen-vectors.ts generates now (regenerate: node --import tsx scripts/gen-vectors.ts)', () => {
    assert.equal(text, renderVectors());
  });

  it('covers every kind of case', () => {
    const reasons = new Set<string>(file.cases.map((c) => (c.expect.result === 'accept' ? 'accept' : c.expect.reason)));
    for (const r of ['accept', 'size', 'version', 'unknown-key', 'mac', 'malformed', 'stale'])
      assert.ok(reasons.has(r), r);
    const names = new Set(file.cases.map((c) => c.name));
    assert.equal(names.size, file.cases.length, 'names are unique');
    for (const n of [
      'open-one-port',
      'open-several-ports-v4-allow-address',
      'open-v6-allow-address',
      'close',
      'open-empty-access-list',
      'open-with-padding',
    ]) {
      assert.ok(names.has(n), n);
    }
    assert.equal(
      new Set(file.cases.map((c) => c.construction.nonce_hex)).size,
      file.cases.length,
      'nonces are distinct',
    );
  });

  it('records the protocol constants of shared/constants.ts', () => {
    assert.equal(file.protocol_version, PROTOCOL_VERSION);
    assert.equal(file.constants['kdf_salt'], KDF_SALT);
    assert.equal(file.constants['kdf_label_id'], KDF_LABEL_ID);
    assert.equal(file.constants['kdf_label_enc'], KDF_LABEL_ENC);
    assert.equal(file.constants['kdf_label_mac'], KDF_LABEL_MAC);
    assert.equal(file.constants['min_packet_len'], MIN_PACKET_LEN);
    assert.equal(file.constants['max_packet_len'], MAX_PACKET_LEN);
  });

  it('the worked example in docs/protocol.md is the open-one-port vector', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const c = file.cases.find((x) => x.name === 'open-one-port');
    assert.ok(c);
    for (const h of [c.packet_hex, c.sub_keys.id, c.sub_keys.enc, c.sub_keys.mac, c.construction.payload_hex, c.key]) {
      assert.ok(doc.includes(h), `docs/protocol.md lacks ${h}`);
    }
  });
});

for (const c of file.cases) {
  describe(`vector ${c.name}`, () => {
    const keys = keysOf(c);

    it('key text, key and sub-keys agree (sub-keys also per node:crypto hkdfSync)', () => {
      const p = parseKey(c.key);
      assert.ok(p.ok);
      assert.equal(toHex(p.key), c.key_hex);
      assert.deepEqual({ id: toHex(keys.id), enc: toHex(keys.enc), mac: toHex(keys.mac) }, c.sub_keys);
      const h = (label: string): string =>
        Buffer.from(hkdfSync('sha256', hex(c.key_hex), KDF_SALT, label, 32)).toString('hex');
      assert.deepEqual({ id: h(KDF_LABEL_ID), enc: h(KDF_LABEL_ENC), mac: h(KDF_LABEL_MAC) }, c.sub_keys);
    });

    it('packet_hex is reproduced byte for byte from the recorded inputs', () => {
      const k = deriveKeys(hex(c.construction.sender_key_hex ?? c.key_hex));
      const req = toRequest(c.construction.request);
      const nonce = hex(c.construction.nonce_hex);
      const payload = hex(c.construction.payload_hex);
      const encoded = encodePayload(req);
      // the fixed nonce: SHA-256("spa-knock/v1 test vector nonce: " ‖ name)[0..24]
      const label = createHash('sha256').update(`spa-knock/v1 test vector nonce: ${c.name}`).digest().subarray(0, 24);
      assert.equal(c.construction.nonce_hex, label.toString('hex'));
      assert.equal(toHex(nonceFor(c.name)), c.construction.nonce_hex);
      // the key id, also per node:crypto
      assert.equal(c.construction.key_id_hex, toHex(keyIdFor(k.id, c.construction.key_id_epoch)));
      const epochBytes = Buffer.alloc(8);
      epochBytes.writeBigUInt64BE(BigInt(c.construction.key_id_epoch));
      assert.equal(
        c.construction.key_id_hex,
        createHmac('sha256', k.id).update(epochBytes).digest().subarray(0, 8).toString('hex'),
      );
      // the payload is the encoded request, plus TLV extensions in some cases
      assert.equal(toHex(payload.subarray(0, encoded.length)), toHex(encoded));
      let sealed: Uint8Array;
      if (payload.length === encoded.length && c.construction.key_id_epoch === epochOf(req.timestamp)) {
        sealed = sealPacket(k, req, nonce);
      } else {
        const header = concat(Uint8Array.of(PROTOCOL_VERSION), hex(c.construction.key_id_hex), nonce);
        const authenticated = concat(header, xorStream(k.enc, nonce, payload));
        sealed = concat(authenticated, macOf(k.mac, authenticated));
      }
      // the tag, also per node:crypto
      assert.equal(
        toHex(sealed.subarray(-32)),
        createHmac('sha256', k.mac).update(sealed.subarray(0, -32)).digest('hex'),
      );
      let pkt = Buffer.from(sealed);
      for (const m of c.construction.mutations) {
        if (m.op === 'xor') pkt[m.offset]! ^= m.value;
        else if (m.op === 'set') pkt[m.offset] = m.value;
        else if (m.op === 'truncate') pkt = pkt.subarray(0, m.length);
        else pkt = Buffer.concat([pkt, Buffer.alloc(m.length - pkt.length, m.fill)]);
      }
      assert.equal(pkt.toString('hex'), c.packet_hex);
    });

    it(`verifies as ${c.expect.result === 'accept' ? 'accept' : `reject: ${c.expect.reason}`} in the README's order`, () => {
      assert.deepStrictEqual(verify(c), c.expect);
    });

    it('the deciding stage, checked on its own', () => {
      const pkt = hex(c.packet_hex);
      const w = c.window_s * 1000;
      const e = c.expect;
      if (e.result === 'accept') {
        const o = openPacket(keys, pkt);
        assert.ok(o.ok, o.ok ? '' : o.code);
        assert.deepStrictEqual(fromRequest(o.value), e.request);
        assert.equal(checkTime(o.value.timestamp, c.now_ms, w), 'ok');
        assert.notEqual(matchingEpoch(c, keys, pkt.subarray(1, 9)), undefined);
        return;
      }
      const s = splitPacket(pkt);
      switch (e.reason) {
        case 'size':
          assert.ok(pkt.length < MIN_PACKET_LEN || pkt.length > MAX_PACKET_LEN);
          assert.equal(s.ok ? 'ok' : s.code, 'size');
          assert.deepEqual(openPacket(keys, pkt), { ok: false, code: 'size' });
          return;
        case 'version':
          assert.equal(s.ok ? 'ok' : s.code, 'version');
          return;
        case 'unknown-key': {
          assert.ok(s.ok);
          for (const epoch of indexedEpochs(c))
            assert.notEqual(toHex(keyIdFor(keys.id, epoch)), toHex(s.value.keyId), `epoch ${epoch}`);
          assert.ok(indexedEpochs(c).length >= 2);
          return;
        }
        case 'mac':
          assert.ok(s.ok);
          assert.notEqual(matchingEpoch(c, keys, s.value.keyId), undefined);
          assert.equal(authenticate(keys, s.value), false);
          assert.deepEqual(openPacket(keys, pkt), { ok: false, code: 'mac' });
          return;
        case 'malformed':
          assert.ok(s.ok);
          assert.notEqual(matchingEpoch(c, keys, s.value.keyId), undefined);
          assert.equal(authenticate(keys, s.value), true);
          assert.deepEqual(openPacket(keys, pkt), { ok: false, code: 'malformed' });
          return;
        case 'stale': {
          assert.ok(s.ok);
          assert.notEqual(matchingEpoch(c, keys, s.value.keyId), undefined);
          const o = openPacket(keys, pkt);
          assert.ok(o.ok);
          assert.equal(checkTime(o.value.timestamp, c.now_ms, w), 'stale');
          return;
        }
      }
    });
  });
}

describe('why some expectations depend on the server side', () => {
  it('the far-epoch packet is authentic under the right key: only the key-id index makes it unknown-key', () => {
    const c = file.cases.find((x) => x.name === 'reject-unknown-key-far-epoch');
    assert.ok(c);
    const o = openPacket(keysOf(c), hex(c.packet_hex));
    assert.ok(o.ok);
    assert.equal(checkTime(o.value.timestamp, c.now_ms, c.window_s * 1000), 'stale');
  });

  it('the stranger-key packet is authentic under its sender key', () => {
    const c = file.cases.find((x) => x.name === 'reject-unknown-key');
    assert.ok(c?.construction.sender_key_hex);
    assert.ok(openPacket(deriveKeys(hex(c.construction.sender_key_hex)), hex(c.packet_hex)).ok);
    assert.deepEqual(openPacket(keysOf(c), hex(c.packet_hex)), { ok: false, code: 'mac' });
  });
});
