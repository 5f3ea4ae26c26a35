/** server/firewall/validate.ts: what every backend checks before any text reaches nft or iptables. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SpaError } from '../../shared/errors.js';
import {
  checkAccess,
  checkGrantKey,
  checkGrants,
  checkKeys,
  checkOwner,
  checkPlan,
  checkProtect,
} from '../../server/firewall/validate.js';

const TCP = { proto: 'tcp', port: 22 } as const;
const UDP = { proto: 'udp', port: 53 } as const;
const fw = (e: unknown): boolean => e instanceof SpaError && e.code === 'ERR_SPA_FIREWALL';

describe('firewall input validation', () => {
  test('addresses: canonical per family, strict, no zones; an IPv4-mapped address is family 4', () => {
    assert.equal(checkGrantKey({ family: 4, address: '10.0.0.1', access: TCP }).address, '10.0.0.1');
    assert.equal(checkGrantKey({ family: 6, address: 'FD00:0:0:0::1', access: TCP }).address, 'fd00::1');
    assert.equal(
      checkGrantKey({ family: 6, address: '2001:db8:0:0:1:0:0:1', access: TCP }).address,
      '2001:db8::1:0:0:1',
    );
    assert.equal(checkGrantKey({ family: 4, address: '::ffff:10.0.0.1', access: TCP }).address, '10.0.0.1');
    for (const [family, address] of [
      [4, '010.0.0.1'],
      [4, '1.2.3'],
      [4, '::1'],
      [6, '10.0.0.1'],
      [6, '::ffff:10.0.0.1'],
      [6, 'fe80::1%eth0'],
      [6, 'fd00::1 . tcp . 1'],
      [5, '10.0.0.1'],
      [4, 17],
    ] as const) {
      assert.throws(() => checkGrantKey({ family, address, access: TCP }), fw, `${family} ${address}`);
    }
  });

  test('accesses and plans', () => {
    assert.deepEqual(checkAccess({ proto: 'udp', port: 65535, extra: 1 }), { proto: 'udp', port: 65535 });
    for (const bad of [
      { proto: 'udp', port: 65536 },
      { proto: 'UDP', port: 53 },
      { proto: 'tcp', port: '22' },
      null,
      'tcp/22',
    ]) {
      assert.throws(() => checkAccess(bad), fw, JSON.stringify(bad));
    }
    assert.deepEqual(checkProtect([TCP, UDP, TCP]), [TCP, UDP]);
    assert.deepEqual(checkPlan({ protect: [TCP] }), {
      protect: [TCP],
      silencePortUnreachable: false,
      sequences: [],
    });
    assert.deepEqual(checkPlan({ protect: [], silencePortUnreachable: true }), {
      protect: [],
      silencePortUnreachable: true,
      sequences: [],
    });
    assert.throws(() => checkPlan({ protect: [], silencePortUnreachable: 1 }), fw);
    assert.throws(() => checkPlan(null), fw);
  });

  test('owners: config client names only, before any interpolation', () => {
    assert.equal(checkOwner(undefined), undefined);
    assert.equal(checkOwner('a.B_c@d-9'), 'a.B_c@d-9');
    for (const bad of ['', 'a b', 'alice"', 'x'.repeat(65), 'é', 7, null])
      assert.throws(() => checkOwner(bad), fw, String(bad));
  });

  test('grants and keys: duplicates collapse (last wins), owner kept only when given', () => {
    const g = { family: 4, address: '10.0.0.1', access: TCP, expiresAt: 5 } as const;
    assert.deepEqual(checkGrants([g, { ...g, expiresAt: 9, owner: 'bob' }]), [{ ...g, expiresAt: 9, owner: 'bob' }]);
    assert.deepEqual(checkGrants([{ ...g, owner: undefined }]), [g]);
    assert.throws(() => checkGrants([{ ...g, expiresAt: Number.POSITIVE_INFINITY }]), fw);
    assert.deepEqual(checkKeys([g, g]), [{ family: 4, address: '10.0.0.1', access: TCP }]);
    assert.throws(() => checkKeys('x' as never), fw);
  });
});
