/**
 * Network-namespace plumbing for tests that need a real kernel (firewall backends, end-to-end daemon tests).
 * Everything happens inside namespaces this helper creates; nothing touches the host's root namespace firewall.
 *
 * ```ts
 * if (!requireNetns(['nft'])) return;        // not root, or a tool missing: a FAILING test says what and how to fix
 * //   (netnsSkip(['nft']) does the same and returns false or the reason, for a `skip` option)
 * const pair = await createPair('fwt-nft', { subnet: 11 });
 * //   pair.srv / pair.cli      namespace names: 'spak-fwt-nft-<pid>-srv', 'spak-fwt-nft-<pid>-cli' (the pid makes two
 * //                            runs at once on one machine safe; leftovers of dead pids are removed first)
 * //   pair.srv4 / pair.cli4    '10.251.11.1' / '10.251.11.2'          (veth 'vsrv' <-> 'vcli', /24)
 * //   pair.srv6 / pair.cli6    'fd00:5a4b:0:b::1' / 'fd00:5a4b:0:b::2' (/64, nodad)
 * //   pair.wrap(ns)            ['ip', 'netns', 'exec', ns]  (a backend's `wrap` option)
 * //   pair.exec(ns, argv, {input?, timeoutMs?}) -> {code, stdout, stderr}   (never a shell string)
 * //   pair.cleanup()           stops agents, deletes both namespaces (idempotent; call it in after())
 * const srv = await pair.agent(pair.srv);     // harness/agent.ts, long-lived inside the namespace (JSON over stdio)
 * await srv.listenTcp(2201);                  // TCP echo server on [::]:2201 (dual stack: v4 and v6)
 * await srv.listenUdp(2253);                  // UDP echo server on [::]:2253 (dual stack)
 * const cli = await pair.agent(pair.cli);
 * await cli.tcpConnect(pair.srv4, 2201, 400)  // -> { ok, error?, ms }: connect + one echo round trip
 * await cli.udpProbe(pair.srv6, 2253, 400)    // -> { ok, error?, ms }: one datagram + its echo
 * await cli.udpSend(pair.srv4, 62201, hex)    // these bytes as one datagram (optional 4th argument: source address)
 * const held = await cli.hold(pair.srv4, 2201, 400);  // open a connection and keep it
 * await held.ping(400)                        // -> true if it still echoes; held.close() ends it
 * await tcpConnect(pair.cli, pair.srv4, 2201, 400)    // one-shot version (spawns node in the namespace, slower)
 * ```
 *
 * `subnet` (0..255) picks the addresses, so test files running in parallel each use their own (and their own tag).
 * @module
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { run, type RunResult } from '../server/firewall/process.js';
import type { AgentOps } from './agent.js';
import { missingPrerequisites } from './prerequisites.js';
import { type RpcReply, type RpcResult, startRpcChild } from './stdio-rpc.js';

export interface PairOptions {
  /** Third octet of 10.251.X.0/24 and the 4th group of fd00:5a4b:0:X::/64. Default 0. */
  readonly subnet?: number;
}

export interface ExecOptions {
  readonly input?: string;
  readonly timeoutMs?: number;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly error?: string;
  /** Elapsed ms (connect + echo, or until failure). */
  readonly ms: number;
}

