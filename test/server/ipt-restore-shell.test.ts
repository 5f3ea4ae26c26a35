/**
 * server/firewall/ipt-restore-shell.ts and the iptables backend's persistent mode, against a real kernel in a
 * namespace: one long-lived iptables-restore per family serves many changes, a refused block fails with its own line
 * number and commits nothing, a dead child is replaced, a change made by another process between two commits is
 * seen, and the child is recycled. Run: node --import tsx --test test/server/ipt-restore-shell.test.ts (root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpaError } from '../../shared/errors.js';
import type { GrantEntry } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { RestoreShell } from '../../server/firewall/ipt-restore-shell.js';
import { createPair, requireNetns, type NetnsPair } from '../../harness/netns.js';

const TCP = { proto: 'tcp', port: 2201 } as const;
const PLAN = { protect: [TCP] };
const CHAIN = 'SPA_MISC';

if (requireNetns(['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore'])) {
  describe('long-lived iptables-restore', () => {
    let pair: NetnsPair;
    const v4 = (host: number, expiresAt: number): GrantEntry => ({
      family: 4,
      address: `10.251.170.${host}`,
      access: TCP,
      expiresAt,
    });
    const chainRules = async (): Promise<string[]> => {
      const r = await pair.exec(pair.srv, ['iptables', '-S', CHAIN]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.split('\n').filter((l) => l.startsWith(`-A ${CHAIN} -s`));
    };

    before(async () => {
      pair = await createPair('misc-ipt', { subnet: 170 });
    });
    after(async () => {
      await pair?.cleanup();
    });

    test('one child per family serves every grant and revoke; the rules are exact', async () => {
      const fw = new IptablesBackend({ chain: CHAIN, wrap: pair.wrap(pair.srv) });
      try {
        await fw.install(PLAN, Date.now());
        const pids = fw.helperPids;
        assert.equal(pids.length, 2, 'install started both children (the first knock does not wait for one)');
        const now = Date.now();
        await fw.grant([v4(2, now + 60_000)], now);
        for (let i = 3; i < 13; i++) await fw.grant([v4(i, now + 60_000)], now);
        await fw.revoke([v4(2, 0), v4(5, 0)]);
        assert.deepEqual(fw.helperPids, pids, 'the same child did all of it');
        const rules = await chainRules();
        assert.equal(rules.length, 9);
        assert.ok(!rules.some((l) => l.includes('10.251.170.2/32') || l.includes('10.251.170.5/32')));
        assert.deepEqual(await fw.check(PLAN), []);
      } finally {
        await fw.uninstall();
        await fw.close();
      }
      assert.deepEqual(fw.helperPids, [], 'close stops the children');
    });

    test('a dead child is replaced and the change still lands; another process changing the chain in between is seen', async () => {
      const fw = new IptablesBackend({ chain: CHAIN, wrap: pair.wrap(pair.srv) });
      try {
        await fw.install(PLAN, Date.now());
        const now = Date.now();
        await fw.grant([v4(2, now + 60_000)], now);
        await fw.killHelpers();
        await fw.grant([v4(3, now + 60_000)], now);
        assert.equal((await chainRules()).length, 2);
        // another process rebuilds our chain under the running child (as an admin or a second install would)
        for (const argv of [
          ['iptables', '-F', CHAIN],
          ['iptables', '-A', CHAIN, '-s', '10.251.170.99', '-j', 'DROP'],
        ]) {
          const r = await pair.exec(pair.srv, argv);
          assert.equal(r.code, 0, r.stderr);
        }
        await fw.grant([v4(4, now + 60_000)], now);
        const rules = await chainRules();
        assert.deepEqual(
          rules.map((l) => l.split(' ')[3]),
          ['10.251.170.2/32', '10.251.170.3/32', '10.251.170.4/32'],
          'the chain is rebuilt whole from the mirror (the stray rule is gone)',
        );
      } finally {
        await fw.uninstall();
        await fw.close();
      }
    });

    test('a refused block: its own line number, nothing committed, and the next request gets a new child', async () => {
      const shell = new RestoreShell(
        [...pair.wrap(pair.srv), 'iptables-restore', '-v', '-w', '--noflush'],
        'iptables-restore',
        5000,
        3,
      );
      try {
        const ok = (host: number) =>
          `*filter\n:SPA_MISC2 - [0:0]\n-A SPA_MISC2 -s 10.251.170.${host}/32 -j RETURN\nCOMMIT\n`;
        assert.deepEqual(await shell.commit(ok(2)), { ok: true });
        const pid = shell.pid;
        const bad = await shell.commit(
          '*filter\n:SPA_MISC2 - [0:0]\n-A SPA_MISC2 -s 10.251.170.3/32 -j RETURN\n-A SPA_MISC2 -j NO_SUCH_CHAIN\nCOMMIT\n',
        );
        assert.equal(bad.ok, false);
        assert.ok(!bad.ok && bad.kind === 'restore' && /\(line [1-5]\)$/.test(bad.message), JSON.stringify(bad));
        const r = await pair.exec(pair.srv, ['iptables', '-S', 'SPA_MISC2']);
        assert.deepEqual(
          r.stdout.split('\n').filter((l) => l.startsWith('-A')),
          ['-A SPA_MISC2 -s 10.251.170.2/32 -j RETURN'],
          'the refused block changed nothing',
        );
        assert.deepEqual(await shell.commit(ok(4)), { ok: true });
        assert.notEqual(shell.pid, pid, 'a new child');
        // recycled after 3 requests
        const pid2 = shell.pid;
        assert.deepEqual(await shell.commit(ok(5)), { ok: true });
        assert.deepEqual(await shell.commit(ok(6)), { ok: true });
        assert.equal(shell.pid, pid2);
        assert.deepEqual(await shell.commit(ok(7)), { ok: true });
        assert.notEqual(shell.pid, pid2, 'replaced after recycleAfter requests');
      } finally {
        await shell.close();
        await pair.exec(pair.srv, ['iptables', '-F', 'SPA_MISC2']);
        await pair.exec(pair.srv, ['iptables', '-X', 'SPA_MISC2']);
      }
    });

    test('iptables-restore missing: one ERR_SPA_FIREWALL line naming it, nothing granted', async () => {
      // a PATH with iptables and ip6tables (the chain can be read) but no *-restore
      const dir = await mkdtemp(join(tmpdir(), 'spak-misc-ipt-'));
      for (const t of ['iptables', 'ip6tables']) await symlink(realpathSync(`/usr/sbin/${t}`), join(dir, t));
      const fw = new IptablesBackend({ chain: CHAIN, wrap: pair.wrap(pair.srv) });
      const broken = new IptablesBackend({ chain: CHAIN, wrap: [...pair.wrap(pair.srv), 'env', `PATH=${dir}`] });
      try {
        await fw.install(PLAN, Date.now());
        const now = Date.now();
        const err = await broken.grant([v4(3, now + 60_000)], now).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof SpaError && err.code === 'ERR_SPA_FIREWALL', String(err));
        // (through `env` the child exits 127 with env's message; without a wrap, spawn fails and the one-shot run
        // says `iptables-restore not found (install the iptables package)`)
        assert.match(err.message, /iptables-restore/);
        assert.ok(!err.message.includes('\n'), err.message);
        assert.deepEqual(await chainRules(), [], 'nothing granted');
      } finally {
        await broken.close();
        await fw.uninstall();
        await fw.close();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}

describe('RestoreShell without a kernel', () => {
  test('a command that cannot start is a process failure (the backend then runs the change one-shot)', async () => {
    const shell = new RestoreShell(['/nonexistent/iptables-restore', '-v'], 'iptables-restore', 5000);
    const r = await shell.commit('*filter\nCOMMIT\n');
    assert.ok(!r.ok && r.kind === 'process' && /ENOENT/.test(r.message), JSON.stringify(r));
    assert.equal(shell.pid, undefined);
    await shell.close();
  });
});
