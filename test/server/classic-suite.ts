/**
 * The classic-sequence semantics (docs/classic.md) every backend must keep, against a real kernel in a namespace
 * pair, knocked by the real `knock` client (Debian package knockd) from the client namespace. Used by
 * test/server/classic-nft.test.ts and test/server/classic-iptables.test.ts.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FirewallBackend, KnockSequence } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { recentList } from '../../server/firewall/iptables-sequences.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { createPair, netnsSkip, type Agent, type NetnsPair } from '../../harness/netns.js';

export const SSH = 2222;
export const WEB = 2280;
export const TCP = { proto: 'tcp', port: SSH } as const;
const tcp = (port: number) => ({ proto: 'tcp', port }) as const;
const udp = (port: number) => ({ proto: 'udp', port }) as const;
export const SEED: KnockSequence = {
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
export const PLAN = { protect: [TCP], sequences: [SEED, UDPSEQ, ASC] };
export const BLOCK_MS = 300;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A sequence with a short grant, to see expiry and extension by behaviour. */
export const SHORT: KnockSequence = {
  name: 'short',
  steps: [tcp(6661), tcp(6662), tcp(6663)],
  gapS: 5,
  open: [TCP],
  durationS: 3,
  ignore: [],
};
export const ALL_PLAN = { protect: [TCP], sequences: [...PLAN.sequences, SHORT] };

