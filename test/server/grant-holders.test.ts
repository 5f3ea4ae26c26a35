/**
 * server/grant-holders.ts: the per-client count of held sources behind the grant limit — against a model that walks
 * every grant (what grants.ts did before), with expiry by the caller's clock, replacement, removal, ownerless grants,
 * a clock that goes back, and the expiry heap staying bounded under a flood of renewals.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { GrantEntry } from '../../server/firewall/backend.js';
import { GrantHolders, sourceKey } from '../../server/grant-holders.js';
import { grantKeyString } from '../../shared/address.js';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);
const TCP22 = { proto: 'tcp', port: 22 } as const;
const TCP443 = { proto: 'tcp', port: 443 } as const;

const grant = (address: string, owner: string | undefined, expiresAt: number, over: Partial<GrantEntry> = {}) =>
  ({ family: 4, address, access: TCP22, expiresAt, ...(owner !== undefined ? { owner } : {}), ...over }) as GrantEntry;

/** The walk the count replaces: distinct sources of `owner`'s grants live at `now`. */
function walk(live: ReadonlyMap<string, GrantEntry>, owner: string, now: number): Set<string> {
  const s = new Set<string>();
  for (const g of live.values()) if (g.owner === owner && g.expiresAt > now) s.add(sourceKey(g));
  return s;
}

describe('GrantHolders', () => {
  test('counts distinct sources per owner; two accesses of one address are one source; a prefix is its own', () => {
    const h = new GrantHolders();
    const a = grant('192.0.2.1', 'bob', T0 + 60_000);
    const b = grant('192.0.2.1', 'bob', T0 + 30_000, { access: TCP443 });
    const p = grant('192.0.2.0', 'bob', T0 + 60_000, { prefix: 24 });
    for (const g of [a, b, p]) h.set(grantKeyString(g), g);
    assert.equal(h.count('bob', T0), 2);
    assert.ok(h.holds('bob', '4|192.0.2.1', T0));
    assert.ok(h.holds('bob', '4|192.0.2.0/24', T0));
    assert.equal(h.count('alice', T0), 0);
    // the 443 grant ends first: the address is still held through 22
    assert.equal(h.count('bob', T0 + 30_000), 2);
    h.delete(grantKeyString(a));
    assert.equal(h.holds('bob', '4|192.0.2.1', T0 + 30_000), false, 'both grants of the address gone (one expired)');
    assert.equal(h.count('bob', T0 + 30_000), 1);
  });

  test("expiry is by the caller's clock (expired but still listed does not count); ownerless grants count for nobody", () => {
    const h = new GrantHolders();
    const g = grant('192.0.2.1', 'bob', T0 + 5000);
    h.set(grantKeyString(g), g);
    h.set('x', grant('192.0.2.9', undefined, T0 + 5000));
    assert.equal(h.count('bob', T0 + 4999), 1);
    assert.equal(h.count('bob', T0 + 5000), 0, 'expiresAt is the first instant it no longer counts');
    h.delete(grantKeyString(g)); // the timed revoke ran later: nothing to uncount twice
    assert.equal(h.count('bob', T0 + 6000), 0);
  });

  test('a replaced grant counts for its new owner only, and with its new expiry', () => {
    const h = new GrantHolders();
    const k = grantKeyString(grant('192.0.2.1', 'bob', 0));
    h.set(k, grant('192.0.2.1', 'bob', T0 + 5000));
    h.set(k, grant('192.0.2.1', 'alice', T0 + 60_000)); // bob's had expired; alice opened the address
    assert.equal(h.count('bob', T0 + 5001), 0);
    assert.equal(h.count('alice', T0 + 5001), 1);
    h.set(k, grant('192.0.2.1', 'alice', T0 + 10_000)); // renewed shorter
    assert.equal(h.count('alice', T0 + 10_000), 0, 'the old, longer expiry is not counted');
  });

  test('a clock that goes back counts again what is live at the earlier time', () => {
    const h = new GrantHolders();
    const g = grant('192.0.2.1', 'bob', T0 + 5000);
    h.set(grantKeyString(g), g);
    assert.equal(h.count('bob', T0 + 9000), 0);
    assert.equal(h.count('bob', T0 + 1000), 1);
    assert.equal(h.count('bob', T0 + 9000), 0);
  });

  test('a flood of renewals of a few grants keeps the expiry heap bounded', () => {
    const h = new GrantHolders();
    for (let i = 0; i < 100_000; i++) {
      const g = grant(`192.0.2.${i % 10}`, 'bob', T0 + 3_600_000 + i);
      h.set(grantKeyString(g), g);
    }
    assert.equal(h.count('bob', T0), 10);
    assert.ok(h.heapSize <= 2 * 10 + 65, `heap holds ${h.heapSize}`);
  });

  test('matches the walk over every grant, for random sequences of set / delete / clock moves (fast-check)', () => {
    const owners = ['alice', 'bob', undefined] as const;
    const SOURCES = [1, 2, 3, 4, 5, 6].map((i) => `4|10.0.0.${i}`).concat(['4|10.0.0.0/24', '4|10.0.0.0/31']);
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('set' as const),
        addr: fc.integer({ min: 1, max: 6 }),
        prefix: fc.constantFrom(undefined, 24, 31),
        port: fc.constantFrom(22, 443),
        owner: fc.constantFrom(...owners),
        life: fc.integer({ min: -2000, max: 20_000 }),
      }),
      fc.record({
        kind: fc.constant('delete' as const),
        addr: fc.integer({ min: 1, max: 6 }),
        port: fc.constantFrom(22, 443),
      }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: -3000, max: 8000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const h = new GrantHolders();
        const live = new Map<string, GrantEntry>();
        let now = T0;
        for (const o of ops) {
          if (o.kind === 'tick') now += o.ms;
          else if (o.kind === 'delete') {
            const k = grantKeyString(
              grant(`10.0.0.${o.addr}`, undefined, 0, { access: { proto: 'tcp', port: o.port } }),
            );
            live.delete(k);
            h.delete(k);
          } else {
            const g = grant(`10.0.0.${o.prefix === undefined ? o.addr : 0}`, o.owner, now + o.life, {
              access: { proto: 'tcp', port: o.port },
              ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
            });
            const k = grantKeyString(g);
            live.set(k, g);
            h.set(k, g);
          }
          for (const owner of ['alice', 'bob']) {
            const want = walk(live, owner, now);
            assert.equal(h.count(owner, now), want.size);
            for (const s of SOURCES) assert.equal(h.holds(owner, s, now), want.has(s), `${owner} ${s}`);
          }
        }
      }),
      { seed: 1705, numRuns: 600 },
    );
  });
});
