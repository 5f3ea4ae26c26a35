/**
 * `spa-knockd doctor`, the pure parts: the chain walk over `nft -j list ruleset` (a real nft 1.0 answer in
 * fixtures/doctor-ruleset.json, made with `nft -f` in a namespace) and over `iptables-legacy-save` text, the family,
 * clock and gate checks, and `diagnose` over gathered data. The real command in namespaces: test/e2e/doctor.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { configText } from '../../harness/config.js';
import { parseConfig } from '../../server/config.js';
import { type DropTarget, type Finding, covers, dropFindings } from '../../server/doctor-chains.js';
import { clockFindings, familyFindings, gateFindings } from '../../server/doctor-checks.js';
import type { Gathered } from '../../server/doctor-gather.js';
import { iptablesRule, iptablesSaveTable } from '../../server/doctor-iptables.js';
import { nftTables } from '../../server/doctor-nft.js';
import { diagnose, formatFindings } from '../../server/doctor.js';

const RULESET: unknown = JSON.parse(readFileSync(new URL('./fixtures/doctor-ruleset.json', import.meta.url), 'utf8'));
const tcp = (port: number) => ({ proto: 'tcp', port }) as const;
const udp = (port: number) => ({ proto: 'udp', port }) as const;
const NFT_OWN = { backend: 'nftables', table: 'spa_knock' } as const;
const brief = (fs: readonly Finding[]) => fs.map((f) => `${f.severity} ${f.code} ${f.message.split(':')[0]}`);

/** A ruleset of one `table FAMILY NAME` with one input chain holding `rules` (nft JSON as nft writes it). */
function ruleset(family: string, name: string, policy: string, rules: unknown[][], extra: unknown[] = []): unknown {
  return {
    nftables: [
      { table: { family, name, handle: 1 } },
      { chain: { family, table: name, name: 'in', handle: 1, type: 'filter', hook: 'input', prio: 0, policy } },
      ...extra,
      ...rules.map((expr, i) => ({ rule: { family, table: name, chain: 'in', handle: 10 + i, expr } })),
    ],
  };
}
const dport = (proto: string, right: unknown, op = '==') => ({
  match: { op, left: { payload: { protocol: proto, field: 'dport' } }, right },
});
const DROP = { drop: null };
const ACCEPT = { accept: null };

