/**
 * Floods from outside (issue 9), both backends, in network namespaces: a real spa-knockd, a flood sender process
 * (harness/flood-sender.ts) in the client namespace on its own address, and a legitimate client (bob) knocking from
 * other addresses during each flood. Short and bounded (a few seconds, a capped count per flood); the long floods and
 * the 10 ms p99 figure are `npm run bench -- --flood` (scripts/bench/flood.ts).
 *
 * For each flood — valid knocks of one key holder (alice), junk carrying alice's sniffed key id, random junk — it
 * asserts: every knock of bob opens (bound generous for a loaded CI machine), the flood is counted under its reason
 * in the periodic summary (never a line per datagram), the daemon's RSS stays bounded. Then SIGTERM in the middle of a
 * flood: the daemon exits within a few seconds and the gate stays closed for an address that never knocked.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FloodKind, FloodResult } from '../../harness/flood-sender.js';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { ROOT, runTs } from '../../harness/run.js';
import { type Backend, E2eWorld, OPEN, SSH, UDP_PORT } from './world.js';

const KNOCKS_PER_FLOOD = 4;
const FLOOD_SECONDS = 3;
const FLOOD_MAX = 400_000;
/**
 * Datagrams per second: enough that each flood, unlimited, would have done the damage issue 9 measured (a queue of
 * thousands of firewall changes; thousands of HMACs a second), low enough that the kernel does not drop datagrams on
 * a shared 2-core CI machine — the test asserts that every legitimate knock opens, so it must not be a lottery of
 * socket-buffer drops. Floods at full speed, with their drops: `npm run bench -- --flood` (docs/flood.md).
 */
const FLOOD_RATE = 12_000;
/**
 * Knock sent → TCP connect from bob's address succeeds, as the test sees it (through the agent's RPC, polling): the
 * 10 ms p99 goal is a bench figure; CI is loaded. Without the limits bob's knocks came 66-73 s late or never.
 */
const OPEN_BOUND_MS = 2500;
/** Packet handed to the daemon → firewall change committed, from bob's grant log line (`latency_ms`). */
const DAEMON_BOUND_MS = 1500;
const RSS_GROWTH_BOUND_KB = 64 * 1024;

function rssKb(pid: number | undefined): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1]);
}

