/**
 * `npm run bench -- --flood [--quick]`: the floods of issue 9, side by side for spa-knockd (nftables) and fwknopd
 * (UDP server mode, iptables), from outside, in namespaces made and removed here. Also runnable alone:
 * `node --import tsx scripts/bench/flood.ts [--quick] [--json] [--trace] [--runs N] [--servers …]` (options.ts). With
 * `--runs N` every row runs N times (fresh namespaces and daemon each time) and the knocks are pooled (flood-report.ts).
 *
 * Servers: spa-knockd (nftables) as configured by default, the same with `limit.kernel_prefilter = false`, fwknopd.
 * Per server, per flood (none; one key holder's distinct valid knocks; junk carrying a sniffed key id — for fwknopd,
 * which has no key id, base64 junk its HMAC check runs on; random junk): one sender process in the client namespace
 * (harness/flood-sender.ts, from its own address) as fast as it goes for `seconds`; once it says it is flooding, a
 * legitimate client knocks again and again, each time from a fresh address of the client namespace (a packet naming
 * that address, built before the timing starts), timed client side by the floor's probe (floor-probe-child.ts, its
 * sockets and addresses warmed first): checked closed, packet sent, a fresh TCP connect every 0.2 ms until one
 * succeeds (lost: none within 3 s). spa-knockd runs as it ships (built dist/, plain node: built.ts); the row
 * `spa-knockd + probe RT` is an experiment, not a shipped setting: the daemon's and the probe's main threads run
 * SCHED_FIFO 1 (`chrt -f -R 1`: their other threads and children ordinary), so that neither waits for a CPU behind
 * the flood sender on this 2-CPU machine; what is left is the daemon's own work (docs/flood.md). Also: the run-queue wait of the server's main thread during the flood (time it was ready to
 * run but had no CPU, /proc/PID/schedstat), datagrams the sender got out, kernel drops
 * on the server's UDP socket (/proc/net/udp in the server namespace), the server's RSS before and after, and for
 * spa-knockd the reject counts by reason and the datagrams its kernel prefilter dropped (`limit.kernel_prefilter`,
 * on by default: the counter `flood_drops` of its nft table, server/firewall/nft-prefilter.ts). Figures on a loaded machine vary a lot: the load average is printed.
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPacket } from '../../client/request.js';
import { DaemonProcess } from '../../harness/daemon-process.js';
import type { FloodKind, FloodResult } from '../../harness/flood-sender.js';
import { type FwknopKeyText, fwknopKeyGen, fwknopPacket } from '../../harness/fwknop.js';
import { FwknopdProcess } from '../../harness/fwknopd.js';
import { type NetnsPair, createPair, pairNames, removePair } from '../../harness/netns.js';
import { DAEMON, ROOT, runTs } from '../../harness/run.js';
import { startRpcChild } from '../../harness/stdio-rpc.js';
import { toHex } from '../../shared/bytes.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import { PREFILTER_COUNTER, parseCounterPackets } from '../../server/firewall/nft-prefilter.js';
import { parseProcNetUdp } from '../../server/udp-drops.js';
import { onPath } from '../../harness/prerequisites.js';
import { builtDaemon } from './built.js';
import { cpuMs, rssKb, runQueueMs, slowestKnocks, startCapture } from './flood-capture.js';
import type { DaemonMarks } from './flood-trace.js';
import type { FloorProbeOps } from './floor-probe-child.js';
import { printFloodTable } from './flood-report.js';
import { Scope, progress, sleep } from './lifecycle.js';
import { FLOOD_SERVERS, type FloodServerName, parseOptions } from './options.js';
import { type Stats, stats } from './stats.js';

const SSH = 22;
const UDP_PORT = 62201;
/** An open TCP port on the server (not protected): the probe warms its sockets and addresses on it. */
const CONTROL = 2222;
/** The row `spa-knockd + probe RT`: the main thread SCHED_FIFO 1, every thread or process it creates ordinary. */
const REALTIME = ['chrt', '-f', '-R', '1'];
const MAX_SAMPLES = 200;
/** ms between two knocks of the legitimate client, at least. */
const MIN_SPACING_MS = 250;

