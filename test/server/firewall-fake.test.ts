import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FirewallError, type GrantEntry } from '../../server/firewall/backend.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import { canonicalAddress, checkAccess, checkProtect } from '../../server/firewall/exec.js';

const TCP = { proto: 'tcp', port: 22 } as const;
const UDP = { proto: 'udp', port: 53 } as const;
const g4 = (expiresAt: number, access: GrantEntry['access'] = TCP): GrantEntry => ({
  family: 4,
  address: '192.0.2.7',
  access,
  expiresAt,
});

describe('FakeBackend', () => {
  test('records calls in order with copies of the arguments', async () => {
    const fw = new FakeBackend();
    const plan = { protect: [TCP] };
    await fw.install(plan, Date.now());
    const entries = [g4(5000)];
    await fw.grant(entries, 1000);
    await fw.revoke([{ family: 4, address: '192.0.2.7', access: TCP }]);
    await fw.list(2000);
    await fw.check(plan);
    await fw.uninstall();
    await fw.close();
    assert.deepEqual(
      fw.calls.map((c) => c.op),
      ['install', 'grant', 'revoke', 'list', 'check', 'uninstall', 'close'],
    );
    assert.deepEqual(fw.calls[1], { op: 'grant', entries: [g4(5000)], now: 1000 });
    assert.notEqual((fw.calls[1] as { entries: GrantEntry[] }).entries[0], entries[0], 'a copy');
    assert.ok(fw.closed);
    fw.clearCalls();
    assert.equal(fw.calls.length, 0);
    assert.equal(fw.name, 'fake');
  });

  test('list honours expiresAt (kernelExpiry true by default)', async () => {
    const fw = new FakeBackend();
    assert.equal(fw.kernelExpiry, true);
    await fw.install({ protect: [TCP, UDP] }, Date.now());
    await fw.grant([g4(10_000), g4(20_000, UDP)], 0);
    assert.equal((await fw.list(5000)).length, 2);
    assert.deepEqual(await fw.list(15_000), [g4(20_000, UDP)]);
    assert.deepEqual(await fw.list(20_000), []);
    assert.ok(fw.isOpen(4, '192.0.2.7', UDP, 19_999));
    assert.ok(!fw.isOpen(4, '192.0.2.7', UDP, 20_000));
  });

  test('kernelExpiry false keeps expired grants listed until revoked', async () => {
    const fw = new FakeBackend({ kernelExpiry: false });
    await fw.install({ protect: [TCP] }, Date.now());
    await fw.grant([g4(10_000)], 0);
    assert.deepEqual(await fw.list(50_000), [g4(10_000)]);
    await fw.revoke([g4(0)]);
    assert.deepEqual(await fw.list(50_000), []);
  });

  test('grant refreshes, minimum 1 s, canonical v6, revoke of absent is fine', async () => {
    const fw = new FakeBackend();
    await fw.install({ protect: [TCP] }, Date.now());
    await fw.grant([g4(10_000)], 0);
    await fw.grant([g4(30_000)], 0);
    assert.deepEqual(await fw.list(0), [g4(30_000)]);
    await fw.grant([g4(100)], 0);
    assert.deepEqual(await fw.list(0), [g4(1000)]);
    await fw.grant([{ family: 6, address: '2001:DB8:0:0:0:0:0:1', access: TCP, expiresAt: 5000 }], 0);
    assert.ok((await fw.list(0)).some((g) => g.address === '2001:db8::1'));
    await fw.revoke([{ family: 6, address: '2001:db8::2', access: TCP }]);
    assert.equal(fw.held.length, 2);
  });

  test('failNext makes the next (matching) call fail with FirewallError and change nothing', async () => {
    const fw = new FakeBackend();
    await fw.install({ protect: [TCP] }, Date.now());
    fw.failNext('grant', 'boom');
    await fw.list(0); // not a grant: unaffected
    await assert.rejects(fw.grant([g4(10_000)], 0), (e: unknown) => e instanceof FirewallError && e.message === 'boom');
    assert.deepEqual(await fw.list(0), []);
    await fw.grant([g4(10_000)], 0); // only the next one failed
    fw.failNext();
    await assert.rejects(fw.revoke([g4(0)]), FirewallError);
    assert.equal((await fw.list(0)).length, 1);
    fw.failNext('install');
    await assert.rejects(fw.install({ protect: [UDP] }, 0), FirewallError);
    assert.deepEqual(fw.installed, [TCP]);
  });

  test('validation matches the real backends; grant before install fails', async () => {
    const fw = new FakeBackend();
    await assert.rejects(fw.grant([g4(10_000)], 0), /not installed/);
    assert.deepEqual(await fw.check({ protect: [] }), ['fake firewall is not installed']);
    await fw.install({ protect: [TCP] }, Date.now());
    await assert.rejects(fw.grant([{ ...g4(1000), address: '::1' }], 0), FirewallError);
    await assert.rejects(fw.grant([{ ...g4(1000), access: { proto: 'tcp', port: 0 } }], 0), FirewallError);
    await assert.rejects(fw.install({ protect: [{ proto: 'sctp' as 'tcp', port: 1 }] }, 0), FirewallError);
    assert.deepEqual(await fw.check({ protect: [UDP] }), ['protected list differs: installed [tcp/22], expected [udp/53]']);
    assert.deepEqual(await fw.check({ protect: [TCP, TCP] }), []);
  });

  test('latencyMs delays calls', async () => {
    const fw = new FakeBackend({ latencyMs: 30 });
    const t0 = Date.now();
    await fw.install({ protect: [] }, Date.now());
    assert.ok(Date.now() - t0 >= 25);
  });
});

describe('shared validation helpers', () => {
  test('canonicalAddress', () => {
    assert.equal(canonicalAddress(4, '10.0.0.1'), '10.0.0.1');
    assert.equal(canonicalAddress(6, 'FD00:0:0:0::1'), 'fd00::1');
    assert.equal(canonicalAddress(6, '2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    for (const [f, a] of [
      [4, '010.0.0.1'],
      [4, '1.2.3'],
      [4, '::1'],
      [6, '10.0.0.1'],
      [6, '::ffff:10.0.0.1'],
      [6, 'fe80::1%eth0'],
      [6, 'fd00::1 . tcp . 1'],
    ] as const) {
      assert.throws(() => canonicalAddress(f, a), FirewallError, `${f} ${a}`);
    }
  });
  test('checkAccess / checkProtect', () => {
    assert.deepEqual(checkAccess({ proto: 'udp', port: 65535 }), { proto: 'udp', port: 65535 });
    assert.throws(() => checkAccess({ proto: 'udp', port: 65536 }), FirewallError);
    assert.throws(() => checkAccess({ proto: 'UDP', port: 53 }), FirewallError);
    assert.throws(() => checkAccess({ proto: 'tcp', port: '22' }), FirewallError);
    assert.deepEqual(checkProtect([TCP, UDP, TCP]), [TCP, UDP]);
  });
});
