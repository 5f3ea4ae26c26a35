/**
 * One conformance suite for every firewall backend: the SAME cases run against the fake (no root), nftables and
 * iptables (each in its own namespace pair, through `wrap`). Where the backends differ by design, the case says so
 * through `kernelExpiry`. Traffic is checked where there is a kernel (the harness has `traffic`).
 * Run: node --import tsx --test test/server/firewall-contract.test.ts (the real backends need root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Access } from '../../shared/access.js';
import { type IpAddress, networkOf, parseIp } from '../../shared/address.js';
import { MIN_GRANT_MS } from '../../shared/constants.js';
import { SpaError } from '../../shared/errors.js';
import type { Family, FirewallBackend, FirewallPlan, GrantEntry } from '../../server/firewall/backend.js';
import { FakeBackend, newFakeKernel } from '../../server/firewall/fake.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { createPair, netnsSkip, type Agent, type NetnsPair } from '../../harness/netns.js';

const P_TCP = 2201;
const P_UDP = 2253;
const P_OPEN = 2202;
const P_CLOSED = 2299; // nothing listens: a closed UDP port
const TCP: Access = { proto: 'tcp', port: P_TCP };
const UDP: Access = { proto: 'udp', port: P_UDP };
const PLAN: FirewallPlan = { protect: [TCP, UDP] };
const BLOCK_MS = 350;

/** What a case needs from a backend under test. */
export interface ContractHarness {
  /** The backend object in use (replaced by restart()). */
  readonly fw: () => FirewallBackend;
  /** A new backend object on the same kernel, as after a daemon restart (the old one is closed). */
  restart(): Promise<FirewallBackend>;
  /** Uninstall and start from a fresh backend object. */
  reset(): Promise<void>;
  now(): number;
  /** Let time pass: the fake's clock moves; a kernel's clock needs real time. */
  advance(ms: number): Promise<void>;
  /** Addresses that grants are for (the client's). */
  readonly addr: Readonly<Record<Family, string>>;
  /** Real backends: can the client open `access` on the server over `family`; what a closed UDP port answers. */
  readonly traffic?: {
    open(family: Family, access: Access): Promise<boolean>;
    closedUdp(family: Family): Promise<string>;
  };
  close(): Promise<void>;
}

