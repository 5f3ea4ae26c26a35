/**
 * The kernel prefilter through each real backend in a network namespace (no daemon): installed, changed and removed
 * by `install` alone, each time in one change; `check` finds each state as planned; grants live through every change;
 * the counter reads 0 on a fresh install and is kept when the prefilter does not change (iptables: the chain is then
 * not rewritten; nftables: the counter is `add`ed). The traffic side is test/e2e/prefilter.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createPair, type NetnsPair, requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import type { FirewallBackend, FirewallPlan } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import type { Prefilter } from '../../server/firewall/prefilter.js';

const P: Prefilter = { port: 62201, rate: 40, burst: 80, size: 16384, timeoutS: 10 };
const TCP22 = { proto: 'tcp', port: 22 } as const;

function kernelSuite(name: 'nftables' | 'iptables', tag: string, subnet: number): void {
  if (!requireNetns(BACKEND_TOOLS[name])) return;
  describe(`kernel prefilter through the ${name} backend, in a namespace`, () => {
    let pair: NetnsPair;
    let fw: FirewallBackend;
    const plan = (prefilter?: Prefilter): FirewallPlan => ({ protect: [TCP22], ...(prefilter ? { prefilter } : {}) });
    const dump = async (): Promise<string> => {
      const argvs =
        name === 'nftables'
          ? [['nft', 'list', 'ruleset']]
          : [
              ['iptables', '-S'],
              ['ip6tables', '-S'],
            ];
      let out = '';
      for (const a of argvs) out += (await pair.exec(pair.srv, a)).stdout;
      return out;
    };

    before(async () => {
      pair = await createPair(tag, { subnet });
      fw =
        name === 'nftables'
          ? new NftablesBackend({ table: 'kfl_t', wrap: pair.wrap(pair.srv) })
          : new IptablesBackend({ chain: 'KFL_T', wrap: pair.wrap(pair.srv) });
    });
    after(async () => {
      await fw?.close().catch(() => undefined);
      await pair?.cleanup();
    });

    test('on, changed, off, on again: each as planned; grants survive; the counter is there exactly when it is on', async () => {
      const now = Date.now();
      await fw.install(plan(P), now);
      assert.deepEqual(await fw.check(plan(P)), []);
      assert.equal(await fw.prefilterDrops?.(), 0);
      await fw.grant([{ family: 4, address: '10.9.9.9', access: TCP22, expiresAt: now + 60_000 }], now);
      assert.ok(
        (await fw.check(plan())).some((p) => /kernel_prefilter is off/.test(p)),
        'check knows it is there',
      );

      const changed = { ...P, rate: 7, burst: 9, size: 100, timeoutS: 20 };
      await fw.install(plan(changed), now);
      assert.deepEqual(await fw.check(plan(changed)), []);
      assert.ok((await fw.check(plan(P))).length > 0, 'the old parameters are gone');
      assert.match(
        await dump(),
        name === 'nftables' ? /rate over 7\/second burst 9 packets/ : /--hashlimit-above 7\/sec/,
      );

      await fw.install(plan(), now);
      assert.deepEqual(await fw.check(plan()), []);
      assert.equal(await fw.prefilterDrops?.(), undefined);
      assert.doesNotMatch(await dump(), /flood|hashlimit|_PRE|prefilter/);

      await fw.install(plan(P), now);
      assert.deepEqual(await fw.check(plan(P)), []);
      assert.ok(
        (await fw.list(now)).some((g) => g.address === '10.9.9.9'),
        'the grant lived through every install',
      );
      if (name === 'nftables') {
        // a source the kernel remembers (an element of flood4, as the rule adds them) lives through an unchanged
        // install (a heal, a rotation), and not through a changed one
        const add = await pair.exec(pair.srv, ['nft', 'add', 'element', 'inet', 'kfl_t', 'flood4', '{ 10.1.1.1 }']);
        assert.equal(add.code, 0, add.stderr);
      }
      await fw.install(plan(P), now); // unchanged: nothing of it rewritten
      assert.deepEqual(await fw.check(plan(P)), []);
      assert.equal(await fw.prefilterDrops?.(), 0);
      if (name === 'nftables') {
        assert.match(await dump(), /elements = \{ 10\.1\.1\.1/, 'kept through an unchanged install');
        await fw.install(plan({ ...P, size: 99 }), now);
        assert.doesNotMatch(await dump(), /10\.1\.1\.1/, 'a changed set starts empty');
      }
    });

    test('uninstall leaves nothing of it', async () => {
      await fw.uninstall();
      assert.doesNotMatch(await dump(), /flood|hashlimit|_PRE|prefilter|kfl_t/i);
    });
  });
}

kernelSuite('nftables', 'kflood-fwn', 153);
kernelSuite('iptables', 'kflood-fwi', 154);
