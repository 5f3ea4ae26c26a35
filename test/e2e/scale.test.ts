/**
 * Many concurrent grants, bounded (issue 9, "Scale"; the 10,000-grant figures are `npm run bench -- --scale`,
 * scripts/bench/scale.ts): the daemon's table is filled through its own backend with 2,000 (nftables) or 500
 * (iptables) live grants while the daemon is down, one of them for a second address of the client's link (10.251.X.3,
 * "member"); the rest are 10.200.0.0/16 addresses that never send traffic. Then the real daemon starts over them.
 *
 * Asserted: it restores every one (`restore` logs the count); the member connects to the protected port and a
 * stranger (10.251.X.4, no grant) does not, before the restart and after; a knock through the daemon still opens for
 * the client; the unprotected port answers everyone (the control).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import type { FirewallBackend, GrantEntry } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { type Backend, E2eWorld, OPEN, SSH } from './world.js';

const TCP22 = { proto: 'tcp', port: SSH } as const;

function scaleSuite(backend: Backend, tag: string, subnet: number, count: number): void {
  if (!requireNetns(BACKEND_TOOLS[backend])) return;

  describe(`${count} concurrent grants with ${backend}`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [{ name: 'alice', open: [`tcp/${SSH}`] }],
      protect: [SSH],
    });
    const member = `10.251.${subnet}.3`;
    const stranger = `10.251.${subnet}.4`;
    before(async () => {
      await w.start();
      for (const a of [member, stranger]) {
        const r = await w.pair.exec(w.pair.cli, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'vcli']);
        assert.equal(r.code, 0, r.stderr);
      }
    });
    after(() => w.stop());

    test(`the daemon restores ${count} grants; each address still gets exactly what it was granted`, async (t) => {
      const srv4 = w.pair.srv4;
      assert.equal(await w.isOpen(srv4, OPEN, stranger), true, 'control: the unprotected port answers the stranger');
      assert.equal(await w.isOpen(srv4, SSH, member), false, 'before the fill the member is not granted');
      await w.daemon.stop('SIGKILL');

      // the daemon's own table, filled through the backend it uses (as the daemon would, in batches)
      const table = backend === 'nftables' ? 'spak_e2e_nft' : 'spak_e2e_IPT';
      const wrap = w.pair.wrap(w.pair.srv);
      const fw: FirewallBackend =
        backend === 'nftables' ? new NftablesBackend({ table, wrap }) : new IptablesBackend({ chain: table, wrap });
      const exp = Date.now() + 600_000;
      const entry = (address: string): GrantEntry => ({ family: 4, address, access: TCP22, expiresAt: exp });
      const t0 = performance.now();
      try {
        await fw.install({ protect: [TCP22] }, Date.now());
        const all = [entry(member)];
        for (let i = 0; all.length < count; i++) all.push(entry(`10.200.${i >> 8}.${i & 255}`));
        for (let i = 0; i < all.length; i += 250) await fw.grant(all.slice(i, i + 250), Date.now());
        assert.equal((await fw.list(Date.now())).length, count, 'the kernel holds them all');
      } finally {
        await fw.close();
      }
      const fillMs = performance.now() - t0;
      assert.equal(await w.isOpen(srv4, SSH, member), true, 'the member is granted (daemon down)');
      assert.equal(await w.isOpen(srv4, SSH, stranger), false, 'the stranger is not');

      const mark = w.daemon.lines.length;
      const s0 = performance.now();
      await w.daemon.start(120_000);
      const startMs = performance.now() - s0;
      const restore = w.daemon.events('restore', mark)[0];
      assert.equal(restore?.grants, count, `restored: ${JSON.stringify(restore)}`);
      assert.equal(await w.isOpen(srv4, SSH, member), true, 'the member still connects after the restart');
      assert.equal(await w.isOpen(srv4, SSH, stranger), false, 'the stranger still does not');
      assert.equal(await w.isOpen(srv4, SSH, w.pair.cli4), false, 'nor the client, before it knocks');

      await w.knockOk(srv4, '--key', w.keys.alice!);
      const g = await w.daemon.waitFor((l) => l.event === 'grant', 10_000, mark);
      assert.equal(await w.opens(srv4, SSH, 3000, w.pair.cli4), true, `a knock opens with ${count} grants live`);
      assert.equal(await w.isOpen(srv4, SSH, stranger), false, 'and the stranger is still refused');
      t.diagnostic(
        `${backend}: ${count} grants filled in ${Math.round(fillMs)} ms (batches of 250), daemon start with restore ` +
          `${Math.round(startMs)} ms, first knock latency_ms ${Number(g.latency_ms).toFixed(1)}`,
      );
    });
  });
}

scaleSuite('nftables', 'sect-scale-t-nft', 135, 2000);
scaleSuite('iptables', 'sect-scale-t-ipt', 136, 500);
