/**
 * The kernel prefilter, the pure parts (no root): how it follows from `[limit]`, its validation, the nft rule text
 * and the check of a listing against it (server/firewall/prefilter.ts, nft-prefilter.ts). The kernel's behaviour
 * (per source, per /64, the counter) is test/e2e/prefilter.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { NftTableListing } from '../../server/firewall/nft-json.js';
import { parseNftTable } from '../../server/firewall/nft-json.js';
import {
  parseCounterPackets,
  prefilterLines,
  prefilterProblems,
  prefilterRules,
} from '../../server/firewall/nft-prefilter.js';
import { installLines } from '../../server/firewall/nft-script.js';
import { type Prefilter, checkPrefilter, prefilterOf } from '../../server/firewall/prefilter.js';
import { checkPlan } from '../../server/firewall/validate.js';

const limit = { kernelPrefilter: true, sourceRate: 20, sourceBurst: 40, sourceTable: 16384 };
const P: Prefilter = { port: 62201, rate: 40, burst: 80, size: 16384, timeoutS: 10 };

describe('prefilter from [limit]', () => {
  test('twice the daemon rate and burst, the source table as set size, at least 10 s of memory', () => {
    assert.deepEqual(prefilterOf(62201, limit), P);
  });
  test('off, or no fixed port: none', () => {
    assert.equal(prefilterOf(62201, { ...limit, kernelPrefilter: false }), undefined);
    assert.equal(prefilterOf(0, limit), undefined);
  });
  test('capped at 1000000/s and burst 1000000 (hashlimit), remembered as long as a bucket takes to refill', () => {
    const lifted = prefilterOf(62201, { ...limit, sourceRate: 1_000_000, sourceBurst: 1_000_000 });
    assert.equal(lifted?.rate, 1_000_000);
    assert.equal(lifted?.burst, 1_000_000);
    assert.equal(prefilterOf(1, { ...limit, sourceRate: 1, sourceBurst: 100 })?.timeoutS, 100);
    assert.equal(prefilterOf(1, { ...limit, sourceRate: 1, sourceBurst: 1_000_000 })?.timeoutS, 3600);
  });
  test('every value is checked before it can reach rule text', () => {
    assert.deepEqual(checkPrefilter(P), P);
    assert.equal(checkPrefilter(undefined), undefined);
    for (const bad of [
      { ...P, port: 0 },
      { ...P, port: '62201; flush ruleset' },
      { ...P, rate: 0 },
      { ...P, rate: 1.5 },
      { ...P, burst: 2_000_000 },
      { ...P, size: 0 },
      { ...P, timeoutS: 0 },
      null,
      'x',
    ]) {
      assert.throws(() => checkPrefilter(bad), { code: 'ERR_SPA_FIREWALL' }, JSON.stringify(bad));
    }
    assert.deepEqual(checkPlan({ protect: [], prefilter: P }).prefilter, P);
  });
});

describe('nft prefilter text', () => {
  test('per source (IPv4 address, IPv6 /64), over the rate → counted and dropped, loopback left alone', () => {
    assert.deepEqual(prefilterRules(P), [
      'iif != "lo" udp dport 62201 update @flood4 { ip saddr limit rate over 40/second burst 80 packets } counter name "flood_drops" drop',
      'iif != "lo" udp dport 62201 update @flood6 { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 40/second burst 80 packets } counter name "flood_drops" drop',
    ]);
  });
  test('install: the chain is flushed before the sets are re-created (nft keeps an old size on `add set`), counter kept', () => {
    const lines = prefilterLines('inet t', P);
    assert.deepEqual(lines.slice(0, 3), [
      'add chain inet t prefilter { type filter hook input priority filter - 11; policy accept; }',
      'flush chain inet t prefilter',
      'add counter inet t flood_drops',
    ]);
    const decl4 = '{ type ipv4_addr; flags dynamic,timeout; size 16384; timeout 10s; }';
    assert.deepEqual(lines.slice(3, 6), [
      `add set inet t flood4 ${decl4}`,
      'delete set inet t flood4',
      `add set inet t flood4 ${decl4}`,
    ]);
    assert.equal(lines.filter((l) => l.startsWith('add rule')).length, 2);
    assert.ok(!lines.some((l) => l.startsWith('delete counter')), 'the counter counts across re-installs');
  });
  test('off: chain, sets and counter removed, absent-safe (each added before it is deleted)', () => {
    const lines = prefilterLines('inet t', undefined);
    for (const what of [
      'chain inet t prefilter',
      'set inet t flood4',
      'set inet t flood6',
      'counter inet t flood_drops',
    ]) {
      const del = lines.findIndex((l) => l.startsWith(`delete ${what}`));
      const add = lines.findIndex((l) => l.startsWith(`add ${what}`));
      assert.ok(del > add && add >= 0, what);
    }
    assert.ok(!lines.some((l) => l.startsWith('add rule')));
  });
  test('the gate install carries the prefilter lines, in one transaction', () => {
    const lines = installLines('t', checkPlan({ protect: [{ proto: 'tcp', port: 22 }], prefilter: P }));
    for (const r of prefilterRules(P)) assert.ok(lines.includes(`add rule inet t prefilter ${r}`));
    const off = installLines('t', checkPlan({ protect: [{ proto: 'tcp', port: 22 }] }));
    assert.ok(off.includes('delete chain inet t prefilter'));
  });
});

/** A listing as `nft -j list table inet t` prints one with the prefilter installed (nft 1.0.6, measured). */
function listing(over: { size?: number; counter?: boolean; prio?: number } = {}): NftTableListing {
  const set = (name: string, type: string) => ({
    set: {
      family: 'inet',
      name,
      table: 't',
      type,
      handle: 2,
      size: over.size ?? 16384,
      flags: ['timeout'], // `dynamic` is not in nft 1.0.6's JSON (measured)
      timeout: 10,
    },
  });
  const doc = {
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { table: { family: 'inet', name: 't', handle: 1 } },
      ...(over.counter === false
        ? []
        : [{ counter: { family: 'inet', name: 'flood_drops', table: 't', handle: 3, packets: 5, bytes: 9 } }]),
      set('flood4', 'ipv4_addr'),
      set('flood6', 'ipv6_addr'),
      {
        chain: {
          family: 'inet',
          table: 't',
          name: 'prefilter',
          handle: 4,
          type: 'filter',
          hook: 'input',
          prio: over.prio ?? -11,
          policy: 'accept',
        },
      },
    ],
  };
  return parseNftTable(JSON.stringify(doc), 'inet', 't');
}