const rejectsFw = async (p: Promise<unknown>, what: string): Promise<void> => {
  await assert.rejects(
    p,
    (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_FIREWALL' && !e.message.includes('\n'),
    what,
  );
};

const byKey = (list: readonly GrantEntry[]): GrantEntry[] =>
  [...list].sort((a, b) =>
    `${a.family}${a.address}${a.access.proto}${a.access.port}`.localeCompare(
      `${b.family}${b.address}${b.access.proto}${b.access.port}`,
    ),
  );

/** The shared cases. `make` builds the harness once per backend. */
export function contractCases(label: string, make: () => Promise<ContractHarness>, skip: string | false = false): void {
  describe(`firewall contract: ${label}`, { skip }, () => {
    let h: ContractHarness;
    const g = (family: Family, access: Access, expiresAt: number, owner?: string): GrantEntry => ({
      family,
      address: h.addr[family],
      access,
      expiresAt,
      ...(owner !== undefined ? { owner } : {}),
    });
    /**
     * expiresAt as listed is close to `want`: nft reports whole seconds, rounded down, of a timeout that starts at the
     * commit (later than `now` on a loaded machine). The cases compare values at least 5 s apart.
     */
    const near = (got: number | undefined, want: number): void => {
      assert.ok(
        got !== undefined && got <= want + 1000 && got >= want - 2000,
        `expiresAt off by ${(got ?? NaN) - want} ms`,
      );
    };

    before(async () => {
      h = await make();
    });
    after(async () => {
      await h
        ?.fw()
        .uninstall()
        .catch(() => undefined);
      await h?.close();
    });

    test('install gates the protected accesses; check is clean; re-install is idempotent', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      await h.fw().install(PLAN, h.now());
      assert.deepEqual(await h.fw().check(PLAN), []);
      const problems = await h.fw().check({ protect: [TCP] });
      assert.ok(
        problems.length > 0 &&
          problems.every((p) =>
            p.startsWith('protected list differs: installed [tcp/2201, udp/2253], expected [tcp/2201]'),
          ),
        problems.join('\n'),
      );
      if (h.traffic) {
        const t = h.traffic;
        assert.deepEqual(
          await Promise.all([
            t.open(4, TCP),
            t.open(6, TCP),
            t.open(4, UDP),
            t.open(6, { proto: 'tcp', port: P_OPEN }),
          ]),
          [false, false, false, true],
        );
      }
    });

    test('grant before install fails with ERR_SPA_FIREWALL', async () => {
      await h.reset();
      await rejectsFw(h.fw().grant([g(4, TCP, h.now() + 30_000)], h.now()), 'grant');
    });

    test('grant opens its family and access only; list reports it with its owner', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      const now = h.now();
      await h.fw().grant([g(4, TCP, now + 30_000, 'alice'), g(6, UDP, now + 60_000, 'bob.b@x-1_2')], now);
      const listed = byKey(await h.fw().list(h.now()));
      assert.deepEqual(
        listed.map((x) => [x.family, x.address, x.access, x.owner]),
        [
          [4, h.addr[4], TCP, 'alice'],
          [6, h.addr[6], UDP, 'bob.b@x-1_2'],
        ],
      );
      near(listed[0]?.expiresAt, now + 30_000);
      near(listed[1]?.expiresAt, now + 60_000);
      if (h.traffic) {
        const t = h.traffic;
        assert.deepEqual(await Promise.all([t.open(4, TCP), t.open(6, TCP), t.open(6, UDP), t.open(4, UDP)]), [
          true,
          false,
          true,
          false,
        ]);
      }
    });

    test('grant again refreshes: longer, shorter, and the owner is replaced (or removed)', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      const now = h.now();
      const steps: [number, string | undefined][] = [
        [30_000, 'alice'],
        [90_000, 'alice'],
        [5_000, 'alice'],
        [20_000, 'bob'],
        [25_000, undefined],
        [40_000, 'carol'],
      ];
      for (const [ms, owner] of steps) {
        await h.fw().grant([g(4, TCP, now + ms, owner)], now);
        const listed = await h.fw().list(h.now());
        assert.equal(listed.length, 1, `one grant after +${ms}`);
        near(listed[0]?.expiresAt, now + ms);
        assert.equal(listed[0]?.owner, owner, `owner after +${ms}`);
      }
      if (h.traffic) assert.ok(await h.traffic.open(4, TCP));
    });

    test('revoke closes; an absent grant is not an error; only the named grants go', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      const now = h.now();
      await h.fw().grant([g(4, TCP, now + 30_000, 'alice'), g(6, TCP, now + 30_000, 'alice')], now);
      const absent: GrantEntry = { family: 4, address: '192.0.2.99', access: UDP, expiresAt: 0 };
      await h.fw().revoke([g(4, TCP, 0), absent]);
      await h.fw().revoke([g(4, TCP, 0)]);
      await h.fw().revoke([absent]);
      assert.deepEqual(
        (await h.fw().list(h.now())).map((x) => x.family),
        [6],
      );
      if (h.traffic)
        assert.deepEqual(await Promise.all([h.traffic.open(4, TCP), h.traffic.open(6, TCP)]), [false, true]);
    });

    test('expiry: a grant lasts at least MIN_GRANT_MS; then it is gone (kernel expiry) or listed as expired', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      const now = h.now();
      await h.fw().grant([g(4, TCP, now - 5000, 'alice')], now); // in the past: raised to now + MIN_GRANT_MS
      const [first] = await h.fw().list(h.now());
      assert.ok(
        first && first.expiresAt <= now + MIN_GRANT_MS + 1000 && first.expiresAt >= now - 1000,
        'raised to MIN_GRANT_MS',
      );
      await h.advance(MIN_GRANT_MS + 1200);
      const later = await h.fw().list(h.now());
      if (h.fw().kernelExpiry) assert.deepEqual(later, [], 'the kernel expired it');
      else {
        assert.equal(later.length, 1, 'still held until revoked');
        assert.ok((later[0]?.expiresAt ?? Infinity) <= h.now(), 'and listed as expired');
        assert.equal(later[0]?.owner, 'alice');
      }
      if (h.traffic) assert.equal(await h.traffic.open(4, TCP), !h.fw().kernelExpiry);
    });

    test('install over leftovers (a restart): live grants and owners survive, expired ones go, a new plan applies', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      let now = h.now();
      await h.fw().grant([g(4, UDP, now + MIN_GRANT_MS)], now);
      await h.advance(MIN_GRANT_MS + 1200);
      now = h.now();
      await h.fw().grant([g(4, TCP, now + 60_000, 'alice'), g(6, TCP, now + 60_000)], now);
      const fw2 = await h.restart();
      const plan2: FirewallPlan = { protect: [TCP, { proto: 'tcp', port: P_OPEN }] };
      await fw2.install(plan2, h.now());
      assert.deepEqual(await fw2.check(plan2), []);
      const listed = byKey(await fw2.list(h.now()));
      assert.deepEqual(
        listed.map((x) => [x.family, x.access, x.owner]),
        [
          [4, TCP, 'alice'],
          [6, TCP, undefined],
        ],
      );
      near(listed[0]?.expiresAt, now + 60_000);
      if (h.traffic) {
        const t = h.traffic;
        assert.deepEqual(
          await Promise.all([
            t.open(4, TCP),
            t.open(6, TCP),
            t.open(4, UDP),
            t.open(4, { proto: 'tcp', port: P_OPEN }),
          ]),
          [true, true, true, false],
        );
      }
      await fw2.grant([g(4, TCP, h.now() + 30_000, 'bob')], h.now());
      assert.equal(
        (await fw2.list(h.now())).find((x) => x.family === 4)?.owner,
        'bob',
        'the restarted object writes owners too',
      );
    });

    test('invalid input is refused before anything is applied', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      const now = h.now();
      const ok = g(4, TCP, now + 30_000, 'alice');
      const bad: unknown[] = [
        { ...ok, address: '10.0.0.1; flush ruleset' },
        { ...ok, address: '010.0.0.1' },
        { ...ok, family: 6, address: '::ffff:10.0.0.1' },
        { ...ok, family: 6, address: 'fe80::1%eth0' },
        { ...ok, address: h.addr[6] },
        { ...ok, family: 5 },
        { ...ok, access: { proto: 'icmp', port: 1 } },
        { ...ok, access: { proto: 'tcp', port: 0 } },
        { ...ok, access: { proto: 'tcp', port: 65536 } },
        { ...ok, access: { proto: 'tcp', port: 22.5 } },
        { ...ok, expiresAt: Number.NaN },
        { ...ok, owner: 'alice" accept' },
        { ...ok, owner: '' },
        { ...ok, owner: 'a'.repeat(65) },
        { ...ok, owner: 42 },
      ];
      for (const b of bad) await rejectsFw(h.fw().grant([ok, b as GrantEntry], now), JSON.stringify(b));
      await rejectsFw(h.fw().grant([ok], Number.NaN), 'NaN clock');
      await rejectsFw(h.fw().revoke([{ family: 4, address: '1.2.3.4 -j ACCEPT', access: TCP }]), 'revoke');
      await rejectsFw(h.fw().install({ protect: [{ proto: 'tcp', port: 70_000 }] }, now), 'install');
      await rejectsFw(
        h.fw().install({ protect: [TCP], silencePortUnreachable: 'yes' as unknown as boolean }, now),
        'install',
      );
      assert.deepEqual(await h.fw().list(h.now()), [], 'the valid entry of a refused batch was not applied');
      assert.deepEqual(await h.fw().check(PLAN), [], 'a refused install changed nothing');
      // canonical forms are accepted and listed canonically
      const [head = '', tail = ''] = h.addr[6].split('::');
      const groups = [
        ...head.split(':'),
        ...Array<string>(8 - head.split(':').length - tail.split(':').length).fill('0'),
        ...tail.split(':'),
      ];
      const loud = groups.join(':').toUpperCase(); // the full, upper-case form of the same address
      await h.fw().grant([{ family: 6, address: loud, access: TCP, expiresAt: now + 30_000 }], now);
      assert.deepEqual(
        (await h.fw().list(h.now())).map((x) => x.address),
        [h.addr[6]],
      );
    });

    test('silencePortUnreachable: installed, checked both ways, and removed when turned off', async () => {
      await h.reset();
      const silent: FirewallPlan = { ...PLAN, silencePortUnreachable: true };
      if (h.traffic)
        assert.deepEqual(await Promise.all([h.traffic.closedUdp(4), h.traffic.closedUdp(6)]), [
          'ECONNREFUSED',
          'ECONNREFUSED',
        ]);
      await h.fw().install(silent, h.now());
      assert.deepEqual(await h.fw().check(silent), []);
      assert.ok((await h.fw().check(PLAN)).length > 0, 'check sees the output rule the plan does not want');
      if (h.traffic)
        assert.deepEqual(await Promise.all([h.traffic.closedUdp(4), h.traffic.closedUdp(6)]), ['timeout', 'timeout']);
      await h.fw().install(PLAN, h.now());
      assert.deepEqual(await h.fw().check(PLAN), []);
      assert.ok((await h.fw().check(silent)).length > 0, 'check sees the output rule missing');
      if (h.traffic)
        assert.deepEqual(await Promise.all([h.traffic.closedUdp(4), h.traffic.closedUdp(6)]), [
          'ECONNREFUSED',
          'ECONNREFUSED',
        ]);
      await h.fw().install(silent, h.now());
      await h.fw().uninstall();
      if (h.traffic) assert.equal(await h.traffic.closedUdp(4), 'ECONNREFUSED', 'uninstall removes the output rule');
    });

    test('prefix grants (issue 10): the network opens, list reports prefix and owner, refresh, restart, revoke', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      assert.deepEqual(await h.fw().check(PLAN), []);
      const net = (f: Family, len: number): { address: string; prefix: number } => {
        const c = networkOf(parseIp(h.addr[f]) as IpAddress, len);
        assert.ok(c);
        return { address: c.network.toString(), prefix: len };
      };
      const pg = (f: Family, len: number, access: Access, expiresAt: number, owner?: string): GrantEntry => ({
        family: f,
        ...net(f, len),
        access,
        expiresAt,
        ...(owner !== undefined ? { owner } : {}),
      });
      let now = h.now();
      // a prefix grant and a one-address grant for the same access side by side; IPv6 /64 for UDP
      await h.fw().grant([pg(4, 24, TCP, now + 30_000, 'alice'), pg(6, 64, UDP, now + 60_000, 'bob')], now);
      await h.fw().grant([g(4, UDP, now + 40_000, 'carol')], now);
      const show = (l: readonly GrantEntry[]) =>
        byKey(l).map((x) => [x.family, x.address, x.prefix, x.access, x.owner]);
      const want = [
        [4, net(4, 24).address, 24, TCP, 'alice'],
        [4, h.addr[4], undefined, UDP, 'carol'],
        [6, net(6, 64).address, 64, UDP, 'bob'],
      ];
      assert.deepEqual(show(await h.fw().list(h.now())), want);
      if (h.traffic) {
        const t = h.traffic;
        assert.deepEqual(await Promise.all([t.open(4, TCP), t.open(6, UDP), t.open(6, TCP)]), [true, true, false]);
      }
      // refresh: same key, new expiry and owner, still one element
      now = h.now();
      await h.fw().grant([pg(4, 24, TCP, now + 90_000, 'dave')], now);
      const refreshed = (await h.fw().list(h.now())).filter((x) => x.prefix === 24);
      assert.equal(refreshed.length, 1);
      assert.equal(refreshed[0]?.owner, 'dave');
      near(refreshed[0]?.expiresAt, now + 90_000);
      // a restarted object reads them back, and install keeps them
      const fw2 = await h.restart();
      await fw2.install(PLAN, h.now());
      const again = show(await fw2.list(h.now()));
      assert.deepEqual(again, [[...(want[0] as unknown[]).slice(0, 4), 'dave'], want[1], want[2]]);
      // revoke names the prefix; the one-address grant for another access stays
      await fw2.revoke([
        { family: 4, ...net(4, 24), access: TCP },
        { family: 6, ...net(6, 64), access: UDP },
      ]);
      await fw2.revoke([{ family: 4, ...net(4, 24), access: TCP }]); // absent: not an error
      assert.deepEqual(show(await fw2.list(h.now())), [want[1]]);
      if (h.traffic) {
        const t = h.traffic;
        assert.deepEqual(await Promise.all([t.open(4, TCP), t.open(6, UDP), t.open(4, UDP)]), [false, false, true]);
      }
      // host bits set, or a length out of range: refused
      for (const bad of [
        { family: 4, address: h.addr[4], prefix: 24, access: TCP, expiresAt: now + 30_000 },
        { family: 4, ...net(4, 24), prefix: 33, access: TCP, expiresAt: now + 30_000 },
        { family: 6, ...net(6, 64), prefix: 0, access: TCP, expiresAt: now + 30_000 },
        { family: 4, ...net(4, 24), prefix: '24', access: TCP, expiresAt: now + 30_000 },
      ])
        await rejectsFw(fw2.grant([bad as unknown as GrantEntry], h.now()), JSON.stringify(bad));
    });

    test('uninstall removes everything and is idempotent', async () => {
      await h.reset();
      await h.fw().install(PLAN, h.now());
      await h.fw().grant([g(4, TCP, h.now() + 30_000, 'alice')], h.now());
      await h.fw().uninstall();
      await h.fw().uninstall();
      assert.ok((await h.fw().check(PLAN)).length > 0);
      assert.deepEqual(await h.fw().list(h.now()), []);
      if (h.traffic)
        assert.deepEqual(await Promise.all([h.traffic.open(4, TCP), h.traffic.open(6, UDP)]), [true, true]);
    });
  });
}

