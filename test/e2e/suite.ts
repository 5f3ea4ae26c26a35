/**
 * The end-to-end suite, run once per firewall backend (test/e2e/nftables.test.ts, test/e2e/iptables.test.ts):
 * a server namespace and a client namespace joined by a veth pair, a real spa-knockd in the server namespace in front
 * of real TCP listeners, the real `spa-knock` CLI in the client namespace, and real TCP connects.
 * Every "nothing opens" check has a positive control next to it, so a test that cannot fail would show.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { toHex } from '../../shared/bytes.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import { buildPacket } from '../../client/request.js';
import { type Agent, type NetnsPair, createPair, requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, DAEMON, runTs } from '../../harness/run.js';
import { DaemonProcess } from '../../harness/daemon-process.js';

const SSH = 22; // protected, alice may open it
const ALT = 2222; // protected, only bob may open it
const OPEN = 8080; // not protected: always reachable (control)
const UDP_PORT = 62201;
const DURATION = 3; // seconds: short so expiry is quick to observe
const CONNECT_MS = 400;

export function e2eSuite(backend: 'nftables' | 'iptables', tag: string, subnet: number): void {
  if (!requireNetns(BACKEND_TOOLS[backend])) return;

  describe(`end to end with ${backend}`, () => {
    let pair: NetnsPair;
    let srv: Agent;
    let cli: Agent;
    let dir: string;
    let daemon: DaemonProcess;
    /** Key file paths, and the keys themselves (to build packets in this process with an injected clock). */
    const keys: Record<string, string> = {};
    const keyBytes: Record<string, Uint8Array> = {};

    const knock = (host: string, ...args: string[]) =>
      runTs(CLIENT, [host, '--port', String(UDP_PORT), ...args], { prefix: pair.wrap(pair.cli) });
    const knockOk = async (host: string, ...args: string[]) => {
      const r = await knock(host, ...args);
      assert.equal(r.code, 0, `spa-knock failed: ${r.stderr}`);
    };
    /** A packet built by the real CLI (--dry-run --json), as bytes to send by hand. */
    const packetHex = async (host: string, ...args: string[]) => {
      const r = await knock(host, '--dry-run', '--json', ...args);
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { hex: string }).hex;
    };
    /** Send these bytes as one datagram from the client namespace (the agent's udpSend). */
    const sendRaw = (host: string, hex: string) => cli.udpSend(host, UDP_PORT, hex);
    /** A packet for `who` built here with the clock at `at` (ms), as the real client builds it. */
    const packetAt = (who: string, at: number) => toHex(buildPacket(keyBytes[who]!, { type: 'open', accesses: [], duration: 0 }, at).bytes);
    const isOpen = async (host: string, port = SSH) => (await cli.tcpConnect(host, port, CONNECT_MS)).ok;
    /** Poll until open (a knock is one datagram; the daemon commits within a few ms). */
    const opens = async (host: string, port = SSH, withinMs = 3000) => {
      const end = Date.now() + withinMs;
      while (Date.now() < end) if (await isOpen(host, port)) return true;
      return false;
    };
    /** Wait for the daemon to have handled a packet (a grant/revoke line, or a counted reject), then check closed. */
    const settle = () => new Promise((r) => setTimeout(r, 250));
    const grantsSoFar = () => daemon.events('grant').length;

    before(async () => {
      pair = await createPair(tag, { subnet });
      [srv, cli] = await Promise.all([pair.agent(pair.srv), pair.agent(pair.cli)]);
      for (const p of [SSH, ALT, OPEN]) await srv.listenTcp(p);
      dir = mkdtempSync(join(tmpdir(), `spak-${tag}-`));
      for (const name of ['alice', 'bob', 'mallory']) {
        const f = join(dir, `${name}.key`);
        const key = generateKey();
        writeFileSync(f, formatKey(key) + '\n', { mode: 0o600 });
        keys[name] = f;
        keyBytes[name] = key;
      }
      writeFileSync(
        join(dir, 'spa-knockd.toml'),
        [
          `state_dir = "${join(dir, 'state')}"`,
          `[listen]\nport = ${UDP_PORT}\naddress = "::"`,
          `[firewall]\nbackend = "${backend}"\nprotect = ["tcp/${SSH}", "tcp/${ALT}"]\ntable = "spak_e2e_${backend === 'nftables' ? 'nft' : 'IPT'}"`,
          `[grant]\nduration = ${DURATION}\nmax_duration = 60`,
          `[replay]\nwindow = 60`,
          `[log]\nreject_summary_interval = 1`,
          `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${SSH}"]`,
          `[[client]]\nname = "bob"\nkey_file = "bob.key"\nopen = ["tcp/${ALT}"]`,
          '',
        ].join('\n'),
      );
      daemon = new DaemonProcess(pair.srv, join(dir, 'spa-knockd.toml'));
      await daemon.start();
    });

    after(async () => {
      try {
        await daemon?.stop('SIGKILL'); // by PID
      } finally {
        await pair?.cleanup();
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    });

    test('the protected port refuses a TCP connect before the knock; an unprotected one does not', async () => {
      assert.equal(await isOpen(pair.srv4), false);
      assert.equal(await isOpen(pair.srv6), false);
      assert.equal(await isOpen(pair.srv4, OPEN), true, 'control: unprotected port reachable');
    });

    test('after spa-knock the port connects, for the knocking source only, until the duration ends', async () => {
      await knockOk(pair.srv4, '--key', keys.alice!, '--open', `tcp/${SSH}`);
      assert.equal(await opens(pair.srv4), true, 'open after the knock');
      const g = await daemon.waitFor((l) => l.event === 'grant');
      assert.equal(g.address, pair.cli4);
      assert.deepEqual(g.accesses, [`tcp/${SSH}`]);
      assert.equal(await isOpen(pair.srv6), false, 'an IPv4 knock does not open IPv6');
      assert.equal(await isOpen(pair.srv4, ALT), false, 'nor another protected port');
      // a connection made inside the window outlives the grant
      const held = await cli.hold(pair.srv4, SSH, CONNECT_MS);
      await new Promise((r) => setTimeout(r, DURATION * 1000 + 700));
      assert.equal(await isOpen(pair.srv4), false, 'new connects fail after the duration');
      assert.equal(await held.ping(1000), true, 'the established connection keeps working');
      await held.close();
    });

    test('an IPv6 knock opens for the IPv6 source; --close revokes at once', async () => {
      await knockOk(pair.srv6, '--key', keys.alice!, '--duration', '30');
      assert.equal(await opens(pair.srv6), true);
      assert.equal(await isOpen(pair.srv4), false, 'IPv6 grant does not open IPv4');
      const g = await daemon.waitFor((l) => l.event === 'grant' && l.address === pair.cli6);
      assert.equal(g.duration, 30);
      await knockOk(pair.srv6, '--key', keys.alice!, '--close');
      await daemon.waitFor((l) => l.event === 'revoke' && l.address === pair.cli6);
      assert.equal(await isOpen(pair.srv6), false, 'closed right after --close');
    });

    test('--allow-ip opens for the named address instead of the source', async () => {
      await knockOk(pair.srv4, '--key', keys.alice!, '--allow-ip', pair.cli6);
      assert.equal(await opens(pair.srv6), true, 'the IPv6 address named in the packet may connect');
      assert.equal(await isOpen(pair.srv4), false, 'the IPv4 source itself was not granted');
      const g = await daemon.waitFor((l) => l.event === 'grant' && l.address === pair.cli6 && l.source === pair.cli4);
      assert.ok(g);
      await knockOk(pair.srv4, '--key', keys.alice!, '--allow-ip', pair.cli6, '--close');
      await daemon.waitFor((l) => l.event === 'revoke' && l.address === pair.cli6 && l.source === pair.cli4);
      assert.equal(await isOpen(pair.srv6), false);
    });

    test('wrong key, a tampered byte, a stale timestamp, a port outside the policy: nothing opens', async () => {
      const before = grantsSoFar();
      await knockOk(pair.srv4, '--key', keys.mallory!);
      const hex = await packetHex(pair.srv4, '--key', keys.alice!);
      const tampered = hex.slice(0, 90) + (hex[90] === '0' ? '1' : '0') + hex.slice(91);
      await sendRaw(pair.srv4, tampered);
      // built here with the clock 5 min back: outside the 60 s window, and its key id is no longer indexed
      await sendRaw(pair.srv4, packetAt('alice', Date.now() - 5 * 60_000));
      // 61 s ahead: outside the 60 s window, but its key id is still indexed (unless a minute boundary falls in
      // between, so keep clear of the last seconds of a minute) — the daemon must count it as 'stale'
      while (Date.now() % 60_000 > 55_000) await new Promise((r) => setTimeout(r, 500));
      await sendRaw(pair.srv4, packetAt('alice', Date.now() + 61_000));
      await knockOk(pair.srv4, '--key', keys.alice!, '--open', `tcp/${ALT}`);
      await settle();
      assert.equal(await isOpen(pair.srv4), false);
      assert.equal(await isOpen(pair.srv4, ALT), false);
      const summary = await daemon.waitFor((l) => l.event === 'rejects' && typeof l.by === 'object', 3000);
      const by: Record<string, number> = {};
      for (const l of daemon.events('rejects')) for (const [k, v] of Object.entries(l.by as Record<string, number>)) by[k] = (by[k] ?? 0) + v;
      assert.ok(summary);
      assert.ok((by['unknown-key'] ?? 0) >= 1, `wrong key counted: ${JSON.stringify(by)}`);
      assert.ok((by.mac ?? 0) >= 1, `tampered counted: ${JSON.stringify(by)}`);
      assert.ok((by.stale ?? 0) + (by['unknown-key'] ?? 0) >= 3, `stale counted: ${JSON.stringify(by)}`);
      assert.ok((by.stale ?? 0) >= 1, `+61 s is stale: ${JSON.stringify(by)}`);
      assert.ok((by.policy ?? 0) >= 1, `policy counted: ${JSON.stringify(by)}`);
      assert.equal(grantsSoFar(), before, 'no grant was logged');
      // positive controls: the untampered bytes and bob's key do open
      await sendRaw(pair.srv4, hex);
      assert.equal(await opens(pair.srv4), true, 'control: the untampered packet opens');
      await knockOk(pair.srv4, '--key', keys.bob!);
      assert.equal(await opens(pair.srv4, ALT), true, 'control: bob may open tcp/2222');
      await knockOk(pair.srv4, '--key', keys.alice!, '--close');
      await knockOk(pair.srv4, '--key', keys.bob!, '--close');
      await daemon.waitFor((l) => l.event === 'revoke' && (l.accesses as string[]).includes(`tcp/${ALT}`));
      assert.equal(await isOpen(pair.srv4), false);
      assert.equal(await isOpen(pair.srv4, ALT), false);
    });

    test('the same packet bytes sent again do not reopen the port, also after kill -9 and a restart', async () => {
      const hex = await packetHex(pair.srv4, '--key', keys.alice!, '--duration', '30');
      await sendRaw(pair.srv4, hex);
      assert.equal(await opens(pair.srv4), true, 'first copy opens');
      const mark = daemon.lines.length;
      await knockOk(pair.srv4, '--key', keys.alice!, '--close');
      await daemon.waitFor((l) => l.event === 'revoke', 3000, mark);
      assert.equal(await isOpen(pair.srv4), false, 'closed by --close');
      const grants = grantsSoFar();
      await sendRaw(pair.srv4, hex);
      await settle();
      assert.equal(await isOpen(pair.srv4), false, 'the replayed copy does not reopen');
      assert.equal(grantsSoFar(), grants);

      assert.equal(await daemon.stop('SIGKILL'), null);
      assert.equal(await isOpen(pair.srv4), false, 'fail-closed: with the daemon dead the port stays closed');
      assert.equal(await isOpen(pair.srv4, OPEN), true, 'control: the rest of the host is unaffected');
      await daemon.start();
      await sendRaw(pair.srv4, hex);
      await settle();
      assert.equal(await isOpen(pair.srv4), false, 'still refused after kill -9 and restart');
      const restartedAt = daemon.lines.findLastIndex((l) => l.event === 'start');
      await daemon.waitFor((l) => l.event === 'rejects' && ((l.by as Record<string, number>).replay ?? 0) === 1, 3000, restartedAt);
      await knockOk(pair.srv4, '--key', keys.alice!);
      assert.equal(await opens(pair.srv4), true, 'control: a fresh knock opens after the restart');
      await knockOk(pair.srv4, '--key', keys.alice!, '--close');
    });

    test('kill -9 with a grant open: the grant still ends on time, and the restarted daemon keeps the port protected', async () => {
      await knockOk(pair.srv4, '--key', keys.alice!, '--duration', '2');
      assert.equal(await opens(pair.srv4), true);
      await daemon.stop('SIGKILL');
      if (backend === 'nftables') {
        // the kernel expires the set element with no daemon alive
        await new Promise((r) => setTimeout(r, 2500));
        assert.equal(await isOpen(pair.srv4), false, 'expired in the kernel while the daemon was dead');
        await daemon.start();
      } else {
        // iptables has no kernel expiry: the restarted daemon reconciles the leftover grant away
        await new Promise((r) => setTimeout(r, 2500));
        await daemon.start();
        await settle();
        assert.equal(await isOpen(pair.srv4), false, 'the expired leftover was removed at start');
      }
      assert.equal(await isOpen(pair.srv4, OPEN), true);
    });

    test('SIGTERM stops the daemon cleanly and leaves the port closed', async () => {
      assert.equal(await daemon.stop('SIGTERM'), 0);
      assert.ok(daemon.events('stop').length >= 1);
      assert.equal(await isOpen(pair.srv4), false);
      await daemon.start();
    });

    test('spa-knockd check and uninstall', async () => {
      const cfg = join(dir, 'spa-knockd.toml');
      const check = await runTs(DAEMON, ['check', '--config', cfg], { prefix: pair.wrap(pair.srv) });
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, new RegExp(`firewall: ${backend} installed and as configured`));
      await daemon.stop('SIGTERM');
      const un = await runTs(DAEMON, ['uninstall', '--config', cfg], { prefix: pair.wrap(pair.srv) });
      assert.equal(un.code, 0, un.stderr);
      assert.equal(await isOpen(pair.srv4), true, 'after uninstall the port is no longer gated');
      assert.equal(await isOpen(pair.srv6), true);
      const again = await runTs(DAEMON, ['check', '--config', cfg], { prefix: pair.wrap(pair.srv) });
      assert.equal(again.code, 0);
      assert.match(again.stdout, /not as configured yet/);
    });
  });
}
