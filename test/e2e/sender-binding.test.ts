/**
 * Sender binding (issue 11), both backends, in network namespaces: a second address (10.251.X.3, the "copier") on
 * the client namespace's veth, inside the pair's own subnet, sends copies of a knock's bytes.
 *
 * - A client without `require_source_address` (carol): a copy sent from the copier's address opens the port for the
 *   copier. This is the race the option closes; it is what happens without it.
 * - A client with `require_source_address = true` (alice): a knock that does not name its address (no --allow-ip)
 *   opens nothing, also when a copy of it comes from the copier; a knock with `--allow-ip <cli4>` opens for cli4 only,
 *   and a copy of it that arrives first from the copier opens nothing for the copier (whether the daemon grants cli4
 *   on the copy or refuses the copy and grants on the original is the daemon's choice: the test accepts both).
 *
 * `require_source_address` arrives with the core helper's branch: before that the daemon refuses the config key and
 * these tests fail at start.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { ALT, type Backend, E2eWorld, OPEN, SSH } from './world.js';

function senderBinding(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns(BACKEND_TOOLS[backend])) return;

  describe(`sender binding with ${backend}`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [
        { name: 'alice', open: [`tcp/${SSH}`], extra: ['require_source_address = true'] },
        { name: 'carol', open: [`tcp/${ALT}`] },
      ],
    });
    /** The copier: a second address of the client namespace. */
    const copier = `10.251.${subnet}.3`;
    const srv4 = () => w.pair.srv4;
    const cli4 = () => w.pair.cli4;
    const closedForBoth = async (port: number): Promise<void> => {
      assert.equal(await w.isOpen(srv4(), port, cli4()), false, `tcp/${port} closed for ${cli4()}`);
      assert.equal(await w.isOpen(srv4(), port, copier), false, `tcp/${port} closed for the copier ${copier}`);
    };

    before(async () => {
      await w.start();
      const r = await w.pair.exec(w.pair.cli, ['ip', 'addr', 'add', `${copier}/24`, 'dev', 'vcli']);
      assert.equal(r.code, 0, r.stderr);
    });
    after(() => w.stop());

    test('both addresses reach the server, and the protected ports are closed for both', async () => {
      assert.equal(await w.isOpen(srv4(), OPEN, cli4()), true, 'control: unprotected port from cli4');
      assert.equal(await w.isOpen(srv4(), OPEN, copier), true, 'control: unprotected port from the copier');
      await closedForBoth(SSH);
      await closedForBoth(ALT);
    });

    test('without require_source_address a copy from another address opens for the copier', async () => {
      const hex = await w.packetHex(srv4(), '--key', w.keys['carol']!);
      await w.sendRaw(srv4(), hex, copier);
      assert.equal(await w.opens(srv4(), ALT, 3000, copier), true, 'the copier got the grant');
      assert.equal(await w.isOpen(srv4(), ALT, cli4()), false, 'the knocking client did not');
      const g = await w.daemon.waitFor((l) => l.event === 'grant' && l.address === copier);
      assert.equal(g.source, copier);
      await w.sendRaw(srv4(), await w.packetHex(srv4(), '--key', w.keys['carol']!, '--close'), copier);
      await w.daemon.waitFor((l) => l.event === 'revoke' && l.address === copier);
      await closedForBoth(ALT);
    });

    test('with require_source_address a knock that names no address opens nothing, from either address', async () => {
      const grants = w.grantsSoFar();
      const hex = await w.packetHex(srv4(), '--key', w.keys['alice']!);
      await w.sendRaw(srv4(), hex, copier); // the copy races ahead
      await w.settle();
      await closedForBoth(SSH);
      await w.sendRaw(srv4(), await w.packetHex(srv4(), '--key', w.keys['alice']!), cli4()); // a fresh original
      await w.settle();
      await closedForBoth(SSH);
      assert.equal(w.grantsSoFar(), grants, 'no grant was logged');
    });

    test('with require_source_address, --allow-ip <cli4> opens for cli4 only, also when the copy arrives first', async () => {
      // the original knock, sent by the CLI from cli4
      await w.knockOk(srv4(), '--key', w.keys['alice']!, '--allow-ip', cli4());
      assert.equal(await w.opens(srv4(), SSH, 3000, cli4()), true, 'open for cli4');
      assert.equal(await w.isOpen(srv4(), SSH, copier), false, 'not for the copier');
      await w.knockOk(srv4(), '--key', w.keys['alice']!, '--allow-ip', cli4(), '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke' && l.address === cli4());
      await closedForBoth(SSH);
      // a copy of the next knock reaches the daemon first, from the copier; then the original, from cli4
      const mark = w.daemon.lines.length;
      const hex = await w.packetHex(srv4(), '--key', w.keys['alice']!, '--allow-ip', cli4());
      await w.sendRaw(srv4(), hex, copier);
      await w.settle();
      assert.equal(await w.isOpen(srv4(), SSH, copier), false, 'the copier gained nothing');
      await w.sendRaw(srv4(), hex, cli4());
      assert.equal(await w.opens(srv4(), SSH, 3000, cli4()), true, 'open for cli4 (by the copy or the original)');
      assert.equal(await w.isOpen(srv4(), SSH, copier), false, 'still nothing for the copier');
      const granted = (await w.grantLines(mark, 1)).map((l) => l.address);
      assert.deepEqual(granted, [cli4()], 'one grant, for the address the knock names');
      await w.knockOk(srv4(), '--key', w.keys['alice']!, '--allow-ip', cli4(), '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke' && l.address === cli4(), 3000, mark);
      await closedForBoth(SSH);
    });
  });
}

senderBinding('nftables', 'e2e-sb-nft', 33);
senderBinding('iptables', 'e2e-sb-ipt', 34);
