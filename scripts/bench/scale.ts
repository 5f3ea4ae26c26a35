/**
 * `npm run bench -- --scale [--quick] [--json] [--backend …]`: 10,000 concurrent grants (issue 9, "Scale"), per
 * backend, in a pair of network namespaces made and removed here (10.251.134.0/24; the filler addresses 10.200.0.0/16
 * are set elements / chain rules only and never send traffic).
 *
 * For each level of live grants (0, 1,000, 10,000; `--quick`: 0, 1,000, 3,000):
 * - time to add them through the backend the daemon uses (server/firewall/*): one grant() per address (what a knock
 *   costs) up to 1,000, then grant() calls of 500 addresses; and one grant() of a NEW address at that level (timed,
 *   20 times): nftables adds a set element, iptables rebuilds its chain;
 * - the per-packet cost: sequential TCP connects (handshake time, one at a time) from the granted client to the
 *   protected port, and from a stranger (never granted) to an unprotected port — every packet to the host passes the
 *   gate's input chain, and iptables walks its rules one by one;
 * - the real daemon started over that table: start time (it reads and restores every grant), its RSS, and the
 *   daemon-side latency (`latency_ms` of its grant line) of the first knock after the start and of 5 more; then it
 *   is killed by PID and the next level is filled by the backend again. `restored` counts the granted client's grant
 *   too (level + 1).
 *
 * Kernel memory for the set/chain is not measured: the kernel accounts it in shared slab caches that the other
 * processes of the machine move more than 10,000 elements do.
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPacket } from '../../client/request.js';
import { DaemonProcess } from '../../harness/daemon-process.js';
import { createPair, pairNames, removePair } from '../../harness/netns.js';
import { ROOT } from '../../harness/run.js';
import { type RpcChild, startRpcChild } from '../../harness/stdio-rpc.js';
import type { FirewallBackend, GrantEntry } from '../../server/firewall/backend.js';
import { IptablesBackend } from '../../server/firewall/iptables.js';
import { NftablesBackend } from '../../server/firewall/nftables.js';
import { toHex } from '../../shared/bytes.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import { Scope, checkInterrupted, progress } from './lifecycle.js';
import { BENCH_LIMITS, type BackendName } from './options.js';
import type { ScaleProbeOps } from './scale-probe-child.js';
import { type Stats, roundStats, stats } from './stats.js';

const SUBNET = 134;
const SSH = 22;
const OPEN = 8080;
const UDP_PORT = 62201;
const TCP22 = { proto: 'tcp', port: SSH } as const;
const HOUR = 3_600_000;

export interface ScaleLevel {
  readonly grants: number;
  /** Wall time to bring the live grants from the previous level to this one. */
  readonly fillS: number;
  /** How the fill was done: `N×1` single-address grant() calls, `M×500` batched ones. */
  readonly fillCalls: string;
  /** One grant() of a new address at this level (ms). */
  readonly grantNew: Stats;
  /** TCP handshake, granted client → protected port (ms). */
  readonly granted: Stats;
  /** TCP handshake, stranger → unprotected port (ms): the cost of walking the gate for a non-granted source. */
  readonly stranger: Stats;
  readonly failedConnects: number;
  /** The daemon over this table: start (restore included), RSS after start, one knock's latency_ms. */
  readonly daemonStartS: number;
  readonly daemonRssMiB: number;
  readonly daemonRestored: number;
  /** Daemon-side `latency_ms` of the first knock after the start, and of the 5 after it. */
  readonly firstKnockMs: number | undefined;
  readonly knocks: Stats;
}

export interface ScaleResult {
  readonly backend: BackendName;
  readonly levels: ScaleLevel[];
}

const filler = (i: number): GrantEntry => ({
  family: 4,
  address: `10.200.${(i >> 8) & 255}.${i & 255}`,
  access: TCP22,
  expiresAt: Date.now() + HOUR,
});

