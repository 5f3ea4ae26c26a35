/**
 * `npm run bench [-- --quick] [-- --json] [-- --backend nftables|iptables|all]`
 *
 * 1. Verification throughput, in-process on one core, no sockets: a Verifier built as server/daemon.ts builds it
 *    (config parsed by server/config.ts, Spak1Format, ReplayGuard), fed pre-built packets. Median round of several.
 * 2. Knock-to-open latency per firewall backend, for real: a server and a client network namespace (created here and
 *    removed in `finally` and on SIGINT/SIGTERM), the real spa-knockd in the server namespace, real knock packets
 *    sent from the client namespace by one long-lived helper process, real TCP connects.
 *      - daemon side: `latency_ms` of each `"event":"grant"` log line (datagram handed to the daemon → firewall
 *        change committed);
 *      - client side: knock sent → first successful TCP connect from the client namespace.
 *    To explain the figures: each backend's grant() alone (a fresh process in the server namespace, before the daemon
 *    starts, with a table/chain of its own), verification in a fresh process at one packet per 25 ms (a cold JIT, as
 *    in a daemon), and the cost of starting a process on this machine (it dominates the iptables backend).
 *
 * Traffic: none in part 1; in part 2 only between the two namespaces this script creates.
 * Progress goes to stderr; the table (or, with --json, one JSON object) to stdout.
 * @module
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { deriveKeys, type SubKeys } from '../shared/crypto.js';
import { formatKey, generateKey } from '../shared/keys.js';
import { ReplayGuard } from '../shared/replay.js';
import { type KnockRequest, sealPacket } from '../shared/wire.js';
import { parseConfig } from '../server/config.js';
import { Spak1Format } from '../server/formats/spak1.js';
import { ReplayFile } from '../server/replay-file.js';
import { Verifier } from '../server/verify.js';
import { configText } from '../harness/config.js';
import { type NetnsPair, createPair } from '../harness/netns.js';
import { ROOT } from '../harness/run.js';
import { DaemonProcess } from '../harness/daemon-process.js';

const execFileP = promisify(execFile);

// ------------------------------------------------------------------------------------------------ options
type BackendName = 'nftables' | 'iptables';

interface Options {
  readonly quick: boolean;
  readonly json: boolean;
  readonly backends: readonly BackendName[];
}

function parseOptions(): Options {
  let values: { quick?: boolean; json?: boolean; backend?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean' },
        json: { type: 'boolean' },
        backend: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    usage((e as Error).message);
  }
  if (values.help) {
    process.stdout.write('usage: npm run bench [-- --quick] [--json] [--backend nftables|iptables|all]\n');
    process.exit(0);
  }
  const b = values.backend ?? 'all';
  if (b !== 'all' && b !== 'nftables' && b !== 'iptables') usage(`--backend must be nftables, iptables or all (got "${b}")`);
  return {
    quick: values.quick ?? false,
    json: values.json ?? false,
    backends: b === 'all' ? ['nftables', 'iptables'] : [b],
  };
}

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg} (usage: npm run bench [-- --quick] [--json] [--backend nftables|iptables|all])\n`);
  process.exit(2);
}

function die(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(1);
}

// ------------------------------------------------------------------------------------------------ cleanup
/** Cleanup actions, run last-in first-out in `finally` and on SIGINT/SIGTERM. */
const cleanups: (() => Promise<void> | void)[] = [];
let interrupted = false;

