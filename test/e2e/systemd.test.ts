/**
 * spa-knockd started the way systemd starts it (docs/systemd.md), for real, in a namespace pair:
 *
 * - socket activation: `systemd-socket-activate --datagram -l ADDR:PORT` (systemd's own tool: it binds the UDP
 *   socket and execs the daemon with it as fd 3, LISTEN_FDS=1, LISTEN_PID) — the daemon adopts that socket instead of
 *   binding listen.* from its config, a knock from the client namespace opens the protected port, and the knock that
 *   woke the daemon up is served too; a stream socket is refused with one line and ERR_SPA_LISTEN;
 * - the unit's capability bounding set: under `setpriv --bounding-set=-all,+net_admin,+net_raw --no-new-privs` (what
 *   CapabilityBoundingSet= and NoNewPrivileges= leave a root service), each backend still installs the gate and a
 *   knock still opens the port;
 * - readiness: NOTIFY_SOCKET names a stand-in for systemd's notification socket (harness/notify-listener.ts, created
 *   by `systemd-socket-activate` too). When READY=1 arrives the daemon is frozen (SIGSTOP) and the namespace's
 *   ruleset listed: the gate must already be there. RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DaemonProcess } from '../../harness/daemon-process.js';
import { type Agent, type NetnsPair, createPair, requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, ROOT, runTs } from '../../harness/run.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import { run } from '../../server/firewall/process.js';

const UDP = 62201;
const GATED = 2290;
const GATED_2 = 2291;
/** Protected and never granted: closed whenever the gate is in force. */
const NEVER = 2294;
const STREAM = 2299;
const CAPPED: Readonly<Record<'nftables' | 'iptables', number>> = { nftables: 2292, iptables: 2293 };
const TABLE = 'spak_sysd_act';

type Note = { t: number; fields: Record<string, string>; gate?: { code: number; stdout: string } };

/** harness/notify-listener.ts behind a socket that systemd-socket-activate creates; its messages as they arrive. */
class NotifySocket {
  readonly notes: Note[] = [];
  stderr = '';
  #child: ChildProcess | undefined;

  constructor(readonly path: string) {}

  async start(ns: string): Promise<void> {
    const listener = join(ROOT, 'harness', 'notify-listener.ts');
    const child = spawn(
      'systemd-socket-activate',
      ['--datagram', '-l', this.path, process.execPath, '--import', 'tsx', listener, ns, TABLE],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    let buf = '';
    let listening = false;
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const j = JSON.parse(buf.slice(0, i)) as Note & { listening?: true };
        buf = buf.slice(i + 1);
        if (j.listening) listening = true;
        else this.notes.push(j);
      }
    });
    child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    await until(
      () => this.stderr.includes('Listening on'),
      5000,
      () => `no socket: ${this.stderr}`,
    );
    // systemd-socket-activate starts the listener on the first datagram: send one, as systemd-notify would
    const r = await run(['env', `NOTIFY_SOCKET=${this.path}`, 'systemd-notify', '--status=test: listener up']);
    assert.equal(r.code, 0, r.stderr);
    await until(
      () => listening && this.notes.length > 0,
      10_000,
      () => `listener did not start: ${this.stderr}`,
    );
  }

  /** The first message from index `from` on with field KEY=VALUE. */
  async waitFor(key: string, value: string, from = 0, timeoutMs = 10_000): Promise<Note> {
    let hit: Note | undefined;
    await until(
      () => (hit = this.notes.slice(from).find((n) => n.fields[key] === value)) !== undefined,
      timeoutMs,
      () => `no ${key}=${value}; got ${JSON.stringify(this.notes)}`,
    );
    return hit as Note;
  }

  stop(): void {
    if (this.#child?.exitCode === null) this.#child.kill('SIGKILL');
  }
}

async function until(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(what());
    await new Promise((r) => setTimeout(r, 20));
  }
}

