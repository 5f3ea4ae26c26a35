/**
 * Network-namespace plumbing for tests that need a real kernel (firewall backends, end-to-end daemon tests).
 * Everything happens inside namespaces this helper creates; nothing touches the host's root namespace firewall.
 *
 * ```ts
 * const skip = netnsSkip(['nft']);            // false, or a reason; with CI set a missing prerequisite FAILS
 * const pair = await createPair('fwt-nft', { subnet: 11 });
 * //   pair.srv / pair.cli      namespace names: 'spak-fwt-nft-<pid>-srv', 'spak-fwt-nft-<pid>-cli' (the pid makes two
 * //                            runs at once on one machine safe; leftovers of dead pids are removed first)
 * //   pair.srv4 / pair.cli4    '10.251.11.1' / '10.251.11.2'          (veth 'vsrv' <-> 'vcli', /24)
 * //   pair.srv6 / pair.cli6    'fd00:5a4b:0:b::1' / 'fd00:5a4b:0:b::2' (/64, nodad)
 * //   pair.wrap(ns)            ['ip', 'netns', 'exec', ns]  (a backend's `wrap` option)
 * //   pair.exec(ns, argv, {input?, timeoutMs?}) -> {code, stdout, stderr}   (never a shell string)
 * //   pair.cleanup()           stops agents, deletes both namespaces (idempotent; call it in after())
 * const srv = await pair.agent(pair.srv);     // a long-lived node process inside the namespace (JSON over stdio)
 * await srv.listenTcp(2201);                  // TCP echo server on [::]:2201 (dual stack: v4 and v6)
 * await srv.listenUdp(2253);                  // UDP echo server on [::]:2253 (dual stack)
 * const cli = await pair.agent(pair.cli);
 * await cli.tcpConnect(pair.srv4, 2201, 400)  // -> { ok, error?, ms }: connect + one echo round trip
 * await cli.udpProbe(pair.srv6, 2253, 400)    // -> { ok, error?, ms }: one datagram + its echo
 * const held = await cli.hold(pair.srv4, 2201, 400);  // open a connection and keep it
 * await held.ping(400)                        // -> true if it still echoes; held.close() ends it
 * await tcpConnect(pair.cli, pair.srv4, 2201, 400)    // one-shot version (spawns node in the namespace, slower)
 * ```
 *
 * `subnet` (0..255) picks the addresses, so test files running in parallel each use their own (and their own tag).
 * @module
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, type RunResult } from '../server/firewall/exec.js';

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
  listenTcp(port: number): Promise<void>;
  listenUdp(port: number): Promise<void>;
  tcpConnect(host: string, port: number, timeoutMs?: number): Promise<ProbeResult>;
  udpProbe(host: string, port: number, timeoutMs?: number): Promise<ProbeResult>;
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

function onPath(tool: string): boolean {
  if (tool.includes('/')) return canExec(tool);
  const dirs = (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter);
  for (const d of [...dirs, '/usr/sbin', '/sbin']) if (d && canExec(join(d, tool))) return true;
  return false;
}

function canExec(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Prerequisites for netns tests: root and the given tools (plus `ip`). Returns false when all is there, else the
 * reason. When `process.env.CI` is set a missing prerequisite is a FAILURE: a failing test is registered and the
 * reason is still returned (use it as the `skip` option of the real tests).
 */