function defer(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

async function runCleanups(): Promise<void> {
  for (let fn = cleanups.pop(); fn; fn = cleanups.pop()) {
    try {
      await fn();
    } catch (e) {
      process.stderr.write(`bench: cleanup step failed: ${(e as Error).message}\n`);
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) return;
  interrupted = true;
  process.stderr.write(`\nbench: ${signal}; stopping the daemons and removing the namespaces\n`);
  const hard = setTimeout(() => process.exit(130), 15_000);
  void runCleanups().finally(() => {
    clearTimeout(hard);
    process.exit(130);
  });
}

function checkInterrupted(): void {
  if (interrupted) throw new Error('interrupted');
}

const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------ statistics
interface Stats {
  readonly n: number;
  readonly median: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly min: number;
}

/** Quantile with linear interpolation between closest ranks (sorted input). */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (pos - lo);
}

function stats(xs: readonly number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantile(s, 0.5),
    p90: quantile(s, 0.9),
    p99: quantile(s, 0.99),
    max: s[s.length - 1] ?? NaN,
    min: s[0] ?? NaN,
  };
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;
const roundStats = (s: Stats) => ({ n: s.n, median: r3(s.median), p90: r3(s.p90), p99: r3(s.p99), max: r3(s.max), min: r3(s.min) });

// ------------------------------------------------------------------------------------------------ 1. verification
const SOURCE = '203.0.113.9';
const ACCESS = [{ proto: 'tcp', port: 22 }] as const;

interface VerifyCase {
  readonly name: string;
  readonly clients: number;
  readonly packetsPerRound: number;
  readonly rounds: number;
  /** Median round: packets per second and microseconds per packet. */
  readonly pps: number;
  readonly usPerPacket: number;
  /** Spread over the rounds (µs/packet). */
  readonly usMin: number;
  readonly usMax: number;
}

interface Bench {
  readonly verifier: Verifier;
  readonly keys: readonly SubKeys[];
  readonly now: number;
  readonly close: () => void;
}

/** Build a verifier the way server/daemon.ts does, for `n` clients, optionally with a real replay.log. */
function buildVerifier(n: number, stateDir?: string): Bench {
  const clients = Array.from({ length: n }, (_, i) => ({ name: `client${i}`, key: generateKey(), open: ['tcp/22'] }));
  const config = parseConfig(configText({ protect: ['tcp/22'], duration: 30, clients, ...(stateDir ? { stateDir } : {}) }), 'bench.toml');
  const now = Date.now();
  const windowMs = config.replay.window * 1000;
  const rf = stateDir ? new ReplayFile(config.stateDir) : undefined;
  const replay = new ReplayGuard({
    windowMs,
    initial: rf ? rf.load(now) : [],
    ...(rf ? { persist: (r) => rf.append(r) } : {}),
  });
  const verifier = new Verifier({
    formats: [new Spak1Format(config.clients, windowMs)],
    replay,
    defaultDuration: config.grant.duration,
  });
  // the first call builds the key-id index (3 epochs x n clients HMACs): keep it out of every timed round
  verifier.verify(new Uint8Array(81).fill(1), SOURCE, now);
  return { verifier, keys: config.clients.map((c) => deriveKeys(c.key)), now, close: () => rf?.close() };
}

function sealFor(keys: SubKeys, now: number): Uint8Array {
  const req: KnockRequest = { type: 'open', timestamp: now, accesses: ACCESS, duration: 0 };
  return sealPacket(keys, req, randomBytes(24));
}

/** `count` valid packets with fresh nonces, spread over all the clients. */
function validPackets(b: Bench, count: number): Uint8Array[] {
  const n = b.keys.length;
  return Array.from({ length: count }, (_, i) => sealFor(b.keys[(i * 7919) % n] as SubKeys, b.now));
}

/** Time one round; every verdict is checked (also keeps the work from being optimised away). */
function timeRound(b: Bench, packets: readonly Uint8Array[], expect: string): number {
  let wrong = 0;
  const t0 = process.hrtime.bigint();
  for (const p of packets) {
    const v = b.verifier.verify(p, SOURCE, b.now);
    if ((v.ok ? 'ok' : v.code) !== expect) wrong++;
  }
  const ns = Number(process.hrtime.bigint() - t0);
  if (wrong > 0) throw new Error(`verification bench: ${wrong} of ${packets.length} packets did not give "${expect}"`);
  return ns;
}

interface Subject {
  readonly name: string;
  readonly clients: number;
  readonly bench: Bench;
  /** Round i's packets (valid packets must be fresh every round; all are built before any timing starts). */
  readonly make: (round: number) => Uint8Array[];
}

const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/**
 * `warmup` untimed then `rounds` timed rounds of `perRound` packets for each subject, alternating between the
 * subjects round by round, so drift (the machine, the heap) hits them alike. Reports each subject's median round.
 */
async function measure(subjects: readonly Subject[], perRound: number, warmup: number, rounds: number, expect: string): Promise<VerifyCase[]> {
  const sets = subjects.map((s) => Array.from({ length: warmup + rounds }, (_, i) => s.make(i)));
  const us = subjects.map((): number[] => []);
  for (let i = 0; i < warmup + rounds; i++) {
    subjects.forEach((s, j) => {
      const ns = timeRound(s.bench, sets[j]?.[i] ?? [], expect);
      if (i >= warmup) us[j]?.push(ns / 1000 / perRound);
    });
    await yieldToLoop(); // lets a SIGINT in between rounds
    checkInterrupted();
  }
  return subjects.map((sub, j) => {
    const st = stats(us[j] ?? []);
    return { name: sub.name, clients: sub.clients, packetsPerRound: perRound, rounds, pps: 1e6 / st.median, usPerPacket: st.median, usMin: st.min, usMax: st.max };
  });
}

async function benchVerification(opts: Options): Promise<VerifyCase[]> {
  const valid = opts.quick ? 1500 : 5000;
  const cheap = opts.quick ? 5000 : 20_000;
  const rounds = opts.quick ? 5 : 9;
  const warmup = 2;
  {
    // JIT warm-up of every path on a throwaway verifier, so the first case measured is not the one that pays for it
    progress('verification warm-up');
    const b = buildVerifier(10);
    const good = validPackets(b, 3 * valid);
    const bad = good.slice(0, valid).map((p) => {
      const q = p.slice();
      q[40]! ^= 1;
      return q;
    });
    const stranger = deriveKeys(generateKey());
    const unknown = Array.from({ length: valid }, () => sealFor(stranger, b.now));
    for (let i = 0; i < 2; i++) {
      timeRound(b, good.slice(i * valid, (i + 1) * valid), 'ok');
      timeRound(b, good.slice(0, valid), 'replay');
      timeRound(b, bad, 'mac');
      timeRound(b, unknown, 'unknown-key');
      timeRound(b, Array.from({ length: valid }, () => randomBytes(40)), 'size');
      await yieldToLoop();
      checkInterrupted();
    }
  }
  progress('verification, 10 and 1000 clients');
  const replayDir = mkdtempSync(join(tmpdir(), 'spak-bench-replay-'));
  defer(() => rmSync(replayDir, { recursive: true, force: true }));
  const strangers = Array.from({ length: 64 }, () => deriveKeys(generateKey()));
  const per = [10, 1000].map((n) => {
    const b = buildVerifier(n);
    // one fixed set for each stateless case: rejected before the replay guard, so reusable across rounds
    const base = validPackets(b, cheap);
    const tampered = base.map((p) => {
      const q = p.slice();
      q[33 + 3]! ^= 1; // one ciphertext byte: the HMAC fails
      return q;
    });
    const unknown = base.map((_, i) => sealFor(strangers[i % strangers.length] as SubKeys, b.now));
    const short = base.map(() => new Uint8Array(randomBytes(40)));
    const accepted = validPackets(b, valid);
    for (const p of accepted) b.verifier.verify(p, SOURCE, b.now); // from now on they are replays
    return { n, b, tampered, unknown, short, accepted };
  });
  // as the daemon runs it: every accepted packet is also appended to <state_dir>/replay.log with write(2)
  const withLog = buildVerifier(10, replayDir);
  const subjects = (name: string, make: (p: (typeof per)[number]) => Uint8Array[]): Subject[] =>
    per.map((p) => ({ name, clients: p.n, bench: p.b, make: () => make(p) }));
  const out: VerifyCase[] = [];
  out.push(
    ...(await measure(
      [
        ...per.map((p) => ({ name: 'valid (fresh nonce)', clients: p.n, bench: p.b, make: () => validPackets(p.b, valid) })),
        { name: 'valid + replay.log write', clients: 10, bench: withLog, make: () => validPackets(withLog, valid) },
      ],
      valid,
      warmup,
      rounds,
      'ok',
    )),
  );
  out.push(...(await measure(subjects('replayed (already accepted)', (p) => p.accepted), valid, warmup, rounds, 'replay')));
  out.push(...(await measure(subjects('tampered (MAC fails)', (p) => p.tampered), cheap, warmup, rounds, 'mac')));
  out.push(...(await measure(subjects('unknown key id', (p) => p.unknown), cheap, warmup, rounds, 'unknown-key')));
  out.push(...(await measure(subjects('wrong size (40 bytes)', (p) => p.short), cheap, warmup, rounds, 'size')));
  for (const p of per) p.b.close();
  withLog.close();
  return out;
}

interface ColdVerify {
  readonly n: number;
  readonly gapMs: number;
  readonly firstUs: number;
  /** Packets 2..n. */
  readonly rest: Stats;
}

/** A valid packet every GAP_MS ms to a verifier in a fresh process: what the daemon's JIT sees between knocks. */
async function benchColdVerify(opts: Options): Promise<ColdVerify> {
  const n = opts.quick ? 60 : 200;
  progress(`verification in a fresh process, one valid packet every ${GAP_MS} ms (${n} packets)`);
  const dir = mkdtempSync(join(tmpdir(), 'spak-bench-cold-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  const probe = await startHelper(undefined, dir, 'probe.mjs', PROBE_SOURCE);
  defer(() => probe.kill());
  const r = await probe.call({ op: 'verifyCold', n, gapMs: GAP_MS }, n * GAP_MS + 30_000);
  await probe.kill();
  const us = r.samples?.['us'];
  if (!r.ok || !us) throw new Error(`cold verification probe: ${r.error ?? '?'}`);
  return { n, gapMs: GAP_MS, firstUs: us[0] ?? NaN, rest: stats(us.slice(1)) };
}

// ------------------------------------------------------------------------------------------------ process start
async function processStartCost(count: number): Promise<Stats> {
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await execFileP('true');
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return stats(ms);
}

// ------------------------------------------------------------------------------------------------ 2. the knocker
/**
 * The client-side helper, plain ESM run once inside the client namespace (`node --import tsx knocker.mjs`): it
 * imports the real client code (client/request.ts buildPacket) and speaks JSON lines over stdio. Timing happens
 * inside it, so the stdio round trips to this process are not part of any figure.
 */
const KNOCKER_SOURCE = String.raw`
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';
const { buildPacket } = await import(new URL('client/request.ts', process.argv[2]).href);
const { parseKey } = await import(new URL('shared/keys.ts', process.argv[2]).href);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let key, host, udpPort, tcpPort;
const udp = dgram.createSocket('udp4');
const packet = (type) => buildPacket(key, { type, accesses: [{ proto: 'tcp', port: tcpPort }], duration: 0 }).bytes;
const send = (bytes) => new Promise((res, rej) => udp.send(bytes, udpPort, host, (e) => (e ? rej(e) : res())));

/** One TCP connect attempt on a fresh socket: { ok, error?, ms }. */
function attempt(port, timeoutMs) {
  return new Promise((resolve) => {
    const t0 = now();
    const s = net.connect({ host, port });
    const done = (r) => { clearTimeout(t); s.destroy(); resolve({ ...r, ms: now() - t0 }); };
    const t = setTimeout(() => done({ ok: false, error: 'timeout' }), timeoutMs);
    s.once('connect', () => done({ ok: true }));
    s.once('error', (e) => done({ ok: false, error: e.code || e.message }));
  });
}

/**
 * Check the port is closed, send one open knock, then start a connect attempt on a fresh socket every intervalMs
 * (each given up after attemptTimeoutMs: a SYN dropped before the rule is in would only be retried after 1 s)
 * until one connects. Resolves with the time from the send to that connect.
 */
async function e2e(m) {
  const pre = await attempt(tcpPort, m.closedCheckMs);
  if (pre.ok) return { ok: false, error: 'the port was already open before the knock' };
  if (pre.error !== 'timeout') return { ok: false, error: 'closed-check failed with ' + pre.error + ' (expected a dropped SYN)' };
  const bytes = packet('open');
  return await new Promise((resolve) => {
    const socks = new Set();
    let attempts = 0;
    let finished = false;
    let next;
    const finish = (r) => {
      if (finished) return;
      finished = true;
      clearTimeout(next);
      for (const s of socks) s.destroy();
      resolve(r);
    };
    const t0 = now();
    const launch = () => {
      if (finished) return;
      if (now() - t0 > m.maxMs || attempts >= m.maxAttempts) return finish({ ok: false, error: 'no connect within ' + m.maxMs + ' ms', attempts });
      attempts++;
      const s = net.connect({ host, port: tcpPort });
      socks.add(s);
      const drop = () => { clearTimeout(t); socks.delete(s); s.destroy(); };
      const t = setTimeout(drop, m.attemptTimeoutMs);
      s.once('connect', () => { clearTimeout(t); finish({ ok: true, ms: now() - t0, attempts }); });
      s.once('error', drop);
      next = setTimeout(launch, m.intervalMs);
    };
    udp.send(bytes, udpPort, host, (e) => { if (e) finish({ ok: false, error: 'send: ' + e.message }); });
    launch();
  });
}

async function handle(m) {
  switch (m.op) {
    case 'init': {
      const k = parseKey(m.key);
      if (!k.ok) return { ok: false, error: k.reason };
      key = k.key; host = m.host; udpPort = m.udpPort; tcpPort = m.tcpPort;
      return { ok: true };
    }
    case 'knock':
      await send(packet(m.type));
      return { ok: true };
    case 'probe':
      return await attempt(m.port, m.timeoutMs);
    case 'burst': {
      // n open knocks, each followed gapMs later by a close, gapMs between any two packets
      let sent = 0;
      for (let i = 0; i < m.n; i++) {
        await send(packet('open')); sent++;
        await sleep(m.gapMs);
        await send(packet('close')); sent++;
        await sleep(m.gapMs);
      }
      return { ok: true, sent };
    }
    case 'e2e':
      return await e2e(m);
    default:
      return { ok: false, error: 'unknown op' };
  }
}
out({ id: 0, ok: true });
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  handle(m).then((r) => out({ ...r, id: m.id }), (e) => out({ id: m.id, ok: false, error: String((e && e.message) || e) }));
}).on('close', () => process.exit(0));
`;

interface HelperReply {
  readonly id: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly ms?: number;
  readonly attempts?: number;
  readonly sent?: number;
  readonly samples?: Record<string, number[]>;
}

interface Helper {
  call(m: Record<string, unknown>, timeoutMs: number): Promise<HelperReply>;
  kill(): Promise<void>;
}

/**
 * Write `source` to `dir/name` and run it with `node --import tsx` (inside `ns` if given, through `ip netns exec`,
 * which execs node: the child PID is the helper itself). It gets ROOT's file URL as its argument.
 */
async function startHelper(ns: string | undefined, dir: string, name: string, source: string): Promise<Helper> {
  const file = join(dir, name);
  writeFileSync(file, source);
  const nodeArgv = [process.execPath, '--import', 'tsx', file, pathToFileURL(ROOT).href];
  const argv = ns ? ['ip', 'netns', 'exec', ns, ...nodeArgv] : nodeArgv;
  const child: ChildProcessWithoutNullStreams = spawn(argv[0] as string, argv.slice(1), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  let alive = true;
  let stderr = '';
  let buf = '';
  let nextId = 1;
  const waiting = new Map<number, (r: HelperReply) => void>();
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        const msg = JSON.parse(line) as HelperReply;
        const w = waiting.get(msg.id);
        waiting.delete(msg.id);
        w?.(msg);
      } catch {
        /* not ours */
      }
    }
  });
  child.stdin.on('error', () => undefined);
  child.on('close', (code) => {
    alive = false;
    for (const w of waiting.values()) w({ id: -1, ok: false, error: `${name} exited (${code}): ${stderr.trim()}` });
    waiting.clear();
  });
  const wait = (id: number, timeoutMs: number) =>
    new Promise<HelperReply>((resolve) => {
      const t = setTimeout(() => {
        waiting.delete(id);
        resolve({ id, ok: false, error: `${name} did not answer within ${timeoutMs} ms` });
      }, timeoutMs);
      waiting.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
    });
  const ready = await wait(0, 15_000);
  const helper: Helper = {
    call: (m, timeoutMs) => {
      if (!alive) return Promise.resolve({ id: -1, ok: false, error: `${name} exited: ${stderr.trim()}` });
      const id = nextId++;
      const p = wait(id, timeoutMs);
      child.stdin.write(`${JSON.stringify({ ...m, id })}\n`);
      return p;
    },
    kill: async () => {
      if (!alive) return;
      child.kill('SIGKILL'); // by PID
      await exited;
    },
  };
  if (!ready.ok) {
    await helper.kill();
    throw new Error(`${name} did not start${ns ? ` in ${ns}` : ''}: ${ready.error ?? ''} ${stderr.trim()}`);
  }
  return helper;
}

