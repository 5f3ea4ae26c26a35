/**
 * server/grants.ts: ownership between clients (issue 11), the per-client grant limit, restore with owners. Fake
 * clock and fake firewall (which stores owners as the real backends do in the kernel).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FakeBackend, newFakeKernel } from '../../server/firewall/fake.js';
import { GrantManager } from '../../server/grants.js';
import type { Decision } from '../../server/policy.js';
import { FakeClock } from '../helpers/clock.js';

const TCP22 = { proto: 'tcp', port: 22 } as const;
const TCP443 = { proto: 'tcp', port: 443 } as const;
const ALICE_IP = '203.0.113.9';

function dec(client: string, over: Partial<Decision> = {}): Decision {
  return {
    client,
    type: 'open',
    family: 4,
    address: ALICE_IP,
    source: ALICE_IP,
    accesses: [TCP22],
    duration: 60,
    ...over,
  };
}

async function setup(opts: { maxGrants?: number; backend?: FakeBackend; clock?: FakeClock } = {}) {
  const clock = opts.clock ?? new FakeClock();
  const backend = opts.backend ?? new FakeBackend();
  if (!backend.installed) await backend.install({ protect: [TCP22, TCP443] }, clock.now());
  const gm = new GrantManager({ backend, now: clock.now, timers: clock, maxGrantsOf: () => opts.maxGrants ?? 16 });
  await gm.restore();
  return { gm, backend, clock };
}

const held = (b: FakeBackend) =>
  b.held.map((g) => ({
    address: g.address,
    access: `${g.access.proto}/${g.access.port}`,
    expiresAt: g.expiresAt,
    owner: g.owner,
  }));

describe('grant ownership', () => {
  test("another client's knock never shortens a grant: bob --allow-ip ALICE --duration 1", async () => {
    const { gm, backend, clock } = await setup();
    const t0 = clock.now();
    assert.deepEqual(await gm.open(dec('alice', { duration: 300 })), {
      ok: true,
      outcomes: [{ access: TCP22, action: 'opened', owner: 'alice', expiresAt: t0 + 300_000 }],
    });
    backend.clearCalls();
    const r = await gm.open(dec('bob', { duration: 1, source: '198.51.100.1' }));
    assert.deepEqual(r, {
      ok: true,
      outcomes: [{ access: TCP22, action: 'unchanged', owner: 'alice', expiresAt: t0 + 300_000 }],
    });
    assert.equal(backend.calls.length, 0, 'no firewall call at all');
    assert.deepEqual(held(backend), [{ address: ALICE_IP, access: 'tcp/22', expiresAt: t0 + 300_000, owner: 'alice' }]);
  });

  test('another client may lengthen a grant; the owner stays', async () => {
    const { gm, backend, clock } = await setup();
    const t0 = clock.now();
    await gm.open(dec('alice', { duration: 10 }));
    const r = await gm.open(dec('bob', { duration: 60 }));
    assert.ok(r.ok);
    assert.deepEqual(
      r.outcomes.map((o) => [o.action, o.owner]),
      [['extended', 'alice']],
    );
    assert.deepEqual(held(backend), [{ address: ALICE_IP, access: 'tcp/22', expiresAt: t0 + 60_000, owner: 'alice' }]);
  });

  test('the owner may shorten its own grant (renewed)', async () => {
    const { gm, backend, clock } = await setup();
    const t0 = clock.now();
    await gm.open(dec('alice', { duration: 300 }));
    const r = await gm.open(dec('alice', { duration: 5 }));
    assert.ok(r.ok && r.outcomes[0]?.action === 'renewed');
    assert.equal(backend.held[0]?.expiresAt, t0 + 5_000);
  });

  test("close removes only the knocker's own grants; the bypass (open alice's address, then close it) fails", async () => {
    const { gm, backend } = await setup();
    await gm.open(dec('alice'));
    const opened = await gm.open(dec('bob', { accesses: [TCP22, TCP443] })); // extends nothing shorter; opens 443 for bob
    assert.ok(opened.ok);
    assert.deepEqual(
      opened.outcomes.map((o) => [o.access.port, o.action, o.owner]),
      [
        [22, 'unchanged', 'alice'],
        [443, 'opened', 'bob'],
      ],
    );
    const c = await gm.close(dec('bob', { type: 'close', accesses: [TCP22, TCP443] }));
    assert.deepEqual(c, { revoked: [{ family: 4, address: ALICE_IP, access: TCP443 }], absent: [], notOwned: [TCP22] });
    assert.deepEqual(
      held(backend).map((g) => [g.access, g.owner]),
      [['tcp/22', 'alice']],
    );
    const a = await gm.close(dec('alice', { type: 'close' }));
    assert.equal(a.revoked.length, 1);
    assert.equal(backend.held.length, 0);
  });

  test("after a restart the owners come back from the kernel: bob still cannot close alice's grant", async () => {
    const clock = new FakeClock();
    const backend = new FakeBackend();
    const first = await setup({ backend, clock });
    await first.gm.open(dec('alice'));
    first.gm.stop();
    const second = await setup({ backend, clock }); // a new daemon: restore() lists the kernel's grants
    assert.deepEqual(
      second.gm.active().map((a) => a.owner),
      ['alice'],
    );
    const c = await second.gm.close(dec('bob', { type: 'close' }));
    assert.deepEqual(c.revoked, []);
    assert.equal(backend.held.length, 1);
    assert.equal((await second.gm.close(dec('alice', { type: 'close' }))).revoked.length, 1);
  });

  test('an ownerless grant (made by an older version or by hand) can be extended by anyone and closed by nobody', async () => {
    const clock = new FakeClock();
    const backend = new FakeBackend();
    await backend.install({ protect: [TCP22] }, clock.now());
    await backend.grant(
      [{ family: 4, address: ALICE_IP, access: TCP22, expiresAt: clock.now() + 10_000 }],
      clock.now(),
    );
    const { gm } = await setup({ backend, clock });
    const r = await gm.open(dec('bob', { duration: 60 }));
    assert.ok(r.ok && r.outcomes[0]?.action === 'extended' && r.outcomes[0].owner === undefined);
    assert.equal(backend.held[0]?.owner, undefined);
    assert.deepEqual((await gm.close(dec('bob', { type: 'close' }))).revoked, []);
    assert.equal(backend.held.length, 1);
  });

  test("an expired grant is nobody's: the next knock opens it as its own", async () => {
    const { gm, clock } = await setup();
    await gm.open(dec('alice', { duration: 5 }));
    await clock.advance(6_000);
    assert.deepEqual(await gm.close(dec('alice', { type: 'close' })), { revoked: [], absent: [TCP22], notOwned: [] });
    const r = await gm.open(dec('bob', { duration: 5 }));
    assert.ok(r.ok && r.outcomes[0]?.action === 'opened' && r.outcomes[0].owner === 'bob');
  });
});

describe('grant limit per client', () => {
  test('beyond max_grants distinct addresses: refused before any firewall call; the same address again is fine', async () => {
    const { gm, backend } = await setup({ maxGrants: 3 });
    for (let i = 1; i <= 3; i++) assert.ok((await gm.open(dec('bob', { address: `192.0.2.${i}` }))).ok);
    backend.clearCalls();
    assert.deepEqual(await gm.open(dec('bob', { address: '192.0.2.4' })), { ok: false, reason: 'grant-limit' });
    assert.equal(backend.calls.length, 0);
    assert.ok(
      (await gm.open(dec('bob', { address: '192.0.2.2', accesses: [TCP443] }))).ok,
      'an address bob holds costs nothing',
    );
    assert.ok((await gm.open(dec('alice', { address: '192.0.2.4' }))).ok, "alice's limit is her own");
    assert.equal(backend.held.filter((g) => g.owner === 'bob').length, 4);
  });

  test('concurrent knocks cannot overshoot the limit (decisions are serialised)', async () => {
    const backend = new FakeBackend({ latencyMs: 2 });
    const { gm } = await setup({ maxGrants: 5, backend });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => gm.open(dec('bob', { address: `198.51.100.${i + 1}` }))),
    );
    assert.equal(results.filter((r) => r.ok).length, 5);
    assert.equal(results.filter((r) => !r.ok && r.reason === 'grant-limit').length, 45);
    assert.equal(new Set(backend.held.map((g) => g.address)).size, 5);
  });

  test('expired grants free their slot', async () => {
    const { gm, clock } = await setup({ maxGrants: 1 });
    assert.ok((await gm.open(dec('bob', { address: '192.0.2.1', duration: 5 }))).ok);
    assert.equal((await gm.open(dec('bob', { address: '192.0.2.2' }))).ok, false);
    await clock.advance(5_001);
    assert.ok((await gm.open(dec('bob', { address: '192.0.2.2' }))).ok);
  });

  test('a grant past its expiry still listed (iptables: its timed revoke failed) no longer takes a slot', async () => {
    const { gm, backend, clock } = await setup({ maxGrants: 1, backend: new FakeBackend({ kernelExpiry: false }) });
    assert.ok((await gm.open(dec('bob', { address: '192.0.2.1', duration: 5 }))).ok);
    backend.failNext('revoke');
    await clock.advance(5_000);
    assert.equal(gm.active().length, 0);
    assert.equal(backend.held.length, 1, 'still in the "kernel": the revoke failed and waits for its retry');
    assert.ok((await gm.open(dec('bob', { address: '192.0.2.2' }))).ok, 'the expired grant freed the slot');
    assert.deepEqual(await gm.open(dec('bob', { address: '192.0.2.3' })), { ok: false, reason: 'grant-limit' });
    await clock.advance(1_000); // the retry revokes the old one: the count does not drop a second time
    assert.equal(backend.held.length, 1);
    assert.deepEqual(await gm.open(dec('bob', { address: '192.0.2.3' })), { ok: false, reason: 'grant-limit' });
  });

  test('close and a reload that ends a client free its slots; a lower limit after reload applies at once', async () => {
    let max = 2;
    const clock = new FakeClock();
    const backend = new FakeBackend();
    await backend.install({ protect: [TCP22, TCP443] }, clock.now());
    const gm = new GrantManager({ backend, now: clock.now, timers: clock, maxGrantsOf: () => max });
    await gm.restore();
    for (const a of ['192.0.2.1', '192.0.2.2']) assert.ok((await gm.open(dec('bob', { address: a }))).ok);
    assert.equal((await gm.open(dec('bob', { address: '192.0.2.3' }))).ok, false);
    await gm.close(dec('bob', { type: 'close', address: '192.0.2.1' }));
    assert.ok((await gm.open(dec('bob', { address: '192.0.2.3' }))).ok, 'the closed address freed its slot');
    await gm.endOwnedBy((owner) => owner === 'bob'); // a reload removed bob
    assert.equal(backend.held.length, 0);
    for (const a of ['192.0.2.4', '192.0.2.5']) assert.ok((await gm.open(dec('bob', { address: a }))).ok);
    max = 1; // a reload lowered bob's max_grants: he holds 2, so no new address
    assert.deepEqual(await gm.open(dec('bob', { address: '192.0.2.6' })), { ok: false, reason: 'grant-limit' });
    assert.ok((await gm.open(dec('bob', { address: '192.0.2.5', duration: 90 }))).ok, 'a held address still renews');
  });

  test('restore counts the owners the kernel holds; an address another client re-opens after expiry moves the slot', async () => {
    const clock = new FakeClock();
    const kernel = newFakeKernel();
    const first = await setup({ maxGrants: 2, clock, backend: new FakeBackend({ kernel }) });
    assert.ok((await first.gm.open(dec('bob', { address: '192.0.2.1', duration: 5 }))).ok);
    assert.ok((await first.gm.open(dec('bob', { address: '192.0.2.2' }))).ok);
    first.gm.stop();
    // a restart: a new manager over the same kernel
    const { gm } = await setup({ maxGrants: 2, clock, backend: new FakeBackend({ kernel }) });
    assert.deepEqual(await gm.open(dec('bob', { address: '192.0.2.3' })), { ok: false, reason: 'grant-limit' });
    await clock.advance(5_000);
    assert.ok((await gm.open(dec('alice', { address: '192.0.2.1' }))).ok, "alice opens bob's expired address");
    assert.ok((await gm.open(dec('bob', { address: '192.0.2.3' }))).ok, "bob's slot came free with the expiry");
    assert.ok((await gm.open(dec('alice', { address: '192.0.2.4' }))).ok);
    assert.deepEqual(await gm.open(dec('alice', { address: '192.0.2.5' })), { ok: false, reason: 'grant-limit' });
  });

  test('one batch counts the addresses it opens, and an open refused in it takes no slot', async () => {
    const backend = new FakeBackend({ latencyMs: 2 });
    const { gm } = await setup({ maxGrants: 2, backend });
    const net = '198.51.100.0';
    assert.ok((await gm.open(dec('carol', { address: net, prefix: 24 }))).ok);
    const results = await Promise.all([
      gm.open(dec('bob', { address: '198.51.100.0', prefix: 25 })), // prefix-overlap with carol's /24
      gm.open(dec('bob', { address: '192.0.2.1' })),
      gm.open(dec('bob', { address: '192.0.2.1', accesses: [TCP443] })), // same address: free
      gm.open(dec('bob', { address: '192.0.2.2' })),
      gm.open(dec('bob', { address: '192.0.2.3' })),
    ]);
    assert.deepEqual(
      results.map((r) => (r.ok ? 'ok' : r.reason)),
      ['prefix-overlap', 'ok', 'ok', 'ok', 'grant-limit'],
    );
  });
});

describe('prefix grants (issue 10)', () => {
  const NET = '203.0.113.0';

  test('a prefix grant is one key with its length: opened, renewed, closed by its owner; the host key differs', async () => {
    const { gm, backend, clock } = await setup();
    const t0 = clock.now();
    const r = await gm.open(dec('alice', { address: NET, prefix: 24 }));
    assert.ok(r.ok && r.outcomes[0]?.action === 'opened');
    assert.deepEqual(
      backend.held.map((g) => [g.address, g.prefix, g.owner]),
      [[NET, 24, 'alice']],
    );
    assert.equal(gm.isOpen(NET, TCP22), false, 'isOpen is about one address, not a prefix');
    const again = await gm.open(dec('alice', { address: NET, prefix: 24, duration: 120 }));
    assert.ok(again.ok && again.outcomes[0]?.action === 'renewed' && again.outcomes[0].expiresAt === t0 + 120_000);
    // the one address inside the prefix is another grant
    const host = await gm.open(dec('alice', { address: '203.0.113.0' }));
    assert.ok(host.ok && host.outcomes[0]?.action === 'opened');
    assert.equal(backend.held.length, 2);
    const closed = await gm.close(dec('alice', { type: 'close', address: NET, prefix: 24 }));
    assert.deepEqual(closed.revoked, [{ family: 4, address: NET, prefix: 24, access: TCP22 }]);
    assert.deepEqual(
      backend.held.map((g) => [g.address, g.prefix]),
      [['203.0.113.0', undefined]],
    );
  });

  test('max_grants counts a prefix as one address', async () => {
    const { gm } = await setup({ maxGrants: 1 });
    assert.ok((await gm.open(dec('alice', { address: NET, prefix: 24, accesses: [TCP22, TCP443] }))).ok);
    assert.deepEqual(await gm.open(dec('alice', { address: '198.51.100.7' })), { ok: false, reason: 'grant-limit' });
    assert.deepEqual(await gm.open(dec('alice', { address: NET, prefix: 25 })), { ok: false, reason: 'grant-limit' });
  });

  test('a prefix overlapping a live prefix of another length for the same access is refused (prefix-overlap)', async () => {
    const { gm, backend, clock } = await setup();
    assert.ok((await gm.open(dec('alice', { address: NET, prefix: 24, duration: 5 }))).ok);
    const calls = backend.calls.length;
    for (const [address, prefix] of [
      ['203.0.0.0', 16],
      ['203.0.113.128', 25],
    ] as const) {
      assert.deepEqual(await gm.open(dec('bob', { address, prefix })), { ok: false, reason: 'prefix-overlap' });
    }
    assert.equal(backend.calls.length, calls, 'nothing written');
    // another access, a disjoint block, the same length (bob extends alice's), or a one-address grant: fine
    assert.ok((await gm.open(dec('bob', { address: '203.0.0.0', prefix: 16, accesses: [TCP443] }))).ok);
    assert.ok((await gm.open(dec('bob', { address: '198.51.100.0', prefix: 23 }))).ok);
    const same = await gm.open(dec('bob', { address: NET, prefix: 24, duration: 10 }));
    assert.ok(same.ok && same.outcomes[0]?.action === 'extended');
    assert.ok((await gm.open(dec('bob', { address: '203.0.113.5' }))).ok);
    // once the /24 has ended, the /16 may come
    await clock.advance(9_999);
    assert.deepEqual(await gm.open(dec('bob', { address: '203.0.0.0', prefix: 16 })), {
      ok: false,
      reason: 'prefix-overlap',
    });
    await clock.advance(1);
    assert.ok((await gm.open(dec('bob', { address: '203.0.0.0', prefix: 16 }))).ok);
  });
});

describe('reinstall (heal, reload)', () => {
  test('the live grants are written again with the clock read after the install, so a slow install lengthens none', async () => {
    const { gm, backend, clock } = await setup();
    const t0 = clock.now();
    await gm.open(dec('alice', { duration: 60 }));
    backend.clearCalls();
    const n = await gm.reinstall(async (now) => {
      await backend.install({ protect: [TCP22, TCP443] }, now);
      await clock.advance(5000); // an install that took 5 s
    });
    assert.equal(n, 1);
    const grant = backend.calls.find((c) => c.op === 'grant');
    assert.ok(grant?.op === 'grant');
    assert.equal(grant.now, t0 + 5000, 'the time after the install');
    assert.equal(grant.entries[0]?.expiresAt, t0 + 60_000, 'the grant’s own end');
  });
});
