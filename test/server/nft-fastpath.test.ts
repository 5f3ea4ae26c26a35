/**
 * The nftables kernel fast path, the pure parts (server/firewall/nft-fastpath.ts): ports per (protocol, duration),
 * the rules as written and as listed, the plan check, the install lines and `check`, the config keys and the plan
 * the daemon derives. The kernel behaviour is in test/e2e/fastpath.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatKey } from '../../shared/keys.js';
import { keyOf } from '../../harness/config.js';
import { SpaError } from '../../shared/errors.js';
import { parseConfig } from '../../server/config.js';
import { fastPathOf, planOf } from '../../server/daemon.js';
import { fastPathInputRules, fastPathRules, fastRoutes } from '../../server/firewall/nft-fastpath.js';
import { nftCheckProblems } from '../../server/firewall/nft-check.js';
import { parseNftTable } from '../../server/firewall/nft-json.js';
import { NFT_OUTPUT_RULES, NFT_RULES, installLines } from '../../server/firewall/nft-script.js';
import { checkFastPath, checkPlan } from '../../server/firewall/validate.js';

const FP = { firstPort: 62300, durationsS: [30, 5], uid: 0 };

test('one port per protocol and duration: tcp then udp, durations ascending', () => {
  assert.deepEqual(fastRoutes(FP), [
    { proto: 'tcp', durationS: 5, port: 62300 },
    { proto: 'tcp', durationS: 30, port: 62301 },
    { proto: 'udp', durationS: 5, port: 62302 },
    { proto: 'udp', durationS: 30, port: 62303 },
  ]);
});

test('rules: a v4 and a v6 rule per port, the protocol as a number when written and by name when listed, then a catch-all drop', () => {
  const written = fastPathRules({ ...FP, durationsS: [30], uid: 105 }, false);
  assert.deepEqual(written, [
    'meta skuid 105 udp sport 62300 update @allow4 { ip daddr . 6 . udp dport timeout 30s } drop',
    'meta skuid 105 udp sport 62300 update @allow6 { ip6 daddr . 6 . udp dport timeout 30s } drop',
    'meta skuid 105 udp sport 62301 update @allow4 { ip daddr . 17 . udp dport timeout 30s } drop',
    'meta skuid 105 udp sport 62301 update @allow6 { ip6 daddr . 17 . udp dport timeout 30s } drop',
    'meta skuid 105 udp sport 62300-62301 drop',
  ]);
  const listed = fastPathRules({ ...FP, durationsS: [90], uid: 0 }, true);
  assert.equal(
    listed[0],
    'meta skuid 0 udp sport 62300 update @allow4 { ip daddr . tcp . udp dport timeout 1m30s } drop',
  );
  assert.equal(
    listed[3],
    'meta skuid 0 udp sport 62301 update @allow6 { ip6 daddr . udp . udp dport timeout 1m30s } drop',
  );
});

test('the plan check refuses bad ports, durations and uids, one ERR_SPA_FIREWALL line each', () => {
  assert.equal(checkFastPath(undefined), undefined);
  assert.deepEqual(checkFastPath({ firstPort: 1024, durationsS: [3, 3], uid: 0 }), {
    firstPort: 1024,
    durationsS: [3],
    uid: 0,
  });
  for (const bad of [
    { firstPort: 80, durationsS: [3], uid: 0 },
    { firstPort: 65535, durationsS: [3], uid: 0 },
    { firstPort: 62300, durationsS: [], uid: 0 },
    { firstPort: 62300, durationsS: [0], uid: 0 },
    { firstPort: 62300, durationsS: [1, 2, 3, 4, 5, 6, 7, 8, 9], uid: 0 },
    { firstPort: 62300, durationsS: [3.5], uid: 0 },
    { firstPort: 62300, durationsS: [3], uid: -1 },
    { firstPort: '62300', durationsS: [3], uid: 0 },
  ]) {
    assert.throws(
      () => checkFastPath(bad),
      (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_FIREWALL' && !e.message.includes('\n'),
      JSON.stringify(bad),
    );
  }
});

test('install lines: the output chain holds the fast-path rules, then the silence rules; no chain without either', () => {
  const base = { protect: [{ proto: 'tcp' as const, port: 22 }], silencePortUnreachable: true, sequences: [] };
  const lines = installLines('t', checkPlan({ ...base, fastPath: { ...FP, durationsS: [3] } }));
  const rules = lines.filter((l) => l.startsWith('add rule inet t output ')).map((l) => l.slice(23));
  assert.deepEqual(rules, [...fastPathRules({ ...FP, durationsS: [3] }, false), ...NFT_OUTPUT_RULES]);
  const none = installLines('t', checkPlan({ ...base, silencePortUnreachable: false }));
  assert.ok(none.includes('delete chain inet t output'));
});

test('install lines: the input chain refuses outside datagrams to the trigger ports first, as a closed port', () => {
  assert.deepEqual(fastPathInputRules(FP), ['udp dport 62300-62303 reject']);
  assert.deepEqual(fastPathInputRules({ ...FP, durationsS: [3] }), ['udp dport 62300-62301 reject']);
  const base = { protect: [{ proto: 'tcp' as const, port: 22 }], sequences: [] };
  const input = (plan: Parameters<typeof checkPlan>[0]) =>
    installLines('t', checkPlan(plan))
      .filter((l) => l.startsWith('add rule inet t input '))
      .map((l) => l.slice(22));
  assert.deepEqual(input({ ...base, fastPath: { ...FP, durationsS: [3] } }), [
    'udp dport 62300-62301 reject',
    ...NFT_RULES,
  ]);
  assert.deepEqual(input(base), [...NFT_RULES]);
});

test('install lines: allow4/allow6 are declared as nft makes a set that rules update, with or without the fast path', () => {
  // declared otherwise, the install over the table of an earlier run fails ("File exists") and replaces it whole
  const base = { protect: [{ proto: 'tcp' as const, port: 22 }], silencePortUnreachable: false, sequences: [] };
  for (const plan of [base, { ...base, fastPath: FP }]) {
    const lines = installLines('t', checkPlan(plan));
    assert.ok(
      lines.includes(
        'add set inet t allow4 { type ipv4_addr . inet_proto . inet_service; size 65535; flags dynamic,timeout; }',
      ),
    );
    assert.ok(
      lines.includes(
        'add set inet t allow6 { type ipv6_addr . inet_proto . inet_service; size 65535; flags dynamic,timeout; }',
      ),
    );
    assert.ok(
      lines.includes('add set inet t allow4p { type ipv4_addr . inet_proto . inet_service; flags interval,timeout; }'),
    );
  }
});
test('check: the listed fast-path rules are as planned; a missing or different one is a problem', () => {
  const fp = { ...FP, durationsS: [3] };
  const chain = (name: 'input' | 'output') => ({
    chain: { family: 'inet', table: 't', name, handle: 2, type: 'filter', hook: name, prio: -10, policy: 'accept' },
  });
  const set = (name: string, type: string[], flags: string[], elem: unknown[] = []) => ({
    set: { family: 'inet', name, table: 't', type, handle: 1, flags, elem },
  });
  const listing = parseNftTable(
    JSON.stringify({
      nftables: [
        { metainfo: { json_schema_version: 1 } },
        { table: { family: 'inet', name: 't', handle: 1 } },
        set('allow4', ['ipv4_addr', 'inet_proto', 'inet_service'], ['timeout']),
        set('allow6', ['ipv6_addr', 'inet_proto', 'inet_service'], ['timeout']),
        set('allow4p', ['ipv4_addr', 'inet_proto', 'inet_service'], ['interval', 'timeout']),
        set('allow6p', ['ipv6_addr', 'inet_proto', 'inet_service'], ['interval', 'timeout']),
        set('protect', ['inet_proto', 'inet_service'], [], [{ concat: ['tcp', 22] }]),
        chain('input'),
        chain('output'),
      ],
    }),
    'inet',
    't',
  );
  const plan = checkPlan({ protect: [{ proto: 'tcp', port: 22 }], fastPath: fp });
  const input = [...fastPathInputRules(fp), ...NFT_RULES];
  assert.deepEqual(nftCheckProblems('inet t', listing, plan, { input, output: fastPathRules(fp, true) }), []);
  const wrong = nftCheckProblems('inet t', listing, plan, { input, output: fastPathRules(fp, false) });
  assert.equal(wrong.length, 1);
  assert.match(wrong[0] ?? '', /nft chain output rules differ/);
  const noReject = nftCheckProblems('inet t', listing, plan, { input: NFT_RULES, output: fastPathRules(fp, true) });
  assert.equal(noReject.length, 1);
  assert.match(noReject[0] ?? '', /nft chain input rules differ/);
  const off = nftCheckProblems('inet t', listing, checkPlan({ protect: [{ proto: 'tcp', port: 22 }] }), {
    input: NFT_RULES,
    output: fastPathRules(fp, true),
  });
  assert.deepEqual(off, ['nft chain inet t output exists but silence_port_unreachable and fast_path are off']);
});

const cfg = (firewall: string, more = '') => `
[firewall]
protect = ["tcp/22"]
${firewall}
[grant]
duration = 30
max_duration = 300
[[client]]
name = "alice"
key = "${formatKey(keyOf(1))}"
open = ["tcp/22"]
[[client]]
name = "bob"
key = "${formatKey(keyOf(2))}"
open = ["tcp/22"]
max_duration = 10
${more}`;

test('config: fast_path is "auto" by default (optional in the plan; none with iptables); true requires it; false is off', () => {
  const uid = process.getuid?.() ?? 0;
  const auto = parseConfig(cfg(''), 'x.toml');
  assert.equal(auto.firewall.fastPath, 'auto');
  assert.equal(auto.firewall.fastPathPort, 62300);
  assert.deepEqual(planOf(auto).fastPath, { firstPort: 62300, durationsS: [30, 10], uid, optional: true });
  assert.deepEqual(parseConfig(cfg('fast_path = "auto"'), 'x.toml').firewall.fastPath, 'auto');
  assert.equal(planOf(parseConfig(cfg('backend = "iptables"'), 'x.toml')).fastPath, undefined);
  assert.equal(planOf(parseConfig(cfg('backend = "iptables"\nfast_path = "auto"'), 'x.toml')).fastPath, undefined);
  const off = parseConfig(cfg('fast_path = false'), 'x.toml');
  assert.equal(off.firewall.fastPath, false);
  assert.equal(planOf(off).fastPath, undefined);
  const on = parseConfig(cfg('fast_path = true\nfast_path_port = 40000'), 'x.toml');
  assert.deepEqual(fastPathOf(on), { firstPort: 40000, durationsS: [30, 10], uid });
  assert.deepEqual(planOf(on).fastPath, fastPathOf(on));
  // the plan check keeps `optional` as it is and nothing else
  assert.equal(checkFastPath(planOf(auto).fastPath)?.optional, true);
  assert.equal(checkFastPath({ ...FP, optional: 'yes' })?.optional, undefined);
});

test('config: fast_path with iptables, or a port out of range, is one ERR_SPA_CONFIG line', () => {
  for (const [text, re] of [
    [cfg('backend = "iptables"\nfast_path = true'), /fast_path.*nftables/],
    [cfg('fast_path = true\nfast_path_port = 80'), /fast_path_port/],
    [cfg('fast_path = "yes"'), /fast_path: must be true, false or "auto"/],
  ] as const) {
    assert.throws(
      () => parseConfig(text, 'x.toml'),
      (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_CONFIG' && re.test(e.message),
      text,
    );
  }
});
