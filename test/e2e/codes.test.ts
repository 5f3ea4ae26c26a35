/**
 * One-time codes end to end (docs/codes.md), per firewall backend: a real spa-knockd in a server namespace, codes
 * printed by the real `spa-knock codes`, each sent as one datagram by the real `nc -u` (Debian's netcat-openbsd) from
 * the client namespace — `printf %s CODE | nc -u -w1 HOST 62201`, the line the client prints — and real TCP connects.
 * A code opens once; again (after its grant was closed) it opens nothing, also after `kill -9` and a restart; the
 * next code opens. Every "nothing opens" check has a positive control after it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, runTs } from '../../harness/run.js';
import { ALT, type Backend, E2eWorld, SSH, UDP_PORT } from './world.js';

function codesSuite(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns([...BACKEND_TOOLS[backend], 'nc'])) return;

  describe(`one-time codes sent with nc, ${backend}`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [
        { name: 'alice', open: [`tcp/${SSH}`, `tcp/${ALT}`], extra: ['codes = true', 'codes_window = 5'] },
        { name: 'bob', open: [`tcp/${SSH}`] },
      ],
    });
    before(() => w.start());
    after(() => w.stop());
    let codes: string[] = [];

    /** The real nc in the client namespace: the code on stdin, one datagram, as `printf %s CODE | nc -u -w1`. */
    async function nc(host: string, code: string): Promise<void> {
      const r = await w.pair.exec(w.pair.cli, ['nc', '-u', '-w1', host, String(UDP_PORT)], { input: code });
      assert.equal(r.code, 0, `nc failed: ${r.stderr}`);
    }
    const grantAfter = (from: number) => w.daemon.waitFor((l) => l.event === 'grant', 5000, from);
    const closeAlice = async (host: string) => {
      const mark = w.daemon.lines.length;
      await w.knockOk(host, '--key', w.keys.alice as string, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke', 3000, mark);
      assert.equal(await w.isOpen(host), false, 'closed by --close');
    };
    /** Wait until the reject summaries from log line `from` on count `n` datagrams under `reason`. */
    async function rejectedAs(reason: string, from: number, n = 1): Promise<void> {
      const end = Date.now() + 5000;
      while ((w.rejects(from)[reason] ?? 0) < n) {
        if (Date.now() > end) assert.fail(`not ${n} × ${reason} rejected: ${JSON.stringify(w.rejects(from))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    test('spa-knock codes prints the list with the nc line', async () => {
      const r = await runTs(CLIENT, ['codes', '--key', w.keys.alice as string, '--count', '8', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { codes: { counter: number; code: string }[]; send: string };
      codes = j.codes.map((c) => c.code);
      assert.equal(codes.length, 8);
      assert.equal(j.send, `printf %s ${codes[0]} | nc -u -w1 SERVER ${UDP_PORT}`);
    });

    test("a code sent with nc opens all the client's accesses, for the sender only", async () => {
      assert.equal(await w.isOpen(w.pair.srv4), false, 'closed before');
      const mark = w.daemon.lines.length;
      await nc(w.pair.srv4, codes[0] as string);
      const g = await grantAfter(mark);
      assert.equal(g.client, 'alice');
      assert.equal(g.one_time_code, 0, "the grant line names the code's number");
      assert.equal(g.address, w.pair.cli4);
      assert.deepEqual(g.accesses, [`tcp/${SSH}`, `tcp/${ALT}`]);
      assert.equal(await w.opens(w.pair.srv4), true, 'open after the code');
      assert.equal(await w.isOpen(w.pair.srv4, ALT), true, 'both accesses');
      assert.equal(await w.isOpen(w.pair.srv6), false, 'not for the IPv6 address: a code opens for its sender');
      await closeAlice(w.pair.srv4);
    });

    test('the same code again opens nothing; the next one does', async () => {
      const mark = w.daemon.lines.length;
      const grants = w.grantsSoFar();
      await nc(w.pair.srv4, codes[0] as string);
      await rejectedAs('code-used', mark);
      assert.equal(await w.isOpen(w.pair.srv4), false, 'a used code opens nothing');
      assert.equal(w.grantsSoFar(), grants);
      await nc(w.pair.srv4, codes[1] as string);
      assert.equal(await w.opens(w.pair.srv4), true, 'control: the next code opens');
      await closeAlice(w.pair.srv4);
    });

    test('over IPv6 too; a code skipped ahead kills the ones below it', async () => {
      await nc(w.pair.srv6, codes[3] as string);
      assert.equal(await w.opens(w.pair.srv6), true, 'code 3 opens over IPv6');
      await closeAlice(w.pair.srv6);
      const mark = w.daemon.lines.length;
      await nc(w.pair.srv4, codes[2] as string);
      await rejectedAs('code-used', mark);
      assert.equal(await w.isOpen(w.pair.srv4), false, 'code 2 died when code 3 was used');
    });

    test('after kill -9 and a restart the used codes stay used; the next code opens', async () => {
      assert.equal(await w.daemon.stop('SIGKILL'), null);
      await w.daemon.start();
      const restartedAt = w.daemon.lines.findLastIndex((l) => l.event === 'start');
      await nc(w.pair.srv4, codes[3] as string);
      await nc(w.pair.srv4, codes[1] as string);
      await rejectedAs('code-used', restartedAt, 2);
      assert.equal(await w.isOpen(w.pair.srv4), false, 'used codes refused after kill -9 and restart');
      await nc(w.pair.srv4, codes[4] as string);
      assert.equal(await w.opens(w.pair.srv4), true, 'control: the next code opens after the restart');
      await closeAlice(w.pair.srv4);
    });

    test('junk shaped like a code, and bob (no codes = true) sending one of his, open nothing', async () => {
      const mark = w.daemon.lines.length;
      const bob = await runTs(CLIENT, ['codes', '--key', w.keys.bob as string, '--count', '1', '--json']);
      assert.equal(bob.code, 0, bob.stderr);
      const bobCode = (JSON.parse(bob.stdout) as { codes: { code: string }[] }).codes[0]?.code as string;
      await nc(w.pair.srv4, bobCode);
      await nc(w.pair.srv4, `spc1-${'a'.repeat(24)}`);
      await rejectedAs('code', mark);
      assert.equal(await w.isOpen(w.pair.srv4), false, 'nothing opened');
      await nc(w.pair.srv4, codes[5] as string);
      assert.equal(await w.opens(w.pair.srv4), true, 'control: a good code opens');
      await closeAlice(w.pair.srv4);
    });
  });
}

codesSuite('nftables', 'codes-nft', 104);
codesSuite('iptables', 'codes-ipt', 105);
