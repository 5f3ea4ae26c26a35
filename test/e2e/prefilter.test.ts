/**
 * The kernel prefilter (`limit.kernel_prefilter`, server/firewall/prefilter.ts), both backends, in network namespaces:
 * a real spa-knockd, a flood sender process (harness/flood-sender.ts) in the client namespace, knocks sent by hand.
 *
 * `[limit] source_rate = 1, source_burst = 1`, so the kernel's budget per source is 2 datagrams/s, burst 2: a flood of
 * thousands a second from one source is then dropped in the kernel all but certainly (a knock of the flooder's own
 * address gets through with odds of about 2 in 5000 a second), which makes "this knock was dropped" a sure assertion.
 *
 * For IPv4 and for IPv6 (where the source is the /64): during a flood from one source, the flood is counted by the
 * prefilter's counter (`spa-knockd status --json` `prefilter_drops`, the summary line's `prefilter_drops`) and the
 * daemon's reject counts stay within the kernel's budget; a knock from the flooder's address (IPv6: another address
 * of its /64) does not open; a knock from another address (IPv6: another /64) opens; after the flood, the flooder's
 * knock opens again. Then the healer puts a removed prefilter back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FloodResult } from '../../harness/flood-sender.js';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { DAEMON, ROOT, runTs } from '../../harness/run.js';
import { parsePreCounter } from '../../server/firewall/iptables-prefilter.js';
import { parseCounterPackets } from '../../server/firewall/nft-prefilter.js';
import { type Backend, E2eWorld, SSH, UDP_PORT } from './world.js';

const FLOOD_SECONDS = 4;
const FLOOD_RATE = 5000;
/** The kernel's budget (2/s, burst 2) over a flood, with room for the sender's start and a loaded machine. */
const DAEMON_SEES_AT_MOST = 2 + 2 * (FLOOD_SECONDS + 6);

