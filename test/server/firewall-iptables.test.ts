/**
 * What only the iptables backend has, against a real kernel in a namespace pair: the exact rules, the INPUT/OUTPUT
 * jumps beside the host's own rules, reconcile, and undo across the two families. The cases every backend shares are
 * in test/server/firewall-contract.test.ts. Run: node --import tsx --test test/server/firewall-iptables.test.ts (root).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpaError } from '../../shared/errors.js';
import type { GrantEntry } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { createPair, netnsSkip, type Agent, type NetnsPair } from '../../harness/netns.js';

const P_TCP = 2201;
const P_UDP = 2253;
const P_HOST = 2299; // the "host's own" rule, which we must never touch
const TCP = { proto: 'tcp', port: P_TCP } as const;
const UDP = { proto: 'udp', port: P_UDP } as const;
const PLAN = { protect: [TCP, UDP] };
const SILENT = { ...PLAN, silencePortUnreachable: true };
const BLOCK_MS = 350;
const TOOLS = ['iptables', 'ip6tables'] as const;

const fwError = (e: unknown): e is SpaError => e instanceof SpaError && e.code === 'ERR_SPA_FIREWALL';
const failure = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('iptables backend without a kernel', () => {
  test('the constructor validates the chain name, naming firewall.table', () => {
    for (const bad of ['INPUT', 'A B', `X${'y'.repeat(24)}`]) {
      assert.throws(
        () => new IptablesBackend({ chain: bad }),
        (e: unknown) => fwError(e) && /firewall\.table/.test(e.message),
        bad,
      );
    }
    assert.doesNotThrow(() => new IptablesBackend({ chain: 'SPA_KNOCK2' }));
  });
});

const skip = netnsSkip(['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore']);

describe('iptables backend in a namespace', { skip }, () => {
  let pair: NetnsPair;
  let cli: Agent;
  let fw: IptablesBackend;
  let dir: string;

  const v4 = (expiresAt: number, access: GrantEntry['access'] = TCP, owner?: string): GrantEntry => ({
    family: 4,
    address: pair.cli4,
    access,
    expiresAt,
    ...(owner !== undefined ? { owner } : {}),
  });
  const v6 = (expiresAt: number, access: GrantEntry['access'] = TCP): GrantEntry => ({
    family: 6,
    address: pair.cli6,
    access,
    expiresAt,
  });
  const canTcp = async (host: string, port: number): Promise<boolean> =>
    (await cli.tcpConnect(host, port, BLOCK_MS)).ok;
  const rules = async (tool: 'iptables' | 'ip6tables'): Promise<string[]> => {
    const r = await pair.exec(pair.srv, [tool, '-S']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter((l: string) => l !== '');
  };
  const both = async (): Promise<string[][]> => Promise.all(TOOLS.map(rules));
  const ipt = async (tool: 'iptables' | 'ip6tables', ...args: string[]): Promise<void> => {
    const r = await pair.exec(pair.srv, [tool, ...args]);
    assert.equal(r.code, 0, r.stderr);
  };
  /** A backend whose ip6tables-restore is the shell script `script` (the restore text on its stdin). One at a time. */
  const withFake6 = async (script: string): Promise<IptablesBackend> => {
    await writeFile(join(dir, 'ip6tables-restore'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    return new IptablesBackend({ wrap: [...pair.wrap(pair.srv), 'env', `PATH=${dir}:/usr/sbin:/usr/bin:/sbin:/bin`] });
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'spak-fwt-ipt-'));
    pair = await createPair('fwt-ipt', { subnet: 12 });
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(P_TCP);
    await srv.listenTcp(P_HOST);
    await srv.listenUdp(P_UDP);
    cli = await pair.agent(pair.cli);
    // the host's own firewall: one rule each in INPUT and OUTPUT that must survive everything we do
    for (const tool of TOOLS) {
      await ipt(tool, '-A', 'INPUT', '-p', 'tcp', '--dport', String(P_HOST), '-j', 'ACCEPT');
      await ipt(tool, '-A', 'OUTPUT', '-p', 'tcp', '--sport', String(P_HOST), '-j', 'ACCEPT');
    }
    fw = new IptablesBackend({ wrap: pair.wrap(pair.srv) });
  });

  after(async () => {
    await fw?.close().catch(() => undefined);
    await pair?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('install: our chains, one jump at rule 1 of INPUT (and of OUTPUT with silence), the host rules kept', async () => {
    await fw.install(SILENT, Date.now());
    await fw.install(SILENT, Date.now()); // idempotent
    assert.deepEqual(await fw.check(SILENT), []);
    for (const tool of TOOLS) {
      const r = await rules(tool);
      assert.deepEqual(
        r.filter((l) => l.startsWith('-A INPUT')),
        ['-A INPUT -j SPA_KNOCK', `-A INPUT -p tcp -m tcp --dport ${P_HOST} -j ACCEPT`],
      );
      assert.deepEqual(
        r.filter((l) => l.startsWith('-A OUTPUT')),
        ['-A OUTPUT -j SPA_KNOCK_OUT', `-A OUTPUT -p tcp -m tcp --sport ${P_HOST} -j ACCEPT`],
      );
      assert.deepEqual(
        r.filter((l) => l.startsWith('-A SPA_KNOCK ')),
        [
          '-A SPA_KNOCK -i lo -j RETURN',
          '-A SPA_KNOCK -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
          `-A SPA_KNOCK -p tcp -m tcp --dport ${P_TCP} -j DROP`,
          `-A SPA_KNOCK -p udp -m udp --dport ${P_UDP} -j DROP`,
        ],
      );
      assert.deepEqual(
        r.filter((l) => l.startsWith('-A SPA_KNOCK_OUT')),
        [
          tool === 'iptables'
            ? '-A SPA_KNOCK_OUT -p icmp -m icmp --icmp-type 3/3 -j DROP'
            : '-A SPA_KNOCK_OUT -p ipv6-icmp -m icmp6 --icmpv6-type 1/4 -j DROP',
        ],
      );
    }
    await fw.install(PLAN, Date.now());
    for (const tool of TOOLS) {
      const r = await rules(tool);
      assert.ok(!r.some((l) => l.includes('SPA_KNOCK_OUT')), 'silence off: the output chain and its jump are gone');
      assert.ok(r.includes(`-A OUTPUT -p tcp -m tcp --sport ${P_HOST} -j ACCEPT`));
    }
  });

  test('a grant is one rule with expiry and owner in its comment; granting again replaces it', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 30_000, TCP, 'alice')], now);
    await fw.grant([v4(now + 90_000, TCP, 'bob')], now);
    const mine = (await rules('iptables')).filter((l) => l.includes(`-s ${pair.cli4}/32`));
    assert.deepEqual(mine, [
      `-A SPA_KNOCK -s ${pair.cli4}/32 -p tcp -m tcp --dport ${P_TCP} -m comment --comment "spa-knock exp=${now + 90_000} owner=bob" -j RETURN`,
    ]);
    await fw.grant([v4(now + 90_000)], now);
    assert.ok(
      (await rules('iptables')).includes(
        `-A SPA_KNOCK -s ${pair.cli4}/32 -p tcp -m tcp --dport ${P_TCP} -m comment --comment "spa-knock exp=${now + 90_000}" -j RETURN`,
      ),
    );
  });

  test('revoke closes at once and a held connection keeps working', async () => {
    const now = Date.now();
    await fw.grant([v6(now + 30_000)], now);
    const held = await cli.hold(pair.srv6, P_TCP, BLOCK_MS);
    await fw.revoke([v6(0), v4(0)]);
    assert.equal(await canTcp(pair.srv6, P_TCP), false);
    assert.ok(await held.ping(), 'held connection still echoes');
    await held.close();
  });

  test('install moves our jump back to rule 1 when the admin inserted a rule above it', async () => {
    await ipt('iptables', '-I', 'INPUT', '1', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT');
    assert.match((await fw.check(PLAN)).join('\n'), /rule 2 of INPUT, not rule 1 \(IPv4\)/);
    const fw2 = new IptablesBackend({ wrap: pair.wrap(pair.srv) });
    await fw2.install(PLAN, Date.now());
    assert.deepEqual(await fw2.check(PLAN), []);
    assert.deepEqual(
      (await rules('iptables')).filter((l) => l.startsWith('-A INPUT')),
      [
        '-A INPUT -j SPA_KNOCK',
        '-A INPUT -p tcp -m tcp --dport 9 -j ACCEPT',
        `-A INPUT -p tcp -m tcp --dport ${P_HOST} -j ACCEPT`,
      ],
    );
    await ipt('iptables', '-D', 'INPUT', '-p', 'tcp', '--dport', '9', '-j', 'ACCEPT');
    await fw2.close();
  });

  test('grant without install in this process loads the chain (and owners) from the kernel', async () => {
    const now = Date.now();
    await fw.grant([v4(now + 30_000, UDP, 'carol')], now);
    const fw3 = new IptablesBackend({ wrap: pair.wrap(pair.srv) });
    await fw3.grant([v4(now + 30_000)], now);
    assert.deepEqual((await fw3.list(now)).map((g) => [g.access.proto, g.owner]).sort(), [
      ['tcp', undefined],
      ['udp', 'carol'],
    ]);
    assert.deepEqual(await fw3.check(PLAN), []);
    await fw3.revoke([v4(0), v4(0, UDP)]);
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
    await fw3.close(); // its long-lived iptables-restore children
  });

  test('check reports a damaged chain, a missing jump, a missing output jump', async () => {
    await fw.install(SILENT, Date.now());
    await ipt('iptables', '-D', 'SPA_KNOCK', '-i', 'lo', '-j', 'RETURN');
    await ipt('ip6tables', '-D', 'INPUT', '-j', 'SPA_KNOCK');
    await ipt('ip6tables', '-D', 'OUTPUT', '-j', 'SPA_KNOCK_OUT');
    assert.deepEqual(await fw.check(SILENT), [
      'iptables chain SPA_KNOCK rules differ from the plan (IPv4)',
      'no jump from INPUT to SPA_KNOCK (IPv6)',
      'no jump from OUTPUT to SPA_KNOCK_OUT (IPv6)',
    ]);
    await fw.install(PLAN, Date.now());
    assert.deepEqual(await fw.check(PLAN), []);
  });

  test('missing tools: one ERR_SPA_FIREWALL line', async () => {
    const noTools = new IptablesBackend({ wrap: ['env', 'PATH=/nonexistent'] });
    const err = await failure(noTools.install(PLAN, Date.now()));
    assert.ok(fwError(err), String(err));
    assert.ok(!err.message.includes('\n'), err.message);
    assert.match(err.message, /iptables/);
    await noTools.close();
  });

  test('a v4+v6 grant whose v6 commit fails is rolled back in v4', async () => {
    const failing = await withFake6('echo "ip6tables-restore: simulated failure" >&2\nexit 1');
    const now = Date.now();
    const err = await failure(failing.grant([v4(now + 30_000), v6(now + 30_000)], now));
    assert.ok(fwError(err), String(err));
    assert.equal(err.message, 'ip6tables-restore failed (exit 1): ip6tables-restore: simulated failure');
    assert.deepEqual(await fw.list(Date.now()), [], 'v4 part rolled back');
    assert.equal(await canTcp(pair.srv4, P_TCP), false);
    assert.deepEqual(await fw.check(PLAN), []);
    await failing.close();
  });

  test('an install that fails in any step leaves both families exactly as before', async () => {
    const now = Date.now();
    // from a running gate with a grant, silence off → a new plan with silence on, whose OUTPUT part fails in IPv6
    await fw.install(PLAN, now);
    await fw.grant([v4(now + 60_000, TCP, 'alice')], now);
    let before = await both();
    const failOutput = await withFake6(
      'input=$(cat)\ncase "$input" in *OUTPUT*) echo "simulated failure in the OUTPUT part" >&2; exit 1;; esac\nprintf "%s\\n" "$input" | exec /usr/sbin/ip6tables-restore "$@"',
    );
    const err = await failure(failOutput.install({ protect: [UDP], silencePortUnreachable: true }, now));
    assert.ok(fwError(err) && /OUTPUT part/.test(err.message), String(err));
    assert.deepEqual(await both(), before, 'the IPv4 commit was undone');
    assert.ok(await canTcp(pair.srv4, P_TCP), 'the grant still works');
    await failOutput.close();
    // from silence on → off, the IPv6 commit failing
    await fw.install(SILENT, now);
    before = await both();
    const failAll = await withFake6('echo "simulated failure" >&2\nexit 1');
    assert.ok(fwError(await failure(failAll.install(PLAN, now))));
    assert.deepEqual(await both(), before, 'the output chain and its jump are back in IPv4');
    // from nothing installed: nothing of ours is left in IPv4
    await fw.uninstall();
    before = await both();
    assert.ok(fwError(await failure(failAll.install(SILENT, now))));
    assert.deepEqual(await both(), before, 'no chain, no jump left behind');
    await failAll.close();
  });

  test("the healer's read-only check does not hold up a grant (it does not take the backend's queue)", async () => {
    // every `iptables -S` of this backend starts 1.5 s late while the mark exists: a check in flight is slow
    const mark = join(dir, 'slow');
    const script = fileURLToPath(new URL('../helpers/slow-list.sh', import.meta.url));
    const slow = new IptablesBackend({ chain: 'SPA_SLOW', wrap: [script, mark, ...pair.wrap(pair.srv)] });
    try {
      await slow.install(PLAN, Date.now());
      writeFileSync(mark, '');
      let checked = false;
      const check = slow.check(PLAN).then((problems) => {
        checked = true;
        return problems;
      });
      const now = Date.now();
      const t0 = performance.now();
      await slow.grant([v4(now + 5000)], now);
      const waited = performance.now() - t0;
      assert.equal(checked, false, `the grant committed while the check was still reading (grant took ${waited} ms)`);
      assert.ok(
        (await rules('iptables')).some((l) => l.startsWith(`-A SPA_SLOW -s ${pair.cli4}/32`)),
        'the grant rule is in the kernel',
      );
      assert.deepEqual(await check, [], 'and the check itself still finds the gate in place, the new grant included');
    } finally {
      rmSync(mark, { force: true });
      await slow.uninstall();
      await slow.close();
    }
  });

  test('a check that overlaps an install or uninstall reads again after it (no false "missing")', async () => {
    const mark = join(dir, 'slow');
    const script = fileURLToPath(new URL('../helpers/slow-list.sh', import.meta.url));
    const slow = new IptablesBackend({ chain: 'SPA_SLOW', wrap: [script, mark, ...pair.wrap(pair.srv)] });
    try {
      writeFileSync(mark, '');
      // the install reads both families first (3 s with the mark): a check read outside the queue now would find
      // no chain at all
      const install = slow.install(PLAN, Date.now());
      assert.deepEqual(await slow.check(PLAN), [], 'the check waited for the install and saw its result');
      await install;
      const uninstall = slow.uninstall();
      const problems = await slow.check(PLAN);
      await uninstall;
      assert.ok(
        problems.some((p) => /SPA_SLOW is missing/.test(p)),
        `the check saw the uninstalled state, not the one before: ${problems.join('; ')}`,
      );
    } finally {
      rmSync(mark, { force: true });
      await slow.uninstall();
      await slow.close();
    }
  });

  test('uninstall removes jumps and chains in both families and keeps the host rules', async () => {
    await fw.install(SILENT, Date.now());
    await fw.uninstall();
    for (const tool of TOOLS) {
      const r = await rules(tool);
      assert.ok(!r.some((l) => l.includes('SPA_KNOCK')), r.join('\n'));
      assert.ok(r.includes(`-A INPUT -p tcp -m tcp --dport ${P_HOST} -j ACCEPT`));
      assert.ok(r.includes(`-A OUTPUT -p tcp -m tcp --sport ${P_HOST} -j ACCEPT`));
    }
  });
});