export type FloodServer = 'spa-knockd nftables' | 'spa-knockd + probe RT' | 'spa-knockd no prefilter' | 'fwknopd';
/** `--servers`' names for the rows, and each row's server and /24 (10.251.N.0/24) of its namespaces. */
const SERVERS: Record<FloodServerName, readonly [FloodServer, number]> = {
  nftables: ['spa-knockd nftables', 123],
  // the same, with neither the daemon nor the probe waiting for a CPU (an experiment: docs/flood.md)
  rt: ['spa-knockd + probe RT', 125],
  // the same daemon without its kernel prefilter, side by side on the same machine at the same time
  'no-prefilter': ['spa-knockd no prefilter', 152],
  fwknopd: ['fwknopd', 124],
};
/** `first knock`: the server's first knock after its start, alone (cold: no knock has warmed its grant path yet). */
export type FloodName = 'first knock' | 'none' | 'valid knocks' | 'sniffed key id' | 'random junk';

export interface FloodRow {
  readonly server: FloodServer;
  readonly flood: FloodName;
  /** Datagrams the sender got out, and per second. */
  readonly sent: number;
  readonly perSecond: number;
  /** Legitimate knock sent → first TCP connect, ms (the ones that opened). */
  readonly open: Stats;
  /** Legitimate knocks that did not open within 3 s. */
  readonly lost: number;
  /** Kernel drops on the server's knock socket during the flood. */
  readonly drops: number | undefined;
  /** Datagrams spa-knockd's kernel prefilter dropped during the flood (undefined: no prefilter, or fwknopd). */
  readonly prefilterDrops: number | undefined;
  readonly rssKb: readonly [number, number];
  /** Server CPU time (user + system) during the flood, ms, and per datagram it received (sent − kernel drops), µs. */
  readonly cpuMs: number;
  readonly cpuUsPerDatagram: number | undefined;
  /** The server's main thread during the flood: ms it was ready to run but waited for a CPU (/proc/PID/schedstat). */
  readonly runQueueMs: number;
  readonly rejects?: Record<string, number>;
  /** The run this row belongs to (1…`--runs`), and every opened knock's time, ms, in order (pooled: flood-report.ts). */
  readonly run: number;
  readonly samples: readonly number[];
  /** `--trace`, spa-knockd rows: where the slowest knocks of this flood spent their time (flood-trace.ts). */
  readonly slowest?: readonly string[];
}

export interface FloodOptions {
  readonly seconds: number;
  /** `--runs N`: every server N times, fresh namespaces and daemon each time, interleaved (default 1). */
  readonly runs?: number;
  /** `--servers a,b`: these rows only (default: all four). */
  readonly servers?: readonly FloodServerName[] | undefined;
  /** `--trace`: a capture on the server's veth and the daemon's marks, for the slowest knocks (flood-trace.ts). */
  readonly trace?: boolean;
}

const kindOf = (server: FloodServer, f: FloodName): FloodKind | undefined =>
  f === 'none' || f === 'first knock'
    ? undefined
    : f === 'valid knocks'
      ? server === 'fwknopd'
        ? 'fwknop-valid'
        : 'valid'
      : f === 'sniffed key id'
        ? server === 'fwknopd'
          ? 'b64junk'
          : 'keyid'
        : 'junk';

async function udpDrops(pair: NetnsPair): Promise<number | undefined> {
  let total: number | undefined;
  for (const f of ['/proc/net/udp', '/proc/net/udp6']) {
    const r = await pair.exec(pair.srv, ['cat', f]);
    for (const l of parseProcNetUdp(r.stdout)) if (l.port === UDP_PORT) total = (total ?? 0) + l.drops;
  }
  return total;
}

