/**
 * Silence (issue 9, "Security tests"), both backends, in network namespaces: the server namespace transmits nothing
 * in answer to knocks — valid, invalid, replayed, junk — nor to a flood of junk, and nmap's view of it.
 *
 * Counting what leaves: a table of the test's own in the server namespace (`inet sect_watch`, a `postrouting` chain at
 * priority 300, so it sees only what got past every output chain, ours included) counts every IPv4/IPv6 packet that
 * leaves through the veth, with IPv6 neighbour discovery and MLD counted apart (the kernel's own link upkeep, not an
 * answer). ARP is not IP and not counted; the veth's `tx_packets` (everything, ARP included) is reported beside it.
 * Controls prove the counter sees answers: a datagram to a closed UDP port draws an ICMP port-unreachable (without
 * silence_port_unreachable) and a TCP connect to an open port draws its SYN-ACK.
 *
 * nmap from the client namespace (`-sU` on the knock port and a closed UDP port, `-sS` on a protected, an open and a
 * closed TCP port), IPv4 and IPv6, without and with `firewall.silence_port_unreachable`; docs/threat-model.md
 * records the output. Asserted: the knock port is `open|filtered` (no answer) in every case; a closed UDP port is
 * `closed` without the option and `open|filtered` — like the knock port — with it; the protected TCP port is
 * `filtered` (dropped, never reset), the open one `open`, a closed one `closed`.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { ROOT } from '../../harness/run.js';
import { run } from '../../server/firewall/process.js';
import { type Backend, E2eWorld, OPEN, SSH, UDP_PORT } from './world.js';

const WATCH = 'sect_watch';
/** A UDP port nothing listens on, and a TCP port nothing listens on (and nothing protects). */
const CLOSED_UDP = 62202;
const CLOSED_TCP = 2323;

const ND_TYPES =
  '{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report }';