describe('doctor: foreign drops in nft rulesets', () => {
  const targets: DropTarget[] = [
    { access: tcp(2201), role: 'protected' },
    { access: tcp(22), role: 'protected' },
    { access: udp(62201), role: 'knock' },
  ];

  test('a real ruleset: each dropping rule and policy named, with family, chain, rule handle and a fix', () => {
    const f = dropFindings(nftTables(RULESET, NFT_OWN), targets);
    assert.deepEqual(brief(f), [
      'error foreign-drop nft table ip other (IPv4) chain in rule 3 "tcp dport 2201 drop" drops tcp/2201',
      'warning foreign-drop nft table ip other (IPv4) chain in rule 7 "ip saddr 10.0.0.0/8 drop" may drop tcp/22',
      'error foreign-drop nft table ip other (IPv4) chain in rule 10 "tcp dport 22 ct state new drop" drops tcp/22',
      'error knock-port-dropped nft table ip other (IPv4) chain in rule 6 "udp dport 62201 counter drop" drops udp/62201',
      'error foreign-drop nft table ip6 six (IPv6) chain in (priority 0) has policy drop and no rule accepts tcp/2201',
      'error foreign-drop nft table ip6 six (IPv6) chain in rule 3 "tcp dport @ports drop" drops tcp/22',
      'error knock-port-dropped nft table ip6 six (IPv6) chain in (priority 0) has policy drop and no rule accepts udp/62201',
    ]);
    assert.match(f[0]?.fix ?? '', /nft insert rule ip other in position 3 tcp dport 2201 accept$/);
    assert.match(f[4]?.fix ?? '', /nft add rule ip6 six in tcp dport 2201 accept$/);
  });

  test('spa-knockd’s own table is never reported; another inet table is', () => {
    const own = ruleset('inet', 'spa_knock', 'accept', [[dport('tcp', 22), DROP]]);
    assert.deepEqual(dropFindings(nftTables(own, NFT_OWN), targets), []);
    const f = dropFindings(nftTables(own, { backend: 'nftables', table: 'spa_other' }), targets);
    assert.deepEqual(brief(f), [
      'error foreign-drop nft table inet spa_knock chain in rule 10 "tcp dport 22 drop" drops tcp/22',
    ]);
  });

  test('an accept of the port ends the chain: a later drop-all and the policy do not count', () => {
    const r = ruleset('inet', 'filter', 'drop', [[dport('tcp', { set: [22, 2201] }), ACCEPT], [DROP]]);
    const f = dropFindings(nftTables(r, NFT_OWN), targets);
    assert.deepEqual(brief(f), [
      'error knock-port-dropped nft table inet filter chain in rule 11 "drop" drops udp/62201',
    ]);
  });

  test('ct state established,related and invalid never touch a new connection; other protocols and ports neither', () => {
    const ct = (states: string[]) => ({ match: { op: 'in', left: { ct: { key: 'state' } }, right: states } });
    const r = ruleset('ip', 'filter', 'accept', [
      [ct(['established', 'related']), DROP],
      [ct(['invalid']), DROP],
      [dport('udp', 22), DROP],
      [dport('tcp', { range: [1000, 2000] }), DROP],
      [dport('tcp', 22, '!='), { reject: { type: 'tcp reset' } }],
    ]);
    const f = dropFindings(nftTables(r, NFT_OWN), targets);
    // only the last rule: tcp dport != 22 rejects tcp/2201
    assert.deepEqual(brief(f), [
      'error foreign-drop nft table ip filter (IPv4) chain in rule 14 "tcp dport != 22 reject" drops tcp/2201',
    ]);
  });

  test('jump and goto are followed (cycles bounded); a return goes back', () => {
    const chain = (name: string) => ({ chain: { family: 'inet', table: 'f', name, handle: 2 } });
    const rule = (c: string, handle: number, expr: unknown[]) => ({
      rule: { family: 'inet', table: 'f', chain: c, handle, expr },
    });
    const r = ruleset(
      'inet',
      'f',
      'accept',
      [[{ jump: { target: 'a' } }]],
      [
        chain('a'),
        chain('b'),
        rule('a', 20, [dport('tcp', 2201), { return: null }]),
        rule('a', 21, [{ goto: { target: 'b' } }]),
        rule('b', 30, [{ jump: { target: 'a' } }]),
        rule('b', 31, [dport('tcp', { set: [22, 2201] }), DROP]),
      ],
    );
    const f = dropFindings(nftTables(r, NFT_OWN), targets);
    assert.deepEqual(brief(f), [
      'error foreign-drop nft table inet f chain b (via in) (via a) rule 31 "tcp dport { 22, 2201 } drop" drops tcp/22',
    ]);
  });

  test('the iptables backend’s own chain (iptables-nft shows it in the ruleset) is skipped, the rest is walked', () => {
    const r = {
      nftables: [
        {
          chain: {
            family: 'ip',
            table: 'filter',
            name: 'INPUT',
            handle: 1,
            type: 'filter',
            hook: 'input',
            prio: 0,
            policy: 'accept',
          },
        },
        { chain: { family: 'ip', table: 'filter', name: 'SPA_KNOCK', handle: 3 } },
        {
          rule: {
            family: 'ip',
            table: 'filter',
            chain: 'INPUT',
            handle: 5,
            expr: [{ counter: null }, { jump: { target: 'SPA_KNOCK' } }],
          },
        },
        { rule: { family: 'ip', table: 'filter', chain: 'SPA_KNOCK', handle: 4, expr: [dport('tcp', 22), DROP] } },
        {
          rule: {
            family: 'ip',
            table: 'filter',
            chain: 'INPUT',
            handle: 6,
            expr: [
              { match: { op: '==', left: { meta: { key: 'l4proto' } }, right: 'tcp' } },
              { xt: { type: 'match', name: 'multiport' } },
              DROP,
            ],
          },
        },
      ],
    };
    const f = dropFindings(nftTables(r, { backend: 'iptables', table: 'SPA_KNOCK' }), targets);
    assert.deepEqual(brief(f), [
      'warning foreign-drop nft table ip filter (IPv4) chain INPUT rule 6 "meta l4proto tcp drop" may drop tcp/2201',
      'warning foreign-drop nft table ip filter (IPv4) chain INPUT rule 6 "meta l4proto tcp drop" may drop tcp/22',
    ]);
  });

  test('no ruleset, an empty one or an unknown shape: no finding, no throw', () => {
    for (const j of [undefined, {}, { nftables: 'x' }, { nftables: [null, 1, { rule: {} }] }])
      assert.deepEqual(dropFindings(nftTables(j, NFT_OWN), targets), []);
  });

  test('covers: port ranges, negation, protocols', () => {
    assert.equal(covers({ dports: [[20, 30]] }, tcp(22)), 'yes');
    assert.equal(covers({ dports: [[20, 30]], dportsNegated: true }, tcp(22)), 'no');
    assert.equal(covers({ protos: new Set(['udp']) }, tcp(22)), 'no');
    assert.equal(covers({ other: true }, tcp(22)), 'maybe');
    assert.equal(covers({ notNew: true }, tcp(22)), 'no');
  });
});

