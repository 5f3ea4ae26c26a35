/**
 * Knock to open at the floor, side by side (issue 9; docs/benchmarks.md). Every setup runs at once, each in its own
 * pair of namespaces (harness/netns.ts createPair, tags `speed-*`, subnets 110–117), with the same probe
 * (floor-probe-child.ts) in each client namespace; samples are interleaved — one of each setup in turn, round after
 * round — so load on the machine hits every row alike. Each sample uses a fresh source address of the client
 * namespace (the grant is for it), so no sample waits for an earlier grant to expire or be revoked.
 *
 * Rows: the port already open (the probe's own cost); the minimal nft program (minimal-nft.ts); the kernel adding
 * the element (minimal-kernel.ts); spa-knockd with nftables, without and with the kernel fast path
 * (`firewall.fast_path`, subnet 140); spa-knockd with iptables; fwknopd 2.6.10 in UDP-server
 * mode (when installed; real `fwknop` client packets); knockd (when installed; a 3-port UDP sequence, timed from its
 * first datagram). spa-knockd runs as it ships: its dist/ built from the checkout, plain node (builtDaemon). Servers are stopped by PID, namespaces removed, on every exit path (lifecycle.ts). The rows' list,
 * labels and subnets, and the shapes of the parameters and results: floor-rows.ts.
 * @module
 */
import { BENCH_LIMITS } from './options.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildPacket } from '../../client/request.js';
import { DaemonProcess } from '../../harness/daemon-process.js';
import { type FwknopKeyText, fwknopKeyGen, fwknopPacket } from '../../harness/fwknop.js';
import { FwknopdProcess } from '../../harness/fwknopd.js';
import { type NetnsPair, createPair, removePair } from '../../harness/netns.js';
import { DAEMON, ROOT } from '../../harness/run.js';
import { builtDaemon } from './built.js';
import { type RpcChild, startRpcChild } from '../../harness/stdio-rpc.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import type { FloorProbeOps, ProbeDatagram, ProbeSample } from './floor-probe-child.js';
import { Scope, checkInterrupted, progress, sleep } from './lifecycle.js';
import {
  FLOOR_LABELS,
  type FloorParams,
  type FloorResult,
  type FloorRow,
  type FloorRowResult,
  SUBNETS,
} from './floor-rows.js';
import { type Stats, r3, stats } from './stats.js';

export {
  FLOOR_LABELS,
  FLOOR_ROWS,
  type FloorParams,
  type FloorResult,
  type FloorRow,
  type FloorRowResult,
} from './floor-rows.js';

const SSH = 22;
const CONTROL = 8080;
const UDP_PORT = 62201;
const KNOCKD_SEQ = [7001, 7002, 7003] as const;
/** How long a server or helper may take to start (the machine may be loaded). */
const START_TIMEOUT_MS = 60_000;