function floodSuite(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns(BACKEND_TOOLS[backend])) return;
  const FLOODER = `10.251.${subnet}.3`;
  const BYSTANDER = `10.251.${subnet}.4`;
  /** bob knocks from a fresh address each time, so each knock has to open something new. */
  const bobAddress = (i: number) => `10.251.${subnet}.${10 + i}`;

  describe(`floods, ${backend}, in namespaces`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [
        { name: 'alice', open: [`tcp/${SSH}`] },
        { name: 'bob', open: [`tcp/${SSH}`] },
      ],
      protect: [SSH],
    });
    const srv4 = () => w.pair.srv4;
    let knockNo = 0;
    let rss0 = 0;
    const latencies: Record<string, number[]> = {};

    before(async () => {
      await w.start();
      for (const a of [FLOODER, BYSTANDER, ...Array.from({ length: 4 * KNOCKS_PER_FLOOD }, (_, i) => bobAddress(i))]) {
        const r = await w.pair.exec(w.pair.cli, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'vcli']);
        assert.equal(r.code, 0, r.stderr);
      }
      rss0 = rssKb(w.daemon.pid);
    });
    after(() => w.stop());

    function startFlood(kind: FloodKind, seconds = FLOOD_SECONDS): Promise<FloodResult> {
      const req = {
        kind,
        host: srv4(),
        port: UDP_PORT,
        from: FLOODER,
        seconds,
        max: FLOOD_MAX,
        rate: FLOOD_RATE,
        ...(kind === 'valid' ? { key: readFileSync(w.keys['alice'] ?? '', 'utf8').trim() } : {}),
        ...(kind === 'keyid' ? { sniffed: w.packetAt('alice', Date.now()) } : {}),
      };
      return runTs(`${ROOT}harness/flood-sender.ts`, [JSON.stringify(req)], {
        prefix: w.pair.wrap(w.pair.cli),
        timeoutMs: (seconds + 20) * 1000,
      }).then((r) => {
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as FloodResult;
      });
    }

    /** bob knocks from a fresh address; resolves with ms until a TCP connect from there succeeds (or Infinity). */
    async function bobKnock(): Promise<{ ms: number; daemonMs: number }> {
      const from = bobAddress(knockNo++);
      const t0 = performance.now();
      await w.sendRaw(srv4(), w.packetAt('bob', Date.now()), from);
      let ms = Number.POSITIVE_INFINITY;
      while (performance.now() - t0 < 5000) {
        if ((await w.cli.tcpConnect(srv4(), SSH, 150, from)).ok) {
          ms = performance.now() - t0;
          break;
        }
      }
      const g = await w.daemon.waitFor((l) => l.event === 'grant' && l.address === from, 2000).catch(() => undefined);
      return { ms, daemonMs: typeof g?.latency_ms === 'number' ? g.latency_ms : Number.POSITIVE_INFINITY };
    }

    async function duringFlood(kind: FloodKind, reason: (by: Record<string, number>) => number) {
      const mark = w.daemon.lines.length;
      const flooding = startFlood(kind);
      await new Promise((r) => setTimeout(r, 700)); // the sender's start (tsx) and the flood under way
      const ms: number[] = [];
      const daemonMs: number[] = [];
      for (let i = 0; i < KNOCKS_PER_FLOOD; i++) {
        const k = await bobKnock();
        ms.push(k.ms);
        daemonMs.push(k.daemonMs);
        await new Promise((r) => setTimeout(r, 150));
      }
      const sent = await flooding;
      latencies[kind] = ms;
      // the summary of the flood's last second comes within log.reject_summary_interval (1 s)
      await new Promise((r) => setTimeout(r, 1500));
      const by = w.rejects(mark);
      const drops = w.daemon
        .events('rejects', mark)
        .reduce((n, l) => n + (typeof l.drops === 'number' ? l.drops : 0), 0);
      // the kernel prefilter (limit.kernel_prefilter, on by default) drops most of a one-source flood before the daemon
      const prefilterDrops = w.daemon
        .events('rejects', mark)
        .reduce((n, l) => n + (typeof l.prefilter_drops === 'number' ? l.prefilter_drops : 0), 0);
      const lines = w.daemon.lines.length - mark;
      const rss = rssKb(w.daemon.pid);
      const replayLines = readFileSync(join(w.dir, 'state', 'replay.log'), 'utf8').split('\n').length;
      return { sent, ms, daemonMs, by, drops, prefilterDrops, lines, rss, replayLines, counted: reason(by) };
    }

    test('control: the protected port is closed for bob, the bystander and the flooder; the open port is not', async () => {
      assert.equal((await w.cli.tcpConnect(srv4(), OPEN, 400, BYSTANDER)).ok, true);
      for (const a of [bobAddress(0), BYSTANDER, FLOODER])
        assert.equal((await w.cli.tcpConnect(srv4(), SSH, 400, a)).ok, false, a);
    });

    for (const [kind, name, reason] of [
      [
        'valid',
        "one key holder's flood of distinct valid knocks",
        (by: Record<string, number>) => by['client-rate'] ?? 0,
      ],
      ['keyid', 'junk carrying a sniffed key id', (by: Record<string, number>) => by.rate ?? 0],
      ['junk', 'random junk', (by: Record<string, number>) => (by.version ?? 0) + (by['unknown-key'] ?? 0)],
    ] as const) {
      test(`${name}: every knock of bob opens, the flood is counted, RSS bounded`, async (t) => {
        const r = await duringFlood(kind, reason);
        t.diagnostic(
          `${kind}: sent ${r.sent.sent} in ${r.sent.seconds.toFixed(1)} s; bob opened in ${r.ms.map((x) => x.toFixed(0)).join(', ')} ms ` +
            `(daemon: ${r.daemonMs.map((x) => x.toFixed(1)).join(', ')} ms); ` +
            `rejects ${JSON.stringify(r.by)}; kernel drops ${r.drops}; prefilter drops ${r.prefilterDrops}; ${r.lines} log lines; ${r.replayLines} replay log lines; RSS ${rss0} → ${r.rss} kB`,
        );
        assert.ok(r.sent.sent > 1000, `the flood ran (${r.sent.sent} datagrams)`);
        for (const ms of r.ms) assert.ok(ms < OPEN_BOUND_MS, `bob's knock opened in ${ms} ms`);
        for (const ms of r.daemonMs) assert.ok(ms < DAEMON_BOUND_MS, `bob's grant committed ${ms} ms after the packet`);
        assert.ok(r.counted > 0, `the flood is counted under its reason: ${JSON.stringify(r.by)}`);
        assert.ok(r.lines < 20 * (FLOOD_SECONDS + 4), `${r.lines} log lines for the flood: a summary, not a line each`);
        assert.ok(r.rss - rss0 < RSS_GROWTH_BOUND_KB, `RSS ${rss0} → ${r.rss} kB`);
        // every flood so far: client_burst (20) + client_rate (5/s) records of alice per flood, and bob's knocks
        assert.ok(
          r.replayLines < 4 * (20 + 5 * (FLOOD_SECONDS + 3) + KNOCKS_PER_FLOOD),
          `${r.replayLines} replay records`,
        );
      });
    }

    test('SIGTERM in the middle of a flood: exits within seconds, and the gate stays closed', async (t) => {
      const flooding = startFlood('valid', 6).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = performance.now();
      const code = await w.daemon.stop('SIGTERM');
      const ms = performance.now() - t0;
      t.diagnostic(`SIGTERM → exit ${code} in ${ms.toFixed(0)} ms`);
      assert.equal(code, 0);
      assert.ok(ms < 3000, `stop took ${ms} ms`);
      await flooding;
      assert.equal((await w.cli.tcpConnect(srv4(), OPEN, 400, BYSTANDER)).ok, true, 'control');
      assert.equal(
        (await w.cli.tcpConnect(srv4(), SSH, 400, BYSTANDER)).ok,
        false,
        'closed for an address that never knocked',
      );
      const r = await w.pair.exec(
        w.pair.srv,
        backend === 'nftables'
          ? ['nft', 'list', 'table', 'inet', 'spak_e2e_nft']
          : ['iptables', '-n', '-L', 'spak_e2e_IPT'],
      );
      assert.equal(r.code, 0, `the gate is still installed after the stop: ${r.stderr}`);
    });
  });
}

floodSuite('nftables', 'flood-nft', 120);
floodSuite('iptables', 'flood-ipt', 121);