/**
 * The component probe, plain ESM run in a fresh process: the firewall backend alone (in the server namespace, before
 * the daemon starts, with a table/chain of its own that it removes again), and the verifier in a process whose JIT
 * is as cold as a daemon's that sees a knock now and then.
 */
const PROBE_SOURCE = String.raw`
import { randomBytes } from 'node:crypto';
import readline from 'node:readline';
const root = process.argv[2];
const load = (p) => import(new URL(p, root).href);
const { NftablesBackend } = await load('server/firewall/nftables.ts');
const { IptablesBackend } = await load('server/firewall/iptables.ts');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** grant() then revoke() of one element, n times per gap (after 2 unrecorded), on the backend alone. */
async function fw(m) {
  const b = m.backend === 'nftables' ? new NftablesBackend({ table: 'spak_probe' }) : new IptablesBackend({ chain: 'SPAK_PROBE' });
  const e = { family: 4, address: m.address, access: { proto: 'tcp', port: 22 } };
  const samples = {};
  try {
    await b.install({ protect: [{ proto: 'tcp', port: 22 }] });
    for (const gap of m.gaps) {
      const g = [];
      for (let i = 0; i < m.n + 2; i++) {
        if (gap) await sleep(gap);
        const t = now();
        await b.grant([{ ...e, expiresAt: Date.now() + 3000 }], Date.now());
        if (i >= 2) g.push(now() - t);
        if (gap) await sleep(gap);
        await b.revoke([e]);
      }
      samples['gap' + gap] = g;
    }
  } finally {
    await b.uninstall().catch(() => {});
    await b.close();
  }
  return { ok: true, samples };
}

/** The verifier as the daemon builds it, fed one valid packet every gapMs ms in this fresh process. */
async function verifyCold(m) {
  const { deriveKeys } = await load('shared/crypto.ts');
  const { generateKey } = await load('shared/keys.ts');
  const { ReplayGuard } = await load('shared/replay.ts');
  const { sealPacket } = await load('shared/wire.ts');
  const { parseConfig } = await load('server/config.ts');
  const { Spak1Format } = await load('server/formats/spak1.ts');
  const { Verifier } = await load('server/verify.ts');
  const { configText } = await load('harness/config.ts');
  const config = parseConfig(configText({ protect: ['tcp/22'], duration: 3, clients: [{ name: 'alice', key: generateKey(), open: ['tcp/22'] }] }), 'probe.toml');
  const windowMs = config.replay.window * 1000;
  const v = new Verifier({ formats: [new Spak1Format(config.clients, windowMs)], replay: new ReplayGuard({ windowMs }), defaultDuration: config.grant.duration });
  const keys = deriveKeys(config.clients[0].key);
  const us = [];
  for (let i = 0; i < m.n; i++) {
    const ts = Date.now();
    const p = sealPacket(keys, { type: 'open', timestamp: ts, accesses: [{ proto: 'tcp', port: 22 }], duration: 0 }, randomBytes(24));
    await sleep(m.gapMs);
    const t = now();
    const r = v.verify(p, '198.51.100.7', ts);
    us.push((now() - t) * 1000);
    if (!r.ok) return { ok: false, error: 'verify: ' + r.code };
  }
  return { ok: true, samples: { us } };
}

async function handle(m) {
  if (m.op === 'fw') return await fw(m);
  if (m.op === 'verifyCold') return await verifyCold(m);
  return { ok: false, error: 'unknown op' };
}
out({ id: 0, ok: true });
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  handle(m).then((r) => out({ ...r, id: m.id }), (e) => out({ id: m.id, ok: false, error: String((e && e.message) || e) }));
}).on('close', () => process.exit(0));
`;