describe('doctor: iptables-legacy-save', () => {
  const SAVE = [
    '# Generated by iptables-save v1.8.9',
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    '-A PREROUTING -p tcp --dport 22 -j DROP',
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':X - [0:0]',
    ':SPA_KNOCK - [0:0]',
    '-A INPUT -j SPA_KNOCK',
    '-A INPUT -p tcp -m tcp --dport 2201 -j DROP',
    '-A INPUT -p udp -m multiport --dports 53,62000:63000 -j REJECT --reject-with icmp-port-unreachable',
    '-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A INPUT -s 10.0.0.0/8 -j X',
    '-A X ! -p tcp -j DROP',
    '-A SPA_KNOCK -p tcp --dport 22 -j DROP',
    'COMMIT',
  ].join('\n');

  test('filter INPUT and the chains it jumps to; the nat table and spa-knockd’s chain are not walked', () => {
    const t = iptablesSaveTable(SAVE, 4, new Set(['SPA_KNOCK']), 'iptables-legacy');
    assert.ok(t);
    const f = dropFindings(
      [t],
      [
        { access: tcp(2201), role: 'protected' },
        { access: tcp(22), role: 'protected' },
        { access: udp(62201), role: 'knock' },
      ],
    );
    assert.deepEqual(brief(f), [
      'error foreign-drop iptables-legacy table filter (IPv4) chain INPUT rule 2 "-p tcp -m tcp --dport 2201 -j DROP" drops tcp/2201',
      'error knock-port-dropped iptables-legacy table filter (IPv4) chain INPUT rule 3 "-p udp -m multiport --dports 53,62000',
    ]);
    assert.match(f[0]?.fix ?? '', /iptables-legacy -I INPUT 2 -p tcp --dport 2201 -j ACCEPT$/);
    // the X chain is reached only from 10.0.0.0/8 (a condition): its udp drop is a "may"
    const f2 = dropFindings([t], [{ access: udp(5000), role: 'knock' }]);
    assert.deepEqual(brief(f2), [
      'warning knock-port-dropped iptables-legacy table filter (IPv4) chain X (via INPUT) rule 1 "! -p tcp -j DROP" may drop udp/5000',
    ]);
  });

  test('an empty dump (legacy tables not loaded) is no table at all; policy DROP alone is one', () => {
    assert.equal(iptablesSaveTable('', 4, new Set(), 'iptables-legacy'), undefined);
    assert.equal(
      iptablesSaveTable('*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n', 6, new Set(), 'ip6tables-legacy'),
      undefined,
    );
    const t = iptablesSaveTable('*filter\n:INPUT DROP [0:0]\nCOMMIT\n', 6, new Set(), 'ip6tables-legacy');
    assert.ok(t);
    assert.equal(dropFindings([t], [{ access: tcp(22), role: 'protected' }])[0]?.code, 'foreign-drop');
  });

  test('rule words: negated ports, states, goto', () => {
    assert.deepEqual(iptablesRule(['-p', 'tcp', '!', '--dport', '22', '-j', 'DROP']).match.dportsNegated, true);
    assert.equal(iptablesRule(['-m', 'state', '--state', 'NEW', '-j', 'DROP']).match.notNew, false);
    assert.equal(iptablesRule(['-m', 'state', '!', '--state', 'NEW', '-j', 'DROP']).match.notNew, true);
    assert.deepEqual(iptablesRule(['-g', 'Y']).target, 'Y');
  });
});