interface Setup {
  readonly row: FloorRow;
  readonly pair: NetnsPair;
  readonly probe: RpcChild<FloorProbeOps>;
  readonly froms: readonly string[];
  readonly datagrams: (from: string) => ProbeDatagram[];
  readonly daemon?: DaemonProcess;
  readonly ms: number[];
  readonly rounds: number[];
  readonly attempts: number[];
  readonly failures: string[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Is `tool` an executable on PATH (or in /usr/sbin, where Debian puts the daemons)? */
function has(tool: string): boolean {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin'].filter((d) => d !== '');
  return dirs.some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** A peer program the row needs, or the reason it is skipped. */
export function floorRowMissing(row: FloorRow): string | undefined {
  if (row === 'fwknopd' && !(has('fwknopd') && has('fwknop'))) return 'fwknopd/fwknop not installed';
  if (row === 'knockd' && !has('knockd')) return 'knockd not installed';
  return undefined;
}

/** A node program inside `ns`, ready once it prints `ready`; killed by PID in the scope. */
async function startMinimal(scope: Scope, ns: string, file: string): Promise<void> {
  const path = fileURLToPath(new URL(`./${file}`, import.meta.url));
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', path], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await waitReady(scope, child, file);
}

/**
 * TCP listeners on SSH and CONTROL in `ns`: plain node, no tsx, so that it starts quickly on a loaded machine (the
 * harness agent gives up after 10 s). A connection is accepted and closed; the probe only needs the handshake.
 */
async function startListeners(scope: Scope, ns: string): Promise<void> {
  const code =
    "const net=require('node:net');let n=0;for(const p of [" +
    `${SSH},${CONTROL}` +
    "])net.createServer((s)=>s.destroy()).listen(p,'0.0.0.0',()=>{if(++n===2)process.stdout.write('ready\\n')});";
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  await waitReady(scope, child, 'TCP listeners');
}

/** Kill `child` by PID in the scope; resolve once it printed `ready`. */
async function waitReady(scope: Scope, child: ChildProcess, what: string): Promise<void> {
  scope.defer(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const end = Date.now() + START_TIMEOUT_MS;
  while (!out.includes('ready')) {
    if (child.exitCode !== null || Date.now() > end) throw new Error(`${what} did not start: ${out.trim()}`);
    await sleep(20);
  }
}

async function startKnockd(scope: Scope, pair: NetnsPair, dir: string): Promise<void> {
  const conf = join(dir, 'knockd.conf');
  const log = join(dir, 'knockd.log');
  const rule = (op: string) => `/usr/sbin/iptables ${op} INPUT -s %IP% -p tcp --dport ${SSH} -j ACCEPT`;
  writeFileSync(
    conf,
    [
      '[options]',
      `  LogFile = ${log}`,
      '  Interface = vsrv',
      '[door]',
      `  Sequence = ${KNOCKD_SEQ.map((p) => `${p}:udp`).join(',')}`,
      '  Seq_Timeout = 5',
      `  Start_Command = ${rule('-I')}`,
      '  Cmd_Timeout = 3',
      `  Stop_Command = ${rule('-D')}`,
      '',
    ].join('\n'),
  );
  const child = spawn('ip', ['netns', 'exec', pair.srv, 'knockd', '-c', conf], { stdio: 'ignore' });
  scope.defer(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL'); // by PID; knockd blocks in wait() on SIGTERM
      await gone;
    }
  });
  for (let i = 0; i < 200; i++) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    if (/listening on vsrv/.test(text)) return;
    if (child.exitCode !== null) throw new Error(`knockd exited: ${text.trim()}`);
    await sleep(25);
  }
  throw new Error('knockd did not start');
}

function daemonToml(dir: string, backend: 'nftables' | 'iptables', n: number, fastPath = false): string {
  return [
    `state_dir = "${join(dir, 'state')}"`,
    `[listen]\nport = ${UDP_PORT}\naddress = "0.0.0.0"`,
    `[firewall]\nbackend = "${backend}"\nprotect = ["tcp/${SSH}"]\nfast_path = ${fastPath}`,
    `[grant]\nduration = 3\nmax_duration = 60`,
    BENCH_LIMITS,
    `[replay]\nwindow = 60`,
    `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${SSH}"]\nmax_grants = ${n + 10}`,
    '',
  ].join('\n');
}

async function setUp(row: FloorRow, p: FloorParams, scope: Scope, fwKeys: () => FwknopKeyText): Promise<Setup> {
  const subnet = SUBNETS[row];
  const tag = `speed-${row}`;
  scope.defer(() => removePair(tag));
  const pair = await createPair(tag, { subnet });
  scope.defer(() => pair.cleanup());
  const dir = mkdtempSync(join(tmpdir(), `spak-${tag}-`));
  scope.defer(() => rmSync(dir, { recursive: true, force: true }));
  const froms = Array.from({ length: p.n }, (_, i) => `10.251.${subnet}.${10 + i}`);
  const batch = froms.map((a) => `addr add ${a}/24 dev vcli`).join('\n');
  const added = await pair.exec(pair.cli, ['ip', '-batch', '-'], { input: `${batch}\n` });
  if (added.code !== 0) throw new Error(`${row}: adding client addresses: ${added.stderr.trim()}`);
  await startListeners(scope, pair.srv);
  const dropSsh = async (): Promise<void> => {
    const r = await pair.exec(pair.srv, ['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(SSH), '-j', 'DROP']);
    if (r.code !== 0) throw new Error(`${row}: iptables: ${r.stderr.trim()}`);
  };
  let datagrams: (from: string) => ProbeDatagram[] = () => [{ hex: '00', port: UDP_PORT }];
  let daemon: DaemonProcess | undefined;
  if (row === 'mini-nft') await startMinimal(scope, pair.srv, 'minimal-nft.ts');
  else if (row === 'mini-kernel') await startMinimal(scope, pair.srv, 'minimal-kernel.ts');
  else if (row === 'spa-nft' || row === 'spa-nft-fast' || row === 'spa-nft-b' || row === 'spa-ipt') {
    const key = generateKey();
    writeFileSync(join(dir, 'alice.key'), `${formatKey(key)}\n`, { mode: 0o600 });
    const cfg = join(dir, 'spa-knockd.toml');
    const fast = row === 'spa-nft-fast' || (row === 'spa-nft-b' && p.compareFast === true);
    const toml = daemonToml(dir, row === 'spa-ipt' ? 'iptables' : 'nftables', p.n, fast);
    writeFileSync(cfg, toml, { mode: 0o600 });
    const entry = builtDaemon(row === 'spa-nft-b' && p.compare ? p.compare : DAEMON);
    const d = new DaemonProcess(pair.srv, cfg, { entry, plain: true });
    scope.defer(async () => {
      await d.stop('SIGKILL'); // by PID
    });
    await d.start(START_TIMEOUT_MS);
    daemon = d;
    const access = [{ proto: 'tcp' as const, port: SSH }];
    datagrams = () => [
      { hex: hex(buildPacket(key, { type: 'open', accesses: access, duration: 0 }).bytes), port: UDP_PORT },
    ];
  } else if (row === 'fwknopd') {
    await dropSsh();
    const keys = fwKeys();
    const fw = new FwknopdProcess(pair.srv, { keys, openPorts: [`tcp/${SSH}`], accessTimeout: 3, verbose: false });
    scope.defer(() => fw.stop());
    await fw.start(START_TIMEOUT_MS);
    datagrams = (from) => [
      {
        hex: Buffer.from(fwknopPacket(keys, ['-A', `tcp/${SSH}`, '-a', from], pair.srv4).text, 'latin1').toString(
          'hex',
        ),
        port: UDP_PORT,
      },
    ];
  } else if (row === 'knockd') {
    await dropSsh();
    await startKnockd(scope, pair, dir);
    datagrams = () => KNOCKD_SEQ.map((port) => ({ hex: '00', port }));
  }
  const probePath = fileURLToPath(new URL('./floor-probe-child.ts', import.meta.url));
  const probe = await startRpcChild<FloorProbeOps>(
    [...pair.wrap(pair.cli), process.execPath, '--import', 'tsx', probePath],
    { name: `floor probe (${row})`, cwd: ROOT, readyTimeoutMs: START_TIMEOUT_MS },
  );
  scope.defer(() => probe.kill());
  const warm = await probe.call('warm', { host: pair.srv4, port: CONTROL, from: froms, n: 2 }, 60_000);
  if (!warm.ok) throw new Error(`${row}: ${warm.error ?? 'warm-up failed'}`);
  return {
    row,
    pair,
    probe,
    froms,
    datagrams,
    ...(daemon ? { daemon } : {}),
    ms: [],
    rounds: [],
    attempts: [],
    failures: [],
  };
}

/** Measure the rows, interleaved. Rows whose peer is not installed come back with `skipped`. */
export async function benchFloor(p: FloorParams): Promise<FloorResult> {
  const scope = new Scope();
  let keys: FwknopKeyText | undefined;
  const fwKeys = (): FwknopKeyText => (keys ??= fwknopKeyGen());
  try {
    const setups: Setup[] = [];
    const skipped: FloorRowResult[] = [];
    for (const row of p.rows) {
      checkInterrupted();
      const missing = floorRowMissing(row);
      if (missing) {
        skipped.push({
          row,
          label: FLOOR_LABELS[row],
          stats: stats([]),
          attempts: NaN,
          failures: [],
          skipped: missing,
          samples: [],
          rounds: [],
        });
        continue;
      }
      progress(`floor: setting up ${FLOOR_LABELS[row]} (10.251.${SUBNETS[row]}.0/24)`);
      setups.push(await setUp(row, p, scope, fwKeys));
    }
    progress(`floor: ${p.n} samples per row, interleaved (${setups.map((s) => s.row).join(', ')})`);
    const base = { tcpPort: SSH, intervalMs: p.intervalMs, attemptTimeoutMs: 3, maxMs: 3000, closedCheckMs: 40 };
    for (let i = 0; i < p.n; i++) {
      for (const s of setups) {
        checkInterrupted();
        const from = s.froms[i] as string;
        const req: ProbeSample = {
          ...base,
          host: s.pair.srv4,
          from,
          datagrams: s.datagrams(from),
          closedCheckMs: s.row === 'open' ? 0 : base.closedCheckMs,
        };
        const r = await s.probe.call('sample', req, 10_000);
        if (r.ok && typeof r.ms === 'number') {
          s.ms.push(r.ms);
          s.rounds.push(r.ms);
          s.attempts.push(r.attempts ?? 0);
        } else {
          s.rounds.push(Number.NaN);
          s.failures.push(`sample ${i}: ${r.error ?? '?'}`);
        }
        await sleep(5);
      }
    }
    const daemonLatency = (d: DaemonProcess): Stats =>
      stats(
        d
          .events('grant')
          .map((l) => Number(l['latency_ms']))
          .filter(Number.isFinite),
      );
    const traceOf = (d: DaemonProcess): Record<string, string> | undefined => {
      const by: Record<string, number[]> = {};
      for (const l of d.events('grant'))
        for (const [k, v] of Object.entries((l['trace'] as Record<string, number> | undefined) ?? {}))
          if (k !== 'at') (by[k] ??= []).push(v); // `at` is a clock reading, not a step
      const keys = Object.keys(by);
      return keys.length === 0
        ? undefined
        : Object.fromEntries(keys.map((k) => [k, `${r3(stats(by[k] ?? []).min)}/${r3(stats(by[k] ?? []).median)}`]));
    };
    for (const s of setups) {
      const errs = s.daemon?.events('firewall-error').length ?? 0;
      if (errs > 0) s.failures.push(`${errs} firewall-error log lines`);
    }
    const rows: FloorRowResult[] = setups.map((s) => {
      const trace = s.daemon ? traceOf(s.daemon) : undefined;
      return {
        row: s.row,
        label: FLOOR_LABELS[s.row],
        stats: stats(s.ms),
        attempts: stats(s.attempts).median,
        failures: s.failures,
        samples: s.ms.map(r3),
        rounds: s.rounds,
        ...(s.daemon ? { daemon: daemonLatency(s.daemon) } : {}),
        ...(trace ? { trace } : {}),
      };
    });
    const order = (r: FloorRowResult) => p.rows.indexOf(r.row);
    return {
      n: p.n,
      intervalMs: p.intervalMs,
      compareFast: p.compareFast === true,
      rows: [...rows, ...skipped].sort((a, b) => order(a) - order(b)),
    };
  } finally {
    await scope.close();
  }
}