// ------------------------------------------------------------------------------------------------ 2. per backend
const UDP_PORT = 62201;
const SSH = 22;
const CONTROL = 8080; // not protected: reachable at all times (positive control)
const DURATION = 3; // s
const GAP_MS = 25; // between any two knocks of the burst
const E2E = { intervalMs: 1, attemptTimeoutMs: 3, maxMs: 2000, maxAttempts: 3000, closedCheckMs: 60 };

interface BackendResult {
  readonly backend: BackendName;
  /** latency_ms of the grant lines of the burst. */
  readonly daemon: Stats;
  /** latency_ms of the very first grant (warm-up, excluded above: the nft backend starts `nft -i` for it). */
  readonly firstGrantMs: number;
  /** Client side: knock sent → first TCP connect. */
  readonly e2e: Stats;
  /** Connect attempts the client side needed (median). */
  readonly e2eAttempts: number;
  /** latency_ms of the grants of the end-to-end samples. */
  readonly e2eDaemon: Stats;
  /** The backend's grant() alone, in a fresh process in the namespace: back to back, and after GAP_MS idle. */
  readonly fwAlone: { readonly backToBack: Stats; readonly afterIdle: Stats };
  readonly rejects: Record<string, number>;
  readonly failures: readonly string[];
  readonly samples: { readonly daemon: number[]; readonly e2e: number[] };
}

