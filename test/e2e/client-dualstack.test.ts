/**
 * issue 10, client side, end to end with nftables in a namespace pair and a real spa-knockd:
 * - dual stack: a name that resolves to the server's IPv4 and IPv6 addresses (only inside the client namespace:
 *   /etc/netns/<cli>/hosts, which `ip netns exec` bind-mounts over /etc/hosts) is knocked over both families, each
 *   with its own packet; `-4`/`-6` restrict;
 * - --wait: the client re-knocks with fresh packets when the first datagram of each family is lost (an nft rule in the
 *   server namespace, ahead of the daemon, drops the first datagram to each server address; or one on the client's
 *   output hook makes the first send fail), and gives up with ERR_SPA_NOT_OPEN, exit 1,
 *   on a port its policy never opens;
 * - profiles: `spa-knock myserver` with a config file (SPA_KNOCK_CONFIG) naming address, key, port, families, wait.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, runTs } from '../../harness/run.js';
import { ALT, E2eWorld, SSH, UDP_PORT } from './world.js';

/** Exists only in the client namespace's /etc/hosts (a reserved .test name, never resolvable outside). */
const NAME = 'spak-dual.test';

if (requireNetns([...BACKEND_TOOLS.nftables, 'nft'])) {
  describe('spa-knock client: dual stack and --wait (nftables)', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'cli-dual',
      subnet: 187,
      clients: [{ name: 'alice', open: [`tcp/${SSH}`] }],
    });
    let etcDir: string | undefined;

    before(async () => {
      await w.start();
      etcDir = `/etc/netns/${w.pair.cli}`;
      mkdirSync(etcDir, { recursive: true });
      writeFileSync(`${etcDir}/hosts`, `127.0.0.1 localhost\n${w.pair.srv6} ${NAME}\n${w.pair.srv4} ${NAME}\n`);
    });
    after(async () => {
      try {
        if (etcDir !== undefined) rmSync(etcDir, { recursive: true, force: true });
      } finally {
        await w.stop();
      }
    });

    const srv4 = () => w.pair.srv4;
    const srv6 = () => w.pair.srv6;
    /** Both families closed on SSH: a --close by name, then check. */
    const closeBoth = async (): Promise<void> => {
      await w.knockOk(NAME, '--key', w.keys['alice']!, '--close');
      await w.settle();
      assert.equal(await w.isOpen(srv4(), SSH), false, 'IPv4 closed');
      assert.equal(await w.isOpen(srv6(), SSH), false, 'IPv6 closed');
    };

    test('the name resolves to both families only inside the client namespace', async () => {
      const r = await w.pair.exec(w.pair.cli, ['getent', 'ahosts', NAME]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(srv4().replaceAll('.', '\\.')));
      assert.match(r.stdout, new RegExp(srv6()));
      assert.equal(await w.isOpen(srv4(), SSH), false);
      assert.equal(await w.isOpen(srv6(), SSH), false);
    });

    test('a knock by name opens both families, each with its own packet (no replay reject)', async () => {
      const from = w.daemon.lines.length;
      const r = await w.knock(NAME, '--key', w.keys['alice']!, '--duration', '30');
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 2, r.stdout);
      assert.ok(
        lines.some((l) => l.includes(`to [${srv6()}]:${UDP_PORT}`)),
        r.stdout,
      );
      assert.ok(
        lines.some((l) => l.includes(`to ${srv4()}:${UDP_PORT}`)),
        r.stdout,
      );
      assert.equal(await w.opens(srv4(), SSH), true, 'IPv4 open');
      assert.equal(await w.opens(srv6(), SSH), true, 'IPv6 open');
      const grants = (await w.grantLines(from, 2)).map((g) => g.address);
      assert.deepEqual(new Set(grants), new Set([w.pair.cli4, w.pair.cli6]));
      await w.settle();
      await new Promise((res) => setTimeout(res, 1100)); // one reject summary interval
      assert.equal(w.rejects(from)['replay'] ?? 0, 0, 'the two packets differ');
      await closeBoth();
    });

    test('-4 and -6 restrict the knock to one family', async () => {
      for (const [flag, yes, no] of [
        ['-4', srv4(), srv6()],
        ['-6', srv6(), srv4()],
      ] as const) {
        const r = await w.knock(NAME, '--key', w.keys['alice']!, '--duration', '30', flag);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim().split('\n').length, 1, r.stdout);
        assert.equal(await w.opens(yes, SSH), true, `${flag}: ${yes} open`);
        assert.equal(await w.isOpen(no, SSH), false, `${flag}: ${no} stays closed`);
        await closeBoth();
      }
    });

    /**
     * nft rules dropping the first datagram to each server address (remembered in a set), passing the later ones:
     * in the server namespace ahead of everything (lost on the way), or on the client's output hook (the local send
     * itself fails with EPERM, as a send does while a mobile network is down).
     */
    const dropFirst = (hook: 'prerouting' | 'output'): string =>
      [
        'table inet spak_dropfirst {',
        '  set seen4 { type ipv4_addr; size 16; }',
        '  set seen6 { type ipv6_addr; size 16; }',
        '  chain c {',
        `    type filter hook ${hook} priority -300; policy accept;`,
        `    udp dport ${UDP_PORT} ip daddr @seen4 counter accept`,
        `    udp dport ${UDP_PORT} ip6 daddr @seen6 counter accept`,
        `    udp dport ${UDP_PORT} meta nfproto ipv4 add @seen4 { ip daddr } counter drop`,
        `    udp dport ${UDP_PORT} meta nfproto ipv6 add @seen6 { ip6 daddr } counter drop`,
        '  }',
        '}',
        '',
      ].join('\n');

    for (const [hook, where] of [
      ['prerouting', 'lost on the way'],
      ['output', 'refused by the local send'],
    ] as const) {
      test(`--wait re-knocks with a fresh packet when the first datagram of each family is ${where}`, async (t) => {
        const ns = hook === 'prerouting' ? w.pair.srv : w.pair.cli;
        const add = await w.pair.exec(ns, ['nft', '-f', '-'], { input: dropFirst(hook) });
        assert.equal(add.code, 0, add.stderr);
        try {
          const from = w.daemon.lines.length;
          const r = await w.knock(NAME, '--key', w.keys['alice']!, '--duration', '30', '--wait', `tcp/${SSH}`);
          assert.equal(r.code, 0, r.stderr);
          const last = r.stdout.trim().split('\n').at(-1) ?? '';
          t.diagnostic(last); // the time to open, for docs/client.md
          assert.match(last, new RegExp(`^open: tcp/${SSH} on .+ and .+ after 4 knocks \\(`), r.stdout);
          if (hook === 'output') assert.equal(r.stderr.match(/permission denied; trying again/g)?.length, 2, r.stderr);
          const list = await w.pair.exec(ns, ['nft', 'list', 'table', 'inet', 'spak_dropfirst']);
          const counts = [...list.stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
          assert.deepEqual(counts, [1, 1, 1, 1], list.stdout); // one passed and one dropped per family
          assert.equal((await w.grantLines(from, 2)).length, 2, 'one grant per family');
          await new Promise((res) => setTimeout(res, 1100)); // one reject summary interval
          assert.equal(w.rejects(from)['replay'] ?? 0, 0, 'a re-knock is never the same bytes');
        } finally {
          await w.pair.exec(ns, ['nft', 'delete', 'table', 'inet', 'spak_dropfirst']);
        }
        await closeBoth();
      });
    }

    test('--wait on a port the policy never opens: ERR_SPA_NOT_OPEN, exit 1, at the deadline', async () => {
      const t0 = Date.now();
      const r = await w.knock(srv4(), '--key', w.keys['alice']!, '--wait', `tcp/${ALT}`, '--timeout', '3');
      const ms = Date.now() - t0;
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(
        r.stderr.trim(),
        new RegExp(
          `^spa-knock: \\[ERR_SPA_NOT_OPEN\\] tcp/${ALT} on ${srv4().replaceAll('.', '\\.')} did not open on .* within 3\\.\\d s after 2 knocks$`,
        ),
      );
      assert.ok(ms >= 3000 && ms < 10_000, `${ms} ms`);
      await closeBoth();
    });

    test('a profile: `spa-knock myserver` alone knocks with its address, key, port, families and wait; flags override', async (t) => {
      const cfg = `${w.dir}/client-config.toml`;
      writeFileSync(
        cfg,
        [
          '[host.myserver]',
          `address = "${NAME}"`,
          `key = "${w.keys['alice']}"`,
          `port = ${UDP_PORT}`,
          `open = ["tcp/${SSH}"]`,
          'families = [6]',
          `wait = "tcp/${SSH}"`,
          '',
        ].join('\n'),
      );
      const env = { ...process.env, SPA_KNOCK_CONFIG: cfg };
      const prefix = w.pair.wrap(w.pair.cli);
      const r = await runTs(CLIENT, ['myserver'], { prefix, env });
      assert.equal(r.code, 0, r.stderr);
      t.diagnostic(r.stdout.trim().split('\n').at(-1) ?? ''); // the time to open, for docs/client.md
      assert.match(
        r.stdout,
        new RegExp(
          `^sent knock \\(\\d+ bytes\\) to \\[${srv6()}\\]:${UDP_PORT}\nopen: tcp/${SSH} on \\[${srv6()}\\] after 1 knock `,
        ),
      );
      assert.equal(await w.isOpen(srv4(), SSH), false, 'families = [6]: IPv4 not knocked');
      const r4 = await runTs(CLIENT, ['myserver', '-4', '--close'], { prefix, env });
      assert.equal(r4.code, 0, r4.stderr);
      assert.match(
        r4.stdout,
        new RegExp(`^sent close \\(\\d+ bytes\\) to ${srv4().replaceAll('.', '\\.')}:${UDP_PORT}\n$`),
      );
      await closeBoth();
    });

    test('--wait usage mistakes exit 2 naming the option', async () => {
      for (const args of [
        ['--wait', 'udp/53'],
        ['--timeout', '3'],
        ['--wait', 'tcp/22', '--dry-run'],
        ['--wait', 'tcp/22', '--close'],
        ['--wait', 'tcp/22', '--timeout', '0'],
      ]) {
        const r = await w.knock(srv4(), '--key', w.keys['alice']!, ...args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /ERR_SPA_USAGE\] --(wait|timeout)/);
      }
    });
  });
}