/** The spa-knockd prefilter's counter in the server namespace (nft-prefilter.ts); undefined if there is none. */
async function prefilterCount(pair: NetnsPair, table: string): Promise<number | undefined> {
  const r = await pair.exec(pair.srv, ['nft', '-j', 'list', 'counter', 'inet', table, PREFILTER_COUNTER]);
  return r.code === 0 ? parseCounterPackets(r.stdout) : undefined;
}

const NFT_TABLE = 'spak_flood_bench';

async function benchServer(
  server: FloodServer,
  subnet: number,
  o: FloodOptions,
  fk: FwknopKeyText,
  run: number,
): Promise<FloodRow[]> {
  const tag = `flood-b${subnet}`;
  const scope = new Scope();
  const floods: FloodName[] = ['first knock', 'none', 'valid knocks', 'sniffed key id', 'random junk'];
  const perFlood = Math.min(MAX_SAMPLES, Math.max(5, Math.floor(o.seconds * 2)));
  try {
    progress(`flood: ${server}: namespaces ${pairNames(tag).srv}/-cli (10.251.${subnet}.0/24)`);
    scope.defer(() => removePair(tag));
    const pair = await createPair(tag, { subnet });
    scope.defer(() => pair.cleanup());
    const flooder = `10.251.${subnet}.3`;
    const addrs = Array.from({ length: 1 + perFlood * (floods.length - 1) }, (_, i) => `10.251.${subnet}.${10 + i}`);
    if (addrs.length > 240) throw new Error('flood bench: too many samples for one /24');
    for (const a of [flooder, ...addrs]) await pair.exec(pair.cli, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'vcli']);
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(SSH);
    await srv.listenTcp(CONTROL);
    const dir = mkdtempSync(join(tmpdir(), `spak-${tag}-`));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));

    const bobKey = generateKey();
    const aliceKey = formatKey(generateKey());
    let pid: () => number | undefined;
    let rejectsFrom: ((mark: number) => Record<string, number>) | undefined;
    let mark = () => 0;
    let daemonLines = (): readonly Record<string, unknown>[] => [];
    if (server === 'fwknopd') {
      await pair.exec(pair.srv, ['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(SSH), '-j', 'DROP']);
      const d = new FwknopdProcess(pair.srv, {
        keys: fk,
        openPorts: [`tcp/${SSH}`],
        accessTimeout: 60,
        verbose: false,
      });
      scope.defer(() => d.stop());
      await d.start();
      pid = () => d.pid;
    } else {
      writeFileSync(join(dir, 'alice.key'), `${aliceKey}\n`, { mode: 0o600 });
      writeFileSync(join(dir, 'bob.key'), `${formatKey(bobKey)}\n`, { mode: 0o600 });
      const cfg = join(dir, 'spa-knockd.toml');
      writeFileSync(
        cfg,
        [
          `state_dir = "${join(dir, 'state')}"`,
          `[listen]\nport = ${UDP_PORT}\naddress = "::"`,
          `[firewall]\nbackend = "nftables"\nprotect = ["tcp/${SSH}"]\ntable = "${NFT_TABLE}"`,
          `[grant]\nduration = 60\nmax_duration = 60\nmax_grants = 250`,
          `[log]\nreject_summary_interval = 1`,
          ...(server === 'spa-knockd no prefilter' ? ['[limit]\nkernel_prefilter = false'] : []),
          `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${SSH}"]`,
          `[[client]]\nname = "bob"\nkey_file = "bob.key"\nopen = ["tcp/${SSH}"]`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      const d = new DaemonProcess(pair.srv, cfg, {
        entry: builtDaemon(DAEMON),
        plain: true,
        ...(server === 'spa-knockd + probe RT' ? { launcher: REALTIME } : {}),
      });
      scope.defer(async () => {
        await d.stop('SIGKILL');
      });
      await d.start(60_000);
      pid = () => d.pid;
      mark = () => d.lines.length;
      daemonLines = () => d.lines;
      rejectsFrom = (m) => {
        const by: Record<string, number> = {};
        for (const l of d.events('rejects', m))
          for (const [k, v] of Object.entries(l['by'] as Record<string, number>)) by[k] = (by[k] ?? 0) + v;
        return by;
      };
    }
    const child = await startRpcChild<FloorProbeOps>(
      [
        ...pair.wrap(pair.cli),
        ...(server === 'spa-knockd + probe RT' ? REALTIME : []),
        process.execPath,
        '--expose-gc', // the probe collects its garbage between samples (floor-probe-child.ts)
        '--import',
        'tsx',
        fileURLToPath(new URL('./floor-probe-child.ts', import.meta.url)),
      ],
      { name: 'flood probe', cwd: ROOT, readyTimeoutMs: 60_000 },
    );
    scope.defer(() => child.kill());
    const warm = await child.call('warm', { host: pair.srv4, port: CONTROL, from: addrs, n: 2 }, 120_000);
    if (!warm.ok) throw new Error(`flood: ${server}: ${warm.error ?? 'warm-up failed'}`);

    const capture =
      o.trace && server !== 'fwknopd' ? await startCapture(scope, pair.srv, dir, flooder, CONTROL) : undefined;
    const timed: { flood: FloodName; from: string; ms: number }[] = [];
    const rows: FloodRow[] = [];
    let next = 0;
    for (const flood of floods) {
      const kind = kindOf(server, flood);
      const knocks = flood === 'first knock' ? 1 : perFlood;
      progress(`flood: ${server}: ${flood}${kind ? ` (${kind}, ${o.seconds} s)` : ''}, ${knocks} legitimate knocks`);
      const m = mark();
      const drops0 = await udpDrops(pair);
      const pf0 = await prefilterCount(pair, NFT_TABLE);
      const rss0 = rssKb(pid());
      const cpu0 = cpuMs(pid());
      const rq0 = runQueueMs(pid());
      let sending: Promise<FloodResult | undefined> = Promise.resolve(undefined);
      if (kind) {
        const req = {
          kind,
          host: pair.srv4,
          port: UDP_PORT,
          from: flooder,
          seconds: o.seconds,
          max: 50_000_000,
          key: aliceKey,
          sniffed: toHex(buildPacket(bobKey, { type: 'open', accesses: [], duration: 0 }).bytes),
          fwknop: { keyB64: fk.keyB64, hmacB64: fk.hmacB64 },
          announce: true,
        };
        let flooding: () => void = () => undefined;
        const started = new Promise<void>((r) => (flooding = r));
        sending = runTs(`${ROOT}harness/flood-sender.ts`, [JSON.stringify(req)], {
          prefix: pair.wrap(pair.cli),
          timeoutMs: (o.seconds + 30) * 1000,
          onStderr: (c) => {
            if (c.includes('flooding')) flooding();
          },
        }).then((r) => {
          if (r.code !== 0) throw new Error(`flood sender: ${r.stderr.trim()}`);
          return JSON.parse(r.stdout) as FloodResult;
        });
        // the sender under way (its first burst out), then half a second of flood before the first knock
        await Promise.race([started, sending]);
        await sleep(500);
      }
      // the samples spread over the flood; the last one starts early enough to end (3 s at most) before it does
      const t0 = Date.now();
      const deadline = kind ? t0 + (o.seconds - 1.5) * 1000 - 3000 : Number.POSITIVE_INFINITY;
      // never faster than the default limit.client_rate (5/s) allows one client: the legitimate client is not a flooder
      const spacing = Math.max(MIN_SPACING_MS, kind ? (deadline - t0) / perFlood : 0);
      const ms: number[] = [];
      let lost = 0;
      for (let i = 0; i < knocks && Date.now() < deadline; i++) {
        const from = addrs[next++] as string;
        const hex =
          server === 'fwknopd'
            ? Buffer.from(fwknopPacket(fk, ['-A', `tcp/${SSH}`, '-a', from], pair.srv4).text, 'latin1').toString('hex')
            : toHex(buildPacket(bobKey, { type: 'open', accesses: [], duration: 0, allowAddress: from }).bytes);
        const s0 = Date.now();
        const r = await child.call(
          'sample',
          {
            host: pair.srv4,
            tcpPort: SSH,
            from,
            datagrams: [{ hex, port: UDP_PORT }],
            intervalMs: 0.2,
            attemptTimeoutMs: 3,
            maxMs: 3000,
            closedCheckMs: 40,
          },
          20_000,
        );
        if (r.ok && typeof r.ms === 'number') {
          ms.push(r.ms);
          timed.push({ flood, from, ms: r.ms });
        } else lost++;
        await sleep(Math.max(0, spacing - (Date.now() - s0)));
      }
      const sent = await sending;
      await sleep(1500); // the reject summary of the last second
      const drops1 = await udpDrops(pair);
      const drops = drops0 !== undefined && drops1 !== undefined ? drops1 - drops0 : undefined;
      const pf1 = await prefilterCount(pair, NFT_TABLE);
      const prefilterDrops = pf0 !== undefined && pf1 !== undefined ? pf1 - pf0 : undefined;
      const cpu = cpuMs(pid()) - cpu0;
      const rq = runQueueMs(pid()) - rq0;
      // what reached the server's socket: sent, less what the prefilter and the full socket buffer dropped
      const received = (sent?.sent ?? 0) - (drops ?? 0) - (prefilterDrops ?? 0);
      rows.push({
        server,
        flood,
        sent: sent?.sent ?? 0,
        perSecond: sent ? sent.sent / sent.seconds : 0,
        open: stats(ms),
        lost,
        drops,
        prefilterDrops,
        rssKb: [rss0, rssKb(pid())],
        cpuMs: cpu,
        cpuUsPerDatagram: sent && received > 0 ? (cpu * 1000) / received : undefined,
        runQueueMs: rq,
        ...(rejectsFrom ? { rejects: rejectsFrom(m) } : {}),
        run,
        samples: ms,
      });
    }
    if (!capture) return rows;
    const marksOf = (from: string) =>
      daemonLines().find((l) => l['event'] === 'grant' && l['address'] === from)?.['trace'] as DaemonMarks | undefined;
    const slow = await slowestKnocks(capture, timed, marksOf, { udp: UDP_PORT, tcp: SSH });
    return rows.map((x) => ({ ...x, slowest: slow.get(x.flood) ?? [] }));
  } finally {
    await scope.close();
  }
}

export async function benchFlood(o: FloodOptions): Promise<{ rows: FloodRow[]; loadavg: string }> {
  const fk = fwknopKeyGen();
  if (o.trace) {
    if (!onPath('tcpdump')) throw new Error('--trace needs tcpdump (fix: apt-get install -y tcpdump)');
    process.env['SPAK_TRACE_GRANT'] = '1'; // the daemons started from here on carry their marks (grant-trace.ts)
  }
  const rows: FloodRow[] = [];
  const runs = o.runs ?? 1;
  // run after run, each server in turn: a drift in the machine's load reaches every row alike
  for (let run = 1; run <= runs; run++)
    for (const name of o.servers ?? FLOOD_SERVERS) {
      const [server, subnet] = SERVERS[name];
      if (runs > 1) progress(`flood: run ${run} of ${runs}`);
      rows.push(...(await benchServer(server, subnet, o, fk, run)));
    }
  return {
    rows,
    loadavg: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const opts = parseOptions(['--flood', ...process.argv.slice(2)]);
  const seconds = opts.quick ? 8 : 20;
  benchFlood({ seconds, trace: opts.trace, runs: opts.runs, servers: opts.servers }).then(
    (r) => {
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else printFloodTable(r, seconds);
    },
    (e: unknown) => {
      process.stderr.write(`bench: flood: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