// ---------------------------------------------------------------------------------------------------- the fake
for (const kernelExpiry of [true, false]) {
  contractCases(`fake (kernelExpiry ${kernelExpiry})`, async () => {
    let clock = 1_800_000_000_000;
    let kernel = newFakeKernel();
    let fw = new FakeBackend({ kernelExpiry, kernel });
    return {
      fw: () => fw,
      restart: async () => {
        await fw.close();
        fw = new FakeBackend({ kernelExpiry, kernel });
        return fw;
      },
      reset: async () => {
        await fw.uninstall();
        kernel = newFakeKernel();
        fw = new FakeBackend({ kernelExpiry, kernel });
      },
      now: () => clock,
      advance: async (ms) => {
        clock += ms;
      },
      addr: { 4: '192.0.2.7', 6: '2001:db8::7' },
      close: () => fw.close(),
    };
  });
}

// ---------------------------------------------------------------------------------------------------- real kernels
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One datagram from a CONNECTED UDP socket (Linux reports an ICMP port-unreachable only to a connected socket, as
 * ECONNREFUSED): prints `ECONNREFUSED` when the ICMP error came back, `timeout` when nothing did.
 */
const UDP_CLOSED_PROBE = `const dgram = require('node:dgram');
const [host, port, ms] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const done = (r) => { process.stdout.write(r); process.exit(0); };
setTimeout(() => done('timeout'), Number(ms));
s.on('error', (e) => done(e.code || e.message));
s.on('message', () => done('answered'));
s.connect(Number(port), host, () => s.send('probe'));`;

