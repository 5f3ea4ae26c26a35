/**
 * shared/uri.ts: `spa-knock://` URIs round-trip (examples and generated ones), and every malformed URI is refused
 * with a one-line ERR_SPA_URI that never shows the key.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { formatAccess } from '../../shared/access.js';
import { SpaError } from '../../shared/errors.js';
import { formatKey } from '../../shared/keys.js';
import { type KnockUri, formatUri, parseUri } from '../../shared/uri.js';

const KEY = new Uint8Array(32).map((_, i) => i * 7 + 3);
const K = formatKey(KEY);
/** Comparable form (accesses from parseAccess have a null prototype). */
const plain = (u: KnockUri) => ({
  ...u,
  key: [...u.key],
  open: u.open.map(formatAccess),
  ...(u.wait ? { wait: formatAccess(u.wait) } : {}),
});

describe('spa-knock:// URI', () => {
  test('a full URI parses into its parts', () => {
    const u = parseUri(
      `spa-knock://knock.example.org:62202?key=${K}&name=alice&open=tcp/22,udp/53&families=4&wait=tcp/22`,
    );
    assert.equal(u.host, 'knock.example.org');
    assert.equal(u.port, 62202);
    assert.deepEqual(u.key, KEY);
    assert.equal(u.name, 'alice');
    assert.deepEqual(u.open.map(formatAccess), ['tcp/22', 'udp/53']);
    assert.equal(u.family, 4);
    assert.equal(u.format, 'spak1');
    assert.deepEqual(u.wait, { proto: 'tcp', port: 22 });
  });

  test('the minimum: host and key; the port defaults to 62201, everything else to "what the server allows"', () => {
    const u = parseUri(`spa-knock://10.0.0.1?key=${K}`);
    assert.equal(u.port, 62201);
    assert.deepEqual(u.open, []);
    assert.equal(u.family, undefined);
    assert.equal(u.name, undefined);
    assert.equal(u.wait, undefined);
  });

  test('IPv6 in brackets; percent-encoded values; scheme case-insensitive; a trailing slash', () => {
    const u = parseUri(`SPA-KNOCK://[2001:db8::1]:1/?key=${K}&open=tcp%2F22&name=bob%40phone&families=4%2C6`);
    assert.equal(u.host, '2001:db8::1');
    assert.equal(u.port, 1);
    assert.deepEqual(u.open, [{ proto: 'tcp', port: 22 }]);
    assert.equal(u.name, 'bob@phone');
    assert.equal(u.family, undefined);
    assert.equal(formatUri(u), `spa-knock://[2001:db8::1]:1?key=${K}&name=bob%40phone&open=tcp/22&format=spak1`);
  });

  test('format → parse gives the same value back (generated URIs)', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
    const host = fc.oneof(
      fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => [...ls, 'example'].join('.')),
      fc.ipV4(),
      fc.constantFrom('2001:db8::1', 'fd00::5', 'fe80::1:2'),
    );
    const access = fc.record({
      proto: fc.constantFrom('tcp' as const, 'udp' as const),
      port: fc.integer({ min: 1, max: 65535 }),
    });
    const arb = fc.record(
      {
        host,
        port: fc.integer({ min: 1, max: 65535 }),
        key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        name: fc.stringMatching(/^[A-Za-z0-9._@-]{1,64}$/),
        open: fc.uniqueArray(access, { maxLength: 32, selector: (a) => formatAccess(a) }),
        family: fc.constantFrom(4 as const, 6 as const),
        format: fc.constant('spak1' as const),
        wait: access.map((a) => ({ ...a, proto: 'tcp' as const })),
      },
      { requiredKeys: ['host', 'port', 'key', 'open', 'format'] },
    );
    fc.assert(
      fc.property(arb, (u: KnockUri) => {
        const text = formatUri(u);
        const back = parseUri(text);
        assert.deepEqual(plain(back), plain(u));
        assert.equal(formatUri(back), text);
      }),
      { numRuns: 300 },
    );
  });

  const refused: [string, string, RegExp][] = [
    ['other scheme', `https://h?key=${K}`, /scheme must be "spa-knock"/],
    ['not a URI', 'spa-knock:h', /not a URI/],
    ['no key', 'spa-knock://h:1?name=a', /"key" parameter is missing/],
    ['bad key checksum', `spa-knock://h?key=${K.slice(0, -2)}AA`, /"key": key checksum mismatch/],
    ['short key', 'spa-knock://h?key=spak1_abc', /"key": malformed key/],
    ['unknown parameter', `spa-knock://h?key=${K}&cmd=reboot`, /unknown parameter "cmd"/],
    ['duplicate parameter', `spa-knock://h?key=${K}&open=tcp/22&open=tcp/80`, /"open" is given twice/],
    ['parameter without value', `spa-knock://h?key=${K}&open`, /"open" has no value/],
    ['bad access', `spa-knock://h?key=${K}&open=tcp/0`, /"tcp\/0" is not an access/],
    ['bad families', `spa-knock://h?key=${K}&families=5`, /"families" must be/],
    ['fwknop format', `spa-knock://h?key=${K}&format=fwknop`, /"format" must be spak1/],
    ['udp wait', `spa-knock://h?key=${K}&wait=udp/53`, /"wait" must be a TCP access/],
    ['bad name', `spa-knock://h?key=${K}&name=a%20b`, /"name" must be/],
    ['port 0', `spa-knock://h:0?key=${K}`, /port "0" is not 1-65535/],
    ['port too big', `spa-knock://h:65536?key=${K}`, /port "65536"/],
    ['port not digits', `spa-knock://h:22a?key=${K}`, /is not HOST, HOST:PORT/],
    ['no host', `spa-knock://:1?key=${K}`, /host is missing/],
    ['bare IPv6', `spa-knock://2001:db8::1?key=${K}`, /is not HOST, HOST:PORT/],
    ['IPv4 in brackets', `spa-knock://[10.0.0.1]:1?key=${K}`, /not an IPv6 address in brackets/],
    ['zone', `spa-knock://[fe80::1%25eth0]:1?key=${K}`, /not an IPv6 address in brackets/],
    ['bad host name', `spa-knock://bad_host:1?key=${K}`, /not a host name/],
    ['numeric non-address', `spa-knock://10.0.0.256:1?key=${K}`, /not a host name/],
    ['userinfo', `spa-knock://u@h?key=${K}`, /user information/],
    ['fragment', `spa-knock://h?key=${K}#x`, /fragment/],
    ['a path', `spa-knock://h/x?key=${K}`, /not a URI/],
    ['bad percent-encoding', `spa-knock://h?key=${K}&name=%zz`, /malformed percent-encoding/],
    ['too long', `spa-knock://h?key=${K}&name=${'a'.repeat(3000)}`, /longer than/],
  ];
  for (const [what, uri, re] of refused) {
    test(`refused: ${what}`, () => {
      assert.throws(
        () => parseUri(uri),
        (e: unknown) => {
          assert.ok(e instanceof SpaError);
          assert.equal(e.code, 'ERR_SPA_URI');
          assert.equal(e.exitCode, 2);
          assert.match(e.message, re);
          assert.ok(!e.message.includes('\n'), 'one line');
          assert.ok(!e.message.includes(K.slice(6, 30)), 'the key is never echoed');
          return true;
        },
      );
    });
  }
});