describe('nft prefilter check', () => {
  test('as installed: no problem', () => {
    assert.deepEqual(prefilterProblems('inet t', listing(), P, prefilterRules(P)), []);
  });
  test('each difference is one line', () => {
    const rules = prefilterRules(P);
    assert.match(prefilterProblems('inet t', listing(), P, rules.slice(0, 1)).join('\n'), /prefilter rules differ/);
    assert.match(prefilterProblems('inet t', listing(), { ...P, rate: 41 }, rules).join('\n'), /rules differ/);
    assert.match(prefilterProblems('inet t', listing({ size: 99 }), P, rules).join('\n'), /has size 99/);
    assert.match(
      prefilterProblems('inet t', listing({ counter: false }), P, rules).join('\n'),
      /flood_drops is missing/,
    );
    assert.match(prefilterProblems('inet t', listing({ prio: 0 }), P, rules).join('\n'), /is not "type filter hook/);
    const none = parseNftTable(JSON.stringify({ nftables: [] }), 'inet', 't');
    assert.equal(prefilterProblems('inet t', none, P, undefined).length, 4, 'chain, two sets, counter');
  });
  test('prefilter off but its objects there: a problem (heal removes them); none there: fine', () => {
    assert.match(prefilterProblems('inet t', listing(), undefined, undefined).join('\n'), /kernel_prefilter is off/);
    const none = parseNftTable(JSON.stringify({ nftables: [] }), 'inet', 't');
    assert.deepEqual(prefilterProblems('inet t', none, undefined, undefined), []);
  });
  test('the counter is read from `nft -j list counter`', () => {
    const out = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { counter: { family: 'inet', name: 'flood_drops', table: 't', handle: 3, packets: 123456, bytes: 9 } },
      ],
    });
    assert.equal(parseCounterPackets(out), 123456);
    assert.equal(parseCounterPackets('not json'), undefined);
    assert.equal(parseCounterPackets('{"nftables":[]}'), undefined);
  });
});