export interface HeldConnection {
  /** Send a line and wait for its echo; true if it came back in time. */
  ping(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface Agent {
  readonly ns: string;
  readonly pid: number | undefined;
  listenTcp(port: number): Promise<void>;
  listenUdp(port: number): Promise<void>;
  /** `from`: connect from this local address (one of the namespace's own). */
  tcpConnect(host: string, port: number, timeoutMs?: number, from?: string): Promise<ProbeResult>;
  udpProbe(host: string, port: number, timeoutMs?: number): Promise<ProbeResult>;
  /** Send the bytes `hex` as one UDP datagram (from the local address `from`, if given); throws if it cannot. */
  udpSend(host: string, port: number, hex: string, from?: string): Promise<void>;
  hold(host: string, port: number, timeoutMs?: number): Promise<HeldConnection>;
  close(): Promise<void>;
}

export interface NetnsPair {
  readonly srv: string;
  readonly cli: string;
  readonly srv4: string;
  readonly cli4: string;
  readonly srv6: string;
  readonly cli6: string;
  wrap(ns: string): string[];
  exec(ns: string, argv: readonly string[], opts?: ExecOptions): Promise<RunResult>;
  /** Start an agent inside `ns`; it is stopped by cleanup(). */
  agent(ns: string): Promise<Agent>;
  cleanup(): Promise<void>;
}

/**
 * The namespace tests need root, `ip` and `tools`. Returns true when all is there. Otherwise it registers a FAILING
 * test that names what is missing and the command that installs it (a suite that cannot run must not pass as
 * skipped), and returns false: the caller then registers nothing else (`if (!requireNetns(['nft'])) return;`).
 */
export function requireNetns(tools: readonly string[]): boolean {
  return netnsSkip(tools) === false;
}

/**
 * The same check for callers that want the reason as a `skip` option: false when all is there, else the reason, with
 * the failing test (see {@link requireNetns}) already registered.
 */
export function netnsSkip(tools: readonly string[]): string | false {
  const missing = missingPrerequisites(tools);
  if (!missing) return false;
  const reason = `netns tests cannot run: ${missing.what} (fix: ${missing.fix})`;
  test(`netns prerequisites: ${['ip', ...tools].join(', ')} as root`, () => {
    assert.fail(reason);
  });
  return reason;
}

/** The namespace names createPair(tag) uses in this process. */
export function pairNames(tag: string): { readonly srv: string; readonly cli: string } {
  checkName(tag);
  return { srv: `spak-${tag}-${process.pid}-srv`, cli: `spak-${tag}-${process.pid}-cli` };
}

/** Delete this process's namespaces of `tag` if they exist (createPair's cleanup() does this for a pair it returned). */
export async function removePair(tag: string): Promise<void> {
  const { srv, cli } = pairNames(tag);
  for (const ns of [srv, cli]) await run(['ip', 'netns', 'del', ns]);
}

/** Delete namespaces `spak-TAG-PID-{srv,cli}` left by a run whose process is gone (a crashed or killed run). */
async function removeDeadLeftovers(tag: string): Promise<void> {
  const r = await run(['ip', 'netns', 'list']);
  const re = new RegExp(`^spak-${tag}-([0-9]+)-(srv|cli)\\b`);
  for (const line of r.stdout.split('\n')) {
    const m = re.exec(line.trim());
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code !== 'ESRCH';
    }
    if (!alive) await run(['ip', 'netns', 'del', `spak-${tag}-${m[1]}-${m[2]}`]);
  }
}

function checkName(s: string): void {
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(s)) throw new Error(`bad namespace tag ${JSON.stringify(s)}`);
}

