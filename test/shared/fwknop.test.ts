/**
 * shared/fwknop: known answers from the REAL fwknop client (Debian fwknop-client), made at test time with
 * `fwknop -T -v -B FILE` (built, never sent); the expected field values are the client's own `-v` dump. No hand-made
 * packet stands in for the client. Also: tampering, key parsing, and our encoder round-tripping through our decoder
 * (that fwknopd itself accepts our packets is test/e2e/fwknop.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type FwknopKeyText, fwknopKeyGen, fwknopPacket } from '../../harness/fwknop.js';
import {
  FWKNOP_RIJNDAEL_LIMIT,
  type FwknopKeys,
  decodePacket,
  encodePacket,
  looksLikeFwknop,
  replayKeyOf,
} from '../../shared/fwknop/codec.js';
import { concat } from '../../shared/bytes.js';
import {
  SALTED,
  SALT_PREFIX_B64,
  b64,
  deriveKeyIv,
  encryptCbc,
  hmacText,
  sha256Of,
  unb64,
} from '../../shared/fwknop/crypto.js';
import { generateFwknopKeyText, parseFwknopKeyText } from '../../shared/fwknop/keys.js';

const real: FwknopKeyText = fwknopKeyGen();
const parsed = parseFwknopKeyText(real.text);
assert.ok(parsed.ok, 'the real client key-gen output parses');
const keys: FwknopKeys = parsed.value;
const keys512: FwknopKeys = { ...keys, digest: 'sha512' };

function access(text: string, k: FwknopKeys = keys) {
  const r = decodePacket(text, k);
  assert.ok(r.ok, `decodes: ${JSON.stringify(r)}`);
  assert.equal(r.value.kind, 'access');
  if (r.value.kind !== 'access') throw new Error('unreachable');
  return r.value;
}

describe('fwknop packets from the real client', () => {
  it('-A tcp/22 -a X: allow IP, access, timestamp and user as the client dumped them', () => {
    const p = fwknopPacket(real, ['-A', 'tcp/22', '-a', '10.1.2.3', '-U', 'alice']);
    const v = access(p.text);
    assert.equal(v.allowIp, '10.1.2.3');
    assert.deepEqual(v.accesses, [{ proto: 'tcp', port: 22 }]);
    assert.equal(v.timestamp, Number(p.dump.Timestamp));
    assert.equal(v.user, p.dump.Username);
    assert.equal(`${v.allowIp},tcp/22`, p.dump['Message String']);
    assert.equal(v.timeout, 0);
    assert.ok(p.text.endsWith(p.dump.HMAC ?? '-'), 'the HMAC is the last 43 characters');
    assert.ok(looksLikeFwknop(Buffer.from(p.text)));
  });

  it('-s sends 0.0.0.0 (use the source), -f 45 makes a client-timeout request (type 3), several accesses', () => {
    const p = fwknopPacket(real, ['-A', 'tcp/22,udp/53', '-s', '-f', '45']);
    assert.match(p.dump['Message Type'] ?? '', /^3 /);
    const v = access(p.text);
    assert.equal(v.allowIp, undefined);
    assert.equal(v.timeout, 45);
    assert.equal(Number(p.dump['Client Timeout']), 45);
    assert.deepEqual(v.accesses, [
      { proto: 'tcp', port: 22 },
      { proto: 'udp', port: 53 },
    ]);
  });

  it('SHA-512 inner digest with HMAC-SHA512', () => {
    const p = fwknopPacket(real, ['-A', 'tcp/2222', '-a', '10.1.2.3', '-m', 'sha512', '--hmac-digest-type', 'sha512']);
    assert.deepEqual(access(p.text, keys512).accesses, [{ proto: 'tcp', port: 2222 }]);
    assert.deepEqual(decodePacket(p.text, keys), { ok: false, code: 'mac' }, 'wrong HMAC digest');
  });

  it('NAT (-N) and command (-C) requests decode as such (the server refuses them with their own reasons)', () => {
    const nat = fwknopPacket(real, ['-A', 'tcp/22', '-a', '10.1.2.3', '-N', '192.168.1.2:22']);
    assert.deepEqual(decodePacket(nat.text, keys), { ok: true, value: { kind: 'nat' } });
    const cmd = fwknopPacket(real, ['-C', 'id', '-a', '10.1.2.3']);
    assert.deepEqual(decodePacket(cmd.text, keys), { ok: true, value: { kind: 'command' } });
  });

  it('wrong keys, a flipped character, a changed HMAC, a re-prefixed packet: refused before decryption', () => {
    const p = fwknopPacket(real, ['-A', 'tcp/22', '-a', '10.1.2.3']);
    const other = parseFwknopKeyText(fwknopKeyGen().text);
    assert.ok(other.ok);
    assert.deepEqual(decodePacket(p.text, other.value), { ok: false, code: 'mac' });
    assert.deepEqual(decodePacket(p.text, { ...keys, enc: other.value.enc }), { ok: false, code: 'malformed' });
    for (const i of [0, 20, p.text.length - 44, p.text.length - 1]) {
      const c = p.text[i] === 'A' ? 'B' : 'A';
      const t = p.text.slice(0, i) + c + p.text.slice(i + 1);
      assert.deepEqual(decodePacket(t, keys), { ok: false, code: 'mac' }, `flip at ${i}`);
    }
    // the unused low bits of the HMAC's last character: another text, same HMAC bytes — still refused
    const last = p.text.at(-1) ?? 'A';
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const twin = alphabet[alphabet.indexOf(last) ^ 1] ?? 'A';
    assert.deepEqual(decodePacket(p.text.slice(0, -1) + twin, keys), { ok: false, code: 'mac' });
    assert.deepEqual(decodePacket(`U2FsdGVkX1${p.text}`, keys), { ok: false, code: 'version' });
    assert.deepEqual(decodePacket(`${p.text}\n`, keys), { ok: false, code: 'version' });
    assert.deepEqual(decodePacket(p.text.slice(0, 139), keys), { ok: false, code: 'size' });
  });

  it('the replay key is fwknopd digest-cache key: base64(SHA-256(packet text)), distinct per packet', () => {
    const a = fwknopPacket(real, ['-A', 'tcp/22', '-a', '10.1.2.3']).text;
    const b = fwknopPacket(real, ['-A', 'tcp/22', '-a', '10.1.2.3']).text;
    assert.notEqual(replayKeyOf(a), replayKeyOf(b));
    assert.equal(replayKeyOf(a).length, 43);
  });
});

describe('fwknop encoder', () => {
  it('round-trips through the decoder and stays below 400 characters', () => {
    const salt = new Uint8Array(8).fill(7);
    fc.assert(
      fc.property(
        fc.record({
          allowIp: fc.option(
            fc.ipV4().filter((s) => s !== '0.0.0.0'),
            { nil: undefined },
          ),
          port: fc.integer({ min: 1, max: 65535 }),
          timeout: fc.integer({ min: 0, max: 65535 }),
          ts: fc.integer({ min: 0, max: 4e9 }),
        }),
        ({ allowIp, port, timeout, ts }) => {
          const req = { user: 'bob', timestamp: ts, allowIp, accesses: [{ proto: 'tcp', port }] as const, timeout };
          const text = encodePacket(req, keys, salt, '1234567890123456');
          assert.ok(text.length < FWKNOP_RIJNDAEL_LIMIT);
          const v = access(text);
          assert.deepEqual(
            { allowIp: v.allowIp, accesses: v.accesses, timeout: v.timeout, timestamp: v.timestamp },
            { allowIp, accesses: [{ proto: 'tcp', port }], timeout, timestamp: ts },
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses what fwknopd would not take: IPv6 allow address, no access, 400+ characters', () => {
    const salt = new Uint8Array(8);
    const base = {
      user: 'bob',
      timestamp: 1,
      allowIp: undefined,
      accesses: [{ proto: 'tcp' as const, port: 22 }],
      timeout: 0,
    };
    assert.throws(() => encodePacket({ ...base, allowIp: '2001:db8::1' }, keys, salt, '1'.repeat(16)), RangeError);
    assert.throws(() => encodePacket({ ...base, accesses: [] }, keys, salt, '1'.repeat(16)), RangeError);
    const many = Array.from({ length: 16 }, (_, i) => ({ proto: 'tcp' as const, port: 10000 + i }));
    assert.throws(() => encodePacket({ ...base, accesses: many }, keys, salt, '1'.repeat(16)), /400/);
  });
});

describe('fwknop decoder on hostile input: never throws', () => {
  /** A packet with a valid HMAC around any ciphertext: reaches decryption and parsing. */
  function wrap(raw: Uint8Array, k: FwknopKeys = keys): string {
    const body = b64(concat(SALTED, raw)).slice(SALT_PREFIX_B64.length);
    return body + hmacText(k.digest, k.hmac, Buffer.from(SALT_PREFIX_B64 + body));
  }
  it('random ciphertexts and random (encrypted) plaintexts under a valid HMAC', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 900 }), (raw) => {
        const r = decodePacket(wrap(raw), keys);
        assert.ok(r.ok === false || r.ok === true);
      }),
      { numRuns: 300 },
    );
    const field = fc.stringMatching(/^[0-9A-Za-z+/=:,.]{0,40}$/);
    fc.assert(
      fc.property(
        fc.array(field, { minLength: 0, maxLength: 12 }),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        (fs, salt) => {
          const data = fs.join(':');
          const plain = Buffer.from(`${data}:${b64(sha256Of(Buffer.from(data)))}`);
          const r = decodePacket(wrap(concat(salt, encryptCbc(keys.enc, salt, plain))), keys);
          assert.ok(r.ok === false || r.ok === true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('fwknop primitives and keys', () => {
  it('EVP_BytesToKey(MD5): key = D1‖D2, IV = D3 (OpenSSL `enc -P -md md5` known answer)', () => {
    // from OpenSSL 3: openssl enc -aes-256-cbc -md md5 -P -pass pass:password -S 0102030405060708
    const { key, iv } = deriveKeyIv(Buffer.from('password'), Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
    assert.equal(Buffer.from(key).toString('hex'), 'e7b0971e52ca5cc8d0539fb3412f6316f7ba2e6ee293d9f3457b99436b51ce02');
    assert.equal(Buffer.from(iv).toString('hex'), '8d450e2ed75a84a923d4eac9fe49226b');
  });

  it('strict base64: canonical texts only', () => {
    assert.equal(b64(Buffer.from('ab')), 'YWI');
    assert.deepEqual(unb64('YWI'), new Uint8Array(Buffer.from('ab')));
    assert.equal(unb64('YWJ'), undefined, 'non-zero unused bits');
    assert.equal(unb64('YWI='), undefined, 'padding');
    assert.equal(unb64('Y'), undefined);
  });

  it('key files: key-gen output and an fwknoprc stanza; errors name the line', () => {
    const g = parseFwknopKeyText(generateFwknopKeyText());
    assert.ok(g.ok);
    assert.equal(g.value.enc.length, 32);
    assert.equal(g.value.hmac.length, 64);
    const rc = `[default]\n\n[server1]\nSPA_SERVER 10.0.0.1\nKEY_BASE64          ${real.keyB64}\nHMAC_KEY_BASE64     ${real.hmacB64}\nHMAC_DIGEST_TYPE    SHA512\n`;
    const r = parseFwknopKeyText(rc);
    assert.ok(r.ok);
    assert.equal(r.value.digest, 'sha512');
    assert.deepEqual(r.value.enc, keys.enc);
    const bad = parseFwknopKeyText(`KEY_BASE64: ${real.keyB64}\n`);
    assert.ok(!bad.ok && /HMAC_KEY_BASE64/.test(bad.reason));
    const long = parseFwknopKeyText(`KEY_BASE64: ${Buffer.alloc(33).toString('base64')}\nHMAC_KEY_BASE64: AAAA\n`);
    assert.ok(!long.ok && /1-32 bytes/.test(long.reason));
  });
});
