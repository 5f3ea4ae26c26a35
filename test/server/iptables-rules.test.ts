/** The iptables rule text, built and parsed without root (server/firewall/iptables-rules.ts, iptables-snapshot.ts). */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chainLines,
  grantComment,
  grantRule,
  installText,
  outChainName,
  silenceRule,
  snapshotProblems,
  undoInstallText,
  uninstallText,
} from '../../server/firewall/iptables-rules.js';
import {
  parseDropRule,
  parseGrantRule,
  parseSnapshot,
  splitRuleLine,
} from '../../server/firewall/iptables-snapshot.js';
import type { GrantEntry } from '../../server/firewall/backend.js';

const C = 'SPA_KNOCK';
const TCP = { proto: 'tcp', port: 22 } as const;
const UDP = { proto: 'udp', port: 53 } as const;
const alice: GrantEntry = {
  family: 4,
  address: '192.0.2.7',
  access: TCP,
  expiresAt: 1_800_000_000_000,
  owner: 'alice',
};
const anon6: GrantEntry = { family: 6, address: '2001:db8::7', access: UDP, expiresAt: 1_800_000_030_000 };

/** `iptables -S` of a host with our chains installed (silence on), plus the host's own rules. */
const INSTALLED = [
  '-P INPUT ACCEPT',
  '-P FORWARD ACCEPT',
  '-P OUTPUT ACCEPT',
  `-N ${C}`,
  `-N ${C}_OUT`,
  `-A INPUT -j ${C}`,
  '-A INPUT -p tcp -m tcp --dport 2299 -j ACCEPT',
  `-A OUTPUT -j ${C}_OUT`,
  `-A ${C} -i lo -j RETURN`,
  `-A ${C} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
  `-A ${C} -s 192.0.2.7/32 -p tcp -m tcp --dport 22 -m comment --comment "spa-knock exp=1800000000000 owner=alice" -j RETURN`,
  `-A ${C} -s 192.0.2.8/32 -p tcp -m tcp --dport 22 -m comment --comment "spa-knock exp=1800000000001" -j RETURN`,
  `-A ${C} -p tcp -m tcp --dport 22 -j DROP`,
  `-A ${C}_OUT -p icmp -m icmp --icmp-type 3/3 -j DROP`,
  '',
].join('\n');

describe('iptables rule text', () => {
  test('splitRuleLine honours quotes and escapes', () => {
    assert.deepEqual(splitRuleLine('-A X -m comment --comment "spa-knock exp=5 owner=a" -j RETURN'), [
      '-A',
      'X',
      '-m',
      'comment',
      '--comment',
      'spa-knock exp=5 owner=a',
      '-j',
      'RETURN',
    ]);
    assert.deepEqual(splitRuleLine('a "b \\" c"  d'), ['a', 'b " c', 'd']);
  });

  test('a grant rule carries expiry and owner in its comment and parses back', () => {
    assert.equal(grantComment(1.6, undefined), 'spa-knock exp=2');
    const line = grantRule(C, alice);
    assert.equal(
      line,
      `-A ${C} -s 192.0.2.7/32 -p tcp -m tcp --dport 22 -m comment --comment "spa-knock exp=1800000000000 owner=alice" -j RETURN`,
    );
    assert.deepEqual(parseGrantRule(4, splitRuleLine(line)), alice);
    const six = grantRule(C, anon6);
    assert.match(six, /-s 2001:db8::7\/128 -p udp -m udp --dport 53 .*"spa-knock exp=1800000030000" -j RETURN$/);
    assert.deepEqual(parseGrantRule(6, splitRuleLine(six)), anon6);
  });

  test('a prefix grant (issue 10) is -s NETWORK/LEN and parses back with its prefix', () => {
    const net: GrantEntry = { family: 4, address: '198.51.100.0', prefix: 24, access: TCP, expiresAt: 7, owner: 'bob' };
    const line = grantRule(C, net);
    assert.match(line, /^-A \S+ -s 198\.51\.100\.0\/24 -p tcp -m tcp --dport 22 .*owner=bob" -j RETURN$/);
    assert.deepEqual(parseGrantRule(4, splitRuleLine(line)), net);
    const net6: GrantEntry = { family: 6, address: '2001:db8:1:2::', prefix: 64, access: UDP, expiresAt: 9 };
    assert.deepEqual(parseGrantRule(6, splitRuleLine(grantRule(C, net6))), net6);
    assert.equal(parseGrantRule(4, splitRuleLine(grantRule(C, net6))), undefined, 'the other family');
  });

  test('parseGrantRule: a comment without owner (older version) has no owner; anything we do not write is not a grant', () => {
    const old = `-A ${C} -s 10.0.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "spa-knock exp=5" -j RETURN`;
    assert.deepEqual(parseGrantRule(4, splitRuleLine(old)), {
      family: 4,
      address: '10.0.0.2',
      access: TCP,
      expiresAt: 5,
    });
    const odd = (s: string): GrantEntry | undefined => parseGrantRule(4, splitRuleLine(s));
    const foreign = odd(old.replace('exp=5', 'exp=5 owner=a$b'));
    assert.ok(foreign && foreign.owner === undefined, 'an owner that is no owner name: the grant, without owner');
    assert.equal(odd(old.replace('exp=5', 'exp=5 owner=a b')), undefined);
    assert.equal(odd(old.replace('/32', '/24')), undefined, 'a block with host bits set is not a grant');
    assert.equal(odd(old.replace('10.0.0.2/32', '0.0.0.0/0')), undefined, 'nor is everything');
    assert.equal(odd(old.replace('-j RETURN', '-j ACCEPT')), undefined);
    assert.equal(odd(old.replace('spa-knock exp=5', 'by hand')), undefined);
    assert.equal(odd(old.replace('10.0.0.2', '010.0.0.2')), undefined);
    assert.equal(odd(old.replace('--dport 22', '--dport 0')), undefined);
    assert.equal(
      odd(old.replace('-p tcp -m tcp', '-i eth0 -p tcp -m tcp')),
      undefined,
      'an interface match is not ours',
    );
    assert.equal(odd(`${old} --log-prefix x`), undefined, 'an option we never write');
  });

  test('drop rules and chain content', () => {
    assert.deepEqual(parseDropRule(splitRuleLine(`-A ${C} -p udp -m udp --dport 53 -j DROP`)), UDP);
    assert.equal(parseDropRule(splitRuleLine(`-A ${C} -s 1.2.3.4/32 -p udp -m udp --dport 53 -j DROP`)), undefined);
    assert.deepEqual(chainLines(C, 4, [TCP, UDP], [alice, anon6]), [
      `-A ${C} -i lo -j RETURN`,
      `-A ${C} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
      grantRule(C, alice),
      `-A ${C} -p tcp -m tcp --dport 22 -j DROP`,
      `-A ${C} -p udp -m udp --dport 53 -j DROP`,
    ]);
    assert.equal(outChainName(C), 'SPA_KNOCK_OUT');
    assert.equal(silenceRule(C, 4), `-A ${C}_OUT -p icmp -m icmp --icmp-type 3/3 -j DROP`);
    assert.equal(silenceRule(C, 6), `-A ${C}_OUT -p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j DROP`);
  });

  test('parseSnapshot finds chains, jumps and their positions, grants with owners, drops', () => {
    const s = parseSnapshot(C, 4, INSTALLED);
    assert.equal(s.input.exists, true);
    assert.deepEqual(s.input.hookJumpPositions, [1]);
    assert.equal(s.input.lines.length, 5);
    assert.deepEqual(s.output, {
      exists: true,
      lines: [`-A ${C}_OUT -p icmp -m icmp --icmp-type 3/3 -j DROP`],
      jumps: [`-A OUTPUT -j ${C}_OUT`],
      hookJumpPositions: [1],
    });
    assert.deepEqual(
      s.grants.map((g) => [g.address, g.owner]),
      [
        ['192.0.2.7', 'alice'],
        ['192.0.2.8', undefined],
      ],
    );
    assert.deepEqual(s.protect, [TCP]);
    assert.deepEqual(snapshotProblems(C, 4, s, [TCP], true, 'IPv4', undefined), []);
    assert.deepEqual(snapshotProblems(C, 4, s, [TCP], false, 'IPv4', undefined), [
      `iptables chain ${C}_OUT exists but silence_port_unreachable is off (IPv4)`,
    ]);
    const empty = parseSnapshot(C, 4, '-P INPUT ACCEPT\n');
    assert.deepEqual(snapshotProblems(C, 4, empty, [TCP], false, 'IPv4', undefined), [
      `iptables chain ${C} is missing (IPv4)`,
    ]);
  });

  test('installText: a fresh install creates the chains and jumps; a correct one only refills', () => {
    const fresh = parseSnapshot(C, 4, '-P INPUT ACCEPT\n-A INPUT -p tcp -m tcp --dport 2299 -j ACCEPT\n');
    assert.equal(
      installText(C, 4, fresh, [TCP], [], true),
      [
        '*filter',
        `:${C} - [0:0]`,
        `:${C}_OUT - [0:0]`,
        `-I INPUT 1 -j ${C}`,
        `-I OUTPUT 1 -j ${C}_OUT`,
        ...chainLines(C, 4, [TCP], []),
        silenceRule(C, 4),
        'COMMIT',
        '',
      ].join('\n'),
    );
    const done = parseSnapshot(C, 4, INSTALLED);
    assert.equal(
      installText(C, 4, done, [TCP], [alice], true),
      [
        '*filter',
        `:${C} - [0:0]`,
        `:${C}_OUT - [0:0]`,
        ...chainLines(C, 4, [TCP], [alice]),
        silenceRule(C, 4),
        'COMMIT',
        '',
      ].join('\n'),
    );
    // silence turned off: the output chain and its plain jump go
    assert.equal(
      installText(C, 4, done, [TCP], [], false),
      [
        '*filter',
        `:${C} - [0:0]`,
        `:${C}_OUT - [0:0]`,
        `-D OUTPUT -j ${C}_OUT`,
        `-X ${C}_OUT`,
        ...chainLines(C, 4, [TCP], []),
        'COMMIT',
        '',
      ].join('\n'),
    );
    // a jump that is not rule 1 is moved to rule 1
    const moved = parseSnapshot(
      C,
      4,
      INSTALLED.replace(
        `-A INPUT -j ${C}\n-A INPUT -p tcp -m tcp --dport 2299 -j ACCEPT`,
        `-A INPUT -p tcp -m tcp --dport 2299 -j ACCEPT\n-A INPUT -j ${C}`,
      ),
    );
    assert.deepEqual(moved.input.hookJumpPositions, [2]);
    assert.match(installText(C, 4, moved, [TCP], [], true), new RegExp(`-D INPUT -j ${C}\n-I INPUT 1 -j ${C}\n`));
  });

  test('undoInstallText puts back what the snapshot saw', () => {
    const fresh = parseSnapshot(C, 4, '-P INPUT ACCEPT\n');
    assert.equal(
      undoInstallText(C, fresh, true),
      [
        '*filter',
        `:${C} - [0:0]`,
        `-D INPUT -j ${C}`,
        `:${C}_OUT - [0:0]`,
        `-D OUTPUT -j ${C}_OUT`,
        `-X ${C}`,
        `-X ${C}_OUT`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    const before = parseSnapshot(
      C,
      4,
      INSTALLED.replace(
        `-A INPUT -j ${C}\n-A INPUT -p tcp -m tcp --dport 2299 -j ACCEPT`,
        `-A INPUT -p tcp -m tcp --dport 2299 -j ACCEPT\n-A INPUT -j ${C}`,
      ),
    );
    const undo = undoInstallText(C, before, false).split('\n');
    assert.deepEqual(undo.slice(0, 3), ['*filter', `:${C} - [0:0]`, `-D INPUT -j ${C}`]);
    assert.ok(
      undo.includes(`:${C}_OUT - [0:0]`) && !undo.includes(`-X ${C}_OUT`),
      'the removed output chain is re-created',
    );
    assert.ok(
      undo.includes(`-I INPUT 2 -j ${C}`) && undo.includes(`-I OUTPUT 1 -j ${C}_OUT`),
      'jumps back at their positions',
    );
    assert.ok(before.input.lines.every((l) => undo.includes(l)) && before.output.lines.every((l) => undo.includes(l)));
  });

  test('uninstallText removes every jump, then the chains; nothing to do is undefined', () => {
    assert.equal(
      uninstallText(C, parseSnapshot(C, 6, INSTALLED)),
      [
        '*filter',
        `-D INPUT -j ${C}`,
        `-D OUTPUT -j ${C}_OUT`,
        `-F ${C}`,
        `-X ${C}`,
        `-F ${C}_OUT`,
        `-X ${C}_OUT`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    assert.equal(uninstallText(C, parseSnapshot(C, 6, '-P INPUT ACCEPT\n')), undefined);
  });
});
