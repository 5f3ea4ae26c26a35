/**
 * The nftables read sessions (server/firewall/nft-reader.ts), against a real `nft -i` in a namespace: a read gives what
 * a spawned `nft` gives (JSON and text), an nft error comes back as one and the session goes on, reads run one at a
 * time in order, a killed session starts again, a session is replaced after `recycleAfter` reads; and the backend's
 * reads after its install (the healer's check, list, the prefilter's counter) go through two sessions that stay the
 * same processes, check after check.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type NetnsPair, createPair, netnsSkip } from '../../harness/netns.js';
import { NftReader } from '../../server/firewall/nft-reader.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';

const skip = netnsSkip(['nft']);
const TABLE = 'spak_reader_t';

describe('nft read sessions in a namespace', { skip }, () => {
  let pair: NetnsPair;
  const readers: NftReader[] = [];
  const reader = (json: boolean, recycleAfter?: number): NftReader => {
    const r = new NftReader(
      ['ip', 'netns', 'exec', pair.srv, 'nft', ...(json ? ['-j'] : []), '-i'],
      5000,
      recycleAfter,
    );
    readers.push(r);
    return r;
  };
  const spawned = async (args: string[]) => (await pair.exec(pair.srv, ['nft', ...args])).stdout;

  before(async () => {
    pair = await createPair('nft-reader');
    const script = [
      `add table inet ${TABLE}`,
      `add chain inet ${TABLE} input { type filter hook input priority 0; policy accept; }`,
      `add rule inet ${TABLE} input tcp dport 2299 drop`,
      `add counter inet ${TABLE} c1`,
      '',
    ].join('\n');
    const r = await pair.exec(pair.srv, ['nft', '-f', '-'], { input: script });
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    for (const r of readers) await r.close();
    await pair?.cleanup();
  });

  test('JSON and text reads give what a spawned nft prints', async () => {
    const j = reader(true);
    const t = reader(false);
    const table = await j.run(['list', 'table', 'inet', TABLE]);
    assert.equal(table.code, 0, table.stderr);
    assert.deepEqual(JSON.parse(table.stdout), JSON.parse(await spawned(['-j', 'list', 'table', 'inet', TABLE])));
    const chain = await t.run(['list', 'chain', 'inet', TABLE, 'input']);
    assert.equal(chain.code, 0, chain.stderr);
    assert.equal(chain.stdout, await spawned(['list', 'chain', 'inet', TABLE, 'input']));
    assert.match(chain.stdout, /tcp dport 2299 drop/);
    const counter = await j.run(['list', 'counter', 'inet', TABLE, 'c1']);
    assert.equal(JSON.parse(counter.stdout).nftables[1].counter.name, 'c1');
  });

  test("an nft error is the request's (code 1, the Error line), and the session answers the next one", async () => {
    for (const json of [true, false]) {
      const r = reader(json);
      const missing = await r.run(['list', 'table', 'inet', 'spak_no_such_table']);
      assert.equal(missing.code, 1);
      assert.equal(missing.stdout, '');
      assert.match(missing.stderr, /Error: No such file or directory/);
      assert.doesNotMatch(missing.stderr, /spak_sync_/);
      const pid = r.pid;
      const ok = await r.run(['list', 'chain', 'inet', TABLE, 'input']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /2299/);
      assert.equal(r.pid, pid, 'the same session');
    }
  });

  test('requests made at once are answered one at a time, each with its own output', async () => {
    const r = reader(true);
    const asks = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0 ? ['list', 'counter', 'inet', TABLE, 'c1'] : ['list', 'table', 'inet', 'spak_missing'],
    );
    const got = await Promise.all(asks.map((a) => r.run(a)));
    got.forEach((g, i) => {
      if (i % 2 === 0) assert.equal(JSON.parse(g.stdout).nftables[1].counter.name, 'c1', `request ${i}`);
      else assert.equal(g.code, 1, `request ${i}`);
    });
  });

  test('a killed session starts again at the next read; one is replaced after recycleAfter reads', async () => {
    const r = reader(false, 3);
    assert.equal((await r.run(['list', 'chain', 'inet', TABLE, 'input'])).code, 0);
    const first = r.pid;
    assert.ok(first);
    await r.kill();
    const again = await r.run(['list', 'chain', 'inet', TABLE, 'input']);
    assert.equal(again.code, 0, again.stderr);
    const second = r.pid;
    assert.ok(second !== undefined && second !== first, 'a new session after the kill');
    for (let i = 0; i < 2; i++) await r.run(['list', 'chain', 'inet', TABLE, 'input']);
    assert.equal(r.pid, second, 'three reads on the second session');
    assert.equal((await r.run(['list', 'chain', 'inet', TABLE, 'input'])).code, 0);
    assert.notEqual(r.pid, second, 'the fourth read on a fresh one');
  });

  test("the backend's reads after install: the healer's check and the counter through the same two sessions", async () => {
    const fw = new NftablesBackend({ table: 'spak_reader_b', wrap: ['ip', 'netns', 'exec', pair.srv] });
    try {
      assert.deepEqual(fw.readerPids, [], 'no session before the install');
      const plan = { protect: [{ proto: 'tcp', port: 2298 }] } as const;
      await fw.install(plan, Date.now());
      assert.deepEqual(await fw.check(plan), []);
      const pids = fw.readerPids;
      assert.equal(pids.length, 2);
      assert.ok(
        pids.every((p) => typeof p === 'number'),
        String(pids),
      );
      for (let i = 0; i < 5; i++) assert.deepEqual(await fw.check(plan), []);
      assert.deepEqual(fw.readerPids, pids, 'the same processes, check after check');
      // a broken gate is still seen through the sessions
      const del = await pair.exec(pair.srv, ['nft', 'flush', 'chain', 'inet', 'spak_reader_b', 'input']);
      assert.equal(del.code, 0, del.stderr);
      assert.ok((await fw.check(plan)).length > 0, 'the flushed chain is reported');
      await fw.uninstall();
      assert.deepEqual(await fw.check(plan), ['nft table inet spak_reader_b is missing']);
    } finally {
      await fw.close();
    }
    assert.deepEqual(fw.readerPids, [], 'closed with the backend');
  });
});