if (
  requireNetns([
    ...BACKEND_TOOLS.nftables,
    ...BACKEND_TOOLS.iptables,
    'setpriv',
    'systemd-socket-activate',
    'systemd-notify',
  ])
) {
  describe('spa-knockd under systemd-style socket activation and readiness (nftables)', () => {
    let pair: NetnsPair;
    let srv: Agent;
    let cli: Agent;
    let dir: string;
    let keyFile: string;
    let configPath: string;
    let notify: NotifySocket;
    const daemons: DaemonProcess[] = [];

    /** A daemon behind `systemd-socket-activate` in the server namespace (socket on srv4:UDP unless `listen`). */
    const activated = (listen: string[] = ['--datagram', '-l', `${pair.srv4}:${UDP}`]) => {
      const d = new DaemonProcess(pair.srv, configPath, {
        launcher: ['systemd-socket-activate', ...listen, '-E', `NOTIFY_SOCKET=${notify.path}`],
      });
      daemons.push(d);
      return d;
    };
    const socketUp = (d: DaemonProcess) =>
      until(
        () => d.stderr.includes('Listening on'),
        5000,
        () => d.stderr,
      );
    const knock = (...open: string[]) =>
      runTs(CLIENT, [pair.srv4, '--port', String(UDP), '--key', keyFile, ...open.flatMap((o) => ['--open', o])], {
        prefix: pair.wrap(pair.cli),
      });
    const isOpen = async (port: number) => (await cli.tcpConnect(pair.srv4, port, 400)).ok;

    before(async () => {
      pair = await createPair('sysd-act', { subnet: 90 });
      [srv, cli] = await Promise.all([pair.agent(pair.srv), pair.agent(pair.cli)]);
      for (const p of [GATED, GATED_2, NEVER, ...Object.values(CAPPED)]) await srv.listenTcp(p);
      dir = mkdtempSync(join(tmpdir(), 'spak-sysd-'));
      keyFile = join(dir, 'alice.key');
      writeFileSync(keyFile, `${formatKey(generateKey())}\n`, { mode: 0o600 });
      configPath = join(dir, 'spa-knockd.toml');
      writeFileSync(
        configPath,
        [
          `state_dir = "${join(dir, 'state')}"`,
          // what a socket-activated daemon must NOT bind: the socket comes from systemd
          `[listen]\nport = ${UDP}\naddress = "::"`,
          `[firewall]\nbackend = "nftables"\nprotect = ["tcp/${GATED}", "tcp/${GATED_2}", "tcp/${NEVER}"]\ntable = "${TABLE}"`,
          '[grant]\nduration = 30\nmax_duration = 60',
          `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${GATED}", "tcp/${GATED_2}"]`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      notify = new NotifySocket(join(dir, 'notify.sock'));
      await notify.start(pair.srv);
    });

    after(async () => {
      try {
        for (const d of daemons) await d.stop('SIGKILL');
        notify?.stop();
        await pair?.cleanup();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    });

    test('adopts the socket systemd passes, says READY=1 only with the gate installed; a knock opens the port', async () => {
      const from = notify.notes.length;
      const d = activated();
      // socket activation: the daemon is started by the first datagram (here one it rejects)
      await d.start(20_000, async () => {
        await socketUp(d);
        await cli.udpSend(pair.srv4, UDP, '00'.repeat(16));
      });
      const start = d.events('start')[0];
      assert.equal(start?.socket, 'systemd fd 3');
      assert.equal(start?.listen, `${pair.srv4}:${UDP}`, 'the passed socket, not listen.address "::" of the config');

      const ready = await notify.waitFor('READY', '1', from);
      assert.equal(ready.fields.MAINPID, String(d.pid), 'MAINPID is the daemon (ip netns exec and the launcher exec)');
      assert.equal(ready.gate?.code, 0, `the table was not there at READY=1: ${ready.gate?.stdout}`);
      assert.match(ready.gate?.stdout ?? '', new RegExp(`\\b${GATED}\\b`), 'the protected port is in the gate');
      assert.match(
        ready.fields.STATUS ?? '',
        new RegExp(`^listening on udp ${pair.srv4.replaceAll('.', '\\.')}:${UDP}`),
      );

      assert.equal(await isOpen(GATED), false, 'gated before the knock');
      const k = await knock(`tcp/${GATED}`);
      assert.equal(k.code, 0, k.stderr);
      await d.waitFor((l) => l.event === 'grant', 5000);
      assert.equal(await isOpen(GATED), true, 'open after the knock');
      assert.equal(await isOpen(GATED_2), false, 'only what was asked for');
    });

    test('SIGHUP: RELOADING=1, then READY=1 once the reload is over', async () => {
      const d = daemons[0] as DaemonProcess;
      const from = notify.notes.length;
      process.kill(d.pid ?? 0, 'SIGHUP');
      const reloading = await notify.waitFor('RELOADING', '1', from);
      const ready = await notify.waitFor('READY', '1', from);
      assert.ok(notify.notes.indexOf(reloading) < notify.notes.indexOf(ready), 'RELOADING=1 first');
      await d.waitFor((l) => l.event === 'reload', 5000);
      assert.equal(ready.gate?.code, 0);
    });

    test('SIGTERM: STOPPING=1, exit 0', async () => {
      const d = daemons[0] as DaemonProcess;
      const from = notify.notes.length;
      const code = await d.stop('SIGTERM');
      assert.equal(code, 0, d.stderr);
      await notify.waitFor('STOPPING', '1', from);
    });

    test('the knock that makes systemd start the daemon is served (it waits in the socket); [::] serves IPv4 too', async () => {
      // a dual-stack socket as spa-knockd.socket makes it (ListenDatagram=62201, BindIPv6Only=both)
      const d = activated(['--datagram', '-l', `[::]:${UDP}`]);
      await d.start(20_000, async () => {
        await socketUp(d);
        const k = await knock(`tcp/${GATED_2}`);
        assert.equal(k.code, 0, k.stderr);
      });
      const grant = await d.waitFor((l) => l.event === 'grant', 10_000);
      assert.deepEqual(grant.accesses, [`tcp/${GATED_2}`]);
      assert.equal(grant.address, pair.cli4, 'the IPv4-mapped sender, normalised');
      assert.equal(d.events('start')[0]?.listen, `[::]:${UDP}`);
      assert.equal(await isOpen(NEVER), false, 'the gate is in force');
      assert.equal(await isOpen(GATED_2), true, 'and the waking knock opened its port');
      assert.equal(await d.stop('SIGTERM'), 0);
    });

    test('a stream socket (ListenStream= by mistake) is refused: one line, ERR_SPA_LISTEN, exit 1', async () => {
      const d = activated(['-l', `${pair.srv4}:${STREAM}`]);
      await assert.rejects(
        d.start(20_000, async () => {
          await socketUp(d);
          await cli.tcpConnect(pair.srv4, STREAM, 400);
        }),
        /exited at start/,
      );
      assert.equal(await d.exited(), 1);
      const ours = d.stderr.split('\n').filter((l) => l.startsWith('spa-knockd:'));
      assert.deepEqual(ours, [
        'spa-knockd: [ERR_SPA_LISTEN] the socket systemd passed (fd 3) is a TCP descriptor, not a UDP socket: ' +
          'spa-knockd.socket needs ListenDatagram=, not ListenStream=',
      ]);
      assert.doesNotMatch(d.stderr, /\n\s+at /, 'no stack trace');
    });

    for (const backend of ['nftables', 'iptables'] as const) {
      test(`${backend}: works with only CAP_NET_ADMIN and CAP_NET_RAW and no new privileges (the unit's bounding set)`, async () => {
        const port = CAPPED[backend];
        const cfg = join(dir, `capped-${backend}.toml`);
        writeFileSync(
          cfg,
          [
            `state_dir = "${join(dir, `state-${backend}`)}"`,
            `[listen]\nport = ${UDP}\naddress = "::"`,
            `[firewall]\nbackend = "${backend}"\nprotect = ["tcp/${port}"]\ntable = "${backend === 'nftables' ? 'spak_sysd_cap' : 'SPAK_SYSD_CAP'}"`,
            '[grant]\nduration = 30\nmax_duration = 60',
            `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${port}"]`,
            '',
          ].join('\n'),
          { mode: 0o600 },
        );
        const d = new DaemonProcess(pair.srv, cfg, {
          launcher: ['setpriv', '--bounding-set=-all,+net_admin,+net_raw', '--no-new-privs', '--'],
        });
        daemons.push(d);
        await d.start(20_000);
        const status = await pair.exec(pair.srv, ['grep', '-E', '^Cap(Bnd|Eff):', `/proc/${d.pid}/status`]);
        // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13: 0x3000
        assert.match(status.stdout, /CapEff:\s+0000000000003000\nCapBnd:\s+0000000000003000/, status.stdout);
        assert.equal(await isOpen(port), false, 'gated');
        const k = await knock(`tcp/${port}`);
        assert.equal(k.code, 0, k.stderr);
        await d.waitFor((l) => l.event === 'grant', 5000);
        assert.equal(await isOpen(port), true, 'open after the knock');
        assert.equal(await d.stop('SIGTERM'), 0, d.stderr);
      });
    }
  });
}
