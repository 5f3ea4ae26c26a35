/**
 * The iptables backend (iptables + ip6tables) against a real kernel, inside a namespace pair
 * (spak-fwt-ipt-srv / -cli). Run: node --import tsx --test test/server/firewall-iptables.test.ts (as root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FirewallError, type GrantEntry } from '../../server/firewall/backend.js';
import { IptablesBackend, splitRuleLine } from '../../server/firewall/iptables.js';
import { createPair, netnsSkip, type Agent, type NetnsPair } from '../../harness/netns.js';

const P_TCP = 2201;
const P_OPEN = 2202;
const P_UDP = 2253;
const P_HOST = 2299; // the "host's own" rule, which we must never touch
const TCP = { proto: 'tcp', port: P_TCP } as const;
const UDP = { proto: 'udp', port: P_UDP } as const;
const PLAN = { protect: [TCP, UDP] };
const BLOCK_MS = 350;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('iptables pure helpers', () => {
  test('splitRuleLine honours quotes', () => {
    assert.deepEqual(splitRuleLine('-A X -m comment --comment "spa-knock exp=5" -j RETURN'), [
      '-A',
      'X',
      '-m',
      'comment',
      '--comment',
      'spa-knock exp=5',
      '-j',
      'RETURN',
    ]);
  });
  test('constructor validates the chain name', () => {
    assert.throws(() => new IptablesBackend({ chain: 'INPUT' }), FirewallError);
    assert.throws(() => new IptablesBackend({ chain: 'A B' }), FirewallError);
    assert.throws(() => new IptablesBackend({ chain: 'X'.repeat(29) }), FirewallError);
    assert.doesNotThrow(() => new IptablesBackend({ chain: 'SPA_KNOCK2' }));
  });
});

const skip = netnsSkip(['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore']);

describe('iptables backend in a namespace', { skip }, () => {
  let pair: NetnsPair;
  let srv: Agent;
  let cli: Agent;
  let fw: IptablesBackend;

  const v4 = (expiresAt: number, access: GrantEntry['access'] = TCP): GrantEntry => ({
    family: 4,
    address: pair.cli4,
    access,
    expiresAt,
  });
  const v6 = (expiresAt: number, access: GrantEntry['access'] = TCP): GrantEntry => ({
    family: 6,
    address: pair.cli6,
    access,
    expiresAt,
  });
  const canTcp = async (host: string, port: number): Promise<boolean> => (await cli.tcpConnect(host, port, BLOCK_MS)).ok;
  const canUdp = async (host: string, port: number): Promise<boolean> => (await cli.udpProbe(host, port, BLOCK_MS)).ok;
  const rules = async (tool: 'iptables' | 'ip6tables'): Promise<string[]> => {
    const r = await pair.exec(pair.srv, [tool, '-S']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter((l) => l !== '');
  };
  const ipt = async (tool: 'iptables' | 'ip6tables', ...args: string[]): Promise<void> => {
    const r = await pair.exec(pair.srv, [tool, ...args]);
    assert.equal(r.code, 0, r.stderr);
  };

  before(async () => {
    pair = await createPair('fwt-ipt', { subnet: 12 });
    srv = await pair.agent(pair.srv);
    await srv.listenTcp(P_TCP);
    await srv.listenTcp(P_OPEN);
    await srv.listenTcp(P_HOST);
    await srv.listenUdp(P_UDP);
    cli = await pair.agent(pair.cli);
    // the host's own firewall: one rule each that must survive everything we do
    await ipt('iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(P_HOST), '-j', 'ACCEPT');
    await ipt('ip6tables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(P_HOST), '-j', 'ACCEPT');
    fw = new IptablesBackend({ wrap: pair.wrap(pair.srv) });
  });

  after(async () => {
    await fw?.close().catch(() => undefined);
    await pair?.cleanup();
  });

  test('before install everything connects; check reports the missing chain', async () => {
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.ok(await canTcp(pair.srv6, P_TCP));
    const problems = await fw.check(PLAN);
    assert.deepEqual(problems, [
      'iptables chain SPA_KNOCK is missing (IPv4)',
      'iptables chain SPA_KNOCK is missing (IPv6)',
    ]);
    await assert.rejects(fw.grant([v4(Date.now() + 5000)], Date.now()), /not installed/);
  });

  test('install: chain, jump at position 1 (once), protected accesses dropped', async () => {
    await fw.install(PLAN);
    await fw.install(PLAN); // idempotent
    assert.deepEqual(await fw.check(PLAN), []);
    for (const tool of ['iptables', 'ip6tables'] as const) {
      const r = await rules(tool);
      const input = r.filter((l) => l.startsWith('-A INPUT'));
      assert.deepEqual(input, ['-A INPUT -j SPA_KNOCK', `-A INPUT -p tcp -m tcp --dport ${P_HOST} -j ACCEPT`]);
      assert.deepEqual(
        r.filter((l) => l.startsWith('-A SPA_KNOCK')),
        [
          '-A SPA_KNOCK -i lo -j RETURN',
          '-A SPA_KNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
          `-A SPA_KNOCK -p tcp -m tcp --dport ${P_TCP} -j DROP`,
          `-A SPA_KNOCK -p udp -m udp --dport ${P_UDP} -j DROP`,
        ],
      );
    }
    const got = await Promise.all([
      canTcp(pair.srv4, P_TCP),
      canTcp(pair.srv6, P_TCP),
      canTcp(pair.srv4, P_OPEN),
      canTcp(pair.srv6, P_HOST),
      canUdp(pair.srv6, P_UDP),
    ]);
    assert.deepEqual(got, [false, false, true, true, false]);
  });

  test('a v4 grant opens v4 only; a v6 grant opens v6; list reports them', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 30_000)], now);
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.equal(await canTcp(pair.srv6, P_TCP), false);
    await fw.grant([v6(now + 60_000), v6(now + 60_000, UDP)], now);
    assert.ok(await canTcp(pair.srv6, P_TCP));
    assert.ok(await canUdp(pair.srv6, P_UDP));
    assert.equal(await canUdp(pair.srv4, P_UDP), false);
    const listed = (await fw.list(Date.now())).sort((a, b) => a.expiresAt - b.expiresAt);
    assert.deepEqual(listed[0], v4(now + 30_000));
    assert.equal(listed.length, 3);
    const r4 = await rules('iptables');
    assert.ok(
      r4.includes(
        `-A SPA_KNOCK -s ${pair.cli4}/32 -p tcp -m tcp --dport ${P_TCP} -m comment --comment "spa-knock exp=${now + 30_000}" -j RETURN`,
      ),
      r4.join('\n'),
    );
  });

  test('grant again replaces the rule (refresh), never duplicates it', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 90_000)], now);
    const r4 = (await rules('iptables')).filter((l) => l.includes(`-s ${pair.cli4}/32`));
    assert.equal(r4.length, 1);
    assert.match(r4[0] ?? '', new RegExp(`exp=${now + 90_000}`));
    assert.ok(await canTcp(pair.srv4, P_TCP));
  });

  test('revoke closes at once; a held connection keeps working; absent = no error', async () => {
    const held = await cli.hold(pair.srv6, P_TCP, BLOCK_MS);
    await fw.revoke([{ family: 6, address: pair.cli6, access: TCP }]);
    assert.equal(await canTcp(pair.srv6, P_TCP), false);
    assert.ok(await held.ping(), 'held connection still echoes');
    await fw.revoke([{ family: 6, address: pair.cli6, access: TCP }]);
    await fw.revoke([{ family: 4, address: '10.251.12.77', access: UDP }]);
    assert.ok(await canUdp(pair.srv6, P_UDP), 'the other v6 grant stays');
    await fw.revoke([v6(0, UDP)]);
    assert.equal(await canUdp(pair.srv6, P_UDP), false);
    await held.close();
  });

  test('no kernel expiry: an expired grant stays until revoked, and list shows it', async () => {
    const now = Date.now();
    await fw.grant([v6(now + 1000)], now);
    await sleep(1100);
    assert.ok(await canTcp(pair.srv6, P_TCP), 'iptables does not expire by itself');
    const listed = await fw.list(Date.now());
    const g = listed.find((x) => x.family === 6);
    assert.ok(g && g.expiresAt <= Date.now());
    await fw.revoke([v6(0)]);
    assert.equal(await canTcp(pair.srv6, P_TCP), false);
  });

  test('install reconciles: expired leftovers removed, live grants kept (new backend object = restart)', async () => {
    const now = Date.now();
    await fw.grant([v6(now + 1000, UDP), v4(now + 60_000, UDP)], now);
    await sleep(1100);
    // the host admin inserted a rule above our jump meanwhile
    await ipt('iptables', '-I', 'INPUT', '1', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT');
    assert.match((await fw.check(PLAN)).join('\n'), /rule 2 of INPUT, not rule 1 \(IPv4\)/);
    const fw2 = new IptablesBackend({ wrap: pair.wrap(pair.srv) });
    await fw2.install(PLAN);
    assert.deepEqual(await fw2.check(PLAN), []);
    const keys = (await fw2.list(Date.now())).map((g) => `${g.family} ${g.access.proto}/${g.access.port}`).sort();
    assert.deepEqual(keys, ['4 tcp/2201', '4 udp/2253']);
    assert.equal(await canUdp(pair.srv6, P_UDP), false, 'expired leftover removed');
    assert.ok(await canUdp(pair.srv4, P_UDP), 'live grant kept');
    const input = (await rules('iptables')).filter((l) => l.startsWith('-A INPUT'));
    assert.deepEqual(input, [
      '-A INPUT -j SPA_KNOCK',
      '-A INPUT -p tcp -m tcp --dport 9 -j ACCEPT',
      `-A INPUT -p tcp -m tcp --dport ${P_HOST} -j ACCEPT`,
    ]);
    await ipt('iptables', '-D', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT');
    // a changed protected list keeps grants too
    const plan2 = { protect: [TCP, { proto: 'tcp', port: P_OPEN } as const] };
    await fw2.install(plan2);
    assert.deepEqual(await fw2.check(plan2), []);
    assert.match((await fw2.check(PLAN)).join('\n'), /protected list differs \(IPv4\)/);
    assert.equal(await canTcp(pair.srv6, P_OPEN), false);
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.ok(await canUdp(pair.srv6, P_UDP), 'udp no longer protected');
    await fw2.install(PLAN);
    await fw2.close();
    // the first object, not told about fw2's install, still works (its mirror is rebuilt from its own state)
    await fw.install(PLAN);
    await fw.revoke([v4(0), v4(0, UDP)]);
    assert.deepEqual(await fw.list(Date.now()), []);
  });

  test('grant without install in this process loads the chain from the kernel', async () => {
    const fw3 = new IptablesBackend({ wrap: pair.wrap(pair.srv) });
    const now = Date.now();
    await fw3.grant([v4(now + 30_000)], now);
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.deepEqual(await fw3.check(PLAN), []);
    await fw3.revoke([v4(0)]);
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
  });

  test('check reports a damaged chain and a missing jump', async () => {
    await ipt('iptables', '-D', 'SPA_KNOCK', '-i', 'lo', '-j', 'RETURN');
    await ipt('ip6tables', '-D', 'INPUT', '-j', 'SPA_KNOCK');
    const problems = await fw.check(PLAN);
    assert.deepEqual(problems, [
      'iptables chain SPA_KNOCK rules differ from the plan (IPv4)',
      'no jump from INPUT to SPA_KNOCK (IPv6)',
    ]);
    await fw.install(PLAN);
    assert.deepEqual(await fw.check(PLAN), []);
  });

  test('validation errors and missing tools are one-line FirewallErrors; nothing is applied', async () => {
    const now = Date.now();
    await assert.rejects(
      fw.grant([v4(now + 5000), { family: 4, address: '1.2.3.4 -j ACCEPT', access: TCP, expiresAt: now }], now),
      FirewallError,
    );
    await assert.rejects(
      fw.grant([v4(now + 5000), { family: 6, address: pair.cli6, access: { proto: 'tcp', port: 0 }, expiresAt: now }], now),
      FirewallError,
    );
    assert.deepEqual(await fw.list(Date.now()), []);
    // nothing on PATH: one-line error
    const noTools = new IptablesBackend({ wrap: ['env', 'PATH=/nonexistent'] });
    const err = await noTools.install(PLAN).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof FirewallError, String(err));
    assert.equal(err.code, 'ERR_SPA_FIREWALL');
    assert.ok(!err.message.includes('\n'), err.message);
    assert.match(err.message, /iptables/);
    await noTools.close();
  });

  test('a v4+v6 grant whose v6 commit fails is rolled back in v4', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'spak-fwt-ipt-'));
    try {
      const fake = join(dir, 'ip6tables-restore');
      await writeFile(fake, '#!/bin/sh\necho "ip6tables-restore: simulated failure" >&2\nexit 1\n', { mode: 0o755 });
      const failing = new IptablesBackend({
        wrap: [...pair.wrap(pair.srv), 'env', `PATH=${dir}:/usr/sbin:/usr/bin:/sbin:/bin`],
      });
      const now = Date.now();
      const err = await failing.grant([v4(now + 30_000), v6(now + 30_000)], now).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof FirewallError, String(err));
      assert.equal(err.message, 'ip6tables-restore failed (exit 1): ip6tables-restore: simulated failure');
      assert.deepEqual(await fw.list(Date.now()), [], 'v4 part rolled back');
      assert.equal(await canTcp(pair.srv4, P_TCP), false);
      assert.deepEqual(await fw.check(PLAN), []);
      await failing.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('grant latency (one iptables-restore per family touched)', async () => {
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const now = Date.now();
      const t0 = process.hrtime.bigint();
      await fw.grant([{ family: 4, address: `10.251.12.${100 + i}`, access: TCP, expiresAt: now + 10_000 }], now);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const median = times[10] ?? Infinity;
    console.log(`# iptables grant latency (incl. ip netns exec): median ${median.toFixed(2)} ms (n=20)`);
    assert.ok(median < 200, `median ${median} ms`);
    await fw.revoke(
      Array.from({ length: 20 }, (_, i) => ({ family: 4 as const, address: `10.251.12.${100 + i}`, access: TCP })),
    );
    assert.deepEqual(await fw.list(Date.now()), []);
  });

  test('uninstall removes jump and chain in both families, keeps host rules, is idempotent', async () => {
    await fw.uninstall();
    for (const tool of ['iptables', 'ip6tables'] as const) {
      const r = await rules(tool);
      assert.ok(!r.some((l) => l.includes('SPA_KNOCK')), r.join('\n'));
      assert.ok(r.includes(`-A INPUT -p tcp -m tcp --dport ${P_HOST} -j ACCEPT`));
    }
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.ok(await canTcp(pair.srv6, P_TCP));
    assert.ok(await canUdp(pair.srv4, P_UDP));
    await fw.uninstall();
    assert.equal((await fw.check(PLAN)).length, 2);
  });
});