async function benchBackend(backend: BackendName, opts: Options): Promise<BackendResult> {
  const nft = backend === 'nftables';
  const tag = nft ? 'bench-nft' : 'bench-ipt';
  const subnet = nft ? 41 : 42;
  const knocks = opts.quick ? 30 : 200;
  const samples = opts.quick ? 10 : 50;
  const fwRuns = opts.quick ? 15 : 40;
  const local: (() => Promise<void> | void)[] = [];
  const localDefer = (fn: () => Promise<void> | void) => {
    local.push(fn);
    defer(fn);
  };
  const runLocal = async () => {
    for (let fn = local.pop(); fn; fn = local.pop()) {
      const i = cleanups.lastIndexOf(fn);
      if (i >= 0) cleanups.splice(i, 1);
      try {
        await fn();
      } catch (e) {
        process.stderr.write(`bench: cleanup step failed: ${(e as Error).message}\n`);
      }
    }
  };

  try {
    progress(`${backend}: namespaces ${tag}-srv/-cli (10.251.${subnet}.0/24), daemon, helpers`);
    // by name first: also covers an interruption while createPair is still running
    localDefer(async () => {
      for (const ns of [`spak-${tag}-srv`, `spak-${tag}-cli`]) await execFileP('ip', ['netns', 'del', ns]).catch(() => undefined);
    });
    const pair: NetnsPair = await createPair(tag, { subnet });
    localDefer(() => pair.cleanup());
    checkInterrupted();
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(SSH);
    await srv.listenTcp(CONTROL);
    const dir = mkdtempSync(join(tmpdir(), `spak-${tag}-`));
    localDefer(() => rmSync(dir, { recursive: true, force: true }));

    // the firewall change alone, from a fresh node process in the server namespace (as the daemon runs), before the
    // daemon starts; its own table/chain, removed again; the address is never used for traffic
    progress(`${backend}: firewall change alone (grant via the backend, ${fwRuns} x back to back and ${fwRuns} x after ${GAP_MS} ms idle)`);
    const probe = await startHelper(pair.srv, dir, 'probe.mjs', PROBE_SOURCE);
    localDefer(() => probe.kill());
    const fwr = await probe.call({ op: 'fw', backend, address: `10.251.${subnet}.99`, n: fwRuns, gaps: [0, GAP_MS] }, 120_000);
    await probe.kill();
    if (!fwr.ok || !fwr.samples) throw new Error(`${backend}: firewall probe: ${fwr.error ?? '?'}`);
    const fwAlone = { backToBack: stats(fwr.samples['gap0'] ?? []), afterIdle: stats(fwr.samples[`gap${GAP_MS}`] ?? []) };
    checkInterrupted();
    const keyText = formatKey(generateKey());
    writeFileSync(join(dir, 'alice.key'), `${keyText}\n`, { mode: 0o600 });
    const cfg = join(dir, 'spa-knockd.toml');
    writeFileSync(
      cfg,
      [
        `state_dir = "${join(dir, 'state')}"`,
        `[listen]\nport = ${UDP_PORT}\naddress = "::"`,
        `[firewall]\nbackend = "${backend}"\nprotect = ["tcp/${SSH}"]\ntable = "${nft ? 'spak_bench' : 'SPAK_BENCH'}"`,
        `[grant]\nduration = ${DURATION}\nmax_duration = 60`,
        `[replay]\nwindow = 60`,
        `[log]\nreject_summary_interval = 1`,
        `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${SSH}"]`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const daemon = new DaemonProcess(pair.srv, cfg);
    localDefer(async () => {
      await daemon.stop('SIGKILL');
    });
    await daemon.start();
    checkInterrupted();
    const knocker = await startHelper(pair.cli, dir, 'knocker.mjs', KNOCKER_SOURCE);
    localDefer(() => knocker.kill());
    const init = await knocker.call({ op: 'init', key: keyText, host: pair.srv4, udpPort: UDP_PORT, tcpPort: SSH }, 5000);
    if (!init.ok) throw new Error(`knock helper: ${init.error ?? '?'}`);

    // the gate is really there, and the path is really up
    const control = await knocker.call({ op: 'probe', port: CONTROL, timeoutMs: 1000 }, 5000);
    if (!control.ok) throw new Error(`${backend}: the unprotected control port ${CONTROL} is not reachable: ${control.error ?? '?'}`);
    const closed = await knocker.call({ op: 'probe', port: SSH, timeoutMs: 200 }, 5000);
    if (closed.ok || closed.error !== 'timeout') throw new Error(`${backend}: tcp/${SSH} is not closed before any knock (${closed.ok ? 'connected' : closed.error ?? '?'})`);

    const grantAfter = (from: number, timeoutMs = 5000) => daemon.waitFor((l) => l.event === 'grant', timeoutMs, from);
    const revokeAfter = (from: number, timeoutMs = 5000) => daemon.waitFor((l) => l.event === 'revoke', timeoutMs, from);
    const knock = async (type: 'open' | 'close') => {
      const r = await knocker.call({ op: 'knock', type }, 5000);
      if (!r.ok) throw new Error(`knock: ${r.error ?? '?'}`);
    };

    // warm-up: the first grant (the nft backend starts its long-lived `nft -i` here), then closed again
    let mark = daemon.lines.length;
    await knock('open');
    const first = await grantAfter(mark);
    mark = daemon.lines.length;
    await knock('close');
    await revokeAfter(mark);
    checkInterrupted();

    // daemon side: N open knocks, each closed again, GAP_MS between any two packets
    progress(`${backend}: ${knocks} knocks (open, then close), ${GAP_MS} ms apart`);
    mark = daemon.lines.length;
    const burst = await knocker.call({ op: 'burst', n: knocks, gapMs: GAP_MS }, knocks * GAP_MS * 4 + 30_000);
    if (!burst.ok) throw new Error(`burst: ${burst.error ?? '?'}`);
    const end = Date.now() + 10_000;
    while ((daemon.events('grant', mark).length < knocks || daemon.events('revoke', mark).length < knocks) && Date.now() < end) await sleep(20);
    const grants = daemon.events('grant', mark);
    const failures: string[] = [];
    if (grants.length < knocks) failures.push(`${backend}: only ${grants.length} of ${knocks} burst knocks were granted`);
    const lat = grants.map((l) => Number(l.latency_ms)).filter((x) => Number.isFinite(x));
    checkInterrupted();

    // client side: knock → first TCP connect, each sample starting from a checked closed port
    progress(`${backend}: ${samples} end-to-end samples (knock → TCP connect)`);
    const e2eMs: number[] = [];
    const e2eAttempts: number[] = [];
    const e2eDaemon: number[] = [];
    for (let i = 0; i < samples; i++) {
      checkInterrupted();
      mark = daemon.lines.length;
      const r = await knocker.call({ op: 'e2e', ...E2E }, E2E.maxMs + 5000);
      if (!r.ok || r.ms === undefined) {
        failures.push(`${backend}: end-to-end sample ${i}: ${r.error ?? '?'}`);
      } else {
        e2eMs.push(r.ms);
        e2eAttempts.push(r.attempts ?? 0);
      }
      const g = await grantAfter(mark).catch(() => undefined);
      if (g) e2eDaemon.push(Number(g.latency_ms));
      mark = daemon.lines.length;
      await knock('close');
      await revokeAfter(mark);
    }

    await sleep(1200); // one reject summary interval, so a reject would show
    const rejects: Record<string, number> = {};
    for (const l of daemon.events('rejects')) {
      for (const [k, v] of Object.entries(l.by as Record<string, number>)) rejects[k] = (rejects[k] ?? 0) + v;
    }
    const errors = daemon.events('firewall-error');
    if (errors.length > 0) failures.push(`${backend}: ${errors.length} firewall-error log lines`);
    return {
      backend,
      daemon: stats(lat),
      firstGrantMs: Number(first.latency_ms),
      e2e: stats(e2eMs),
      e2eAttempts: stats(e2eAttempts).median,
      e2eDaemon: stats(e2eDaemon),
      fwAlone,
      rejects,
      failures,
      samples: { daemon: lat.map(r3), e2e: e2eMs.map(r3) },
    };
  } finally {
    await runLocal();
  }
}

// ------------------------------------------------------------------------------------------------ prerequisites
function onPath(tool: string): boolean {
  const dirs = (process.env['PATH'] ?? '').split(delimiter);
  for (const d of [...dirs, '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (!d) continue;
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      /* next */
    }
  }
  return false;
}

function checkPrerequisites(opts: Options): void {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    die('needs root (it creates network namespaces and firewall rules inside them): sudo npm run bench');
  }
  const need: [string, string][] = [['ip', 'apt-get install -y iproute2']];
  if (opts.backends.includes('nftables')) need.push(['nft', 'apt-get install -y nftables']);
  if (opts.backends.includes('iptables')) {
    for (const t of ['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore']) need.push([t, 'apt-get install -y iptables']);
  }
  const missing = need.filter(([t]) => !onPath(t));
  if (missing.length > 0) die(`${missing.map(([t]) => t).join(', ')} not found (${[...new Set(missing.map(([, h]) => h))].join('; ')})`);
}

async function toolVersion(argv: readonly string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(argv[0] as string, argv.slice(1));
    return stdout.trim().split('\n')[0] ?? '?';
  } catch {
    return 'not available';
  }
}

