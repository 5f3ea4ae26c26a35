/**
 * The setting every end-to-end suite shares: a server namespace and a client namespace (harness/netns.ts createPair,
 * names unique per pid), TCP echo listeners in the server namespace, a real spa-knockd there (killed by PID), the real
 * `spa-knock` CLI and an agent in the client namespace, key files in a temporary directory.
 *
 * ```ts
 * const w = new E2eWorld({ backend, tag, subnet, clients: [{ name: 'alice', open: ['tcp/22'] }] });
 * before(() => w.start());
 * after(() => w.stop());        // daemon killed, namespaces and directory removed, also after a failed start
 * ```
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex } from '../../shared/bytes.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import { buildPacket } from '../../client/request.js';
import { DaemonProcess } from '../../harness/daemon-process.js';
import { type Agent, type NetnsPair, createPair } from '../../harness/netns.js';
import { CLIENT, type RunResult, runTs } from '../../harness/run.js';

export const SSH = 22;
export const ALT = 2222;
/** Never protected: reachable at all times (the positive control). */
export const OPEN = 8080;
export const UDP_PORT = 62201;
/** Seconds: short so expiry is quick to observe. */
export const DURATION = 3;
export const CONNECT_MS = 400;

export type Backend = 'nftables' | 'iptables';

export interface WorldClient {
  readonly name: string;
  readonly open: readonly string[];
  /** More TOML lines for this [[client]] table, e.g. `require_source_address = true`. */
  readonly extra?: readonly string[];
}

export interface WorldOptions {
  readonly backend: Backend;
  /** Namespace tag (createPair) and temporary directory prefix. */
  readonly tag: string;
  /** Third octet of 10.251.X.0/24: each test file its own. */
  readonly subnet: number;
  readonly clients: readonly WorldClient[];
  /** Key files made for names the daemon does not know. */
  readonly strangers?: readonly string[];
  /** More whole `[[client]]` tables (TOML text), e.g. fwknop clients (harness/fwknop.ts fwknopClientToml). */
  readonly tables?: readonly string[];
  /** Protected TCP ports. Default SSH and ALT. */
  readonly protect?: readonly number[];
  /** TCP ports the server agent echoes on. Default: the protected ports and OPEN. */
  readonly listen?: readonly number[];
  /** More TOML lines for the [firewall] table, e.g. `fast_path = true`. */
  readonly firewall?: readonly string[];
}

export class E2eWorld {
  readonly keys: Record<string, string> = {};
  readonly keyBytes: Record<string, Uint8Array> = {};
  #pair: NetnsPair | undefined;
  #srv: Agent | undefined;
  #cli: Agent | undefined;
  #daemon: DaemonProcess | undefined;
  #dir: string | undefined;

  constructor(readonly opts: WorldOptions) {}

  get pair(): NetnsPair {
    return this.#must(this.#pair);
  }
  get srv(): Agent {
    return this.#must(this.#srv);
  }
  get cli(): Agent {
    return this.#must(this.#cli);
  }
  get daemon(): DaemonProcess {
    return this.#must(this.#daemon);
  }
  get dir(): string {
    return this.#must(this.#dir);
  }
  get configPath(): string {
    return join(this.dir, 'spa-knockd.toml');
  }

