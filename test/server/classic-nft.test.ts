/**
 * Classic knock sequences in the nftables backend, against a real kernel in a namespace pair, knocked by the real
 * `knock` client (Debian package knockd) from the client namespace. Each semantic of docs/classic.md has a case.
 * Run: node --import tsx --test test/server/classic-nft.test.ts (as root).
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { KnockSequence } from '../../server/firewall/backend.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { sequenceRules } from '../../server/firewall/nft-sequences.js';
import { createPair, netnsSkip, type Agent, type NetnsPair } from '../../harness/netns.js';

const SSH = 2222;
const WEB = 2280;
const TCP = { proto: 'tcp', port: SSH } as const;
const tcp = (port: number) => ({ proto: 'tcp', port }) as const;
const udp = (port: number) => ({ proto: 'udp', port }) as const;
const SEED: KnockSequence = {
  name: 'seed',
  steps: [tcp(8881), tcp(7777), tcp(9991)],
  gapS: 1,
  open: [TCP],
  durationS: 30,
  ignore: [tcp(WEB)],
};
const UDPSEQ: KnockSequence = {
  name: 'dgram',
  steps: [udp(8882), udp(7778), udp(9992)],
  gapS: 5,
  open: [TCP],
  durationS: 30,
  ignore: [],
};
const ASC: KnockSequence = {
  name: 'asc',
  steps: [tcp(2001), tcp(3001), tcp(4001)],
  gapS: 5,
  open: [TCP],
  durationS: 30,
  ignore: [],
};
const PLAN = { protect: [TCP], sequences: [SEED, UDPSEQ, ASC] };
const BLOCK_MS = 300;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('nft sequence rules (text)', () => {
  test('highest stage first, then reset, then start; knock ports dropped last; both families', () => {
    const r = sequenceRules(SEED);
    assert.equal(r[0], `meta l4proto . th dport { tcp . ${WEB} } return`);
    assert.equal(
      r[1],
      'ip saddr @seq_seed_1_4 meta l4proto tcp th dport 9991 update @allow4 { ip saddr . 6 . 2222 timeout 30s } ' +
        'delete @seq_seed_1_4 { ip saddr } drop',
    );
    assert.equal(r[2], 'ip saddr @seq_seed_1_4 meta l4proto tcp th dport 7777 drop');
    assert.ok(r.includes('ip6 saddr @seq_seed_0_6 delete @seq_seed_0_6 { ip6 saddr }'));
    assert.ok(
      r.includes('meta nfproto ipv6 meta l4proto tcp th dport 8881 update @seq_seed_0_6 { ip6 saddr timeout 1s } drop'),
    );
    assert.equal(r.at(-1), 'meta l4proto . th dport { tcp . 8881, tcp . 7777, tcp . 9991 } drop');
  });
});

const skip = netnsSkip(['nft', 'knock']);

describe('classic knock sequences, nftables, real knock client', { skip }, () => {
  let pair: NetnsPair;
  let cli: Agent;
  let fw: NftablesBackend;

  const knock = async (host: string, ports: readonly string[], opts: string[] = []): Promise<void> => {
    const r = await pair.exec(pair.cli, ['knock', ...opts, host, ...ports]);
    assert.equal(r.code, 0, r.stderr);
  };
  const open = async (host: string): Promise<boolean> => (await cli.tcpConnect(host, SSH, BLOCK_MS)).ok;
  const nft = async (args: string[]): Promise<string> => {
    const r = await pair.exec(pair.srv, ['nft', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  before(async () => {
    pair = await createPair('classic-nft', { subnet: 61 });
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(SSH);
    await srv.listenTcp(WEB);
    cli = await pair.agent(pair.cli);
    fw = new NftablesBackend({ wrap: pair.wrap(pair.srv) });
    await fw.install(PLAN, Date.now());
  });
  after(async () => {
    await fw?.close();
    await pair?.cleanup();
  });
  beforeEach(async () => {
    // every case starts from no grant and no attempt in progress
    await fw.install(PLAN, Date.now());
    for (const s of ['allow4', 'allow6']) await nft(['flush', 'set', 'inet', 'spa_knock', s]);
    for (const s of PLAN.sequences) {
      for (const f of [4, 6]) {
        for (let k = 0; k < s.steps.length - 1; k++)
          await nft(['flush', 'set', 'inet', 'spa_knock', `seq_${s.name}_${k}_${f}`]);
      }
    }
  });

  test('installed as planned: check finds nothing', async () => {
    assert.deepEqual(await fw.check(PLAN), []);
    assert.equal(await open(pair.srv4), false, 'protected before any knock');
  });

  test('the right sequence opens, IPv4 and IPv6, only for the knocker, listed as a grant without owner', async () => {
    await knock(pair.srv4, ['8881', '7777', '9991']);
    assert.equal(await open(pair.srv4), true);
    assert.equal(await open(pair.srv6), false, 'IPv4 knock opens IPv4 only');
    await knock(pair.srv6, ['8881', '7777', '9991'], ['-6']);
    assert.equal(await open(pair.srv6), true);
    const grants = await fw.list(Date.now());
    assert.deepEqual(grants.map((g) => [g.family, g.address, g.access.port, g.owner]).sort(), [
      [4, pair.cli4, SSH, undefined],
      [6, pair.cli6, SSH, undefined],
    ]);
    const g = grants[0];
    assert.ok(g !== undefined && g.expiresAt > Date.now() + 25_000 && g.expiresAt <= Date.now() + 30_000);
  });

  test('UDP steps: datagrams open; the same ports as TCP SYNs do not', async () => {
    await knock(pair.srv4, ['8882', '7778', '9992']);
    assert.equal(await open(pair.srv4), false, 'TCP to UDP steps');
    await knock(pair.srv4, ['8882', '7778', '9992'], ['-u']);
    assert.equal(await open(pair.srv4), true);
  });

  test('a wrong order does not open', async () => {
    await knock(pair.srv4, ['8881', '9991', '7777']);
    await knock(pair.srv4, ['7777', '8881', '9991']);
    assert.equal(await open(pair.srv4), false);
  });

  test('an interleaved foreign port resets the attempt (knockd opens here)', async () => {
    await knock(pair.srv4, ['8881', '1234', '7777', '9991']);
    assert.equal(await open(pair.srv4), false);
    await knock(pair.srv6, ['8881', '7777', '1234:udp', '9991'], ['-6']);
    assert.equal(await open(pair.srv6), false);
  });

  test('a sequential sweep does not open an ascending sequence (knockd opens here)', async () => {
    const ports = Array.from({ length: 5000 }, (_, i) => String(i + 1));
    await knock(pair.srv4, ports);
    assert.equal(await open(pair.srv4), false);
  });

  test('a repeated step does not break the attempt (the seed resets on it)', async () => {
    await knock(pair.srv4, ['8881', '8881', '7777', '7777', '7777', '9991']);
    assert.equal(await open(pair.srv4), true);
  });

  test('an ignored port in between is harmless; the protected port in between resets', async () => {
    await knock(pair.srv4, ['8881', String(WEB), '7777', '9991']);
    assert.equal(await open(pair.srv4), true);
    await nft(['flush', 'set', 'inet', 'spa_knock', 'allow4']);
    await knock(pair.srv4, ['8881', '7777', String(SSH), '9991']);
    assert.equal(await open(pair.srv4), false);
  });

  test('starting over after a mistake works: the first step after a reset starts a new attempt', async () => {
    await knock(pair.srv4, ['8881', '7777', '8881', '7777', '9991']);
    assert.equal(await open(pair.srv4), true);
  });

  test('a gap longer than `gap` between two steps does not open', async () => {
    await knock(pair.srv4, ['8881', '7777']);
    await sleep(1600); // gap is 1 s
    await knock(pair.srv4, ['9991']);
    assert.equal(await open(pair.srv4), false);
    await knock(pair.srv4, ['8881', '7777', '9991'], ['-d', '300']);
    assert.equal(await open(pair.srv4), true, 'steps within the gap');
  });

  test('knocking again while open extends the grant (the seed closes)', async () => {
    await knock(pair.srv4, ['8881', '7777', '9991']);
    const first = (await fw.list(Date.now()))[0];
    await sleep(2100);
    await knock(pair.srv4, ['8881', '7777', '9991']);
    assert.equal(await open(pair.srv4), true);
    const second = (await fw.list(Date.now()))[0];
    assert.ok(first !== undefined && second !== undefined && second.expiresAt >= first.expiresAt + 1000);
  });

  test('knock ports stay silent: no RST, the connect times out', async () => {
    const r = await cli.tcpConnect(pair.srv4, 7777, BLOCK_MS);
    assert.equal(r.ok, false);
    assert.doesNotMatch(String(r.error), /ECONNREFUSED/);
  });

  test('a re-install without the sequences removes their chains and sets; check agrees', async () => {
    const less = { protect: [TCP], sequences: [SEED] };
    await fw.install(less, Date.now());
    assert.deepEqual(await fw.check(less), []);
    const text = await nft(['list', 'table', 'inet', 'spa_knock']);
    assert.doesNotMatch(text, /seq_asc|seq_dgram/);
    await fw.install({ protect: [TCP] }, Date.now());
    assert.deepEqual(await fw.check({ protect: [TCP] }), []);
    assert.doesNotMatch(await nft(['list', 'table', 'inet', 'spa_knock']), /seq_|chain knock/);
    await fw.install(PLAN, Date.now());
  });
});
