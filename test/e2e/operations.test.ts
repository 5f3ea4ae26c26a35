/**
 * Operating a real daemon (docs/operations.md): `spa-knockd status` against a real spa-knockd (DaemonProcess) in a
 * server namespace after real knocks from the client namespace; SIGHUP reload of its config.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { DAEMON, runTs } from '../../harness/run.js';
import type { Status } from '../../server/status.js';
import { ALT, E2eWorld, SSH } from './world.js';

if (requireNetns(BACKEND_TOOLS.nftables)) {
  describe('operating a real spa-knockd (nftables)', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'ops-e2e',
      subnet: 183,
      clients: [
        { name: 'alice', open: [`tcp/${SSH}`] },
        { name: 'bob', open: [`tcp/${ALT}`] },
      ],
    });
    before(() => w.start());
    after(() => w.stop());
    const status = (...args: string[]) => runTs(DAEMON, ['status', '--config', w.configPath, ...args]);

    test('spa-knockd status shows the live grant and the rejects since start, text and --json', async () => {
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice ?? '', '--open', `tcp/${SSH}`, '--duration', '20');
      assert.equal(await w.opens(w.pair.srv4), true);
      await w.sendRaw(w.pair.srv4, '00'.repeat(10)); // too short: `size`
      await w.settle();
      const sock = join(w.dir, 'state', 'control.sock');
      assert.ok(statSync(sock).isSocket());
      assert.equal(statSync(sock).mode & 0o777, 0o600, 'mode 0600');
      assert.equal(statSync(sock).uid, 0, 'owned by root');
      const j = await status('--json');
      assert.equal(j.code, 0, j.stderr);
      const s = JSON.parse(j.stdout) as Status;
      assert.equal(s.pid > 0 && s.backend === 'nftables', true);
      assert.equal(s.grants.length, 1);
      const g = s.grants[0];
      assert.equal(g?.client, 'alice');
      assert.equal(g?.address, w.pair.cli4);
      assert.deepEqual(g?.accesses, [`tcp/${SSH}`]);
      assert.ok(g?.seconds_left !== null && g !== undefined && g.seconds_left > 10 && g.seconds_left <= 20);
      assert.equal(s.rejects.by.size, 1);
      const t = await status();
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, new RegExp(`alice\\s+${w.pair.cli4.replaceAll('.', '\\.')}\\s+tcp/${SSH}\\s+\\d+`));
      assert.match(t.stdout, /rejected since start: 1 \(size 1\)/);
    });

    test('SIGHUP: a removed client loses its grant, the other grant survives; an invalid config is refused', async () => {
      await w.knockOk(w.pair.srv4, '--key', w.keys.bob ?? '', '--open', `tcp/${ALT}`, '--duration', '30');
      assert.equal(await w.opens(w.pair.srv4, ALT), true, 'bob open');
      assert.equal(await w.isOpen(w.pair.srv4, SSH), true, 'alice open (status test)');
      const text = readFileSync(w.configPath, 'utf8');
      const cut = text.indexOf('[[client]]\nname = "bob"');
      assert.ok(cut > 0);
      writeFileSync(w.configPath, text.slice(0, cut), { mode: 0o600 });
      const from = w.daemon.lines.length;
      process.kill(w.daemon.pid ?? 0, 'SIGHUP');
      const r = await w.daemon.waitFor((l) => l.event === 'reload', 5000, from);
      assert.deepEqual(r.removed, ['bob']);
      assert.equal(await w.isOpen(w.pair.srv4, ALT), false, "bob's grant ended at once");
      assert.equal(await w.isOpen(w.pair.srv4, SSH), true, "alice's grant survives the reload");
      await w.knockOk(w.pair.srv4, '--key', w.keys.bob ?? '', '--open', `tcp/${ALT}`);
      await w.settle();
      assert.equal(await w.isOpen(w.pair.srv4, ALT), false, 'bob is no longer a client');

      writeFileSync(w.configPath, 'not = [ valid', { mode: 0o600 });
      const from2 = w.daemon.lines.length;
      process.kill(w.daemon.pid ?? 0, 'SIGHUP');
      const refused = await w.daemon.waitFor((l) => l.event === 'reload-refused', 5000, from2);
      assert.match(String(refused.reason), /line 1/);
      assert.equal(await w.isOpen(w.pair.srv4, SSH), true, 'still in force: the grant');
      writeFileSync(w.configPath, text.slice(0, cut), { mode: 0o600 }); // status reads state_dir from it
      const st = JSON.parse((await status('--json')).stdout || '{}') as Status;
      assert.deepEqual(
        st.grants.map((g) => g.client),
        ['alice'],
      );
    });

    test('status of a stopped daemon: ERR_SPA_CONTROL, exit 1, and the socket is gone', async () => {
      assert.equal(await w.daemon.stop('SIGTERM'), 0);
      const r = await status();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /\[ERR_SPA_CONTROL\] .*no spa-knockd is running/);
    });
  });
}
