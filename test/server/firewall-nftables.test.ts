/**
 * What only the nftables backend has, against a real kernel in a namespace pair. The cases every backend shares
 * (grant, refresh, revoke, list, expiry, re-install, uninstall, validation, owners, silencePortUnreachable) are in
 * test/server/firewall-contract.test.ts. Run: node --import tsx --test test/server/firewall-nftables.test.ts (as root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpaError } from '../../shared/errors.js';
import type { GrantEntry } from '../../server/firewall/backend.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { NFT_OUTPUT_RULES, NFT_RULES } from '../../server/firewall/nft-script.js';
import { createPair, netnsSkip, type Agent, type NetnsPair } from '../../harness/netns.js';

const P_TCP = 2201;
const P_UDP = 2253;
const TCP = { proto: 'tcp', port: P_TCP } as const;
const UDP = { proto: 'udp', port: P_UDP } as const;
const PLAN = { protect: [TCP, UDP] };
const BLOCK_MS = 350;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fwError = (e: unknown): e is SpaError => e instanceof SpaError && e.code === 'ERR_SPA_FIREWALL';
const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('nftables backend without a kernel', () => {
  test('the constructor refuses table names nft cannot use, naming firewall.table', () => {
    for (const bad of ['bad name; flush ruleset', 'Upper', 'counters', 'sets', 'flush']) {
      assert.throws(
        () => new NftablesBackend({ table: bad }),
        (e: unknown) => fwError(e) && /firewall\.table/.test(e.message),
        bad,
      );
    }
    assert.doesNotThrow(() => new NftablesBackend({ table: 'spa_knock_2' }));
  });
});

const skip = netnsSkip(['nft']);

describe('nftables backend in a namespace', { skip }, () => {
  let pair: NetnsPair;
  let cli: Agent;
  let fw: NftablesBackend;

  const v4 = (expiresAt: number, access: GrantEntry['access'] = TCP, owner?: string): GrantEntry => ({
    family: 4,
    address: pair.cli4,
    access,
    expiresAt,
    ...(owner !== undefined ? { owner } : {}),
  });
  const v6 = (expiresAt: number, access: GrantEntry['access'] = TCP): GrantEntry => ({
    family: 6,
    address: pair.cli6,
    access,
    expiresAt,
  });
  const canTcp = async (host: string, port: number): Promise<boolean> =>
    (await cli.tcpConnect(host, port, BLOCK_MS)).ok;
  const nft = async (args: string[], input?: string): Promise<string> => {
    const r = await pair.exec(pair.srv, ['nft', ...args], input !== undefined ? { input } : {});
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };
  const tableNames = async (): Promise<string[]> =>
    (JSON.parse(await nft(['-j', 'list', 'tables'])) as { nftables: { table?: { name: string } }[] }).nftables.flatMap(
      (i) => (i.table ? [i.table.name] : []),
    );
  const chainRules = async (chain: string): Promise<string[]> => {
    const lines = (await nft(['list', 'chain', 'inet', 'spa_knock', chain])).split('\n').map((l) => l.trim());
    return lines
      .slice(lines.findIndex((l) => l.startsWith('type filter hook')) + 1)
      .filter((l) => l !== '' && l !== '}');
  };

  before(async () => {
    pair = await createPair('fwt-nft', { subnet: 11 });
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(P_TCP);
    await srv.listenUdp(P_UDP);
    cli = await pair.agent(pair.cli);
    fw = new NftablesBackend({ wrap: pair.wrap(pair.srv) });
  });

  after(async () => {
    await fw?.close().catch(() => undefined);
    await pair?.cleanup();
  });

  test('install writes the documented ruleset, and the output chain only when asked', async () => {
    await fw.install({ ...PLAN, silencePortUnreachable: true }, Date.now());
    assert.deepEqual(await chainRules('input'), NFT_RULES);
    assert.deepEqual(await chainRules('output'), NFT_OUTPUT_RULES);
    await fw.install(PLAN, Date.now());
    assert.deepEqual(await chainRules('input'), NFT_RULES);
    assert.doesNotMatch(await nft(['list', 'table', 'inet', 'spa_knock']), /chain output/);
  });

  test('a connection opened during a grant survives revoke and expiry', async () => {
    let now = Date.now();
    await fw.grant([v4(now + 1000)], now);
    const held = await cli.hold(pair.srv4, P_TCP, BLOCK_MS);
    await fw.revoke([v4(0)]);
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
    assert.ok(await held.ping(), 'held connection still echoes after revoke');
    now = Date.now();
    await fw.grant([v6(now + 1000)], now);
    const held6 = await cli.hold(pair.srv6, P_TCP, BLOCK_MS);
    await sleep(1300);
    assert.equal(await canTcp(pair.srv6, P_TCP), false, 'expired in the kernel');
    assert.ok(await held6.ping(), 'held v6 connection still echoes after expiry');
    await held.close();
    await held6.close();
  });

  test('oneshot mode (no nft -i, three-command refresh): refresh and owner change work too', async () => {
    const slow = new NftablesBackend({ wrap: pair.wrap(pair.srv), mode: 'oneshot' });
    try {
      await slow.install(PLAN, Date.now());
      assert.equal(slow.refreshesWithAdd, false);
      const now = Date.now();
      await slow.grant([v4(now + 1000, TCP, 'alice')], now);
      await slow.grant([v4(now + 30_000, TCP, 'bob')], now);
      const [g] = await slow.list(Date.now());
      assert.ok(g && g.expiresAt - now > 25_000 && g.owner === 'bob');
      await slow.grant([v4(Date.now() + 1000)], Date.now());
      const [g2] = await slow.list(Date.now());
      assert.ok(g2 && g2.expiresAt - Date.now() <= 1000 && g2.owner === undefined);
      await slow.revoke([v4(0)]);
    } finally {
      await slow.close();
    }
  });

  test('an element without comment (older version) or with a comment we did not write lists without owner', async () => {
    await fw.install(PLAN, Date.now());
    await nft(
      ['-f', '-'],
      `add element inet spa_knock allow4 { ${pair.cli4} . tcp . ${P_TCP} timeout 30s, ${pair.cli4} . udp . ${P_UDP} timeout 30s comment "not a name!" }\n`,
    );
    const listed = await fw.list(Date.now());
    assert.equal(listed.length, 2);
    assert.ok(listed.every((g) => g.owner === undefined && !('owner' in g)));
    // the next grant by an owner takes the element over (the grant manager decides when; the backend writes it)
    await fw.grant([v4(Date.now() + 30_000, TCP, 'alice')], Date.now());
    assert.equal((await fw.list(Date.now())).find((g) => g.access.proto === 'tcp')?.owner, 'alice');
    await fw.revoke([v4(0), v4(0, UDP)]);
  });

  test('one `add` only where it is enough: a new element gets its owner; one the kernel still holds past our clock is replaced', async () => {
    await fw.install(PLAN, Date.now());
    const owner = async (): Promise<string | undefined> =>
      (await fw.list(Date.now())).find((g) => g.address === pair.cli4)?.owner;
    const t0 = Date.now();
    await fw.grant([v4(t0 + 30_000, TCP, 'alice')], t0); // never seen since install: one `add` creates it
    assert.equal(await owner(), 'alice');
    // our clock says alice's grant has ended, the kernel still holds it (30 s left): bob's grant must replace the
    // comment, which one `add` would not (nft keeps an existing element's comment)
    await fw.grant([v4(t0 + 61_000, TCP, 'bob')], t0 + 31_000);
    assert.equal(await owner(), 'bob');
    await fw.revoke([v4(0)]);
    const t1 = Date.now();
    await fw.grant([v4(t1 + 30_000, TCP, 'carol')], t1); // revoked: absent again, one `add`
    assert.equal(await owner(), 'carol');
    await fw.revoke([v4(0)]);
  });

  test('with classic sequences installed, a grant the kernel made (no comment) still gets its owner', async () => {
    const seq = {
      name: 'own',
      steps: [
        { proto: 'tcp', port: 7001 },
        { proto: 'tcp', port: 7002 },
      ],
      gapS: 5,
      open: [TCP],
      durationS: 30,
      ignore: [],
    } as const;
    await fw.install({ ...PLAN, sequences: [seq] }, Date.now());
    // what a completed sequence does: the rule adds the knocker to allow4, without a comment, behind our back
    await nft(['-f', '-'], `add element inet spa_knock allow4 { ${pair.cli4} . tcp . ${P_TCP} timeout 30s }\n`);
    const t = Date.now();
    await fw.grant([v4(t + 30_000, TCP, 'alice')], t);
    assert.equal((await fw.list(Date.now())).find((g) => g.address === pair.cli4)?.owner, 'alice');
    await fw.revoke([v4(0)]);
    await fw.install(PLAN, Date.now());
  });

  test('install replaces an incompatible table of the same name, keeping its grants and owners', async () => {
    await fw.uninstall();
    const net4 = pair.cli4.replace(/\.[0-9]+$/, '.0');
    await nft(
      ['-f', '-'],
      [
        'table inet spa_knock {',
        '  set allow4 { type ipv4_addr . inet_proto . inet_service; flags timeout,interval; }',
        '  set allow4p { type ipv4_addr . inet_proto . inet_service; flags interval,timeout; }',
        '  set protect { type inet_service; }',
        '}',
        `add element inet spa_knock allow4 { ${pair.cli4} . tcp . ${P_TCP} timeout 30s comment "alice" }`,
        `add element inet spa_knock allow4p { ${net4}/24 . udp . ${P_UDP} timeout 30s comment "bob" }`,
        '',
      ].join('\n'),
    );
    assert.ok((await fw.check(PLAN)).length > 0);
    await fw.install(PLAN, Date.now());
    assert.deepEqual(await fw.check(PLAN), []);
    const listed = await fw.list(Date.now());
    assert.deepEqual(
      listed.map((g) => [g.address, g.prefix, g.owner]),
      [
        [pair.cli4, undefined, 'alice'],
        [net4, 24, 'bob'],
      ],
      'a prefix grant (issue 10) is carried over too',
    );
    assert.ok(await canTcp(pair.srv4, P_TCP));
    await fw.revoke(listed);
  });

  test('a table name nft takes but cannot list: install fails naming firewall.table and leaves nothing', async () => {
    // `counters` is refused by names.ts; the constructor's name check is bypassed here to show the install's own check
    await fw.uninstall();
    const mk = (table: string): NftablesBackend =>
      new NftablesBackend({ table, wrap: pair.wrap(pair.srv), nameProblem: () => undefined });
    const kw = mk('counters');
    const err = await failure(kw.install(PLAN, Date.now()));
    assert.ok(fwError(err), String(err));
    assert.match(err.message, /firewall\.table/);
    assert.match(err.message, /removed again/);
    assert.ok(!(await tableNames()).includes('counters'), 'nothing left installed');
    assert.equal(await canTcp(pair.srv4, P_TCP), true, 'the port is not gated');
    await kw.close();
    // a keyword nft refuses at once (syntax error): the message names the config key too
    const syntax = mk('flush');
    const err3 = await failure(syntax.install(PLAN, Date.now()));
    assert.ok(fwError(err3) && /firewall\.table/.test(err3.message) && /syntax error/.test(err3.message), String(err3));
    await syntax.close();
    // a table of that name that was there before is left as it was (and install changes nothing)
    await nft(['add', 'table', 'inet', 'sets']);
    const kw2 = mk('sets');
    const err2 = await failure(kw2.install(PLAN, Date.now()));
    assert.ok(fwError(err2) && /firewall\.table/.test(err2.message), String(err2));
    assert.ok((await tableNames()).includes('sets'));
    assert.doesNotMatch(await nft(['list', 'ruleset']), /table inet sets \{[^}]*chain/, 'no chain was added to it');
    await kw2.close();
    const handle = (
      JSON.parse(await nft(['-j', 'list', 'tables'])) as { nftables: { table?: { name: string; handle: number } }[] }
    ).nftables.find((i) => i.table?.name === 'sets')?.table?.handle;
    await nft(['delete', 'table', 'inet', 'handle', String(handle)]);
  });

  test('fast path: an optional one that cannot be set up (wrap) is left out and said why; a required one fails the install', async () => {
    const fastPath = { firstPort: 62300, durationsS: [30], uid: 0 };
    await fw.install(PLAN, Date.now());
    assert.equal(fw.fastPathState(), undefined, 'no fast path asked for');
    await fw.install({ ...PLAN, fastPath: { ...fastPath, optional: true } }, Date.now());
    const state = fw.fastPathState();
    assert.equal(state?.on, false);
    assert.match(
      state?.reason ?? '',
      /firewall\.fast_path needs the persistent nft -i and the daemon in the namespace/,
    );
    assert.deepEqual(await chainRules('input'), NFT_RULES, 'no reject of trigger ports it does not hold');
    assert.doesNotMatch(await nft(['list', 'table', 'inet', 'spa_knock']), /chain output/);
    assert.deepEqual(await fw.check({ ...PLAN, fastPath: { ...fastPath, optional: true } }), []);
    // another process (spa-knockd check, doctor) cannot know whether the daemon bound the ports: either layout passes
    const outside = new NftablesBackend({ wrap: pair.wrap(pair.srv) });
    try {
      assert.deepEqual(await outside.check({ ...PLAN, fastPath: { ...fastPath, optional: true } }), []);
      const required = await outside.check({ ...PLAN, fastPath });
      assert.ok(
        required.some((p) => /input rules differ|output is missing/.test(p)),
        required.join('; '),
      );
    } finally {
      await outside.close();
    }
    const before = await nft(['list', 'table', 'inet', 'spa_knock']);
    const err = await failure(fw.install({ ...PLAN, fastPath }, Date.now()));
    assert.ok(fwError(err) && /needs the persistent nft -i/.test(err.message), String(err));
    assert.equal(await nft(['list', 'table', 'inet', 'spa_knock']), before, 'nothing changed');
    await fw.install(PLAN, Date.now());
    assert.equal(fw.fastPathState(), undefined);
  });

  test('check reports a damaged input chain and a damaged output chain', async () => {
    const silent = { ...PLAN, silencePortUnreachable: true };
    await fw.install(silent, Date.now());
    await nft(['flush', 'chain', 'inet', 'spa_knock', 'input']);
    await nft(['flush', 'chain', 'inet', 'spa_knock', 'output']);
    const problems = await fw.check(silent);
    assert.deepEqual(
      problems.map((p) => p.replace(/: found.*/, '')),
      ['nft chain input rules differ', 'nft chain output rules differ'],
    );
    await fw.install(PLAN, Date.now());
    assert.deepEqual(await fw.check(PLAN), []);
  });

  test('a failed transaction is atomic and reported as one ERR_SPA_FIREWALL line', async () => {
    const other = new NftablesBackend({ table: 'spa_knock_absent', wrap: pair.wrap(pair.srv) });
    const now = Date.now();
    const err = await failure(other.grant([v4(now + 5000), v6(now + 5000)], now));
    assert.ok(fwError(err), String(err));
    assert.ok(!err.message.includes('\n'), err.message);
    assert.match(err.message, /nft grant failed: .*No such file or directory/);
    await other.close();
  });

  test('nft missing: one ERR_SPA_FIREWALL line, for install, grant and list', async () => {
    const bogus = new NftablesBackend({ wrap: ['env', 'PATH=/nonexistent'] });
    for (const p of [
      bogus.install(PLAN, Date.now()),
      bogus.grant([v4(Date.now() + 5000)], Date.now()),
      bogus.list(Date.now()),
    ]) {
      const err = await failure(p);
      assert.ok(fwError(err), String(err));
      assert.ok(!err.message.includes('\n'), err.message);
      assert.match(err.message, /nft/);
    }
    await bogus.close();
    const noBinary = new NftablesBackend({ wrap: ['/nonexistent/wrapper'] });
    assert.ok(fwError(await failure(noBinary.grant([v4(Date.now() + 5000)], Date.now()))));
    await noBinary.close();
  });

  test('the long-lived nft child is restarted after it dies', async () => {
    await fw.install(PLAN, Date.now());
    const now = Date.now();
    await fw.grant([v4(now + 30_000)], now);
    const pid1 = fw.helperPid;
    assert.ok(pid1 !== undefined);
    await fw.killHelper();
    assert.equal(fw.helperPid, undefined);
    await fw.revoke([v4(0)]);
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
    await fw3.revoke(
      Array.from({ length: 7 }, (_, i) => ({ family: 4 as const, address: `10.251.11.${50 + i}`, access: UDP })),
    );
    assert.equal((await fw3.list(Date.now())).filter((g) => g.access.proto === 'udp').length, 0);
    await fw3.close();
    if (!existed) assert.equal(existsSync(histfile), false, `${histfile} was written`);
  });

  test('an element expires in the kernel with no process alive', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 1000)], now);
    await fw.close();
    assert.equal(fw.helperPid, undefined);
    assert.ok(await canTcp(pair.srv4, P_TCP), 'open right after the grant');
    await sleep(1500);
    assert.equal(await canTcp(pair.srv4, P_TCP), false, 'closed by the kernel');
    await fw.uninstall();
  });

  test("the healer's read-only check does not hold up a grant (it does not take the backend's queue)", async () => {
    // every `nft … list …` of this backend starts 1.5 s late while the mark exists: a check in flight is slow
    const dir = mkdtempSync(join(tmpdir(), 'spak-slow-list-'));
    const mark = join(dir, 'slow');
    const script = fileURLToPath(new URL('../helpers/slow-list.sh', import.meta.url));
    const slow = new NftablesBackend({ table: 'spak_slow', wrap: [script, mark, ...pair.wrap(pair.srv)] });
    try {
      await slow.install(PLAN, Date.now());
      writeFileSync(mark, '');
      let checked = false;
      const check = slow.check(PLAN).then((problems) => {
        checked = true;
        return problems;
      });
      const now = Date.now();
      await slow.grant([v4(now + 5000)], now);
      assert.equal(checked, false, 'the grant committed while the check was still reading');
      assert.deepEqual(await check, [], 'and the check itself still finds the gate in place');
      rmSync(mark);
      await slow.uninstall();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await slow.close();
    }
  });
});
