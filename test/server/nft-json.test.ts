/** nft's JSON read with zod, the nft command text, and nft error lines: no root needed. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SpaError } from '../../shared/errors.js';
import { accessOfElem, grantsOfListing, parseNftTable, parseNftTables } from '../../server/firewall/nft-json.js';
import {
  elemWithTimeout,
  installLines,
  nftDuration,
  NFT_OUTPUT_RULES,
  NFT_RULES,
  replaceLines,
} from '../../server/firewall/nft-script.js';
import { nftErrorMessage } from '../../server/firewall/nft-shell.js';

const META = { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } };
const doc = (...items: unknown[]): string => JSON.stringify({ nftables: [META, ...items] });
const set = (name: string, type: string[], elem: unknown[], table = 'spa_knock'): unknown => ({
  set: { family: 'inet', name, table, type, handle: 1, flags: ['timeout'], elem },
});

describe('nft JSON', () => {
  test('set elements: plain, with timeout/expires/comment (as nft 1.0.6 prints them), and forms we never write', () => {
    const text = doc(
      { table: { family: 'inet', name: 'spa_knock', handle: 7 } },
      set(
        'allow4',
        ['ipv4_addr', 'inet_proto', 'inet_service'],
        [
          { elem: { val: { concat: ['10.0.0.2', 'tcp', 22] }, timeout: 30, expires: 29, comment: 'alice' } },
          { elem: { val: { concat: ['10.0.0.3', 'udp', 53] }, timeout: 30, expires: 12 } },
          { concat: ['10.0.0.4', 'tcp', 22] },
          { elem: { val: { concat: ['10.0.0.5', 'tcp', 22] }, timeout: 30, expires: 5, comment: 'by hand!' } },
          { elem: { val: { concat: ['10.0.0.6', 'sctp', 22] }, timeout: 30, expires: 5 } },
          { range: ['10.0.0.0', '10.0.0.9'] },
        ],
      ),
      set(
        'allow6',
        ['ipv6_addr', 'inet_proto', 'inet_service'],
        [{ elem: { val: { concat: ['2001:db8::7', 'tcp', 22] }, timeout: 60, expires: 59, comment: 'bob' } }],
      ),
      set('protect', ['inet_proto', 'inet_service'], [{ concat: ['tcp', 22] }, { concat: ['udp', 53] }]),
      set('allow4', ['ipv4_addr'], ['10.9.9.9'], 'other_table'),
      {
        chain: {
          family: 'inet',
          table: 'spa_knock',
          name: 'input',
          handle: 4,
          type: 'filter',
          hook: 'input',
          prio: -10,
          policy: 'accept',
        },
      },
      { rule: { family: 'inet', table: 'spa_knock', chain: 'input', handle: 5, expr: [] } },
    );
    const listing = parseNftTable(text, 'inet', 'spa_knock');
    assert.deepEqual([...listing.sets.keys()], ['allow4', 'allow6', 'protect']);
    assert.deepEqual(listing.chains.get('input'), {
      name: 'input',
      type: 'filter',
      hook: 'input',
      prio: -10,
      policy: 'accept',
    });
    const allow4 = listing.sets.get('allow4');
    assert.equal(allow4?.elems.length, 6);
    assert.equal(allow4?.elems[5]?.parts, undefined, 'a range is kept as raw text only');
    assert.match(allow4?.elems[5]?.raw ?? '', /range/);
    const now = 1_800_000_000_000;
    assert.deepEqual(grantsOfListing(listing, now), [
      {
        family: 4,
        address: '10.0.0.2',
        access: { proto: 'tcp', port: 22 },
        expiresAt: now + 29_000,
        remainingMs: 29_000,
        owner: 'alice',
      },
      {
        family: 4,
        address: '10.0.0.3',
        access: { proto: 'udp', port: 53 },
        expiresAt: now + 12_000,
        remainingMs: 12_000,
      },
      {
        family: 4,
        address: '10.0.0.4',
        access: { proto: 'tcp', port: 22 },
        expiresAt: Number.POSITIVE_INFINITY,
        remainingMs: undefined,
      },
      { family: 4, address: '10.0.0.5', access: { proto: 'tcp', port: 22 }, expiresAt: now + 5000, remainingMs: 5000 },
      {
        family: 6,
        address: '2001:db8::7',
        access: { proto: 'tcp', port: 22 },
        expiresAt: now + 59_000,
        remainingMs: 59_000,
        owner: 'bob',
      },
    ]);
    assert.deepEqual(
      listing.sets.get('protect')?.elems.map((e) => accessOfElem(e.parts)),
      [
        { proto: 'tcp', port: 22 },
        { proto: 'udp', port: 53 },
      ],
    );
    assert.equal(accessOfElem(['tcp', 0]), undefined);
  });

  test('bad output is one ERR_SPA_FIREWALL line', () => {
    for (const bad of ['not json', '{"nftables": 3}', '[]']) {
      assert.throws(
        () => parseNftTable(bad, 'inet', 't'),
        (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_FIREWALL',
      );
    }
  });

  test('list tables gives names and handles, keyword names included', () => {
    const text = doc(
      { table: { family: 'inet', name: 't', handle: 1 } },
      { table: { family: 'inet', name: 'counters', handle: 2 } },
    );
    assert.deepEqual(parseNftTables(text), [
      { family: 'inet', name: 't', handle: 1 },
      { family: 'inet', name: 'counters', handle: 2 },
    ]);
  });
});

describe('nft command text', () => {
  test('nftDuration uses the compound form', () => {
    assert.equal(nftDuration(1000), '1s');
    assert.equal(nftDuration(1500), '1s500ms');
    assert.equal(nftDuration(90_061_500), '1d1h1m1s500ms');
    assert.equal(nftDuration(0), '0ms');
  });

  test('an element carries its owner as a comment', () => {
    const k = { family: 4, address: '10.0.0.2', access: { proto: 'tcp', port: 22 } } as const;
    assert.equal(elemWithTimeout(k, 30_000, 'alice'), '10.0.0.2 . tcp . 22 timeout 30s comment "alice"');
    assert.equal(elemWithTimeout(k, 30_000, undefined), '10.0.0.2 . tcp . 22 timeout 30s');
    const lines = replaceLines(
      't',
      { protect: [], silencePortUnreachable: false, sequences: [] },
      [
        { ...k, remainingMs: 5000, owner: 'bob' },
        { ...k, address: '10.0.0.3', remainingMs: 500 },
      ],
      1000,
    );
    assert.equal(
      lines.at(-1),
      'add element inet t allow4 { 10.0.0.2 . tcp . 22 timeout 5s comment "bob" }',
      'grants under the minimum are not carried',
    );
  });

  test('a prefix grant is an element of allow4p/allow6p; the replace path carries it there', () => {
    const k = { family: 4, address: '10.0.0.0', prefix: 24, access: { proto: 'tcp', port: 22 } } as const;
    assert.equal(elemWithTimeout(k, 30_000, 'alice'), '10.0.0.0/24 . tcp . 22 timeout 30s comment "alice"');
    const six = { family: 6, address: '2001:db8::', prefix: 64, access: { proto: 'udp', port: 53 } } as const;
    const lines = replaceLines(
      't',
      { protect: [], silencePortUnreachable: false, sequences: [] },
      [
        { ...k, remainingMs: 5000, owner: 'bob' },
        { ...six, remainingMs: 9000 },
        { family: 4, address: '10.0.0.9', access: k.access, remainingMs: 7000 },
      ],
      1000,
    );
    assert.deepEqual(lines.slice(-3), [
      'add element inet t allow4 { 10.0.0.9 . tcp . 22 timeout 7s }',
      'add element inet t allow4p { 10.0.0.0/24 . tcp . 22 timeout 5s comment "bob" }',
      'add element inet t allow6p { 2001:db8::/64 . udp . 53 timeout 9s }',
    ]);
    const install = installLines('t', { protect: [], silencePortUnreachable: false, sequences: [] });
    assert.ok(
      install.includes(
        'add set inet t allow4p { type ipv4_addr . inet_proto . inet_service; flags interval,timeout; }',
      ),
    );
    assert.ok(
      install.includes(
        'add set inet t allow6p { type ipv6_addr . inet_proto . inet_service; flags interval,timeout; }',
      ),
    );
  });

  test('install: the output chain is filled with silence on, and added-then-deleted (absent-safe) with it off', () => {
    const on = installLines('t', {
      protect: [{ proto: 'tcp', port: 22 }],
      silencePortUnreachable: true,
      sequences: [],
    });
    assert.ok(on.includes('add element inet t protect { tcp . 22 }'));
    assert.deepEqual(
      on.slice(-NFT_OUTPUT_RULES.length),
      NFT_OUTPUT_RULES.map((r) => `add rule inet t output ${r}`),
    );
    assert.ok(NFT_RULES.every((r) => on.includes(`add rule inet t input ${r}`)));
    const off = installLines('t', { protect: [], silencePortUnreachable: false, sequences: [] });
    assert.deepEqual(off.slice(-2), ['flush chain inet t output', 'delete chain inet t output']);
    assert.ok(!off.some((l) => l.startsWith('add element')));
  });

  test('nftErrorMessage is one line and points at the span', () => {
    const msg = nftErrorMessage([
      'Error: Could not process rule: No such file or directory',
      'add element inet spa_knock allow4 { 10.0.0.1 . tcp . 22 }',
      '                           ^^^^^^',
    ]);
    assert.equal(msg, 'Could not process rule: No such file or directory (at "allow4")');
  });
});

describe('nft JSON: prefix grants (issue 10)', () => {
  test('allow4p/allow6p elements with a prefix part (as nft 1.0.6 prints them) are prefix grants; other forms are not', () => {
    const pfx = (addr: string, len: number) => ({ prefix: { addr, len } });
    const text = doc(
      set(
        'allow4p',
        ['ipv4_addr', 'inet_proto', 'inet_service'],
        [
          { elem: { val: { concat: [pfx('10.100.0.0', 24), 'tcp', 22] }, timeout: 30, expires: 29, comment: 'alice' } },
          { elem: { val: { concat: ['10.100.1.7', 'tcp', 22] }, timeout: 30, expires: 29 } }, // a plain address
          { elem: { val: { concat: [pfx('10.100.2.0', 32), 'tcp', 22] }, timeout: 30, expires: 29 } }, // a /32
          { elem: { val: { concat: [pfx('10.100.3.1', 24), 'tcp', 22] }, timeout: 30, expires: 29 } }, // host bits
          { elem: { val: { concat: [pfx('2001:db8::', 64), 'tcp', 22] }, timeout: 30, expires: 29 } }, // wrong family
        ],
      ),
      set(
        'allow6p',
        ['ipv6_addr', 'inet_proto', 'inet_service'],
        [
          {
            elem: { val: { concat: [pfx('2001:db8:1:2::', 64), 'udp', 53] }, timeout: 60, expires: 59, comment: 'bob' },
          },
        ],
      ),
      // a prefix in a hash set is not one we write
      set('allow4', ['ipv4_addr', 'inet_proto', 'inet_service'], [{ concat: [pfx('10.7.0.0', 16), 'tcp', 22] }]),
    );
    const now = 1_800_000_000_000;
    assert.deepEqual(grantsOfListing(parseNftTable(text, 'inet', 'spa_knock'), now), [
      {
        family: 4,
        address: '10.100.0.0',
        prefix: 24,
        access: { proto: 'tcp', port: 22 },
        expiresAt: now + 29_000,
        remainingMs: 29_000,
        owner: 'alice',
      },
      {
        family: 6,
        address: '2001:db8:1:2::',
        prefix: 64,
        access: { proto: 'udp', port: 53 },
        expiresAt: now + 59_000,
        remainingMs: 59_000,
        owner: 'bob',
      },
    ]);
  });
});