  #must<T>(v: T | undefined): T {
    if (v === undefined) throw new Error('E2eWorld: start() has not run (or failed)');
    return v;
  }

  async start(): Promise<void> {
    const { backend, tag, subnet } = this.opts;
    const protect = this.opts.protect ?? [SSH, ALT];
    this.#pair = await createPair(tag, { subnet });
    const pair = this.#pair;
    [this.#srv, this.#cli] = await Promise.all([pair.agent(pair.srv), pair.agent(pair.cli)]);
    for (const p of this.opts.listen ?? [...protect, OPEN]) await this.srv.listenTcp(p);
    this.#dir = mkdtempSync(join(tmpdir(), `spak-${tag}-`));
    for (const name of [...this.opts.clients.map((c) => c.name), ...(this.opts.strangers ?? [])]) {
      const f = join(this.dir, `${name}.key`);
      const key = generateKey();
      writeFileSync(f, `${formatKey(key)}\n`, { mode: 0o600 });
      this.keys[name] = f;
      this.keyBytes[name] = key;
    }
    const clients: string[] = [];
    for (const c of this.opts.clients) {
      const open = c.open.map((a) => JSON.stringify(a)).join(', ');
      clients.push(`[[client]]\nname = "${c.name}"\nkey_file = "${c.name}.key"\nopen = [${open}]`, ...(c.extra ?? []));
    }
    const table = `spak_e2e_${backend === 'nftables' ? 'nft' : 'IPT'}`;
    writeFileSync(
      this.configPath,
      [
        `state_dir = "${join(this.dir, 'state')}"`,
        `[listen]\nport = ${UDP_PORT}\naddress = "::"`,
        `[firewall]\nbackend = "${backend}"\nprotect = [${protect.map((p) => `"tcp/${p}"`).join(', ')}]\ntable = "${table}"`,
        ...(this.opts.firewall ?? []),
        `[grant]\nduration = ${DURATION}\nmax_duration = 60`,
        `[replay]\nwindow = 60`,
        `[log]\nreject_summary_interval = 1`,
        ...clients,
        ...(this.opts.tables ?? []),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    this.#daemon = new DaemonProcess(pair.srv, this.configPath);
    await this.#daemon.start();
  }

  /** Kill the daemon by PID, stop the agents, delete the namespaces and the directory: each step even if one fails. */
  async stop(): Promise<void> {
    try {
      await this.#daemon?.stop('SIGKILL');
    } finally {
      try {
        await this.#pair?.cleanup();
      } finally {
        if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
      }
    }
  }

  /** The real CLI in the client namespace. */
  knock(host: string, ...args: string[]): Promise<RunResult> {
    return runTs(CLIENT, [host, '--port', String(UDP_PORT), ...args], { prefix: this.pair.wrap(this.pair.cli) });
  }

  async knockOk(host: string, ...args: string[]): Promise<void> {
    const r = await this.knock(host, ...args);
    assert.equal(r.code, 0, `spa-knock failed: ${r.stderr}`);
  }

  /** A packet built by the real CLI (--dry-run --json), as hex to send by hand. */
  async packetHex(host: string, ...args: string[]): Promise<string> {
    const r = await this.knock(host, '--dry-run', '--json', ...args);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { hex: string }).hex;
  }

  /** A packet for `who` built in this process with the clock at `at` (ms), as the real client builds it. */
  packetAt(who: string, at: number): string {
    const key = this.keyBytes[who];
    if (!key) throw new Error(`no client ${who}`);
    return toHex(buildPacket(key, { type: 'open', accesses: [], duration: 0 }, at).bytes);
  }

  /** Send these bytes as one datagram to the daemon from the client namespace (from the local address `from`). */
  sendRaw(host: string, hex: string, from?: string): Promise<void> {
    return this.cli.udpSend(host, UDP_PORT, hex, from);
  }

  /** Does a TCP connect (and one echo) to host:port succeed from the client namespace (from `from`)? */
  async isOpen(host: string, port = SSH, from?: string): Promise<boolean> {
    return (await this.cli.tcpConnect(host, port, CONNECT_MS, from)).ok;
  }

  /** Poll until open (a knock is one datagram; the daemon commits within a few ms). */
  async opens(host: string, port = SSH, withinMs = 3000, from?: string): Promise<boolean> {
    const end = Date.now() + withinMs;
    while (Date.now() < end) if (await this.isOpen(host, port, from)) return true;
    return false;
  }

  /** Give the daemon time to have handled a packet that leaves no grant line, before checking it stayed closed. */
  settle(): Promise<void> {
    return new Promise((r) => setTimeout(r, 250));
  }

  /**
   * The grant lines from log line `from` on, once there are `n`: a grant line is written when its change is confirmed,
   * which with the kernel fast path comes a few ms after the port is open (CONFIRM_HOLD_MS, server/firewall/nftables.ts).
   */
  async grantLines(from: number, n: number, timeoutMs = 5000): Promise<Record<string, unknown>[]> {
    const end = Date.now() + timeoutMs;
    while (this.daemon.events('grant', from).length < n && Date.now() < end)
      await new Promise((r) => setTimeout(r, 10));
    return this.daemon.events('grant', from);
  }

  grantsSoFar(): number {
    return this.daemon.events('grant').length;
  }

  /** Sum of the daemon's reject summaries by reason, from log line `from` on. */
  rejects(from = 0): Record<string, number> {
    const by: Record<string, number> = {};
    for (const l of this.daemon.events('rejects', from)) {
      for (const [k, v] of Object.entries(l['by'] as Record<string, number>)) by[k] = (by[k] ?? 0) + v;
    }
    return by;
  }
}
