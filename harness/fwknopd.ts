/**
 * A real `fwknopd` (Debian fwknop-server, UDP server mode) inside a test namespace, with its own config files, digest
 * cache, PID file and run directory in a temporary directory; foreground (`-f`), stopped by PID. fwknopd drives
 * iptables (iptables-nft on Debian): inside the namespace that touches only the namespace's own tables.
 * @module
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FwknopKeyText } from './fwknop.js';

export interface FwknopdOptions {
  readonly keys: FwknopKeyText;
  /** access.conf OPEN_PORTS, e.g. ["tcp/22"]. */
  readonly openPorts: readonly string[];
  readonly accessTimeout?: number;
  readonly requireSourceAddress?: boolean;
  readonly port?: number;
  /** `-v` (default true; the bench turns it off so logging costs fwknopd nothing extra). */
  readonly verbose?: boolean;
}

export class FwknopdProcess {
  readonly dir: string;
  log = '';
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;

  constructor(
    readonly ns: string,
    readonly opts: FwknopdOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'fwknopd-'));
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Write the config, start fwknopd and wait until its UDP server listens. */
  async start(timeoutMs = 10_000): Promise<void> {
    const o = this.opts;
    const conf = join(this.dir, 'fwknopd.conf');
    const access = join(this.dir, 'access.conf');
    writeFileSync(conf, `ENABLE_UDP_SERVER Y;\nUDPSERV_PORT ${o.port ?? 62201};\n`, { mode: 0o600 });
    writeFileSync(
      access,
      [
        'SOURCE ANY',
        `KEY_BASE64 ${o.keys.keyB64}`,
        `HMAC_KEY_BASE64 ${o.keys.hmacB64}`,
        `OPEN_PORTS ${o.openPorts.join(',')}`,
        `FW_ACCESS_TIMEOUT ${o.accessTimeout ?? 30}`,
        `REQUIRE_SOURCE_ADDRESS ${o.requireSourceAddress ? 'Y' : 'N'}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const d = this.dir;
    const args = [
      '-f',
      ...(o.verbose === false ? [] : ['-v']),
      '-c',
      conf,
      '-a',
      access,
      '-d',
      join(d, 'digest.cache'),
      '-p',
      join(d, 'fwknopd.pid'),
    ];
    const child = spawn('ip', ['netns', 'exec', this.ns, 'fwknopd', ...args, '-r', d], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#exited = new Promise((r) => child.on('exit', () => r()));
    const onData = (b: Buffer) => {
      this.log += b.toString();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const end = Date.now() + timeoutMs;
    while (!this.log.includes('Kicking off UDP server')) {
      if (child.exitCode !== null || Date.now() > end) throw new Error(`fwknopd did not start: ${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Poll the log for a line matching `re` (from character `from` on). */
  async waitLog(re: RegExp, timeoutMs = 3000, from = 0): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (re.test(this.log.slice(from))) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  /** SIGTERM by PID (fwknopd then flushes its rules), then remove the directory. */
  async stop(): Promise<void> {
    const child = this.#child;
    try {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await this.#exited;
        clearTimeout(t);
      }
    } finally {
      this.#child = undefined;
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