describe('doctor: families, clocks, the gate', () => {
  const host = { v4: ['192.0.2.1'], v6: ['2001:db8::1'] };
  const codes = (fs: readonly Finding[]) => fs.map((f) => f.code);

  test('IPv4-only listen on a host with IPv6, the reverse, bindv6only, ip6tables missing; dual-stack is clean', () => {
    const base = { backend: 'nftables', listenPort: 62201, host } as const;
    assert.deepEqual(codes(familyFindings({ ...base, listenAddress: '::' })), []);
    assert.deepEqual(codes(familyFindings({ ...base, listenAddress: '::', bindV6Only: false })), []);
    assert.deepEqual(codes(familyFindings({ ...base, listenAddress: '0.0.0.0' })), ['ipv6-unknockable']);
    assert.deepEqual(codes(familyFindings({ ...base, listenAddress: '0.0.0.0', host: { v4: host.v4, v6: [] } })), []);
    assert.deepEqual(codes(familyFindings({ ...base, listenAddress: '2001:db8::1' })), ['ipv4-unknockable']);
    assert.deepEqual(codes(familyFindings({ ...base, listenAddress: '::', bindV6Only: true })), ['ipv4-unknockable']);
    assert.deepEqual(
      codes(familyFindings({ ...base, backend: 'iptables', listenAddress: '::', ip6tablesWorks: false })),
      ['ipv6-unprotected'],
    );
    assert.deepEqual(
      codes(familyFindings({ ...base, backend: 'iptables', listenAddress: '::', ip6tablesWorks: true })),
      [],
    );
  });

  test('a stale knock says who, from where, how far ahead or behind; NTP state; unknown-key is a note', () => {
    const stale = [
      { client: 'alice', source: '203.0.113.9', offset_s: 75.2, seen: '2026-01-01T00:00:00.000Z', count: 3 },
      { client: 'bob', source: '2001:db8::7', offset_s: -90, seen: '2026-01-01T00:00:00.000Z', count: 1 },
    ];
    const f = clockFindings(stale, 60, 'no', 2);
    assert.deepEqual(codes(f), ['clock-offset', 'clock-offset', 'ntp-unsynchronised', 'unknown-key']);
    assert.match(
      f[0]?.message ?? '',
      /from client "alice" at 203\.0\.113\.9 arrive 75\.2 s ahead of this host's clock/,
    );
    assert.match(f[1]?.message ?? '', /arrive 90 s behind/);
    assert.equal(f[3]?.severity, 'note');
    assert.deepEqual(codes(clockFindings([], 60, 'yes')), ['ntp']);
    assert.deepEqual(clockFindings([], 60, undefined), []);
  });

  test('gate problems are errors; the fix depends on whether the daemon runs', () => {
    const [a] = gateFindings(['nft table inet spa_knock is missing'], false);
    assert.equal(a?.code, 'gate-missing');
    assert.match(a?.fix ?? '', /start spa-knockd/);
    assert.match(gateFindings(['x'], true)[0]?.fix ?? '', /heal/);
  });
});

