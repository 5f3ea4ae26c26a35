/**
 * The end-to-end suite, run once per firewall backend (test/e2e/nftables.test.ts, test/e2e/iptables.test.ts):
 * a server namespace and a client namespace joined by a veth pair, a real spa-knockd in the server namespace in front
 * of real TCP listeners, the real `spa-knock` CLI in the client namespace, and real TCP connects (test/e2e/world.ts).
 * Every "nothing opens" check has a positive control next to it, so a test that cannot fail would show.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { DAEMON, runTs } from '../../harness/run.js';
import { ALT, type Backend, CONNECT_MS, DURATION, E2eWorld, OPEN, SSH } from './world.js';

export function e2eSuite(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns(BACKEND_TOOLS[backend])) return;

  describe(`end to end with ${backend}`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [
        { name: 'alice', open: [`tcp/${SSH}`] },
        { name: 'bob', open: [`tcp/${ALT}`] },
      ],
      strangers: ['mallory'],
    });
    before(() => w.start());
    after(() => w.stop());
    const keys = w.keys;
    const knockOk = (host: string, ...args: string[]) => w.knockOk(host, ...args);
    const packetHex = (host: string, ...args: string[]) => w.packetHex(host, ...args);
    const sendRaw = (host: string, hex: string) => w.sendRaw(host, hex);
    const isOpen = (host: string, port = SSH) => w.isOpen(host, port);
    const opens = (host: string, port = SSH) => w.opens(host, port);
    const settle = () => w.settle();
    const grantsSoFar = () => w.grantsSoFar();

    test('the protected port refuses a TCP connect before the knock; an unprotected one does not', async () => {
      assert.equal(await isOpen(w.pair.srv4), false);
      assert.equal(await isOpen(w.pair.srv6), false);
      assert.equal(await isOpen(w.pair.srv4, OPEN), true, 'control: unprotected port reachable');
    });

    test('after spa-knock the port connects, for the knocking source only, until the duration ends', async () => {
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--open', `tcp/${SSH}`);
      assert.equal(await opens(w.pair.srv4), true, 'open after the knock');
      const g = await w.daemon.waitFor((l) => l.event === 'grant');
      assert.equal(g.address, w.pair.cli4);
      assert.deepEqual(g.accesses, [`tcp/${SSH}`]);
      assert.equal(await isOpen(w.pair.srv6), false, 'an IPv4 knock does not open IPv6');
      assert.equal(await isOpen(w.pair.srv4, ALT), false, 'nor another protected port');
      // a connection made inside the window outlives the grant
      const held = await w.cli.hold(w.pair.srv4, SSH, CONNECT_MS);
      await new Promise((r) => setTimeout(r, DURATION * 1000 + 700));
      assert.equal(await isOpen(w.pair.srv4), false, 'new connects fail after the duration');
      assert.equal(await held.ping(1000), true, 'the established connection keeps working');
      await held.close();
    });

    test('an IPv6 knock opens for the IPv6 source; --close revokes at once', async () => {
      await knockOk(w.pair.srv6, '--key', keys.alice!, '--duration', '30');
      assert.equal(await opens(w.pair.srv6), true);
      assert.equal(await isOpen(w.pair.srv4), false, 'IPv6 grant does not open IPv4');
      const g = await w.daemon.waitFor((l) => l.event === 'grant' && l.address === w.pair.cli6);
      assert.equal(g.duration, 30);
      await knockOk(w.pair.srv6, '--key', keys.alice!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke' && l.address === w.pair.cli6);
      assert.equal(await isOpen(w.pair.srv6), false, 'closed right after --close');
    });

    test('--allow-ip opens for the named address instead of the source', async () => {
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--allow-ip', w.pair.cli6);
      assert.equal(await opens(w.pair.srv6), true, 'the IPv6 address named in the packet may connect');
      assert.equal(await isOpen(w.pair.srv4), false, 'the IPv4 source itself was not granted');
      const g = await w.daemon.waitFor(
        (l) => l.event === 'grant' && l.address === w.pair.cli6 && l.source === w.pair.cli4,
      );
      assert.ok(g);
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--allow-ip', w.pair.cli6, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke' && l.address === w.pair.cli6 && l.source === w.pair.cli4);
      assert.equal(await isOpen(w.pair.srv6), false);
    });

    test('wrong key, a tampered byte, a stale timestamp, a port outside the policy: nothing opens', async () => {
      const before = grantsSoFar();
      await knockOk(w.pair.srv4, '--key', keys.mallory!);
      const hex = await packetHex(w.pair.srv4, '--key', keys.alice!);
      const tampered = hex.slice(0, 90) + (hex[90] === '0' ? '1' : '0') + hex.slice(91);
      await sendRaw(w.pair.srv4, tampered);
      // built here with the clock 5 min back: outside the 60 s window, and its key id is no longer indexed
      await sendRaw(w.pair.srv4, w.packetAt('alice', Date.now() - 5 * 60_000));
      // 61 s ahead: outside the 60 s window, but its key id is still indexed (unless a minute boundary falls in
      // between, so keep clear of the last seconds of a minute) — the daemon must count it as 'stale'
      while (Date.now() % 60_000 > 55_000) await new Promise((r) => setTimeout(r, 500));
      await sendRaw(w.pair.srv4, w.packetAt('alice', Date.now() + 61_000));
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--open', `tcp/${ALT}`);
      await settle();
      assert.equal(await isOpen(w.pair.srv4), false);
      assert.equal(await isOpen(w.pair.srv4, ALT), false);
      const summary = await w.daemon.waitFor((l) => l.event === 'rejects' && typeof l.by === 'object', 3000);
      const by = w.rejects();
      assert.ok(summary);
      assert.ok((by['unknown-key'] ?? 0) >= 1, `wrong key counted: ${JSON.stringify(by)}`);
      assert.ok((by.mac ?? 0) >= 1, `tampered counted: ${JSON.stringify(by)}`);
      assert.ok((by.stale ?? 0) + (by['unknown-key'] ?? 0) >= 3, `stale counted: ${JSON.stringify(by)}`);
      assert.ok((by.stale ?? 0) >= 1, `+61 s is stale: ${JSON.stringify(by)}`);
      assert.ok((by.policy ?? 0) >= 1, `policy counted: ${JSON.stringify(by)}`);
      assert.equal(grantsSoFar(), before, 'no grant was logged');
      // positive controls: the untampered bytes and bob's key do open
      await sendRaw(w.pair.srv4, hex);
      assert.equal(await opens(w.pair.srv4), true, 'control: the untampered packet opens');
      await knockOk(w.pair.srv4, '--key', keys.bob!);
      assert.equal(await opens(w.pair.srv4, ALT), true, 'control: bob may open tcp/2222');
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--close');
      await knockOk(w.pair.srv4, '--key', keys.bob!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke' && (l.accesses as string[]).includes(`tcp/${ALT}`));
      assert.equal(await isOpen(w.pair.srv4), false);
      assert.equal(await isOpen(w.pair.srv4, ALT), false);
    });

    test('the same packet bytes sent again do not reopen the port, also after kill -9 and a restart', async () => {
      const hex = await packetHex(w.pair.srv4, '--key', keys.alice!, '--duration', '30');
      await sendRaw(w.pair.srv4, hex);
      assert.equal(await opens(w.pair.srv4), true, 'first copy opens');
      const mark = w.daemon.lines.length;
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke', 3000, mark);
      assert.equal(await isOpen(w.pair.srv4), false, 'closed by --close');
      const grants = grantsSoFar();
      await sendRaw(w.pair.srv4, hex);
      await settle();
      assert.equal(await isOpen(w.pair.srv4), false, 'the replayed copy does not reopen');
      assert.equal(grantsSoFar(), grants);

      assert.equal(await w.daemon.stop('SIGKILL'), null);
      assert.equal(await isOpen(w.pair.srv4), false, 'fail-closed: with the daemon dead the port stays closed');
      assert.equal(await isOpen(w.pair.srv4, OPEN), true, 'control: the rest of the host is unaffected');
      await w.daemon.start();
      await sendRaw(w.pair.srv4, hex);
      await settle();
      assert.equal(await isOpen(w.pair.srv4), false, 'still refused after kill -9 and restart');
      const restartedAt = w.daemon.lines.findLastIndex((l) => l.event === 'start');
      await w.daemon.waitFor(
        (l) => l.event === 'rejects' && ((l.by as Record<string, number>).replay ?? 0) === 1,
        3000,
        restartedAt,
      );
      await knockOk(w.pair.srv4, '--key', keys.alice!);
      assert.equal(await opens(w.pair.srv4), true, 'control: a fresh knock opens after the restart');
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--close');
    });

    test('kill -9 with a grant open: the grant still ends on time, and the restarted daemon keeps the port protected', async () => {
      await knockOk(w.pair.srv4, '--key', keys.alice!, '--duration', '2');
      assert.equal(await opens(w.pair.srv4), true);
      await w.daemon.stop('SIGKILL');
      if (backend === 'nftables') {
        // the kernel expires the set element with no daemon alive
        await new Promise((r) => setTimeout(r, 2500));
        assert.equal(await isOpen(w.pair.srv4), false, 'expired in the kernel while the daemon was dead');
        await w.daemon.start();
      } else {
        // iptables has no kernel expiry: the restarted daemon reconciles the leftover grant away
        await new Promise((r) => setTimeout(r, 2500));
        await w.daemon.start();
        await settle();
        assert.equal(await isOpen(w.pair.srv4), false, 'the expired leftover was removed at start');
      }
      assert.equal(await isOpen(w.pair.srv4, OPEN), true);
    });

    test('SIGTERM stops the daemon cleanly and leaves the port closed', async () => {
      assert.equal(await w.daemon.stop('SIGTERM'), 0);
      assert.ok(w.daemon.events('stop').length >= 1);
      assert.equal(await isOpen(w.pair.srv4), false);
      await w.daemon.start();
    });

    test('spa-knockd check and uninstall', async () => {
      const cfg = w.configPath;
      const check = await runTs(DAEMON, ['check', '--config', cfg], { prefix: w.pair.wrap(w.pair.srv) });
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, new RegExp(`firewall: ${backend} installed and as configured`));
      await w.daemon.stop('SIGTERM');
      const un = await runTs(DAEMON, ['uninstall', '--config', cfg], { prefix: w.pair.wrap(w.pair.srv) });
      assert.equal(un.code, 0, un.stderr);
      assert.equal(await isOpen(w.pair.srv4), true, 'after uninstall the port is no longer gated');
      assert.equal(await isOpen(w.pair.srv6), true);
      const again = await runTs(DAEMON, ['check', '--config', cfg], { prefix: w.pair.wrap(w.pair.srv) });
      assert.equal(again.code, 0);
      assert.match(again.stdout, /not as configured yet/);
    });
  });
}
