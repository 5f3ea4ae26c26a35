/**
 * fwknop wire compatibility, end to end in network namespaces (harness/netns.ts), with the real peers from Debian:
 * - the real `fwknop` client (fwknop-client) knocks a real spa-knockd, on both firewall backends, IPv4;
 * - the real `fwknopd` (fwknop-server, UDP server mode) is knocked by the real `spa-knock --format fwknop`.
 * Every "nothing opens" check has a positive control next to it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type FwknopKeyText, fwknopArgs, fwknopClientToml, fwknopKeyGen, fwknopPacket } from '../../harness/fwknop.js';
import { FwknopdProcess } from '../../harness/fwknopd.js';
import { type Agent, type NetnsPair, createPair, requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, runTs } from '../../harness/run.js';
import { ALT, type Backend, DURATION, E2eWorld, OPEN, SSH } from './world.js';

const hexOf = (text: string) => Buffer.from(text, 'latin1').toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function fwknopToSpaKnockd(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns([...BACKEND_TOOLS[backend], 'fwknop'])) return;

  describe(`real fwknop client → spa-knockd (${backend})`, () => {
    const FK: FwknopKeyText = fwknopKeyGen();
    const REQ: FwknopKeyText = fwknopKeyGen();
    const STRANGER: FwknopKeyText = fwknopKeyGen();
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [{ name: 'alice', open: [`tcp/${SSH}`] }],
      tables: [
        fwknopClientToml({ name: 'fk', keys: FK, open: [`tcp/${SSH}`] }),
        fwknopClientToml({ name: 'fkreq', keys: REQ, open: [`tcp/${ALT}`], requireSourceAddress: true }),
      ],
    });
    before(() => w.start());
    after(() => w.stop());

    /** The real client in the client namespace: sends one packet to the daemon. */
    async function fwknop(keys: FwknopKeyText, ...extra: string[]): Promise<void> {
      const r = await w.pair.exec(w.pair.cli, ['fwknop', ...fwknopArgs(keys, w.pair.srv4, extra)]);
      assert.equal(r.code, 0, `fwknop failed: ${r.stderr}`);
    }
    const grantFor = (address: string, from: number) =>
      w.daemon.waitFor((l) => l.event === 'grant' && l.address === address, 3000, from);
    const closes = async (port: number) => {
      const end = Date.now() + (DURATION + 8) * 1000;
      while (Date.now() < end) if (!(await w.isOpen(w.pair.srv4, port))) return true;
      return false;
    };

    test('-a X grants X (not the packet source); -a with our own address opens for us', async () => {
      assert.equal(await w.isOpen(w.pair.srv4), false, 'closed before the knock');
      const other = `10.251.${subnet}.77`;
      let mark = w.daemon.lines.length;
      await fwknop(FK, '-A', `tcp/${SSH}`, '-a', other);
      const g = await grantFor(other, mark);
      assert.deepEqual([g.client, g.source, g.accesses], ['fk', w.pair.cli4, [`tcp/${SSH}`]]);
      assert.equal(await w.isOpen(w.pair.srv4), false, 'the source itself was not granted');
      mark = w.daemon.lines.length;
      await fwknop(FK, '-A', `tcp/${SSH}`, '-a', w.pair.cli4);
      assert.equal(await w.opens(w.pair.srv4), true, 'open after the knock');
      await grantFor(w.pair.cli4, mark);
      assert.equal(await w.isOpen(w.pair.srv4, ALT), false, 'only the port asked for');
      assert.equal(await closes(SSH), true, 'closes after the duration');
    });

    test('-s (0.0.0.0) opens for the source; -f sets the duration; require_source_address refuses -s', async () => {
      let mark = w.daemon.lines.length;
      await fwknop(FK, '-A', `tcp/${SSH}`, '-s', '-f', '7');
      assert.equal(await w.opens(w.pair.srv4), true);
      const g = await grantFor(w.pair.cli4, mark);
      assert.equal(g.duration, 7);
      mark = w.daemon.lines.length;
      await fwknop(REQ, '-A', `tcp/${ALT}`, '-s');
      await w.daemon.waitFor(
        (l) => l.event === 'rejects' && (l.by as Record<string, number>)['source-required'] === 1,
        3000,
        mark,
      );
      assert.equal(await w.isOpen(w.pair.srv4, ALT), false, '-s refused under require_source_address');
      await fwknop(REQ, '-A', `tcp/${ALT}`, '-a', w.pair.cli4);
      assert.equal(await w.opens(w.pair.srv4, ALT), true, 'control: -a with the same key opens');
      assert.equal(await closes(ALT), true);
      assert.equal(await closes(SSH), true);
    });

    test('wrong key, a flipped byte, a port outside policy, a shifted timestamp: nothing opens', async () => {
      const mark = w.daemon.lines.length;
      const grants = w.grantsSoFar();
      await fwknop(STRANGER, '-A', `tcp/${SSH}`, '-a', w.pair.cli4);
      const good = fwknopPacket(FK, ['-A', `tcp/${SSH}`, '-a', w.pair.cli4], w.pair.srv4).text;
      const i = 60;
      const flipped = good.slice(0, i) + (good[i] === 'A' ? 'B' : 'A') + good.slice(i + 1);
      await w.sendRaw(w.pair.srv4, hexOf(flipped));
      await fwknop(FK, '-A', `tcp/${ALT}`, '-a', w.pair.cli4);
      await fwknop(FK, '-A', `tcp/${SSH}`, '-a', w.pair.cli4, '--time-offset-plus', '600');
      await fwknop(FK, '-A', `tcp/${SSH}`, '-a', w.pair.cli4, '--time-offset-minus', '600');
      await w.settle();
      assert.equal(await w.isOpen(w.pair.srv4), false);
      assert.equal(await w.isOpen(w.pair.srv4, ALT), false);
      await sleep(1200); // one reject summary per second
      const by = w.rejects(mark);
      assert.ok((by.mac ?? 0) >= 2, `wrong key and flipped byte: ${JSON.stringify(by)}`);
      assert.equal(by.policy, 1, `port outside policy: ${JSON.stringify(by)}`);
      assert.equal(by.stale, 2, `±600 s: ${JSON.stringify(by)}`);
      assert.equal(w.grantsSoFar(), grants, 'no grant logged');
      await w.sendRaw(w.pair.srv4, hexOf(good));
      assert.equal(await w.opens(w.pair.srv4), true, 'control: the unflipped packet opens');
      assert.equal(await closes(SSH), true);
    });

    test('the same bytes again open nothing, also after a daemon restart', async () => {
      const text = fwknopPacket(FK, ['-A', `tcp/${SSH}`, '-a', w.pair.cli4], w.pair.srv4).text;
      await w.sendRaw(w.pair.srv4, hexOf(text));
      assert.equal(await w.opens(w.pair.srv4), true, 'first copy opens');
      assert.equal(await closes(SSH), true);
      let mark = w.daemon.lines.length;
      await w.sendRaw(w.pair.srv4, hexOf(text));
      await w.settle();
      assert.equal(await w.isOpen(w.pair.srv4), false, 'the replayed copy does not reopen');
      await w.daemon.waitFor((l) => l.event === 'rejects' && (l.by as Record<string, number>).replay === 1, 3000, mark);
      await w.daemon.stop('SIGTERM');
      await w.daemon.start();
      mark = w.daemon.lines.length;
      await w.sendRaw(w.pair.srv4, hexOf(text));
      await w.settle();
      assert.equal(await w.isOpen(w.pair.srv4), false, 'nor after a restart');
      await w.daemon.waitFor((l) => l.event === 'rejects' && (l.by as Record<string, number>).replay === 1, 3000, mark);
      await fwknop(FK, '-A', `tcp/${SSH}`, '-a', w.pair.cli4);
      assert.equal(await w.opens(w.pair.srv4), true, 'control: a fresh packet opens');
    });

    test('NAT and command requests are refused with their own reasons', async () => {
      const mark = w.daemon.lines.length;
      await fwknop(FK, '-A', `tcp/${SSH}`, '-a', w.pair.cli4, '-N', '192.168.1.2:22');
      await fwknop(FK, '-C', 'id', '-a', w.pair.cli4);
      await sleep(1200);
      const by = w.rejects(mark);
      assert.deepEqual([by['fwknop-nat'], by['fwknop-command']], [1, 1], JSON.stringify(by));
    });
  });
}

