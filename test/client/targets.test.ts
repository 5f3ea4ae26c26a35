/** Dual-stack targets (client/targets.ts) with an injected resolver: no real name is ever resolved. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpaError } from '../../shared/errors.js';
import { type LookupAll, type Target, forEachTarget, resolveTargets } from '../../client/targets.js';

const both: LookupAll = async (_h, family) =>
  [
    { address: '2001:db8::7', family: 6 },
    { address: '192.0.2.7', family: 4 },
    { address: '2001:db8::8', family: 6 },
    { address: '192.0.2.8', family: 4 },
  ].filter((r) => family === 0 || r.family === family);

describe('resolveTargets', () => {
  test('a name with A and AAAA records: one address per family, in the resolver order', async () => {
    assert.deepEqual(await resolveTargets('srv.example', 0, both), [
      { address: '2001:db8::7', family: 6 },
      { address: '192.0.2.7', family: 4 },
    ]);
  });
  test('-4 and -6 restrict to one family (and the resolver is asked for that family)', async () => {
    const asked: number[] = [];
    const spy: LookupAll = (h, f) => {
      asked.push(f);
      return both(h, f);
    };
    assert.deepEqual(await resolveTargets('srv.example', 4, spy), [{ address: '192.0.2.7', family: 4 }]);
    assert.deepEqual(await resolveTargets('srv.example', 6, spy), [{ address: '2001:db8::7', family: 6 }]);
    assert.deepEqual(asked, [4, 6]);
  });
  test('a literal is used as given, without the resolver', async () => {
    const never: LookupAll = () => assert.fail('resolver called for a literal');
    assert.deepEqual(await resolveTargets('[2001:db8::1]', 0, never), [{ address: '2001:db8::1', family: 6 }]);
    assert.deepEqual(await resolveTargets('192.0.2.1', 4, never), [{ address: '192.0.2.1', family: 4 }]);
    await assert.rejects(resolveTargets('192.0.2.1', 6, never), { code: 'ERR_SPA_USAGE' });
  });
  test('no address of the asked family, or a resolver error: ERR_SPA_RESOLVE', async () => {
    const v4only: LookupAll = async () => [{ address: '192.0.2.7', family: 4 }];
    await assert.rejects(resolveTargets('srv.example', 6, v4only), (e: unknown) => {
      assert.ok(e instanceof SpaError);
      assert.equal(e.code, 'ERR_SPA_RESOLVE');
      assert.match(e.message, /no IPv6 address/);
      return true;
    });
    const fail: LookupAll = async () => {
      throw Object.assign(new Error('x'), { code: 'ENOTFOUND' });
    };
    await assert.rejects(resolveTargets('srv.example', 0, fail), /no such host/);
  });
});

describe('forEachTarget', () => {
  const v4: Target = { address: '192.0.2.7', family: 4 };
  const v6: Target = { address: '2001:db8::7', family: 6 };
  test('one family failing is a warning when the other was sent', async () => {
    const warnings: string[] = [];
    const sent = await forEachTarget(
      [v6, v4],
      async (t) => {
        if (t.family === 6) throw new SpaError('ERR_SPA_SEND', 'no route');
      },
      (w) => warnings.push(w),
    );
    assert.deepEqual(sent, [v4]);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /IPv6 knock to \[2001:db8::7\] failed \(no route\)/);
  });
  test('all failing throws the first error', async () => {
    await assert.rejects(
      forEachTarget(
        [v6, v4],
        async (t) => {
          throw new SpaError('ERR_SPA_SEND', `fail ${t.family}`);
        },
        () => assert.fail('no warning when nothing was sent'),
      ),
      /fail 6/,
    );
  });
});