describe('doctor: diagnose and the text', () => {
  const config = parseConfig(configText({ protect: ['tcp/22'], address: '::' }), 'x.toml');
  const status = {
    pid: 1,
    started: '2026-01-01T00:00:00.000Z',
    uptime_s: 1,
    backend: 'nftables',
    listen: '[::]:62201',
    grants: [],
    rejects: { total: 0, by: {} },
    clock: { stale: [] },
  };
  const clean: Gathered = {
    nftRuleset: ruleset('inet', 'filter', 'drop', [
      [dport('tcp', { set: [22, 62201] }), ACCEPT],
      [dport('udp', 62201), ACCEPT],
    ]),
    host: { v4: ['192.0.2.1'], v6: ['2001:db8::1'] },
    ntp: 'yes',
    unreadable: [],
    status: { ok: true, value: status },
    gate: { problems: [] },
  };

  test('a clean host: only notes, and the summary says no problems', () => {
    const f = diagnose(config, clean);
    assert.deepEqual(
      f.map((x) => x.severity),
      ['note'],
    );
    assert.match(
      formatFindings(config, f),
      /^note {4}\[ntp\] .*\ndoctor: no problems found \(nftables, protects tcp\/22, udp port 62201\)\n$/,
    );
  });

  test('a broken host: the daemon down, the gate missing, the port dropped — one line each, counted', () => {
    const f = diagnose(config, {
      ...clean,
      nftRuleset: ruleset('ip', 'other', 'accept', [[dport('tcp', 22), DROP]]),
      status: { ok: false, why: 'no spa-knockd is running with this state_dir' },
      gate: { problems: ['nft table inet spa_knock is missing'] },
    });
    assert.deepEqual(
      f.map((x) => x.code),
      ['daemon-not-running', 'gate-missing', 'foreign-drop', 'ntp'],
    );
    const text = formatFindings(config, f);
    assert.equal(text.trimEnd().split('\n').length, 5);
    assert.match(text, /^error {3}\[daemon-not-running\] .*; fix: start it/m);
    assert.match(text, /\ndoctor: 3 findings /);
  });

  test('classic sequence steps: only a chain that runs before spa-knockd’s (priority < -10) hides them', () => {
    const seqConfig = parseConfig(
      configText({
        protect: ['tcp/22'],
        extra: '[[sequence]]\nname = "door"\nsteps = ["7000", "8000:udp", "9000"]\nopen = ["tcp/22"]',
      }),
      'x.toml',
    );
    const chain = (name: string, prio: number) => ({
      chain: { family: 'inet', table: 'early', name, handle: 1, type: 'filter', hook: 'input', prio, policy: 'accept' },
    });
    const rule = (c: string, handle: number, expr: unknown[]) => ({
      rule: { family: 'inet', table: 'early', chain: c, handle, expr },
    });
    const f = diagnose(seqConfig, {
      ...clean,
      nftRuleset: {
        nftables: [
          chain('raw', -100),
          chain('late', 0),
          rule('raw', 5, [dport('udp', 8000), DROP]),
          rule('late', 6, [dport('tcp', 9000), DROP]),
        ],
      },
    });
    assert.deepEqual(
      f.filter((x) => x.severity !== 'note').map((x) => x.message.split(':')[0]),
      ['nft table inet early chain raw rule 5 "udp dport 8000 drop" drops udp/8000'],
    );
    assert.equal(f[0]?.code, 'sequence-step-dropped');
    assert.match(f[0]?.message ?? '', /knocks of sequence "door" never reach spa-knockd's rules/);
  });

  test('a ruleset that cannot be read (not root) is a warning, never a silent "no problems"', () => {
    const f = diagnose(config, {
      ...clean,
      nftRuleset: undefined,
      unreadable: ['nft -j list ruleset: Operation not permitted (you must be root)'],
    });
    assert.deepEqual(
      f.filter((x) => x.severity !== 'note').map((x) => x.code),
      ['not-checked'],
    );
    assert.match(f[0]?.message ?? '', /^cannot read nft -j list ruleset: Operation not permitted/);
  });
});