fwknopToSpaKnockd('nftables', 'fwk-nft', 71);
fwknopToSpaKnockd('iptables', 'fwk-ipt', 72);

if (requireNetns(['iptables', 'fwknopd'])) {
  describe('spa-knock --format fwknop → real fwknopd (UDP server mode)', () => {
    const KEYS = fwknopKeyGen();
    let pair: NetnsPair | undefined;
    let srv: Agent | undefined;
    let cli: Agent | undefined;
    let fwknopd: FwknopdProcess | undefined;
    let keyFile = '';
    before(async () => {
      pair = await createPair('fwk-d', { subnet: 73 });
      [srv, cli] = await Promise.all([pair.agent(pair.srv), pair.agent(pair.cli)]);
      for (const p of [SSH, OPEN]) await srv.listenTcp(p);
      // fwknopd opens by inserting ACCEPT rules ahead of everything in INPUT: close tcp/22 below them
      const rej = ['INPUT', '-p', 'tcp', '--dport', String(SSH), '-j', 'REJECT', '--reject-with', 'tcp-reset'];
      const r = await pair.exec(pair.srv, ['iptables', '-A', ...rej]);
      assert.equal(r.code, 0, r.stderr);
      fwknopd = new FwknopdProcess(pair.srv, {
        keys: KEYS,
        openPorts: [`tcp/${SSH}`],
        accessTimeout: 30,
        requireSourceAddress: true,
      });
      keyFile = `${fwknopd.dir}/client.keys`;
      writeFileSync(keyFile, KEYS.text, { mode: 0o600 });
      await fwknopd.start();
    });
    after(async () => {
      try {
        await fwknopd?.stop();
      } finally {
        await pair?.cleanup();
      }
    });
    const knock = (...args: string[]) =>
      runTs(CLIENT, [pair?.srv4 ?? '', '--format', 'fwknop', '--key', keyFile, ...args], {
        prefix: pair?.wrap(pair.cli) ?? [],
      });
    const isOpen = async (port = SSH) => (await cli?.tcpConnect(pair?.srv4 ?? '', port, 400))?.ok ?? false;
    const opens = async () => {
      const end = Date.now() + 3000;
      while (Date.now() < end) if (await isOpen()) return true;
      return false;
    };

    test('-s style (0.0.0.0) is refused under REQUIRE_SOURCE_ADDRESS; --allow-ip with --duration opens', async () => {
      assert.equal(await isOpen(), false, 'closed before');
      assert.equal(await isOpen(OPEN), true, 'control: unprotected port reachable');
      let from = fwknopd?.log.length ?? 0;
      const s = await knock('--open', `tcp/${SSH}`);
      assert.equal(s.code, 0, s.stderr);
      assert.equal(await fwknopd?.waitLog(/0\.0\.0\.0 when valid source IP was required/, 3000, from), true);
      assert.equal(await isOpen(), false);
      from = fwknopd?.log.length ?? 0;
      const a = await knock('--open', `tcp/${SSH}`, '--allow-ip', pair?.cli4 ?? '', '--duration', '9');
      assert.equal(a.code, 0, a.stderr);
      assert.equal(await opens(), true, 'fwknopd opened tcp/22 for our packet');
      assert.equal(await fwknopd?.waitLog(/Added access rule to FWKNOP_INPUT for 10\.251\.73\.2/, 3000, from), true);
      // -f 9 (message type 3): fwknopd's rule expires 9 s after our timestamp, not after FW_ACCESS_TIMEOUT 30
      const exp = /_exp_(\d+)/.exec(fwknopd?.log.slice(from) ?? '')?.[1];
      assert.ok(exp && Math.abs(Number(exp) - (Date.now() / 1000 + 9)) < 4, `expiry ${exp}`);
    });

    test('the same packet bytes twice: fwknopd refuses the copy (replay)', async () => {
      const r = await knock('--open', `tcp/${SSH}`, '--allow-ip', pair?.cli4 ?? '', '--dry-run', '--json');
      assert.equal(r.code, 0, r.stderr);
      const hex = (JSON.parse(r.stdout) as { hex: string }).hex;
      let from = fwknopd?.log.length ?? 0;
      await cli?.udpSend(pair?.srv4 ?? '', 62201, hex);
      assert.equal(await fwknopd?.waitLog(/Added access rule|already exists/, 3000, from), true, fwknopd?.log);
      from = fwknopd?.log.length ?? 0;
      await cli?.udpSend(pair?.srv4 ?? '', 62201, hex);
      assert.equal(await fwknopd?.waitLog(/Replay detected/, 3000, from), true);
    });
  });
}