export function netnsSkip(tools: readonly string[]): string | false {
  const missing: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('not root');
  for (const t of ['ip', ...tools]) if (!onPath(t)) missing.push(`${t} not found`);
  if (missing.length === 0) return false;
  const reason = `netns test prerequisites: ${missing.join(', ')}`;
  if (process.env['CI']) {
    test('netns prerequisites (CI)', () => {
      assert.fail(reason);
    });
  }
  return reason;
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
  checkName(tag);
  const subnet = opts.subnet ?? 0;
  if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error('subnet must be 0..255');
  const srv = `spak-${tag}-${process.pid}-srv`;
  const cli = `spak-${tag}-${process.pid}-cli`;
  const srv4 = `10.251.${subnet}.1`;
  const cli4 = `10.251.${subnet}.2`;
  const g = subnet.toString(16);
  const srv6 = `fd00:5a4b:0:${g}::1`;
  const cli6 = `fd00:5a4b:0:${g}::2`;
  const agents: Agent[] = [];

  const removeAll = async (): Promise<void> => {
    for (const ns of [srv, cli]) await run(['ip', 'netns', 'del', ns]);
  };
  await removeAll();
  await removeDeadLeftovers(tag);

  let ok = false;
  try {
    await must(['ip', 'netns', 'add', srv]);
    await must(['ip', 'netns', 'add', cli]);
    await must(['ip', 'link', 'add', 'name', 'vsrv', 'netns', srv, 'type', 'veth', 'peer', 'name', 'vcli', 'netns', cli]);
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

/** The agent: plain ESM JavaScript run with `node --input-type=module -e` inside a namespace. */
const AGENT_SOURCE = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const held = new Map();
let nextHandle = 1;
function echoOnce(sock, timeoutMs) {
  return new Promise((resolve) => {
    const token = 'ping-' + Math.random().toString(36).slice(2) + '\n';
    let buf = '';
    const done = (r) => { clearTimeout(t); sock.off('data', onData); sock.off('error', onErr); sock.off('close', onClose); resolve(r); };
    const onData = (d) => { buf += d.toString(); if (buf.includes(token)) done({ ok: true }); };
    const onErr = (e) => done({ ok: false, error: e.code || e.message });
    const onClose = () => done({ ok: false, error: 'closed' });
    const t = setTimeout(() => done({ ok: false, error: 'timeout' }), timeoutMs);
    sock.on('data', onData); sock.on('error', onErr); sock.on('close', onClose);
    sock.write(token);
  });
}
function connect(host, port, timeoutMs) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    sock.on('error', () => {});
    const t = setTimeout(() => { sock.destroy(); resolve({ ok: false, error: 'timeout' }); }, timeoutMs);
    sock.once('connect', () => { clearTimeout(t); resolve({ ok: true, sock }); });
    sock.once('error', (e) => { clearTimeout(t); sock.destroy(); resolve({ ok: false, error: e.code || e.message }); });
  });
}
async function handle(m) {
  const t0 = performance.now();
  const ms = () => Math.round((performance.now() - t0) * 10) / 10;
  switch (m.op) {
    case 'listenTcp': {
      const srv = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
      await new Promise((res, rej) => { srv.once('error', rej); srv.listen({ port: m.port, host: '::', ipv6Only: false }, res); });
      return { ok: true };
    }
    case 'listenUdp': {
      const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
      s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
      await new Promise((res, rej) => { s.once('error', rej); s.bind(m.port, '::', res); });
      return { ok: true };
    }
    case 'tcpConnect': {
      const c = await connect(m.host, m.port, m.timeoutMs);
      if (!c.ok) return { ok: false, error: c.error, ms: ms() };
      const r = await echoOnce(c.sock, m.timeoutMs);
      c.sock.destroy();
      return { ...r, ms: ms() };
    }
    case 'udpProbe': {
      const s = dgram.createSocket(net.isIPv6(m.host) ? 'udp6' : 'udp4');
      const r = await new Promise((resolve) => {
        const token = Buffer.from('ping-' + Math.random().toString(36).slice(2));
        const t = setTimeout(() => resolve({ ok: false, error: 'timeout' }), m.timeoutMs);
        s.on('message', (msg) => { if (msg.equals(token)) { clearTimeout(t); resolve({ ok: true }); } });
        s.on('error', (e) => { clearTimeout(t); resolve({ ok: false, error: e.code || e.message }); });
        s.send(token, m.port, m.host);
      });
      s.close();
      return { ...r, ms: ms() };
    }
    case 'hold': {
      const c = await connect(m.host, m.port, m.timeoutMs);
      if (!c.ok) return { ok: false, error: c.error, ms: ms() };
      const r = await echoOnce(c.sock, m.timeoutMs);
      if (!r.ok) { c.sock.destroy(); return { ...r, ms: ms() }; }
      const h = nextHandle++;
      held.set(h, c.sock);
      return { ok: true, handle: h, ms: ms() };
    }
    case 'ping': {
      const s = held.get(m.handle);
      if (!s) return { ok: false, error: 'no such handle' };
      return { ...(await echoOnce(s, m.timeoutMs)), ms: ms() };
    }
    case 'release': {
      const s = held.get(m.handle);
      held.delete(m.handle);
      if (s) s.destroy();
      return { ok: true };
    }
    default:
      return { ok: false, error: 'unknown op' };
  }
}
out({ id: 0, ok: true, ready: true });
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let m;
  try { m = JSON.parse(line); } catch { return; }
  handle(m).then((r) => out({ id: m.id, ...r }), (e) => out({ id: m.id, ok: false, error: String(e && e.message || e) }));
}).on('close', () => process.exit(0));
`;

interface AgentReply {
  readonly id: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly ms?: number;
  readonly handle?: number;
  readonly ready?: boolean;
}

/** Start an agent inside `ns` (prefer pair.agent(), which stops it in cleanup()). */
export async function startAgent(ns: string): Promise<Agent> {
  const child: ChildProcessWithoutNullStreams = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', AGENT_SOURCE],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let nextId = 1;
  const waiting = new Map<number, (r: AgentReply) => void>();
  let buf = '';
  let stderr = '';
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let readyResolve: (r: AgentReply) => void = () => undefined;
  const ready = new Promise<AgentReply>((r) => {
    readyResolve = r;
  });
  waiting.set(0, (r) => readyResolve(r));
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr += d;
  });
  child.stdout.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let msg: AgentReply;
      try {
        msg = JSON.parse(line) as AgentReply;
      } catch {
        continue;
      }
      const w = waiting.get(msg.id);
      waiting.delete(msg.id);
      w?.(msg);
    }
  });
  child.on('close', (code) => {
    exited = true;
    for (const [, w] of waiting) w({ id: -1, ok: false, error: `agent exited (${code}): ${stderr.trim()}` });
    waiting.clear();
  });
  child.stdin.on('error', () => undefined);

  const call = (m: Record<string, unknown>): Promise<AgentReply> => {
    if (exited) return Promise.resolve({ id: -1, ok: false, error: `agent exited: ${stderr.trim()}` });
    const id = nextId++;
    return new Promise((resolve) => {
      waiting.set(id, resolve);
      child.stdin.write(`${JSON.stringify({ ...m, id })}\n`);
    });
  };
  const mustOk = async (m: Record<string, unknown>): Promise<void> => {
    const r = await call(m);
    if (!r.ok) throw new Error(`agent in ${ns}: ${String(m['op'])} failed: ${r.error ?? '?'}`);
  };
  const probe = async (m: Record<string, unknown>): Promise<ProbeResult> => {
    const r = await call(m);
    return { ok: r.ok, ms: r.ms ?? 0, ...(r.error !== undefined ? { error: r.error } : {}) };
  };

  const first = await Promise.race([
    ready,
    new Promise<AgentReply>((r) => setTimeout(() => r({ id: 0, ok: false, error: 'agent start timeout' }), 10_000)),
  ]);
  if (!first.ok) {
    child.kill('SIGKILL');
    throw new Error(`agent in ${ns} did not start: ${first.error ?? ''} ${stderr.trim()}`);
  }

  return {
    ns,
    listenTcp: (port) => mustOk({ op: 'listenTcp', port }),
    listenUdp: (port) => mustOk({ op: 'listenUdp', port }),
    tcpConnect: (host, port, timeoutMs = 400) => probe({ op: 'tcpConnect', host, port, timeoutMs }),
    udpProbe: (host, port, timeoutMs = 400) => probe({ op: 'udpProbe', host, port, timeoutMs }),
    hold: async (host, port, timeoutMs = 400) => {
      const r = await call({ op: 'hold', host, port, timeoutMs });
      if (!r.ok || r.handle === undefined) throw new Error(`hold ${host} ${port} failed: ${r.error ?? '?'}`);
      const handle = r.handle;
      return {
        ping: async (t = 400) => (await call({ op: 'ping', handle, timeoutMs: t })).ok,
        close: async () => {
          await call({ op: 'release', handle });
        },
      };
    },
    close: async () => {
      if (exited) return;
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exitPromise;
      clearTimeout(timer);
    },
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
