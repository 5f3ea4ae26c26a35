/**
 * What only the fake has (call recording, injected failures, latency, a shared "kernel"). Its behaviour as a backend
 * is checked by the conformance suite (test/server/firewall-contract.test.ts), the same cases as the real backends.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SpaError } from '../../shared/errors.js';
import type { GrantEntry } from '../../server/firewall/backend.js';
import { FakeBackend, newFakeKernel } from '../../server/firewall/fake.js';

const TCP = { proto: 'tcp', port: 22 } as const;
const UDP = { proto: 'udp', port: 53 } as const;
const g4 = (expiresAt: number, access: GrantEntry['access'] = TCP): GrantEntry => ({
  family: 4,
  address: '192.0.2.7',
  access,
  expiresAt,
});
const fwError =
  (message?: string) =>
  (e: unknown): boolean =>
    e instanceof SpaError && e.code === 'ERR_SPA_FIREWALL' && (message === undefined || e.message === message);

describe('FakeBackend', () => {
  test('records calls in order with copies of the arguments', async () => {
    const fw = new FakeBackend();
    const plan = { protect: [TCP] };
    await fw.install(plan, 0);
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
    assert.deepEqual(fw.calls[0], { op: 'install', plan, now: 0 });
    assert.deepEqual(fw.calls[1], { op: 'grant', entries: [g4(5000)], now: 1000 });
    assert.notEqual((fw.calls[1] as { entries: GrantEntry[] }).entries[0], entries[0], 'a copy');
    assert.ok(fw.closed);
    fw.clearCalls();
    assert.equal(fw.calls.length, 0);
    assert.equal(fw.name, 'fake');
  });

  test('isOpen and held', async () => {
    const fw = new FakeBackend({ kernelExpiry: false });
    await fw.install({ protect: [TCP, UDP] }, 0);
    await fw.grant([g4(10_000), g4(20_000, UDP)], 0);
    assert.ok(fw.isOpen(4, '192.0.2.7', UDP, 19_999));
    assert.ok(!fw.isOpen(4, '192.0.2.7', UDP, 20_000));
    assert.equal((await fw.list(50_000)).length, 2);
    assert.equal(fw.held.length, 2);
    assert.deepEqual(fw.installed, [TCP, UDP]);
  });

  test('failNext makes the next (matching) call fail with ERR_SPA_FIREWALL and change nothing', async () => {
    const fw = new FakeBackend();
    await fw.install({ protect: [TCP] }, 0);
    fw.failNext('grant', 'boom');
    await fw.list(0); // not a grant: unaffected
    await assert.rejects(fw.grant([g4(10_000)], 0), fwError('boom'));
    assert.deepEqual(await fw.list(0), []);
    await fw.grant([g4(10_000)], 0); // only the next one failed
    fw.failNext();
    await assert.rejects(fw.revoke([g4(0)]), fwError());
    assert.equal((await fw.list(0)).length, 1);
    fw.failNext('install');
    await assert.rejects(fw.install({ protect: [UDP] }, 0), fwError());
    assert.deepEqual(fw.installed, [TCP]);
  });

  test('a shared kernel outlives the object (a restart); uninstall clears it', async () => {
    const kernel = newFakeKernel();
    const a = new FakeBackend({ kernel });
    await a.install({ protect: [TCP] }, 0);
    await a.grant([{ ...g4(10_000), owner: 'alice' }], 0);
    const b = new FakeBackend({ kernel });
    assert.deepEqual(await b.list(0), [{ ...g4(10_000), owner: 'alice' }]);
    await b.uninstall();
    assert.deepEqual(await a.list(0), []);
    assert.equal(a.installed, undefined);
  });

  test('latencyMs delays calls', async () => {
    const fw = new FakeBackend({ latencyMs: 30 });
    const t0 = performance.now();
    await fw.install({ protect: [] }, 0);
    assert.ok(performance.now() - t0 >= 25);
  });
});
