/**
 * Onboarding a client for real (docs/phones.md): `spa-knockd add-client --reload` on the config of a running
 * spa-knockd (nftables, server namespace), `spa-knock import` of the printed URI on the client side, then
 * `spa-knock PROFILE` alone opens the protected port (closed before); `remove-client --reload` and that key's knock
 * opens nothing any more.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, DAEMON, runTs } from '../../harness/run.js';
import { E2eWorld, SSH, UDP_PORT } from './world.js';

if (requireNetns(BACKEND_TOOLS.nftables)) {
  describe('add-client → import → knock → remove-client (real daemon, nftables)', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'clients-e2e',
      subnet: 92,
      clients: [{ name: 'admin', open: [`tcp/${SSH}`] }],
    });
    const home = mkdtempSync(join(tmpdir(), 'spak-clients-home-'));
    const env = { ...process.env, SPA_KNOCK_CONFIG: join(home, 'spa-knock', 'config.toml') };
    before(() => w.start());
    after(async () => {
      await w.stop();
      rmSync(home, { recursive: true, force: true });
    });
    const knockd = (...args: string[]) => runTs(DAEMON, [...args, '--config', w.configPath]);
    /** The real client in the client namespace, with its profile file in `home`. */
    const client = (...args: string[]) => runTs(CLIENT, args, { prefix: w.pair.wrap(w.pair.cli), env });

    test('the printed URI, imported, knocks the port open; after remove-client the key opens nothing', async () => {
      assert.equal(await w.isOpen(w.pair.srv4, SSH), false, 'closed before');
      const from = w.daemon.lines.length;
      const add = await knockd(
        'add-client',
        'phone',
        '--open',
        `tcp/${SSH}`,
        '--host',
        `${w.pair.srv4}:${UDP_PORT}`,
        '--reload',
      );
      assert.equal(add.code, 0, add.stderr);
      assert.match(add.stderr, /warning: the output holds the new secret key/);
      assert.match(add.stdout, /sent SIGHUP to spa-knockd \(pid \d+\)/);
      const uri = /\n {2}(spa-knock:\/\/\S+)\n/.exec(add.stdout)?.[1];
      assert.ok(uri, add.stdout);
      const reload = await w.daemon.waitFor((l) => l.event === 'reload', 10_000, from);
      assert.deepEqual(reload.added, ['phone']);
      assert.ok(
        !JSON.stringify(w.daemon.lines).includes(uri.slice(uri.indexOf('key=') + 4, uri.indexOf('&'))),
        'key never logged',
      );

      const imp = await client('import', uri, '--name', 'gw');
      assert.equal(imp.code, 0, imp.stderr);
      const k = await client('gw');
      assert.equal(k.code, 0, k.stderr);
      assert.equal(await w.opens(w.pair.srv4, SSH), true, '`spa-knock gw` alone opened the port');
      const grant = await w.daemon.waitFor((l) => l.event === 'grant', 5000, from);
      assert.equal(grant.client, 'phone');

      const from2 = w.daemon.lines.length;
      const rm = await knockd('remove-client', 'phone', '--reload');
      assert.equal(rm.code, 0, rm.stderr);
      const r2 = await w.daemon.waitFor((l) => l.event === 'reload', 10_000, from2);
      assert.deepEqual(r2.removed, ['phone']);
      assert.equal(await w.isOpen(w.pair.srv4, SSH), false, "the removed client's grant ended");
      const k2 = await client('gw');
      assert.equal(k2.code, 0, k2.stderr); // the client cannot tell: nothing ever answers
      await w.settle();
      assert.equal(await w.isOpen(w.pair.srv4, SSH), false, 'the removed key opens nothing');
      await w.daemon.waitFor(
        (l) => l.event === 'rejects' && (l.by as Record<string, number>)['unknown-key'] !== undefined,
        5000,
        from2,
      );
      assert.equal(w.daemon.events('grant', from2).length, 0);
    });
  });
}