export function classicKernelSuite(backend: 'nftables' | 'iptables', tag: string, subnet: number): void {
  const skip = netnsSkip([...BACKEND_TOOLS[backend], 'knock']);
  describe(`classic knock sequences, ${backend}, real knock client`, { skip }, () => {
    let pair: NetnsPair;
    let cli: Agent;
    let fw: FirewallBackend;

    const knock = async (host: string, ports: readonly string[], opts: string[] = []): Promise<void> => {
      const r = await pair.exec(pair.cli, ['knock', ...opts, host, ...ports]);
      assert.equal(r.code, 0, r.stderr);
    };
    const open = async (host: string): Promise<boolean> => (await cli.tcpConnect(host, SSH, BLOCK_MS)).ok;
    const srvExec = async (argv: string[], input?: string): Promise<string> => {
      const r = await pair.exec(pair.srv, argv, input !== undefined ? { input } : {});
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    /** No grant and no attempt in progress. */
    const forget = async (): Promise<void> => {
      if (backend === 'nftables') {
        for (const s of ['allow4', 'allow6']) await srvExec(['nft', 'flush', 'set', 'inet', 'spa_knock', s]);
        for (const s of ALL_PLAN.sequences) {
          for (const f of [4, 6]) {
            for (let k = 0; k < s.steps.length - 1; k++)
              await srvExec(['nft', 'flush', 'set', 'inet', 'spa_knock', `seq_${s.name}_${k}_${f}`]);
          }
        }
      } else {
        for (const s of ALL_PLAN.sequences) {
          const lists = [
            ...s.steps.slice(1).map((_, k) => recentList('SPA_KNOCK', s, k)),
            recentList('SPA_KNOCK', s, 'open'),
          ];
          for (const l of lists) await srvExec(['tee', `/proc/net/xt_recent/${l}`], '/\n');
        }
      }
    };

    before(async () => {
      pair = await createPair(tag, { subnet });
      const srv = await pair.agent(pair.srv);
      await srv.listenTcp(SSH);
      await srv.listenTcp(WEB);
      cli = await pair.agent(pair.cli);
      fw =
        backend === 'nftables'
          ? new NftablesBackend({ wrap: pair.wrap(pair.srv) })
          : new IptablesBackend({ wrap: pair.wrap(pair.srv) });
      await fw.install(ALL_PLAN, Date.now());
    });
    after(async () => {
      await fw?.close();
      await pair?.cleanup();
    });
    beforeEach(async () => {
      await fw.install(ALL_PLAN, Date.now());
      await forget();
    });

    test('installed as planned: check finds nothing; closed before any knock', async () => {
      assert.deepEqual(await fw.check(ALL_PLAN), []);
      assert.equal(await open(pair.srv4), false);
      assert.equal(await open(pair.srv6), false);
    });

    test('the right sequence opens, IPv4 and IPv6, each only for its own family', async () => {
      await knock(pair.srv4, ['8881', '7777', '9991']);
      assert.equal(await open(pair.srv4), true);
      assert.equal(await open(pair.srv6), false, 'an IPv4 knock opens IPv4 only');
      await knock(pair.srv6, ['8881', '7777', '9991'], ['-6']);
      assert.equal(await open(pair.srv6), true);
    });

    test('UDP steps: datagrams open; TCP SYNs to the same ports do not', async () => {
      await knock(pair.srv4, ['8882', '7778', '9992']);
      assert.equal(await open(pair.srv4), false);
      await knock(pair.srv6, ['8882', '7778', '9992'], ['-u', '-6']);
      assert.equal(await open(pair.srv6), true);
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

    test('a sequential sweep 1-5000 does not open an ascending sequence (knockd opens here)', async () => {
      await knock(
        pair.srv4,
        Array.from({ length: 5000 }, (_, i) => String(i + 1)),
      );
      assert.equal(await open(pair.srv4), false);
    });

    test('a repeated step does not break the attempt (the seed resets on it)', async () => {
      await knock(pair.srv4, ['8881', '8881', '7777', '7777', '7777', '9991']);
      assert.equal(await open(pair.srv4), true);
    });

    test('an ignored port in between is harmless; the protected port in between resets', async () => {
      await knock(pair.srv4, ['8881', String(WEB), '7777', '9991']);
      assert.equal(await open(pair.srv4), true);
      await forget();
      await knock(pair.srv4, ['8881', '7777', String(SSH), '9991']);
      assert.equal(await open(pair.srv4), false);
    });

    test('starting over after a mistake works: the first step after a reset starts a new attempt', async () => {
      await knock(pair.srv4, ['8881', '7777', '8881', '7777', '9991']);
      assert.equal(await open(pair.srv4), true);
    });

    test('a gap longer than `gap` between two steps does not open', async () => {
      await knock(pair.srv4, ['8881', '7777']);
      await sleep(2100); // gap is 1 s (xt_recent counts whole seconds)
      await knock(pair.srv4, ['9991']);
      assert.equal(await open(pair.srv4), false);
      await knock(pair.srv4, ['8881', '7777', '9991'], ['-d', '300']);
      assert.equal(await open(pair.srv4), true, 'steps within the gap');
    });

    test('the grant ends after `duration`; knocking again while open extends it (the seed closes)', async () => {
      await knock(pair.srv4, ['6661', '6662', '6663']);
      assert.equal(await open(pair.srv4), true);
      await sleep(2000);
      await knock(pair.srv4, ['6661', '6662', '6663']);
      await sleep(2000); // 4 s after the first knock: open only because the second one extended it
      assert.equal(await open(pair.srv4), true, 'extended');
      await sleep(2000);
      assert.equal(await open(pair.srv4), false, 'expired');
    });

    test('knock ports stay silent: no RST, the connect times out', async () => {
      const r = await cli.tcpConnect(pair.srv4, 7777, BLOCK_MS);
      assert.equal(r.ok, false);
      assert.doesNotMatch(String(r.error), /ECONNREFUSED/);
    });

    test('a re-install without some sequences removes their objects; check agrees both times', async () => {
      const less = { protect: [TCP], sequences: [SEED] };
      await fw.install(less, Date.now());
      assert.deepEqual(await fw.check(less), []);
      assert.notDeepEqual(await fw.check(ALL_PLAN), []);
      await fw.install({ protect: [TCP] }, Date.now());
      assert.deepEqual(await fw.check({ protect: [TCP] }), []);
      const text =
        backend === 'nftables'
          ? await srvExec(['nft', 'list', 'table', 'inet', 'spa_knock'])
          : (await srvExec(['iptables', '-S'])) + (await srvExec(['ip6tables', '-S']));
      assert.doesNotMatch(text, /seq_|chain knock|SPA_KNOCK_Q|recent/);
      await fw.install(ALL_PLAN, Date.now());
      assert.deepEqual(await fw.check(ALL_PLAN), []);
    });

    test('a grant (SPA) made after install keeps the sequences working', async () => {
      await fw.grant([{ family: 4, address: '10.251.0.9', access: TCP, expiresAt: Date.now() + 30_000 }], Date.now());
      assert.deepEqual(await fw.check(ALL_PLAN), []);
      await knock(pair.srv4, ['8881', '7777', '9991']);
      assert.equal(await open(pair.srv4), true);
    });

    test('uninstall removes everything', async () => {
      await fw.uninstall();
      const text =
        backend === 'nftables'
          ? await srvExec(['nft', 'list', 'ruleset'])
          : (await srvExec(['iptables', '-S'])) + (await srvExec(['ip6tables', '-S']));
      assert.doesNotMatch(text, /seq_|SPA_KNOCK|spa_knock/);
      await fw.install(ALL_PLAN, Date.now());
    });
  });
}