async function must(argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.spawnError || ''}`);
  return r;
}

/** Create a server and a client namespace joined by a veth pair, with IPv4 and IPv6 addresses. */
export async function createPair(tag: string, opts: PairOptions = {}): Promise<NetnsPair> {
  const { srv, cli } = pairNames(tag);
  const subnet = opts.subnet ?? 0;
  if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error('subnet must be 0..255');
  const srv4 = `10.251.${subnet}.1`;
  const cli4 = `10.251.${subnet}.2`;
  const g = subnet.toString(16);
  const srv6 = `fd00:5a4b:0:${g}::1`;
  const cli6 = `fd00:5a4b:0:${g}::2`;
  const agents: Agent[] = [];

  const removeAll = (): Promise<void> => removePair(tag);
  await removeAll();
  await removeDeadLeftovers(tag);

  let ok = false;
  try {
    await must(['ip', 'netns', 'add', srv]);
    await must(['ip', 'netns', 'add', cli]);
    await must([
      'ip',
      'link',
      'add',
      'name',
      'vsrv',
      'netns',
      srv,
      'type',
      'veth',
      'peer',
      'name',
      'vcli',
      'netns',
      cli,
    ]);
    const setup: [string, string, string, string][] = [
      [srv, 'vsrv', `${srv4}/24`, `${srv6}/64`],
      [cli, 'vcli', `${cli4}/24`, `${cli6}/64`],
    ];
    for (const [ns, dev, a4, a6] of setup) {
      await must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await must(['ip', '-n', ns, 'addr', 'add', a4, 'dev', dev]);
      await must(['ip', '-n', ns, '-6', 'addr', 'add', a6, 'dev', dev, 'nodad']);
      await must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    ok = true;
  } finally {
    if (!ok) await removeAll();
  }

  const wrap = (ns: string): string[] => ['ip', 'netns', 'exec', ns];
  return {
    srv,
    cli,
    srv4,
    cli4,
    srv6,
    cli6,
    wrap,
    exec: (ns, argv, o = {}) => run([...wrap(ns), ...argv], o),
    agent: async (ns) => {
      const a = await startAgent(ns);
      agents.push(a);
      return a;
    },
    cleanup: async () => {
      for (const a of agents.splice(0)) await a.close();
      await removeAll();
    },
  };
}

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));

/** Start an agent (harness/agent.ts) inside `ns` (prefer pair.agent(), which stops it in cleanup()). */
export async function startAgent(ns: string): Promise<Agent> {
  const child = await startRpcChild<AgentOps>(['ip', 'netns', 'exec', ns, process.execPath, '--import', 'tsx', AGENT], {
    name: `agent in ${ns}`,
    readyTimeoutMs: 10_000,
  });
  const probe = async (r: Promise<RpcResult<{ ms: number }>>): Promise<ProbeResult> => {
    const { ok, ms, error } = await r;
    return { ok, ms: ms ?? 0, ...(error !== undefined ? { error } : {}) };
  };
  const mustOk = async (what: string, r: Promise<RpcReply>): Promise<void> => {
    const { ok, error } = await r;
    if (!ok) throw new Error(`agent in ${ns}: ${what} failed: ${error ?? '?'}`);
  };
  const from = (f: string | undefined) => (f !== undefined ? { from: f } : {});
  return {
    ns,
    pid: child.pid,
    listenTcp: (port) => mustOk(`listenTcp ${port}`, child.call('listenTcp', { port })),
    listenUdp: (port) => mustOk(`listenUdp ${port}`, child.call('listenUdp', { port })),
    tcpConnect: (host, port, timeoutMs = 400, src?: string) =>
      probe(child.call('tcpConnect', { host, port, timeoutMs, ...from(src) })),
    udpProbe: (host, port, timeoutMs = 400) => probe(child.call('udpProbe', { host, port, timeoutMs })),
    udpSend: (host, port, hex, src?: string) =>
      mustOk(`udpSend to ${host} ${port}`, child.call('udpSend', { host, port, hex, ...from(src) })),
    hold: async (host, port, timeoutMs = 400) => {
      const r = await child.call('hold', { host, port, timeoutMs });
      const handle = r.handle;
      if (!r.ok || handle === undefined) throw new Error(`hold ${host} ${port} failed: ${r.error ?? '?'}`);
      return {
        ping: async (t = 400) => (await child.call('ping', { handle, timeoutMs: t })).ok,
        close: async () => {
          await child.call('release', { handle });
        },
      };
    },
    close: () => child.close(),
  };
}

/** One-shot TCP probe from `ns` (starts and stops an agent: ~100 ms of overhead). */
export async function tcpConnect(ns: string, host: string, port: number, timeoutMs = 400): Promise<ProbeResult> {
  const a = await startAgent(ns);
  try {
    return await a.tcpConnect(host, port, timeoutMs);
  } finally {
    await a.close();
  }
}
