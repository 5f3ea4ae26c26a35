/**
 * Prefix grants (issue 10), end to end with both backends, IPv4 and IPv6, in a namespace pair with a real spa-knockd
 * and the real `spa-knock` CLI.
 *
 * The client namespace gets two more addresses per family on its veth: a neighbour inside the client's /24 (/64)
 * (10.251.S.77, fd00:5a4b:0:S::77) and one outside it (10.250.S.2, fd00:5a4b:1:S::2; the server namespace gets a
 * route to those through its veth). Then:
 * - alice (`max_prefix4 = 24`, `max_prefix6 = 64`) knocks with `--prefix4 24` (from cli4): the neighbour reaches the
 *   port too, the outside address does not; `--close --prefix4 24` closes it for both. The same over IPv6 with /64
 *   (there the kernel sends the knock from the newest address, ::77, and ::2 connects: the privacy-address case);
 * - the firewall flushed behind the daemon's back (`nft flush ruleset`, `iptables -F`) heals with the prefix grant;
 * - alice asking for a /23 (wider than her cap) opens nothing, the daemon counts `prefix`;
 * - bob (no cap: the default) asking for a /24 opens nothing, not even for his own address, and the daemon counts
 *   `prefix`; his plain knock (no prefix) opens for his address alone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { ALT, type Backend, E2eWorld, OPEN, SSH } from './world.js';

/** What an operator's reload does behind the daemon's back (as in test/e2e/heal.test.ts). */
const FLUSH: Record<Backend, string[][]> = {
  nftables: [['nft', 'flush', 'ruleset']],
  iptables: [
    ['iptables', '-F'],
    ['ip6tables', '-F'],
  ],
};