function daemonConfig(dir: string, backend: BackendName, table: string): string {
  return [
    `state_dir = "${join(dir, 'state')}"`,
    `[listen]\nport = ${UDP_PORT}\naddress = "::"`,
    `[firewall]\nbackend = "${backend}"\nprotect = ["tcp/${SSH}"]\ntable = "${table}"`,
    '[grant]\nduration = 30\nmax_duration = 3600',
    BENCH_LIMITS,
    '[replay]\nwindow = 60',
    `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${SSH}"]`,
    '',
  ].join('\n');
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

export async function benchScale(backend: BackendName, quick: boolean): Promise<ScaleResult> {
  const nft = backend === 'nftables';
  const tag = nft ? 'sect-scale-nft' : 'sect-scale-ipt';
  const table = nft ? 'spak_scale' : 'SPAK_SCALE';
  const levels = quick ? [0, 1000, 3000] : [0, 1000, 10_000];
  const connects = quick ? 100 : 300;
  const scope = new Scope();
  try {
    const names = pairNames(tag);
    progress(`scale ${backend}: namespaces ${names.srv}/-cli (10.251.${SUBNET}.0/24)`);
    scope.defer(() => removePair(tag));
    const pair = await createPair(tag, { subnet: SUBNET });
    scope.defer(() => pair.cleanup());
    const stranger = `10.251.${SUBNET}.3`;
    const add = await pair.exec(pair.cli, ['ip', 'addr', 'add', `${stranger}/24`, 'dev', 'vcli']);
    if (add.code !== 0) throw new Error(`adding the stranger address: ${add.stderr}`);
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(SSH);
    await srv.listenTcp(OPEN);
    const cli = await pair.agent(pair.cli);
    const dir = mkdtempSync(join(tmpdir(), `spak-${tag}-`));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));
    const key = generateKey();
    writeFileSync(join(dir, 'alice.key'), `${formatKey(key)}\n`, { mode: 0o600 });
    const cfg = join(dir, 'spa-knockd.toml');
    writeFileSync(cfg, daemonConfig(dir, backend, table), { mode: 0o600 });

    const wrap = pair.wrap(pair.srv);
    const makeBackend = (): FirewallBackend =>
      nft ? new NftablesBackend({ table, wrap }) : new IptablesBackend({ chain: table, wrap });
    let fw = makeBackend();
    scope.defer(async () => {
      await fw.uninstall().catch(() => undefined);
      await fw.close();
    });
    await fw.install({ protect: [TCP22] }, Date.now());

    const path = fileURLToPath(new URL('./scale-probe-child.ts', import.meta.url));
    const probe: RpcChild<ScaleProbeOps> = await startRpcChild<ScaleProbeOps>(
      [...pair.wrap(pair.cli), process.execPath, '--import', 'tsx', path],
      { name: 'scale probe', cwd: ROOT },
    );
    scope.defer(() => probe.kill());
    const timed = async (host: string, port: number, from: string) => {
      const r = await probe.call('connects', { host, port, from, n: connects, timeoutMs: 1000 }, 600_000);
      if (!r.ok || !r.ms) throw new Error(`connect probe: ${r.error ?? '?'}`);
      return r;
    };
    const grantedEntry = (): GrantEntry => ({
      family: 4,
      address: pair.cli4,
      access: TCP22,
      expiresAt: Date.now() + HOUR,
    });

    const out: ScaleLevel[] = [];
    let have = 0;
    for (const level of levels) {
      checkInterrupted();
      // the fill: single grants up to 1,000 (a knock each), then batches of 500
      progress(`scale ${backend}: filling ${have} → ${level} grants`);
      const t0 = performance.now();
      let singles = 0;
      let batches = 0;
      while (have < Math.min(level, 1000)) {
        await fw.grant([filler(have++)], Date.now());
        singles++;
      }
      while (have < level) {
        const n = Math.min(500, level - have);
        await fw.grant(
          Array.from({ length: n }, (_, i) => filler(have + i)),
          Date.now(),
        );
        have += n;
        batches++;
      }
      const fillS = (performance.now() - t0) / 1000;
      // one grant of a new address at this level, 20 times (each revoked again, so the level stays)
      const grantNew: number[] = [];
      for (let i = 0; i < 20; i++) {
        const e = filler(60_000 + i);
        const t = performance.now();
        await fw.grant([e], Date.now());
        grantNew.push(performance.now() - t);
        await fw.revoke([e]);
      }
      // the granted client's grant is the newest (last in an iptables chain: the worst case of a linear walk)
      await fw.revoke([grantedEntry()]);
      await fw.grant([grantedEntry()], Date.now());
      progress(`scale ${backend}: ${level} grants: ${connects} connects each from the granted client and a stranger`);
      const g = await timed(pair.srv4, SSH, pair.cli4);
      const s = await timed(pair.srv4, OPEN, stranger);
      const closed = await cli.tcpConnect(pair.srv4, SSH, 300, stranger);
      if (closed.ok) throw new Error(`scale ${backend}: the stranger reached the protected port at ${level} grants`);

      // the real daemon over this table: restore, RSS, one knock
      progress(`scale ${backend}: ${level} grants: the daemon over them`);
      await fw.close(); // the daemon is the only writer while it runs
      const daemon = new DaemonProcess(pair.srv, cfg);
      scope.defer(async () => {
        await daemon.stop('SIGKILL');
      });
      const d0 = performance.now();
      await daemon.start(300_000);
      const daemonStartS = (performance.now() - d0) / 1000;
      const restored = Number(daemon.events('restore')[0]?.grants ?? 0);
      const daemonRssMiB = rssMiB(daemon.pid);
      // knocks for addresses that never send traffic (10.201.0.x): the first after the start, then 5 more
      const knocks: number[] = [];
      const knocked: Omit<GrantEntry, 'expiresAt'>[] = [];
      for (let i = 1; i <= 6; i++) {
        const allowAddress = `10.201.0.${i}`;
        const mark = daemon.lines.length;
        const pkt = buildPacket(key, { type: 'open', accesses: [], duration: 30, allowAddress }).bytes;
        await cli.udpSend(pair.srv4, UDP_PORT, toHex(pkt), stranger);
        const grant = await daemon.waitFor((l) => l.event === 'grant', 30_000, mark).catch(() => undefined);
        if (grant) knocks.push(Number(grant.latency_ms));
        knocked.push({ family: 4, address: allowAddress, access: TCP22 });
      }
      await daemon.stop('SIGKILL'); // by PID; the table stays as it is (the knocks' grants are revoked below)
      fw = makeBackend(); // a fresh mirror, read from the kernel, as a restarted daemon would
      await fw.install({ protect: [TCP22] }, Date.now());
      await fw.revoke(knocked);
      out.push({
        grants: level,
        fillS,
        fillCalls: `${singles}×1 + ${batches}×500`,
        grantNew: roundStats(stats(grantNew)),
        granted: roundStats(stats(g.ms ?? [])),
        stranger: roundStats(stats(s.ms ?? [])),
        failedConnects: (g.failed ?? 0) + (s.failed ?? 0),
        daemonStartS,
        daemonRssMiB,
        daemonRestored: restored,
        firstKnockMs: knocks[0],
        knocks: roundStats(stats(knocks.slice(1))),
      });
    }
    return { backend, levels: out };
  } finally {
    await scope.close();
  }
}

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** The scale block of the bench output (printed on its own, after whatever else the bench prints). */
export function printScale(results: readonly ScaleResult[]): void {
  const lines = [
    '',
    '10,000-grant scale (scripts/bench/scale.ts): per level of live grants',
    'backend   grants  fill s  fill calls        grant() new ms  handshake ms granted  handshake ms stranger  daemon start s  RSS MiB  restored  knock ms: 1st, then median',
    '                                            median / p90    median / p90          median / p90',
  ];
  for (const r of results) {
    for (const l of r.levels) {
      lines.push(
        [
          r.backend.padEnd(9),
          String(l.grants).padStart(6),
          f(l.fillS).padStart(7),
          `  ${l.fillCalls}`.padEnd(20),
          `${f(l.grantNew.median)} / ${f(l.grantNew.p90)}`.padStart(14),
          `${f(l.granted.median, 3)} / ${f(l.granted.p90, 3)}`.padStart(22),
          `${f(l.stranger.median, 3)} / ${f(l.stranger.p90, 3)}`.padStart(22),
          f(l.daemonStartS).padStart(15),
          f(l.daemonRssMiB, 1).padStart(8),
          String(l.daemonRestored).padStart(9),
          '  ',
          `${l.firstKnockMs === undefined ? 'none' : f(l.firstKnockMs)}, ${f(l.knocks.median)} (n=${l.knocks.n})`.padStart(
            22,
          ),
        ].join(''),
      );
      if (l.failedConnects > 0) lines.push(`          (${l.failedConnects} connects did not complete within 1 s)`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
