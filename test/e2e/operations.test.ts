/**
 * Operating a real daemon (docs/operations.md): `spa-knockd status` against a real spa-knockd (DaemonProcess) in a
 * server namespace after real knocks from the client namespace; SIGHUP reload of its config.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { DAEMON, runTs } from '../../harness/run.js';
import type { Status } from '../../server/status.js';
import { E2eWorld, SSH } from './world.js';

if (requireNetns(BACKEND_TOOLS.nftables)) {
  describe('operating a real spa-knockd (nftables)', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'ops-e2e',
      subnet: 183,
      clients: [{ name: 'alice', open: [`tcp/${SSH}`] }],
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

    test('status of a stopped daemon: ERR_SPA_CONTROL, exit 1, and the socket is gone', async () => {
      assert.equal(await w.daemon.stop('SIGTERM'), 0);
      const r = await status();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /\[ERR_SPA_CONTROL\] .*no spa-knockd is running/);
    });
  });
}
