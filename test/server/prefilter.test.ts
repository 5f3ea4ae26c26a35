/**
 * The kernel prefilter, the pure parts (no root): how it follows from `[limit]`, its validation, the nft rule text
 * and the check of a listing against it (server/firewall/prefilter.ts, nft-prefilter.ts). The kernel's behaviour
 * (per source, per /64, the counter) is test/e2e/prefilter.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashlimitName, parsePreCounter, preChainLines } from '../../server/firewall/iptables-prefilter.js';
import {
  chainText,
  installText,
  snapshotProblems,
  undoInstallText,
  uninstallText,
} from '../../server/firewall/iptables-rules.js';
import { parseSnapshot } from '../../server/firewall/iptables-snapshot.js';
import type { NftTableListing } from '../../server/firewall/nft-json.js';
import { parseNftTable } from '../../server/firewall/nft-json.js';
import {
  parseCounterPackets,
  prefilterLines,
  prefilterProblems,
  prefilterRules,
  prefilterSetsAsPlanned,
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
      'iif != "lo" udp dport 62201 fib daddr type local update @flood4 { ip saddr limit rate over 40/second burst 80 packets } counter name "flood_drops" drop',
      'iif != "lo" udp dport 62201 fib daddr type local update @flood6 { ip6 saddr & ffff:ffff:ffff:ffff:: limit rate over 40/second burst 80 packets } counter name "flood_drops" drop',
    ]);
  });
  test('install: the chain is flushed before the sets are re-created (nft keeps an old size on `add set`), counter kept', () => {
    const lines = prefilterLines('inet t', P);
    assert.deepEqual(lines.slice(0, 5), [
      // declared anew: an older install's chain hooked input (nft refuses to change a base chain's hook)
      'add chain inet t prefilter',
      'flush chain inet t prefilter',
      'delete chain inet t prefilter',
      'add chain inet t prefilter { type filter hook prerouting priority raw; policy accept; }',
      'add counter inet t flood_drops',
    ]);
    const decl4 = '{ type ipv4_addr; flags dynamic,timeout; size 16384; timeout 10s; }';
    assert.deepEqual(lines.slice(5, 8), [
      `add set inet t flood4 ${decl4}`,
      'delete set inet t flood4',
      `add set inet t flood4 ${decl4}`,
    ]);
    assert.equal(lines.filter((l) => l.startsWith('add rule')).length, 2);
    assert.ok(!lines.some((l) => l.startsWith('delete counter')), 'the counter counts across re-installs');
    const kept = prefilterLines('inet t', P, true);
    assert.ok(!kept.some((l) => l.startsWith('delete set')), 'sets as planned are kept, with their sources');
    assert.equal(kept.filter((l) => l.startsWith('add set')).length, 2);
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
function listing(over: { size?: number; counter?: boolean; prio?: number; hook?: string } = {}): NftTableListing {
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
          hook: over.hook ?? 'prerouting',
          prio: over.prio ?? -300,
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
    assert.equal(prefilterSetsAsPlanned(listing(), P), true);
    assert.equal(prefilterSetsAsPlanned(listing({ size: 99 }), P), false);
    assert.equal(prefilterSetsAsPlanned(listing(), { ...P, timeoutS: 11 }), false);
    assert.equal(prefilterSetsAsPlanned(listing(), undefined), false);
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
    // an older install's chain (input, filter - 11) is not as planned: check reports it, a heal re-installs it
    assert.match(
      prefilterProblems('inet t', listing({ hook: 'input', prio: -11 }), P, rules).join('\n'),
      /is not "type filter hook prerouting priority raw/,
    );
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

describe('iptables prefilter text', () => {
  const chain = 'SPA_KNOCK';
  const snap0 = parseSnapshot(chain, 4, '-P INPUT ACCEPT\n');
  const protect = [{ proto: 'tcp', port: 22 }] as const;

  test('the rule, per address (IPv4) and per /64 (IPv6), as iptables -S prints it (1.8.9, measured)', () => {
    const name = hashlimitName(chain, P);
    assert.match(name, /^spak_[0-9a-f]{10}$/);
    assert.deepEqual(preChainLines(chain, 4, P), [
      `-A SPA_KNOCK_PRE -m hashlimit --hashlimit-above 40/sec --hashlimit-burst 80 --hashlimit-mode srcip --hashlimit-name ${name} --hashlimit-htable-max 16384 --hashlimit-htable-expire 10000 -j DROP`,
    ]);
    assert.match(
      preChainLines(chain, 6, P)[0] ?? '',
      / --hashlimit-htable-expire 10000 --hashlimit-srcmask 64 -j DROP$/,
    );
    assert.notEqual(hashlimitName(chain, { ...P, rate: 41 }), name, 'new parameters: a new hashlimit table');
  });

  test('install: the jump after the loopback rule, the chain declared and filled; removal leaves nothing', () => {
    const text = installText(chain, 4, snap0, [...protect], [], false, undefined, P);
    const lines = text.split('\n');
    assert.ok(lines.includes(':SPA_KNOCK_PRE - [0:0]'));
    const lo = lines.indexOf('-A SPA_KNOCK -i lo -j RETURN');
    assert.equal(lines[lo + 1], '-A SPA_KNOCK -p udp -m udp --dport 62201 -j SPA_KNOCK_PRE');
    assert.ok(lines.includes(preChainLines(chain, 4, P)[0] ?? ''));
    // as the kernel then shows it
    const shown = [
      '-P INPUT ACCEPT',
      '-N SPA_KNOCK',
      '-N SPA_KNOCK_PRE',
      '-A INPUT -j SPA_KNOCK',
      ...lines.filter((l) => l.startsWith('-A SPA_KNOCK')),
    ].join('\n');
    const snap = parseSnapshot(chain, 4, shown);
    assert.equal(snap.pre.exists, true);
    assert.deepEqual(snap.preMain, ['-A SPA_KNOCK -p udp -m udp --dport 62201 -j SPA_KNOCK_PRE']);
    assert.deepEqual(snap.protect, [...protect], 'the jump is not taken for a drop rule');
    assert.deepEqual(snap.grants, []);
    assert.deepEqual(snapshotProblems(chain, 4, snap, [...protect], false, 'IPv4', undefined, undefined, P), []);
    // unchanged: the chain is not touched again (its counter is kept)
    assert.ok(!installText(chain, 4, snap, [...protect], [], false, undefined, P).includes(':SPA_KNOCK_PRE'));
    // a grant keeps the jump
    assert.ok(chainText(chain, 4, [...protect], [], [], snap.preMain).includes('-j SPA_KNOCK_PRE'));
    // off: the chain goes, with the jump
    const off = installText(chain, 4, snap, [...protect], [], false);
    assert.ok(off.includes('-X SPA_KNOCK_PRE') && !off.includes('-j SPA_KNOCK_PRE'));
    assert.match(
      snapshotProblems(chain, 4, snap, [...protect], false, 'IPv4', undefined).join('\n'),
      /kernel_prefilter is off/,
    );
    const un = uninstallText(chain, snap) ?? '';
    assert.ok(un.includes('-F SPA_KNOCK_PRE\n-X SPA_KNOCK_PRE'));
    // undo of an install that created it: removed again
    assert.ok(undoInstallText(chain, snap0, false, undefined, P).includes('-X SPA_KNOCK_PRE'));
  });

  test('check: a missing jump, a missing or changed chain are problems', () => {
    const shown = (pre: string[], jump: boolean) =>
      parseSnapshot(
        chain,
        4,
        [
          '-N SPA_KNOCK',
          ...(pre.length > 0 ? ['-N SPA_KNOCK_PRE'] : []),
          '-A INPUT -j SPA_KNOCK',
          '-A SPA_KNOCK -i lo -j RETURN',
          ...(jump ? ['-A SPA_KNOCK -p udp -m udp --dport 62201 -j SPA_KNOCK_PRE'] : []),
          '-A SPA_KNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
          '-A SPA_KNOCK -p tcp -m tcp --dport 22 -j DROP',
          ...pre,
        ].join('\n'),
      );
    const probs = (s: ReturnType<typeof parseSnapshot>) =>
      snapshotProblems(chain, 4, s, [...protect], false, 'IPv4', undefined, undefined, P).join('\n');
    assert.match(probs(shown(preChainLines(chain, 4, P), false)), /SPA_KNOCK rules differ/);
    assert.match(probs(shown([], true)), /SPA_KNOCK_PRE is missing/);
    assert.match(probs(shown(preChainLines(chain, 4, { ...P, burst: 3 }), true)), /SPA_KNOCK_PRE rules differ/);
  });

  test('the counter: the packets of the rule in iptables -v -S', () => {
    const out = `-N SPA_KNOCK_PRE\n${(preChainLines(chain, 4, P)[0] ?? '').replace(' -j DROP', ' -c 14983 629286 -j DROP')}\n`;
    assert.equal(parsePreCounter(chain, out), 14983);
    assert.equal(parsePreCounter(chain, '-N SPA_KNOCK_PRE\n'), undefined);
  });
});