async function realHarness(
  tag: string,
  subnet: number,
  build: (wrap: string[]) => FirewallBackend,
): Promise<ContractHarness> {
  const pair: NetnsPair = await createPair(tag, { subnet });
  let cli: Agent;
  try {
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(P_TCP);
    await srv.listenTcp(P_OPEN);
    await srv.listenUdp(P_UDP);
    cli = await pair.agent(pair.cli);
  } catch (err) {
    await pair.cleanup();
    throw err;
  }
  const target = (f: Family): string => (f === 4 ? pair.srv4 : pair.srv6);
  let fw = build(pair.wrap(pair.srv));
  return {
    fw: () => fw,
    restart: async () => {
      await fw.close();
      fw = build(pair.wrap(pair.srv));
      return fw;
    },
    reset: async () => {
      await fw.uninstall();
      await fw.close();
      fw = build(pair.wrap(pair.srv));
    },
    now: () => Date.now(),
    advance: sleep,
    addr: { 4: pair.cli4, 6: pair.cli6 },
    traffic: {
      open: async (f, a) =>
        (a.proto === 'tcp'
          ? await cli.tcpConnect(target(f), a.port, BLOCK_MS)
          : await cli.udpProbe(target(f), a.port, BLOCK_MS)
        ).ok,
      closedUdp: async (f) =>
        (
          await pair.exec(pair.cli, [
            process.execPath,
            '-e',
            UDP_CLOSED_PROBE,
            target(f),
            String(P_CLOSED),
            String(BLOCK_MS),
          ])
        ).stdout,
    },
    close: async () => {
      await fw.close().catch(() => undefined);
      await pair.cleanup();
    },
  };
}

contractCases(
  'nftables',
  () => realHarness('fwc-nft', 13, (wrap) => new NftablesBackend({ wrap })),
  netnsSkip(['nft']),
);
contractCases(
  'iptables',
  () => realHarness('fwc-ipt', 14, (wrap) => new IptablesBackend({ wrap })),
  netnsSkip(['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore']),
);
