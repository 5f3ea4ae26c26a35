/** `check` for nftables, the pure comparison of a listed table with the plan: no root needed. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nftCheckProblems, parseChainRules } from '../../server/firewall/nft-check.js';
import { parseNftTable } from '../../server/firewall/nft-json.js';
import { NFT_OUTPUT_RULES, NFT_RULES } from '../../server/firewall/nft-script.js';

const doc = (items: unknown[]): string =>
  JSON.stringify({ nftables: [{ metainfo: { json_schema_version: 1 } }, ...items] });
const set = (name: string, type: string[], flags: string[], elem: unknown[] = []) => ({
  set: { family: 'inet', name, table: 'spa_knock', type, handle: 1, flags, elem },
});
const chain = (name: 'input' | 'output', prio = -10, policy = 'accept') => ({
  chain: { family: 'inet', table: 'spa_knock', name, handle: 2, type: 'filter', hook: name, prio, policy },
});
const good = [
  { table: { family: 'inet', name: 'spa_knock', handle: 1 } },
  set('allow4', ['ipv4_addr', 'inet_proto', 'inet_service'], ['timeout']),
  set('allow6', ['ipv6_addr', 'inet_proto', 'inet_service'], ['timeout']),
  set('allow4p', ['ipv4_addr', 'inet_proto', 'inet_service'], ['interval', 'timeout']),
  set('allow6p', ['ipv6_addr', 'inet_proto', 'inet_service'], ['interval', 'timeout']),
  set('protect', ['inet_proto', 'inet_service'], [], [{ concat: ['tcp', 22] }]),
  chain('input'),
];
const plan = { protect: [{ proto: 'tcp' as const, port: 22 }], silencePortUnreachable: false, sequences: [] };
const T = 'inet spa_knock';

test('a table as planned has no problems', () => {
  const listing = parseNftTable(doc(good), 'inet', 'spa_knock');
  assert.deepEqual(nftCheckProblems(T, listing, plan, { input: NFT_RULES, output: undefined }), []);
});

test('every difference is one line: set type and flags, protected list, chain hook/policy/rules, output chain', () => {
  const bad = [
    good[0],
    set('allow4', ['ipv4_addr'], []),
    set('allow4p', ['ipv4_addr', 'inet_proto', 'inet_service'], ['timeout']),
    set('allow6p', ['ipv6_addr', 'inet_proto', 'inet_service'], ['interval', 'timeout']),
    set('protect', ['inet_proto', 'inet_service'], [], [{ concat: ['udp', 53] }]),
    chain('input', 0, 'drop'),
    chain('output'),
  ];
  const listing = parseNftTable(doc(bad), 'inet', 'spa_knock');
  const problems = nftCheckProblems(T, listing, plan, { input: ['iif "lo" accept'], output: NFT_OUTPUT_RULES });
  assert.deepEqual(problems, [
    'nft set allow4 has type ipv4_addr',
    'nft set allow4 lacks flags timeout',
    'nft set inet spa_knock allow6 is missing',
    'nft set allow4p lacks flags interval',
    'protected list differs: installed [udp/53], expected [tcp/22]',
    'nft chain input is not "type filter hook input priority filter - 10" (found filter input 0)',
    'nft chain input has policy drop',
    'nft chain input rules differ: found [iif "lo" accept]',
    'nft chain inet spa_knock output exists but silence_port_unreachable and fast_path are off',
  ]);
  const silenced = nftCheckProblems(
    T,
    parseNftTable(doc(good), 'inet', 'spa_knock'),
    { ...plan, silencePortUnreachable: true, sequences: [] },
    { input: NFT_RULES, output: undefined },
  );
  assert.deepEqual(silenced, ['nft chain inet spa_knock output is missing']);
});

test('chain rules are read from `nft list chain` text', () => {
  const text = `table inet spa_knock {\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\tiif "lo" accept\n\n\t\tct state established,related accept\n\t}\n}\n`;
  assert.deepEqual(parseChainRules(text), ['iif "lo" accept', 'ct state established,related accept']);
  assert.deepEqual(parseChainRules('junk'), []);
});