function silenceSuite(backend: Backend, tag: string, subnet: number): void {
  if (!requireNetns([...BACKEND_TOOLS[backend], 'nft', 'nmap'])) return;

  describe(`silence and nmap with ${backend}`, () => {
    const w = new E2eWorld({
      backend,
      tag,
      subnet,
      clients: [{ name: 'alice', open: [`tcp/${SSH}`] }],
      strangers: ['mallory'],
    });
    const nft = async (...args: string[]) => {
      const r = await w.pair.exec(w.pair.srv, ['nft', ...args]);
      assert.equal(r.code, 0, `nft ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const counter = async (name: string) => {
      const m = /packets (\d+)/.exec(await nft('list', 'counter', 'inet', WATCH, name));
      assert.ok(m, `counter ${name}`);
      return Number(m[1]);
    };
    const txPackets = async () => {
      const r = await w.pair.exec(w.pair.srv, ['cat', '/sys/class/net/vsrv/statistics/tx_packets']);
      return Number(r.stdout.trim());
    };
    const snapshot = async () => ({ out: await counter('out'), nd: await counter('nd'), tx: await txPackets() });
    /** Run `what`, wait for stragglers, return what left the server namespace meanwhile. */
    const leaving = async (what: () => Promise<unknown>) => {
      const a = await snapshot();
      await what();
      await new Promise((r) => setTimeout(r, 400));
      const b = await snapshot();
      return { out: b.out - a.out, nd: b.nd - a.nd, tx: b.tx - a.tx };
    };
    const burst = async (host: string, hex: string[], junk: number, seed: number) => {
      const spec = JSON.stringify({ host, port: UDP_PORT, hex, junk, prefixHex: hex[0]?.slice(0, 18) ?? '01', seed });
      const r = await w.pair.exec(
        w.pair.cli,
        [process.execPath, '--import', 'tsx', join(ROOT, 'test/e2e/fixtures/udp-burst.ts'), spec],
        { timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { sent: number }).sent;
    };

    before(async () => {
      await w.start();
      const table = [
        `table inet ${WATCH} {`,
        '  counter out {}',
        '  counter nd {}',
        '  chain post {',
        '    type filter hook postrouting priority 300; policy accept;',
        `    oifname "vsrv" meta nfproto ipv6 icmpv6 type ${ND_TYPES} counter name nd accept`,
        '    oifname "vsrv" counter name out',
        '  }',
        '}',
      ].join('\n');
      const r = await run([...w.pair.wrap(w.pair.srv), 'nft', '-f', '-'], { input: table });
      assert.equal(r.code, 0, r.stderr);
    });
    after(() => w.stop());

    test('controls: the counter sees answers (ICMP port-unreachable from a closed UDP port, a SYN-ACK)', async () => {
      const u = await leaving(() => w.cli.udpProbe(w.pair.srv4, CLOSED_UDP, 300));
      assert.ok(u.out >= 1, `a closed UDP port answered: ${JSON.stringify(u)}`);
      const t = await leaving(() => w.cli.tcpConnect(w.pair.srv4, OPEN, 400));
      assert.ok(t.out >= 1, `an open TCP port answered: ${JSON.stringify(t)}`);
    });

    test('valid, invalid, replayed and junk knocks draw nothing from the server namespace', async (t) => {
      const srv4 = w.pair.srv4;
      const srv6 = w.pair.srv6;
      const valid4 = await w.packetHex(srv4, '--key', w.keys.alice!);
      const valid6 = await w.packetHex(srv6, '--key', w.keys.alice!);
      const stranger = await w.packetHex(srv4, '--key', w.keys.mallory!);
      const flipped = valid4.slice(0, 80) + (valid4[80] === '0' ? '1' : '0') + valid4.slice(81);
      const grants = w.grantsSoFar();
      const d = await leaving(async () => {
        await w.sendRaw(srv4, valid4); // granted
        await w.sendRaw(srv6, valid6); // granted
        await w.sendRaw(srv4, valid4); // replay
        await w.sendRaw(srv4, stranger); // unknown key
        await w.sendRaw(srv4, flipped); // bad MAC
        await w.sendRaw(srv4, '00'); // one byte
        await w.sendRaw(srv4, `02${valid4.slice(2)}`); // unknown version
        await w.sendRaw(srv6, 'ff'.repeat(600)); // too long
        await w.daemon.waitFor((l) => l.event === 'grant' && l.address === w.pair.cli6, 3000);
      });
      t.diagnostic(`${backend}: knocks → ${JSON.stringify(d)} (out: IP packets leaving; nd: IPv6 ND/MLD; tx: veth)`);
      assert.equal(w.grantsSoFar(), grants + 2, 'control: the two valid knocks were granted');
      assert.equal(d.out, 0, 'no IP packet left the server namespace in answer to the knocks');
      await w.knockOk(srv4, '--key', w.keys.alice!, '--close');
      await w.knockOk(srv6, '--key', w.keys.alice!, '--close');
    });

    test('a flood of junk (20,000 datagrams per family, a quarter with a real key id) draws nothing', async (t) => {
      const prefix4 = await w.packetHex(w.pair.srv4, '--key', w.keys.alice!);
      const prefix6 = await w.packetHex(w.pair.srv6, '--key', w.keys.alice!);
      let sent = 0;
      const mark = w.daemon.lines.length;
      const d = await leaving(async () => {
        sent += await burst(w.pair.srv4, [prefix4], 20_000, 1);
        sent += await burst(w.pair.srv6, [prefix6], 20_000, 2);
        await new Promise((r) => setTimeout(r, 1200)); // a reject summary (every second) covers the flood
      });
      const by = w.rejects(mark);
      const total = Object.values(by).reduce((a, b) => a + b, 0);
      t.diagnostic(`${backend}: ${sent} datagrams → ${JSON.stringify(d)}; daemon rejects ${JSON.stringify(by)}`);
      assert.equal(sent, 40_002);
      assert.ok(total > 0, 'the daemon saw the flood');
      assert.equal(d.out, 0, 'no IP packet left the server namespace during the flood');
    });

    /** nmap's normal output: the port lines as it prints them, and the state of each. */
    const nmap = async (args: string[]): Promise<{ lines: string[]; states: Record<string, string> }> => {
      const r = await w.pair.exec(w.pair.cli, ['nmap', '-n', '-Pn', ...args], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, `nmap ${args.join(' ')}: ${r.stderr}`);
      const lines = r.stdout.split('\n').filter((l) => /^\d+\/(udp|tcp)\s/.test(l));
      const states: Record<string, string> = {};
      for (const l of lines) {
        const [pp, state] = l.split(/\s+/);
        const [port, proto] = (pp ?? '').split('/');
        if (port && proto && state) states[`${proto}/${port}`] = state;
      }
      assert.ok(lines.length > 0, `nmap printed port lines: ${r.stdout}`);
      return { lines, states };
    };
    const scans = async (t: { diagnostic(s: string): void }, silenced: boolean) => {
      for (const [fam, host] of [
        ['4', w.pair.srv4],
        ['6', w.pair.srv6],
      ] as const) {
        const v6 = fam === '6' ? ['-6'] : [];
        const u = await nmap([...v6, '-sU', '-p', `${UDP_PORT},${CLOSED_UDP}`, host]);
        const s = await nmap([...v6, '-sS', '-p', `${SSH},${OPEN},${CLOSED_TCP}`, host]);
        const udp = u.states;
        const tcp = s.states;
        t.diagnostic(
          `${backend} IPv${fam} silence_port_unreachable=${silenced}: ${[...u.lines, ...s.lines].join(' | ')}`,
        );
        assert.equal(udp[`udp/${UDP_PORT}`], 'open|filtered', 'the knock port answers nothing');
        assert.equal(udp[`udp/${CLOSED_UDP}`], silenced ? 'open|filtered' : 'closed');
        assert.equal(tcp[`tcp/${SSH}`], 'filtered', 'the protected port drops (no RST)');
        assert.equal(tcp[`tcp/${OPEN}`], 'open');
        assert.equal(tcp[`tcp/${CLOSED_TCP}`], 'closed');
      }
    };

    test('nmap without silence_port_unreachable: knock port open|filtered, a closed UDP port closed', async (t) => {
      await scans(t, false);
    });

    test('nmap with silence_port_unreachable: the closed UDP port looks like the knock port', async (t) => {
      const cfg = readFileSync(w.configPath, 'utf8');
      writeFileSync(w.configPath, cfg.replace(/^(table = .*)$/m, '$1\nsilence_port_unreachable = true'), {
        mode: 0o600,
      });
      assert.equal(await w.daemon.stop('SIGTERM'), 0);
      await w.daemon.start(60_000); // a restart takes 10-20 s on a loaded 2-core machine
      await scans(t, true);
      const u = await leaving(() => w.cli.udpProbe(w.pair.srv4, CLOSED_UDP, 300));
      assert.equal(u.out, 0, `with the option nothing answers a closed UDP port either: ${JSON.stringify(u)}`);
    });
  });
}

silenceSuite('nftables', 'sect-sil-nft', 132);
silenceSuite('iptables', 'sect-sil-ipt', 133);