function prefixSuite(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns(BACKEND_TOOLS[backend])) return;

  describe(`prefix grants with ${backend}`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [
        { name: 'alice', open: [`tcp/${SSH}`], extra: ['max_prefix4 = 24', 'max_prefix6 = 64'] },
        { name: 'bob', open: [`tcp/${ALT}`] },
      ],
    });
    const hex = subnet.toString(16);
    const net4 = `10.251.${subnet}.0/24`;
    const net6 = `fd00:5a4b:0:${hex}::/64`;
    const near4 = `10.251.${subnet}.77`;
    const far4 = `10.250.${subnet}.2`;
    const near6 = `fd00:5a4b:0:${hex}::77`;
    const far6 = `fd00:5a4b:1:${hex}::2`;
    const srv = (f: 4 | 6) => (f === 4 ? w.pair.srv4 : w.pair.srv6);
    const from = (f: 4 | 6) => (f === 4 ? [w.pair.cli4, near4, far4] : [w.pair.cli6, near6, far6]);
    /** Which of [client, neighbour, outside] reach `port`? */
    const reach = (f: 4 | 6, port: number): Promise<boolean[]> =>
      Promise.all(from(f).map((a) => w.isOpen(srv(f), port, a)));
    /** Wait for the daemon's reject summaries (every second) to count `reason` from log line `mark` on. */
    const rejected = async (reason: string, mark: number): Promise<void> => {
      await w.daemon.waitFor(
        (l) => l.event === 'rejects' && ((l.by as Record<string, number>)[reason] ?? 0) > 0,
        5000,
        mark,
      );
    };

    before(async () => {
      await w.start();
      const { cli, srv: s } = w.pair;
      const steps: [string, string[]][] = [
        [cli, ['ip', 'addr', 'add', `${near4}/24`, 'dev', 'vcli']],
        [cli, ['ip', 'addr', 'add', `${far4}/32`, 'dev', 'vcli']],
        [cli, ['ip', '-6', 'addr', 'add', `${near6}/64`, 'dev', 'vcli', 'nodad']],
        [cli, ['ip', '-6', 'addr', 'add', `${far6}/128`, 'dev', 'vcli', 'nodad']],
        [s, ['ip', 'route', 'add', `10.250.${subnet}.0/24`, 'dev', 'vsrv']],
        [s, ['ip', '-6', 'route', 'add', `fd00:5a4b:1:${hex}::/64`, 'dev', 'vsrv']],
      ];
      for (const [ns, argv] of steps) {
        const r = await w.pair.exec(ns, argv);
        assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
      }
    });
    after(() => w.stop());

    test('every client address reaches the open port; the protected ports are closed for all', async () => {
      for (const f of [4, 6] as const) {
        assert.deepEqual(await reach(f, OPEN), [true, true, true], `IPv${f} control`);
        assert.deepEqual(await reach(f, SSH), [false, false, false], `IPv${f} tcp/${SSH}`);
        assert.deepEqual(await reach(f, ALT), [false, false, false], `IPv${f} tcp/${ALT}`);
      }
    });

    for (const [f, opt, len, net] of [
      [4, '--prefix4', '24', net4],
      [6, '--prefix6', '64', net6],
    ] as const) {
      test(`IPv${f}: ${opt} ${len} opens for the neighbour in ${net} too, not for the address outside it`, async () => {
        const mark = w.daemon.lines.length;
        await w.knockOk(srv(f), '--key', w.keys['alice']!, opt, len, '--duration', '30');
        const g = await w.daemon.waitFor((l) => l.event === 'grant', 5000, mark);
        assert.equal(g.address, net);
        // the kernel picks the knock's source among the client's addresses in the prefix (IPv6: the newest, ::77)
        const [knocker, neighbour] = g.source === from(f)[1] ? [from(f)[1], from(f)[0]] : [from(f)[0], from(f)[1]];
        assert.equal(g.source, knocker);
        assert.equal(await w.opens(srv(f), SSH, 3000, neighbour), true, 'the other address in the prefix reaches it');
        assert.deepEqual(await reach(f, SSH), [true, true, false]);
        assert.deepEqual(await reach(f === 4 ? 6 : 4, SSH), [false, false, false], 'the other family stays closed');
        await w.knockOk(srv(f), '--key', w.keys['alice']!, opt, len, '--close');
        const r = await w.daemon.waitFor((l) => l.event === 'revoke', 5000, mark);
        assert.equal(r.address, net);
        assert.deepEqual(r.revoked, [`tcp/${SSH}`]);
        assert.deepEqual(await reach(f, SSH), [false, false, false], 'closed again for all');
      });
    }

    test('a flushed firewall heals with the prefix grant in it: the neighbour connects again, the outside not', async () => {
      const mark = w.daemon.lines.length;
      await w.knockOk(w.pair.srv4, '--key', w.keys['alice']!, '--prefix4', '24', '--duration', '30');
      assert.equal(await w.opens(w.pair.srv4, SSH, 3000, near4), true, 'open for the neighbour');
      for (const argv of FLUSH[backend]) {
        const r = await w.pair.exec(w.pair.srv, argv);
        assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
      }
      const heal = await w.daemon.waitFor((l) => l.event === 'heal', 8000, mark);
      assert.equal(heal.grants, 1, 'the prefix grant was granted again');
      assert.deepEqual(await reach(4, SSH), [true, true, false], 'gate back, prefix grant in it');
      await w.knockOk(w.pair.srv4, '--key', w.keys['alice']!, '--prefix4', '24', '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke', 5000, mark);
      assert.deepEqual(await reach(4, SSH), [false, false, false]);
    });

    test('a prefix wider than the cap opens nothing (prefix)', async () => {
      const mark = w.daemon.lines.length;
      await w.knockOk(w.pair.srv4, '--key', w.keys['alice']!, '--prefix4', '23');
      await rejected('prefix', mark);
      assert.deepEqual(await reach(4, SSH), [false, false, false]);
      assert.equal(w.daemon.events('grant', mark).length, 0);
    });

    test('a client without a cap asking for a prefix is refused; without --prefix4 it gets its own address', async () => {
      const mark = w.daemon.lines.length;
      await w.knockOk(w.pair.srv4, '--key', w.keys['bob']!, '--prefix4', '24');
      await w.knockOk(w.pair.srv6, '--key', w.keys['bob']!, '--prefix6', '64');
      await rejected('prefix', mark);
      for (const f of [4, 6] as const) assert.deepEqual(await reach(f, ALT), [false, false, false]);
      assert.equal(w.daemon.events('grant', mark).length, 0);
      await w.knockOk(w.pair.srv4, '--key', w.keys['bob']!, '--duration', '30');
      assert.equal(await w.opens(w.pair.srv4, ALT, 3000, w.pair.cli4), true);
      assert.deepEqual(await reach(4, ALT), [true, false, false], 'one address only');
      await w.knockOk(w.pair.srv4, '--key', w.keys['bob']!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke', 5000, mark);
      assert.deepEqual(await reach(4, ALT), [false, false, false]);
    });
  });
}

prefixSuite('nftables', 'prefix-nft', 100);
prefixSuite('iptables', 'prefix-ipt', 101);