// ------------------------------------------------------------------------------------------------ report
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const thousands = (x: number) => Math.round(x).toLocaleString('en-US');

function table(rows: readonly (readonly string[])[], right: readonly boolean[]): string {
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  return rows
    .map((r, i) => {
      const line = r.map((cell, c) => (right[c] ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0))).join('  ');
      return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
    })
    .join('\n');
}

interface Report {
  readonly machine: Record<string, string | number>;
  readonly options: { quick: boolean; backends: readonly BackendName[] };
  readonly verification: readonly VerifyCase[];
  readonly coldVerify: ColdVerify;
  readonly processStart: Stats;
  readonly latency: readonly BackendResult[];
  readonly elapsedS: number;
}

function printTable(r: Report): void {
  const m = r.machine;
  const out: string[] = [];
  out.push(`spa-knock bench${r.options.quick ? ' (--quick)' : ''}: ${m['cpus']} cores (${m['cpu']}), Node ${m['node']}, kernel ${m['kernel']}`);
  out.push(`${m['nft']}; ${m['iptables']}; load average at start ${m['loadavg_at_start']}`);
  out.push('');
  const v = r.verification[0];
  out.push(`1. Verification, in-process, one core (median of ${v?.rounds ?? '?'} rounds after 2 warm-up rounds)`);
  out.push(
    table(
      [
        ['case', 'clients', 'packets/round', 'packets/s', 'µs/packet', 'µs min..max'],
        ...r.verification.map((c) => [
          c.name,
          String(c.clients),
          String(c.packetsPerRound),
          thousands(c.pps),
          f2(c.usPerPacket),
          `${f2(c.usMin)}..${f2(c.usMax)}`,
        ]),
      ],
      [false, true, true, true, true, true],
    ),
  );
  const cv = r.coldVerify;
  out.push(
    `   valid packet in a fresh process, one every ${cv.gapMs} ms (as a daemon sees knocks; JIT cold): ` +
      `first ${f1(cv.firstUs)} µs, then median ${f1(cv.rest.median)} µs, p90 ${f1(cv.rest.p90)} µs (n=${cv.rest.n})`,
  );
  out.push('');
  out.push('2. Knock to open, real daemon in a network namespace, real firewall (ms)');
  const rows: string[][] = [['backend', 'figure', 'n', 'median', 'p90', 'p99', 'max']];
  for (const b of r.latency) {
    const s = b.daemon;
    rows.push([b.backend, 'daemon: datagram → firewall committed', String(s.n), f2(s.median), f2(s.p90), f2(s.p99), f2(s.max)]);
    const e = b.e2e;
    rows.push([b.backend, 'client: knock sent → TCP connect', String(e.n), f2(e.median), f2(e.p90), f2(e.p99), f2(e.max)]);
    const d = b.e2eDaemon;
    rows.push([b.backend, '  (daemon side of those samples)', String(d.n), f2(d.median), f2(d.p90), f2(d.p99), f2(d.max)]);
    rows.push([b.backend, 'first grant after start (cold)', '1', f2(b.firstGrantMs), '', '', '']);
    const fb = b.fwAlone.backToBack;
    rows.push([b.backend, 'backend grant() alone, back to back', String(fb.n), f2(fb.median), f2(fb.p90), f2(fb.p99), f2(fb.max)]);
    const fi = b.fwAlone.afterIdle;
    rows.push([b.backend, `backend grant() alone, after ${GAP_MS} ms idle`, String(fi.n), f2(fi.median), f2(fi.p90), f2(fi.p99), f2(fi.max)]);
  }
  out.push(table(rows, [false, false, true, true, true, true, true]));
  out.push(
    `   client side: a fresh TCP connect attempt every ${E2E.intervalMs} ms (each dropped after ${E2E.attemptTimeoutMs} ms), ` +
      `so it reads up to ~${E2E.intervalMs} ms high; median attempts: ${r.latency.map((b) => `${b.backend} ${b.e2eAttempts}`).join(', ')}`,
  );
  const rej = r.latency.map((b) => `${b.backend} ${JSON.stringify(b.rejects)}`).join(', ');
  out.push(`   rejected packets during the runs: ${rej}`);
  out.push('');
  const p = r.processStart;
  out.push(`3. Starting a process (execFile('true'), ${p.n} runs): median ${f2(p.median)} ms, p90 ${f2(p.p90)} ms, max ${f2(p.max)} ms`);
  out.push('');
  out.push(`total ${r.elapsedS.toFixed(1)} s`);
  const failures = r.latency.flatMap((b) => b.failures);
  for (const f of failures) out.push(`WARNING: ${f}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

function jsonReport(r: Report): unknown {
  return {
    machine: r.machine,
    options: r.options,
    verification: r.verification.map((c) => ({
      case: c.name,
      clients: c.clients,
      packets_per_round: c.packetsPerRound,
      rounds: c.rounds,
      packets_per_s: Math.round(c.pps),
      us_per_packet: r3(c.usPerPacket),
      us_per_packet_min: r3(c.usMin),
      us_per_packet_max: r3(c.usMax),
    })),
    verification_cold_us: { every_ms: r.coldVerify.gapMs, first: r3(r.coldVerify.firstUs), rest: roundStats(r.coldVerify.rest) },
    process_start_ms: roundStats(r.processStart),
    latency_ms: Object.fromEntries(
      r.latency.map((b) => [
        b.backend,
        {
          daemon: roundStats(b.daemon),
          end_to_end: { ...roundStats(b.e2e), attempts_median: b.e2eAttempts, attempt_interval_ms: E2E.intervalMs, attempt_timeout_ms: E2E.attemptTimeoutMs },
          end_to_end_daemon_side: roundStats(b.e2eDaemon),
          first_grant_cold: r3(b.firstGrantMs),
          backend_grant_alone: { back_to_back: roundStats(b.fwAlone.backToBack), after_idle: roundStats(b.fwAlone.afterIdle), idle_ms: GAP_MS },
          samples: b.samples,
          rejects: b.rejects,
          failures: b.failures,
        },
      ]),
    ),
    elapsed_s: r3(r.elapsedS),
  };
}

// ------------------------------------------------------------------------------------------------ main
async function main(): Promise<void> {
  const opts = parseOptions();
  checkPrerequisites(opts);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = Date.now();
  const machine = {
    cpus: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? '?',
    node: process.version,
    kernel: release(),
    loadavg_at_start: loadavg().map((x) => x.toFixed(2)).join(' '),
    nft: await toolVersion(['nft', '--version']),
    iptables: await toolVersion(['iptables', '--version']),
  };
  try {
    // first, while this process is still small (fork cost grows with the parent's memory)
    progress('process start cost');
    const processStart = await processStartCost(20);
    const verification = await benchVerification(opts);
    checkInterrupted();
    const coldVerify = await benchColdVerify(opts);
    checkInterrupted();
    const latency: BackendResult[] = [];
    for (const b of opts.backends) {
      checkInterrupted();
      latency.push(await benchBackend(b, opts));
    }
    const report: Report = { machine, options: { quick: opts.quick, backends: opts.backends }, verification, coldVerify, processStart, latency, elapsedS: (Date.now() - t0) / 1000 };
    if (opts.json) process.stdout.write(`${JSON.stringify(jsonReport(report))}\n`);
    else printTable(report);
    if (latency.some((b) => b.failures.length > 0)) process.exitCode = 1;
  } finally {
    await runCleanups();
  }
}

main().then(
  () => {
    if (!interrupted) process.exit(process.exitCode ?? 0);
  },
  async (e: unknown) => {
    if (interrupted) return; // the signal handler cleans up and exits
    await runCleanups();
    die((e as Error).message.split('\n')[0] ?? String(e));
  },
);
