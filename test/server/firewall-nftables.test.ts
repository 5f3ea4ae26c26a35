/**
 * The nftables backend against a real kernel, inside a namespace pair (spak-fwt-nft-srv / -cli).
 * Run: node --import tsx --test test/server/firewall-nftables.test.ts (as root; with CI set, not root = failure).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { FirewallError, type GrantEntry } from '../../server/firewall/backend.js';
import { NftablesBackend, nftDuration, nftErrorMessage } from '../../server/firewall/nftables.js';
import { createPair, netnsSkip, type Agent, type NetnsPair } from '../../harness/netns.js';

const P_TCP = 2201; // protected
const P_OPEN = 2202; // never protected (except in the re-install test)
const P_UDP = 2253; // protected udp
const TCP = { proto: 'tcp', port: P_TCP } as const;
const UDP = { proto: 'udp', port: P_UDP } as const;
const PLAN = { protect: [TCP, UDP] };
const BLOCK_MS = 350;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('nftables pure helpers', () => {
  test('nftDuration uses the compound form', () => {
    assert.equal(nftDuration(1000), '1s');
    assert.equal(nftDuration(1500), '1s500ms');
    assert.equal(nftDuration(90_061_500), '1d1h1m1s500ms');
    assert.equal(nftDuration(0), '0ms');
  });
  test('nftErrorMessage is one line and points at the span', () => {
    const msg = nftErrorMessage([
      'Error: Could not process rule: No such file or directory',
      'add element inet spa_knock allow4 { 10.0.0.1 . tcp . 22 }',
      '                           ^^^^^^',
    ]);
    assert.equal(msg, 'Could not process rule: No such file or directory (at "allow4")');
  });
  test('constructor validates the table name', () => {
    assert.throws(() => new NftablesBackend({ table: 'bad name; flush ruleset' }), FirewallError);
    assert.throws(() => new NftablesBackend({ table: 'Upper' }), FirewallError);
    assert.doesNotThrow(() => new NftablesBackend({ table: 'spa_knock_2' }));
  });
});

const skip = netnsSkip(['nft']);

describe('nftables backend in a namespace', { skip }, () => {
  let pair: NetnsPair;
  let srv: Agent;
  let cli: Agent;
  let fw: NftablesBackend;

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
  const nft = async (...args: string[]): Promise<string> => {
    const r = await pair.exec(pair.srv, ['nft', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  before(async () => {
    pair = await createPair('fwt-nft', { subnet: 11 });
    srv = await pair.agent(pair.srv);
    await srv.listenTcp(P_TCP);
    await srv.listenTcp(P_OPEN);
    await srv.listenUdp(P_UDP);
    cli = await pair.agent(pair.cli);
    fw = new NftablesBackend({ wrap: pair.wrap(pair.srv) });
  });

  after(async () => {
    await fw?.close().catch(() => undefined);
    await pair?.cleanup();
  });

  test('before install everything connects', async () => {
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.ok(await canTcp(pair.srv6, P_TCP));
    assert.ok(await canUdp(pair.srv4, P_UDP));
    assert.deepEqual(await fw.check(PLAN), ['nft table inet spa_knock is missing']);
    assert.deepEqual(await fw.list(Date.now()), []);
  });

  test('install protects the listed accesses only', async () => {
    await fw.install(PLAN);
    assert.deepEqual(await fw.check(PLAN), []);
    const [a, b, c, d, e] = await Promise.all([
      canTcp(pair.srv4, P_TCP),
      canTcp(pair.srv6, P_TCP),
      canTcp(pair.srv4, P_OPEN),
      canTcp(pair.srv6, P_OPEN),
      canUdp(pair.srv4, P_UDP),
    ]);
    assert.deepEqual([a, b, c, d, e], [false, false, true, true, false]);
    // install is idempotent
    await fw.install(PLAN);
    assert.deepEqual(await fw.check(PLAN), []);
    const text = await nft('list', 'chain', 'inet', 'spa_knock', 'input');
    assert.match(text, /ip saddr \. meta l4proto \. th dport @allow4 accept/);
  });

  test('a v4 grant opens v4 only; a v6 grant opens v6; list reports both', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 30_000)], now);
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.equal(await canTcp(pair.srv6, P_TCP), false);
    assert.equal(await canUdp(pair.srv4, P_UDP), false, 'tcp grant does not open udp');
    await fw.grant([v6(now + 60_000), v4(now + 30_000, UDP)], now);
    assert.ok(await canTcp(pair.srv6, P_TCP));
    assert.ok(await canUdp(pair.srv4, P_UDP));
    const listed = await fw.list(Date.now());
    assert.equal(listed.length, 3);
    const g6 = listed.find((g) => g.family === 6);
    assert.ok(g6);
    assert.equal(g6.address, pair.cli6);
    assert.deepEqual(g6.access, TCP);
    assert.ok(Math.abs(g6.expiresAt - (now + 60_000)) < 2000, `expiresAt ${g6.expiresAt - now}`);
  });

  test('revoke closes at once; revoking an absent grant is not an error', async () => {
    await fw.revoke([{ family: 6, address: pair.cli6, access: TCP }]);
    assert.equal(await canTcp(pair.srv6, P_TCP), false);
    await fw.revoke([{ family: 6, address: pair.cli6, access: TCP }]);
    await fw.revoke([{ family: 4, address: '10.251.11.99', access: UDP }]);
    await fw.revoke([
      { family: 4, address: pair.cli4, access: TCP },
      { family: 4, address: pair.cli4, access: UDP },
    ]);
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
    assert.deepEqual(await fw.list(Date.now()), []);
  });

  test('a connection opened during a grant survives revoke and expiry', async () => {
    let now = Date.now();
    await fw.grant([v4(now + 1000)], now);
    const held = await cli.hold(pair.srv4, P_TCP, BLOCK_MS);
    await fw.revoke([{ family: 4, address: pair.cli4, access: TCP }]);
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
    assert.ok(await held.ping(), 'held connection still echoes after revoke');
    now = Date.now();
    await fw.grant([v6(now + 1000)], now);
    const held6 = await cli.hold(pair.srv6, P_TCP, BLOCK_MS);
    await sleep(1300);
    assert.equal(await canTcp(pair.srv6, P_TCP), false, 'expired in the kernel');
    assert.ok(await held6.ping(), 'held v6 connection still echoes after expiry');
    assert.ok(await held.ping());
    await held.close();
    await held6.close();
  });

  test('granting again refreshes (extends) the timeout', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 1000)], now);
    await fw.grant([v4(now + 30_000)], now);
    await sleep(1300);
    assert.ok(await canTcp(pair.srv4, P_TCP), 'still open after the first timeout');
    const [g] = await fw.list(Date.now());
    assert.ok(g && g.expiresAt - now > 25_000, 'list shows the extended expiry');
    // and a refresh can also shorten it
    await fw.grant([v4(Date.now() + 1000)], Date.now());
    const [g2] = await fw.list(Date.now());
    assert.ok(g2 && g2.expiresAt - Date.now() <= 1000);
  });

  test('the three-command refresh (kernels whose add does not refresh; oneshot mode) refreshes too', async () => {
    console.log(`# this kernel's add element refreshes timeouts: ${fw.refreshesWithAdd}`);
    const slow = new NftablesBackend({ wrap: pair.wrap(pair.srv), mode: 'oneshot' });
    try {
      assert.equal(slow.refreshesWithAdd, false);
      const now = Date.now();
      await slow.grant([v4(now + 1000)], now);
      await slow.grant([v4(now + 30_000)], now);
      const [g] = await slow.list(Date.now());
      assert.ok(g && g.expiresAt - now > 25_000);
      await slow.grant([v4(Date.now() + 1000)], Date.now());
      const [g2] = await slow.list(Date.now());
      assert.ok(g2 && g2.expiresAt - Date.now() <= 1000);
    } finally {
      await slow.close();
    }
  });

  test('re-install keeps unexpired grants and applies a changed protected list', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 30_000), v6(now + 30_000, UDP)], now);
    const plan2 = { protect: [TCP, { proto: 'tcp', port: P_OPEN } as const] };
    await fw.install(plan2);
    assert.deepEqual(await fw.check(plan2), []);
    assert.deepEqual((await fw.check(PLAN)).length, 1);
    assert.match((await fw.check(PLAN))[0] ?? '', /protected list differs/);
    const keys = (await fw.list(Date.now())).map((g) => `${g.family} ${g.access.proto}/${g.access.port}`).sort();
    assert.deepEqual(keys, ['4 tcp/2201', '6 udp/2253']);
    assert.ok(await canTcp(pair.srv4, P_TCP), 'grant survived');
    assert.equal(await canTcp(pair.srv6, P_OPEN), false, 'newly protected');
    assert.ok(await canUdp(pair.srv4, P_UDP), 'no longer protected');
    // a fresh backend object (daemon restart) sees the kernel's grants and re-installs without losing them
    const fw2 = new NftablesBackend({ wrap: pair.wrap(pair.srv) });
    await fw2.install(PLAN);
    assert.equal((await fw2.list(Date.now())).length, 2);
    assert.ok(await canTcp(pair.srv4, P_TCP));
    await fw2.close();
    await fw.revoke([v4(0), v6(0, UDP)]);
  });

  test('install replaces an incompatible table of the same name, keeping its grants', async () => {
    await fw.uninstall();
    const script = [
      'table inet spa_knock {',
      '  set allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout,interval; }',
      '  set protect { type inet_service; }',
      '}',
      `add element inet spa_knock allow4 { ${pair.cli4} . tcp . ${P_TCP} timeout 30s }`,
      '',
    ].join('\n');
    const r = await pair.exec(pair.srv, ['nft', '-f', '-'], { input: script });
    assert.equal(r.code, 0, r.stderr);
    assert.ok((await fw.check(PLAN)).length > 0);
    await fw.install(PLAN);
    assert.deepEqual(await fw.check(PLAN), []);
    const listed = await fw.list(Date.now());
    assert.equal(listed.length, 1);
    assert.ok(await canTcp(pair.srv4, P_TCP));
    await fw.revoke(listed);
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
  });

  test('check reports a damaged chain', async () => {
    await nft('flush', 'chain', 'inet', 'spa_knock', 'input');
    const problems = await fw.check(PLAN);
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? '', /rules differ/);
    await fw.install(PLAN);
    assert.deepEqual(await fw.check(PLAN), []);
  });

  test('validation: bad input never reaches nft and nothing is applied', async () => {
    const now = Date.now();
    const bad: unknown[] = [
      { family: 4, address: '10.0.0.1; flush ruleset', access: TCP, expiresAt: now + 5000 },
      { family: 4, address: '010.0.0.1', access: TCP, expiresAt: now + 5000 },
      { family: 6, address: '::ffff:10.0.0.1', access: TCP, expiresAt: now + 5000 },
      { family: 6, address: 'fe80::1%vsrv', access: TCP, expiresAt: now + 5000 },
      { family: 4, address: pair.cli6, access: TCP, expiresAt: now + 5000 },
      { family: 4, address: pair.cli4, access: { proto: 'icmp', port: 1 }, expiresAt: now + 5000 },
      { family: 4, address: pair.cli4, access: { proto: 'tcp', port: 0 }, expiresAt: now + 5000 },
      { family: 4, address: pair.cli4, access: { proto: 'tcp', port: 65536 }, expiresAt: now + 5000 },
      { family: 4, address: pair.cli4, access: { proto: 'tcp', port: 22.5 }, expiresAt: now + 5000 },
      { family: 4, address: pair.cli4, access: TCP, expiresAt: Number.NaN },
      { family: 5, address: pair.cli4, access: TCP, expiresAt: now + 5000 },
    ];
    for (const b of bad) {
      await assert.rejects(fw.grant([v4(now + 5000), b as GrantEntry], now), FirewallError, JSON.stringify(b));
    }
    await assert.rejects(fw.install({ protect: [{ proto: 'tcp', port: 70000 }] }), FirewallError);
    assert.deepEqual(await fw.list(Date.now()), [], 'the valid entry of a rejected batch was not applied');
    assert.deepEqual(await fw.check(PLAN), []);
    // IPv6 input is canonicalized
    await fw.grant([{ family: 6, address: pair.cli6.toUpperCase().replace('::', ':0:0:0:'), access: TCP, expiresAt: now + 5000 }], now);
    const [g] = await fw.list(Date.now());
    assert.equal(g?.address, pair.cli6);
    await fw.revoke([{ family: 6, address: pair.cli6, access: TCP }]);
  });

  test('a failed transaction is atomic and reported as a one-line FirewallError', async () => {
    const other = new NftablesBackend({ table: 'spa_knock_absent', wrap: pair.wrap(pair.srv) });
    const now = Date.now();
    const err = await other.grant([v4(now + 5000)], now).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof FirewallError);
    assert.equal(err.code, 'ERR_SPA_FIREWALL');
    assert.ok(!err.message.includes('\n'), err.message);
    assert.match(err.message, /nft grant failed: .*No such file or directory/);
    await other.close();
  });

  test('nft missing: FirewallError with one line, for install and grant', async () => {
    const bogus = new NftablesBackend({ wrap: ['env', 'PATH=/nonexistent'] });
    for (const p of [bogus.install(PLAN), bogus.grant([v4(Date.now() + 5000)], Date.now()), bogus.list(Date.now())]) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof FirewallError, String(err));
      assert.ok(!err.message.includes('\n'), err.message);
      assert.match(err.message, /nft/);
    }
    await bogus.close();
    const noBinary = new NftablesBackend({ wrap: ['/nonexistent/wrapper'] });
    await assert.rejects(noBinary.grant([v4(Date.now() + 5000)], Date.now()), FirewallError);
    await noBinary.close();
  });

  test('the long-lived nft child is restarted after it dies', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 30_000)], now);
    const pid1 = fw.helperPid;
    assert.ok(pid1 !== undefined);
    await fw.killHelper();
    assert.equal(fw.helperPid, undefined);
    await fw.revoke([{ family: 4, address: pair.cli4, access: TCP }]);
    assert.ok(fw.helperPid !== undefined && fw.helperPid !== pid1);
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
  });

  test('the child is recycled after recycleAfter requests and writes no history file', async () => {
    const histfile = join(homedir(), '.nft.history');
    const existed = existsSync(histfile);
    const fw3 = new NftablesBackend({ wrap: pair.wrap(pair.srv), recycleAfter: 3 });
    const pids = new Set<number>();
    const now = Date.now();
    for (let i = 0; i < 7; i++) {
      await fw3.grant([{ family: 4, address: `10.251.11.${50 + i}`, access: UDP, expiresAt: now + 20_000 }], now);
      pids.add(fw3.helperPid ?? -1);
    }
    assert.equal(pids.size, 3, 'three children for 7 requests');
    assert.equal((await fw3.list(Date.now())).filter((g) => g.access.proto === 'udp').length, 7);
    await fw3.revoke(Array.from({ length: 7 }, (_, i) => ({ family: 4 as const, address: `10.251.11.${50 + i}`, access: UDP })));
    assert.equal((await fw3.list(Date.now())).filter((g) => g.access.proto === 'udp').length, 0);
    await fw3.close();
    if (!existed) assert.equal(existsSync(histfile), false, `${histfile} was written`);
  });

  test('grant latency through the long-lived nft process', async () => {
    const times: number[] = [];
    for (let i = 0; i < 100; i++) {
      const now = Date.now();
      const t0 = process.hrtime.bigint();
      await fw.grant([{ family: 4, address: `10.251.11.${100 + (i % 100)}`, access: TCP, expiresAt: now + 10_000 }], now);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const median = times[50] ?? Infinity;
    console.log(`# nftables grant latency: median ${median.toFixed(3)} ms, p90 ${(times[90] ?? 0).toFixed(3)} ms (n=100)`);
    assert.ok(median < 5, `median ${median} ms`);
    const oneshot = new NftablesBackend({ wrap: pair.wrap(pair.srv), mode: 'oneshot' });
    const t1: number[] = [];
    for (let i = 0; i < 20; i++) {
      const now = Date.now();
      const t0 = process.hrtime.bigint();
      await oneshot.grant([{ family: 4, address: `10.251.11.${100 + i}`, access: TCP, expiresAt: now + 10_000 }], now);
      t1.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    t1.sort((a, b) => a - b);
    console.log(`# nftables grant latency, oneshot nft -f - (incl. ip netns exec): median ${(t1[10] ?? 0).toFixed(3)} ms`);
  });

  test('an element expires in the kernel with no process alive', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 1000)], now);
    await fw.close();
    assert.equal(fw.helperPid, undefined);
    assert.ok(await canTcp(pair.srv4, P_TCP), 'open right after the grant');
    await sleep(1500);
    assert.equal(await canTcp(pair.srv4, P_TCP), false, 'closed by the kernel');
  });

  test('uninstall restores connectivity and is idempotent', async () => {
    await fw.uninstall();
    assert.ok(await canTcp(pair.srv4, P_TCP));
    assert.ok(await canTcp(pair.srv6, P_TCP));
    assert.ok(await canUdp(pair.srv6, P_UDP));
    await fw.uninstall();
    assert.deepEqual(await fw.check(PLAN), ['nft table inet spa_knock is missing']);
    assert.deepEqual(await fw.list(Date.now()), []);
    await fw.close();
  });
});