function prefilterSuite(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns(BACKEND_TOOLS[backend])) return;
  const hex = subnet.toString(16);
  const FLOODER4 = `10.251.${subnet}.3`;
  const OTHER4 = `10.251.${subnet}.4`;
  /** The client namespace's /64 (harness/netns.ts: fd00:5a4b:0:<subnet hex>::/64) and a second one of its own. */
  const FLOODER6 = `fd00:5a4b:0:${hex}::3`;
  const NEIGHBOUR6 = `fd00:5a4b:0:${hex}::4`;
  const OTHER6 = `fd00:5a4b:1:${hex}::2`;

  describe(`kernel prefilter, ${backend}, in namespaces`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [{ name: 'bob', open: [`tcp/${SSH}`] }],
      protect: [SSH],
      tables: ['[limit]\nsource_rate = 1\nsource_burst = 1'],
    });

    before(async () => {
      await w.start();
      const { pair } = w;
      for (const [ns, dev, a] of [
        [pair.cli, 'vcli', `${FLOODER4}/24`],
        [pair.cli, 'vcli', `${OTHER4}/24`],
        [pair.cli, 'vcli', `${FLOODER6}/64`],
        [pair.cli, 'vcli', `${NEIGHBOUR6}/64`],
        [pair.cli, 'vcli', `${OTHER6}/64`],
        [pair.srv, 'vsrv', `fd00:5a4b:1:${hex}::1/64`],
      ] as const) {
        const r = await pair.exec(ns, ['ip', 'addr', 'add', a, 'dev', dev, ...(a.includes(':') ? ['nodad'] : [])]);
        assert.equal(r.code, 0, r.stderr);
      }
    });
    after(() => w.stop());

    async function prefilterDrops(): Promise<number> {
      const r = await runTs(DAEMON, ['status', '--config', w.configPath, '--json'], {
        prefix: w.pair.wrap(w.pair.srv),
      });
      assert.equal(r.code, 0, r.stderr);
      const n = (JSON.parse(r.stdout) as { prefilter_drops: unknown }).prefilter_drops;
      assert.equal(typeof n, 'number', `status has prefilter_drops: ${r.stdout}`);
      return n as number;
    }

    /** The prefilter counter read straight from the kernel (fast: no daemon CLI start), both families. */
    async function kernelCounter(): Promise<number> {
      if (backend === 'nftables') {
        const r = await w.pair.exec(w.pair.srv, [
          'nft',
          '-j',
          'list',
          'counter',
          'inet',
          'spak_e2e_nft',
          'flood_drops',
        ]);
        return parseCounterPackets(r.stdout) ?? 0;
      }
      let n = 0;
      for (const tool of ['iptables', 'ip6tables']) {
        const r = await w.pair.exec(w.pair.srv, [tool, '-w', '-v', '-S', 'spak_e2e_IPT_PRE']);
        n += parsePreCounter('spak_e2e_IPT', r.stdout) ?? 0;
      }
      return n;
    }

    /** Resolve once the kernel has dropped `n` more datagrams (the flood is under way), or fail after 15 s. */
    async function floodUnderWay(n: number): Promise<void> {
      const start = await kernelCounter();
      const end = Date.now() + 15_000;
      while ((await kernelCounter()) - start < n) {
        assert.ok(Date.now() < end, 'the flood did not start within 15 s');
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    function flood(host: string, from: string): Promise<FloodResult> {
      const req = { kind: 'junk', host, port: UDP_PORT, from, seconds: FLOOD_SECONDS, max: 100_000, rate: FLOOD_RATE };
      return runTs(`${ROOT}harness/flood-sender.ts`, [JSON.stringify(req)], {
        prefix: w.pair.wrap(w.pair.cli),
        timeoutMs: (FLOOD_SECONDS + 20) * 1000,
      }).then((r) => {
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as FloodResult;
      });
    }

    /** A fresh knock of bob sent from `from`: does SSH open for `from` within `ms`? */
    async function knockOpens(host: string, from: string, ms: number): Promise<boolean> {
      await w.sendRaw(host, w.packetAt('bob', Date.now()), from);
      return await w.opens(host, SSH, ms, from);
    }

    for (const family of [4, 6] as const) {
      test(`IPv${family}: a flood from one source is dropped in the kernel, counted; ${family === 4 ? 'another address' : 'another /64'} still opens`, async (t) => {
        const host = family === 4 ? w.pair.srv4 : w.pair.srv6;
        const [flooder, sameSource, other] =
          family === 4 ? [FLOODER4, FLOODER4, OTHER4] : [FLOODER6, NEIGHBOUR6, OTHER6];
        const drops0 = await prefilterDrops();
        const mark = w.daemon.lines.length;
        const flooding = flood(host, flooder);
        await floodUnderWay(500); // the sender's start (tsx) can take a second or more on a loaded machine
        const blocked = !(await knockOpens(host, sameSource, 1000));
        const opened = await knockOpens(host, other, 2500);
        const sent = await flooding;
        await new Promise((r) => setTimeout(r, 1500)); // the summary of the last second (reject_summary_interval 1 s)
        const drops = (await prefilterDrops()) - drops0;
        const by = w.rejects(mark);
        const seen = (by.version ?? 0) + (by['unknown-key'] ?? 0) + (by.size ?? 0);
        const summary = w.daemon
          .events('rejects', mark)
          .reduce((n, l) => n + (typeof l.prefilter_drops === 'number' ? l.prefilter_drops : 0), 0);
        await new Promise((r) => setTimeout(r, 1500)); // the flooder's bucket refills (2/s)
        const afterwards = await knockOpens(host, sameSource, 2500);
        t.diagnostic(
          `sent ${sent.sent} in ${sent.seconds.toFixed(1)} s; prefilter drops ${drops} (summary lines ${summary}); ` +
            `daemon rejects ${JSON.stringify(by)}`,
        );
        assert.ok(sent.sent > 5000, `the flood ran (${sent.sent} datagrams)`);
        assert.ok(blocked, `a knock from ${sameSource} during the flood was dropped in the kernel`);
        assert.ok(opened, `a knock from ${other} during the flood opened`);
        assert.ok(afterwards, `after the flood a knock from ${sameSource} opens again`);
        assert.ok(seen <= DAEMON_SEES_AT_MOST, `the daemon saw ${seen} junk datagrams (budget ${DAEMON_SEES_AT_MOST})`);
        assert.ok(drops >= sent.sent - DAEMON_SEES_AT_MOST - 10, `prefilter drops ${drops} of ${sent.sent} sent`);
        assert.ok(summary >= drops - 10 && summary <= drops + 10, `summary prefilter_drops ${summary} vs ${drops}`);
      });
    }

    test('the healer puts back a prefilter someone removed', async () => {
      assert.deepEqual(w.daemon.events('heal'), [], 'the installed prefilter is as planned: nothing to heal');
      const mark = w.daemon.lines.length;
      const cmds =
        backend === 'nftables'
          ? [
              ['nft', 'flush', 'chain', 'inet', 'spak_e2e_nft', 'prefilter'],
              ['nft', 'delete', 'chain', 'inet', 'spak_e2e_nft', 'prefilter'],
            ]
          : [
              ['iptables', '-F', 'spak_e2e_IPT_PRE'],
              ['ip6tables', '-F', 'spak_e2e_IPT_PRE'],
            ];
      for (const c of cmds) {
        const r = await w.pair.exec(w.pair.srv, c);
        assert.equal(r.code, 0, r.stderr);
      }
      const heal = await w.daemon.waitFor((l) => l.event === 'heal', 15_000, mark);
      assert.match(JSON.stringify(heal.problems), /prefilter|_PRE/);
      const r = await w.pair.exec(
        w.pair.srv,
        backend === 'nftables'
          ? ['nft', 'list', 'chain', 'inet', 'spak_e2e_nft', 'prefilter']
          : ['iptables', '-S', 'spak_e2e_IPT_PRE'],
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /limit rate over 2\/second burst 2 packets|--hashlimit-above 2\/sec --hashlimit-burst 2/);
    });

    test('spa-knockd check finds it as configured; spa-knockd uninstall leaves nothing of it', async () => {
      const inSrv = { prefix: w.pair.wrap(w.pair.srv) };
      const check = await runTs(DAEMON, ['check', '--config', w.configPath], inSrv);
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, /installed and as configured/);
      await w.daemon.stop('SIGTERM');
      const un = await runTs(DAEMON, ['uninstall', '--config', w.configPath], inSrv);
      assert.equal(un.code, 0, un.stderr);
      const left =
        backend === 'nftables'
          ? [(await w.pair.exec(w.pair.srv, ['nft', 'list', 'ruleset'])).stdout]
          : await Promise.all(
              ['iptables', 'ip6tables'].map(async (t) => (await w.pair.exec(w.pair.srv, [t, '-S'])).stdout),
            );
      for (const text of left) assert.doesNotMatch(text, /spak_e2e|flood|hashlimit/, text);
    });
  });
}

prefilterSuite('nftables', 'kflood-nft', 150);
prefilterSuite('iptables', 'kflood-ipt', 151);
