/**
 * The nftables kernel fast path (`firewall.fast_path`, server/firewall/nft-fastpath.ts), end to end: a real daemon in
 * a server namespace, real knocks from the client namespace, real TCP connects. Counters on both sides of the rule
 * (an output chain before ours, one after ours, and one in the client namespace) prove that the trigger datagrams are
 * sent and that none leaves the server namespace. Then `fast_path = "auto"`, the default: on without a word in the
 * config, the trigger ports closed to the outside, and off with one warning (grants through `nft -i`) while a trigger
 * port is taken.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { DAEMON, runTs } from '../../harness/run.js';
import { DURATION, E2eWorld, SSH } from './world.js';
import { CONFIRM_HOLD_MS } from '../../shared/constants.js';

const FIRST = 62340;
/** One duration (grant.duration): tcp on FIRST, udp on FIRST + 1. */
const LAST = FIRST + 1;
const COUNT_TABLE = 'gap_fast_count';

if (requireNetns(BACKEND_TOOLS.nftables)) {
  describe('nftables kernel fast path (fast_path = true)', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'gap-fast',
      subnet: 141,
      clients: [{ name: 'alice', open: [`tcp/${SSH}`] }],
      protect: [SSH],
      firewall: ['fast_path = true', `fast_path_port = ${FIRST}`],
    });
    const nft = async (ns: string, ...args: string[]): Promise<string> => {
      const r = await w.pair.exec(ns, ['nft', ...args]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    /** Packets counted by the chain `chain` of the count table in `ns`. */
    const counted = async (ns: string, chain: string): Promise<number> => {
      const out = await nft(ns, 'list', 'chain', 'inet', COUNT_TABLE, chain);
      const m = /counter packets (\d+)/.exec(out);
      assert.ok(m, out);
      return Number(m[1]);
    };
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    before(async () => {
      await w.start();
      const sport = `udp sport ${FIRST}-${LAST} counter`;
      const srv = await w.pair.exec(w.pair.srv, ['nft', '-f', '-'], {
        input: [
          `table inet ${COUNT_TABLE} {`,
          `chain before { type filter hook output priority -100; policy accept; ${sport}; }`,
          `chain after { type filter hook output priority 100; policy accept; ${sport}; }`,
          '}',
          '',
        ].join('\n'),
      });
      assert.equal(srv.code, 0, srv.stderr);
      const cli = await w.pair.exec(w.pair.cli, ['nft', '-f', '-'], {
        input: `table inet ${COUNT_TABLE} {\nchain seen { type filter hook prerouting priority -300; policy accept; ${sport}; }\n}\n`,
      });
      assert.equal(cli.code, 0, cli.stderr);
    });
    after(() => w.stop());

    test('IPv4 and IPv6: closed before, open after the knock; the trigger is sent and never leaves', async () => {
      assert.equal(await w.isOpen(w.pair.srv4), false);
      assert.equal(await w.isOpen(w.pair.srv6), false);
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!);
      assert.equal(await w.opens(w.pair.srv4), true, 'open after the IPv4 knock');
      await w.knockOk(w.pair.srv6, '--key', w.keys.alice!);
      assert.equal(await w.opens(w.pair.srv6), true, 'open after the IPv6 knock');
      await w.daemon.waitFor((l) => l.event === 'grant' && l.address === w.pair.cli6);
      assert.equal(await counted(w.pair.srv, 'before'), 2, 'one trigger per knock reached the output hook');
      assert.equal(await counted(w.pair.srv, 'after'), 0, 'our rule dropped every trigger');
      assert.equal(await counted(w.pair.cli, 'seen'), 0, 'nothing from a trigger port reached the client');
      // the confirming transaction stored the owner on the element the kernel made
      const set4 = await nft(w.pair.srv, 'list', 'set', 'inet', 'spak_e2e_nft', 'allow4');
      assert.match(set4, new RegExp(`${w.pair.cli4.replaceAll('.', '\\.')} \\. tcp \\. ${SSH} .*comment "alice"`));
      // …and waited CONFIRM_HOLD_MS first (the port was open already; nothing else waited): the grant line, written
      // once it committed, says so
      for (const g of w.daemon.events('grant'))
        assert.ok(
          Number(g['latency_ms']) >= CONFIRM_HOLD_MS,
          `confirmed after the hold: ${String(g['latency_ms'])} ms`,
        );
      assert.equal(w.daemon.events('firewall-error').length, 0);
    });

    test('a re-knock extends the grant; it then expires on time', async () => {
      await sleep(DURATION * 1000 + 1200); // the grants of the test before are gone
      assert.equal(await w.isOpen(w.pair.srv4), false, 'expired');
      // packets built here and sent raw: no CLI start-up in the timeline
      const grantAfter = async (mark: number): Promise<number> => {
        await w.daemon.waitFor((l) => l.event === 'grant' && l.address === w.pair.cli4, 3000, mark);
        return Date.now();
      };
      let mark = w.daemon.lines.length;
      await w.sendRaw(w.pair.srv4, w.packetAt('alice', Date.now()));
      const first = await grantAfter(mark);
      assert.equal(await w.isOpen(w.pair.srv4), true);
      await sleep(first + 1200 - Date.now());
      const before = await counted(w.pair.srv, 'before');
      mark = w.daemon.lines.length;
      await w.sendRaw(w.pair.srv4, w.packetAt('alice', Date.now()));
      const again = await grantAfter(mark);
      const set4 = await nft(w.pair.srv, 'list', 'set', 'inet', 'spak_e2e_nft', 'allow4');
      assert.match(
        set4,
        new RegExp(`${w.pair.cli4.replaceAll('.', '\\.')} \\. tcp \\. ${SSH} .*comment "alice"`),
        'owner kept',
      );
      await sleep(first + DURATION * 1000 + 600 - Date.now());
      assert.equal(await w.isOpen(w.pair.srv4), true, 'still open past the first grant’s end: extended');
      assert.equal(await counted(w.pair.srv, 'before'), before + 1, 'the re-knock went through the fast path');
      await sleep(again + DURATION * 1000 + 1200 - Date.now());
      assert.equal(await w.isOpen(w.pair.srv4), false, 'closed once the extended grant ended');
      assert.equal(await counted(w.pair.srv, 'after'), 0);
    });

    test('a duration without a trigger port opens through nft -i alone', async () => {
      const before = await counted(w.pair.srv, 'before');
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!, '--duration', '30');
      assert.equal(await w.opens(w.pair.srv4), true);
      assert.equal(await counted(w.pair.srv, 'before'), before, 'no trigger for a 30 s grant');
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke');
      assert.equal(await w.isOpen(w.pair.srv4), false);
    });

    test('spa-knockd check accepts the fast-path rules; the healer left them alone', async () => {
      const check = await runTs(DAEMON, ['check', '--config', w.configPath], { prefix: w.pair.wrap(w.pair.srv) });
      assert.equal(check.code, 0, check.stderr);
      assert.match(check.stdout, /firewall: nftables installed and as configured/);
      assert.equal(w.daemon.events('heal').length, 0);
      const chain = await nft(w.pair.srv, 'list', 'chain', 'inet', 'spak_e2e_nft', 'output');
      assert.match(chain, new RegExp(`udp sport ${FIRST} update @allow4`));
      assert.match(chain, new RegExp(`udp sport ${FIRST}-${LAST} drop`));
    });

    test('SIGHUP turning fast_path off removes the rules and frees the ports; on again brings them back', async () => {
      const on = readFileSync(w.configPath, 'utf8');
      const reload = async (text: string): Promise<void> => {
        writeFileSync(w.configPath, text, { mode: 0o600 });
        const from = w.daemon.lines.length;
        process.kill(w.daemon.pid ?? 0, 'SIGHUP');
        await w.daemon.waitFor((l) => l.event === 'reload', 5000, from);
      };
      await reload(on.replace('fast_path = true', 'fast_path = false'));
      const out = await w.pair.exec(w.pair.srv, ['nft', 'list', 'chain', 'inet', 'spak_e2e_nft', 'output']);
      assert.notEqual(out.code, 0, 'no output chain without fast_path (and silence_port_unreachable)');
      const ports = await w.pair.exec(w.pair.srv, ['ss', '-Hlun', `sport = :${FIRST}`]);
      assert.equal(ports.stdout.trim(), '', 'the trigger port is free');
      const before = await counted(w.pair.srv, 'before');
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!);
      assert.equal(await w.opens(w.pair.srv4), true, 'opens through nft -i');
      assert.equal(await counted(w.pair.srv, 'before'), before, 'no trigger');
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke');
      await reload(on);
      const back = await w.pair.exec(w.pair.srv, ['ss', '-Hlun', `sport = :${FIRST}`]);
      assert.match(back.stdout, new RegExp(`:${FIRST}\\b`), 'the trigger port is held again');
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!);
      assert.equal(await w.opens(w.pair.srv4), true);
      assert.equal(await counted(w.pair.srv, 'before'), before + 1, 'through the fast path again');
    });

    // The fast path's `update @allow4` rules make nft list allow4/allow6 as dynamic with size 65535; a daemon that
    // declared them otherwise failed its keep-the-table install over its own table and replaced the table whole,
    // every grant's time rounded down to the second (seen: a grant closing 0.3-0.9 s early after a kill -9).
    test('a reload and a kill -9 plus restart keep the table in place: same handle, each grant its own end', async () => {
      const handle = async (): Promise<number | undefined> => {
        const out = JSON.parse(await nft(w.pair.srv, '-j', 'list', 'tables')) as {
          nftables: { table?: { name: string; handle: number } }[];
        };
        return out.nftables.find((x) => x.table?.name === 'spak_e2e_nft')?.table?.handle;
      };
      // the text listing gives `expires 28s820ms` to the millisecond (the JSON one, whole seconds)
      const element = new RegExp(
        `${w.pair.cli4.replaceAll('.', '\\.')} \\. tcp \\. ${SSH} timeout \\S+ expires (\\S+)`,
      );
      const ms = (d: string): number =>
        [...d.matchAll(/(\d+)(ms|s|m|h|d)/g)].reduce(
          (sum, [, n, u]) => sum + Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[u as 'ms'],
          0,
        );
      /**
       * When the kernel will drop the element (ms since the epoch): between `lo` and `hi`, the remaining time added to
       * the clock before and after the listing (a loaded machine can take 100s of ms to run `nft`).
       */
      const endInKernel = async (): Promise<{ lo: number; hi: number }> => {
        const before = Date.now();
        const m = element.exec(await nft(w.pair.srv, 'list', 'set', 'inet', 'spak_e2e_nft', 'allow4'));
        assert.ok(m, 'the grant is in allow4');
        const left = ms(m[1]!);
        return { lo: before + left, hi: Date.now() + left };
      };
      let mark = w.daemon.lines.length;
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!, '--duration', '30');
      const g = await w.daemon.waitFor((l) => l.event === 'grant' && l.address === w.pair.cli4, 3000, mark);
      const h = await handle();
      assert.ok(h !== undefined, 'the table is there');
      // the kernel's end; the daemon's own (logged) end is a little earlier, computed before the commit, and a
      // reload writes the live grants again with that one
      const end = await endInKernel();
      const logged = Date.parse(String(g.expires));
      await sleep(600);
      const near = async (what: string): Promise<void> => {
        const now = await endInKernel();
        // a replace rounds the remaining time down to the second: on average 0.5 s early
        assert.ok(
          now.hi >= Math.min(end.lo, logged) - 150 && now.lo <= end.hi + 150,
          `${what}: the grant ends in [${now.lo - end.lo}, ${now.hi - end.lo}] ms from where it did ` +
            `([0, ${end.hi - end.lo}]; logged end ${logged - end.lo} ms)`,
        );
      };

      mark = w.daemon.lines.length;
      process.kill(w.daemon.pid ?? 0, 'SIGHUP');
      await w.daemon.waitFor((l) => l.event === 'reload', 5000, mark);
      assert.equal(await handle(), h, 'the reload installed over the table in place');
      await near('after the reload');

      assert.equal(await w.daemon.stop('SIGKILL'), null, 'killed by SIGKILL');
      mark = w.daemon.lines.length;
      await w.daemon.start(60_000);
      assert.equal(w.daemon.events('restore', mark)[0]?.grants, 1, 'the restart adopted the grant');
      assert.equal(await handle(), h, 'the restart installed over the table in place');
      await near('after the restart');
      assert.equal(w.daemon.events('fast-path-off').length, 0);

      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke', 3000, mark);
      assert.equal(await w.isOpen(w.pair.srv4), false);
    });
  });
}

const AUTO_TAKEN = 62350;

if (requireNetns([...BACKEND_TOOLS.nftables, 'nmap'])) {
  describe('nftables kernel fast path, "auto" (the default)', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'gap-auto',
      subnet: 142,
      clients: [{ name: 'alice', open: [`tcp/${SSH}`] }],
      protect: [SSH],
    });
    const outputChain = () => w.pair.exec(w.pair.srv, ['nft', 'list', 'chain', 'inet', 'spak_e2e_nft', 'output']);
    const reload = async (text: string): Promise<number> => {
      writeFileSync(w.configPath, text, { mode: 0o600 });
      const from = w.daemon.lines.length;
      process.kill(w.daemon.pid ?? 0, 'SIGHUP');
      await w.daemon.waitFor((l) => l.event === 'reload', 5000, from);
      return from;
    };
    let holder: ChildProcess | undefined;

    before(() => w.start());
    after(async () => {
      if (holder?.pid !== undefined && holder.exitCode === null) holder.kill('SIGKILL');
      await w.stop();
    });

    test('on with no fast_path key: said at start, a knock opens, the trigger ports look closed from outside', async () => {
      assert.equal(w.daemon.events('start')[0]?.fast_path, true);
      const st = await runTs(DAEMON, ['status', '--config', w.configPath], { prefix: w.pair.wrap(w.pair.srv) });
      assert.match(st.stdout, /\nkernel fast path: on\n/);
      assert.equal(w.daemon.events('fast-path-off').length, 0);
      const out = await outputChain();
      assert.match(out.stdout, /udp sport 62300 update @allow4/);
      assert.equal(await w.isOpen(w.pair.srv4), false);
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!);
      assert.equal(await w.opens(w.pair.srv4), true);
      // a datagram from outside to a trigger port is refused as at a closed port (62299 is one, as a control)
      const r = await w.pair.exec(w.pair.cli, ['nmap', '-n', '-Pn', '-sU', '-p', '62299-62301', w.pair.srv4], {
        timeoutMs: 120_000,
      });
      assert.equal(r.code, 0, r.stderr);
      for (const port of [62299, 62300, 62301]) assert.match(r.stdout, new RegExp(`^${port}/udp\\s+closed\\b`, 'm'));
    });

    test('a trigger port taken: one warning, grants through nft -i alone, check passes, no heal; back on by itself once it is free', async () => {
      const config = readFileSync(w.configPath, 'utf8');
      // something else in the server namespace holds the port first
      holder = spawn(
        w.pair.wrap(w.pair.srv)[0] ?? 'ip',
        [
          ...w.pair.wrap(w.pair.srv).slice(1),
          process.execPath,
          '-e',
          `require('node:dgram').createSocket('udp4').bind(${AUTO_TAKEN}, () => console.log('bound'))`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        holder?.stdout?.once('data', () => resolve());
        holder?.once('exit', (code) => reject(new Error(`the port holder exited (${code})`)));
      });
      const from = await reload(config.replace('[firewall]', `[firewall]\nfast_path_port = ${AUTO_TAKEN}`));
      const warned = w.daemon.events('fast-path-off', from);
      assert.equal(warned.length, 1);
      assert.match(String(warned[0]?.reason), new RegExp(`fast_path_port ${AUTO_TAKEN}: cannot bind .*EADDRINUSE`));
      assert.equal((await outputChain()).code === 0, false, 'no output chain: no rule for ports it does not hold');
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke', 3000, from);
      assert.equal(await w.isOpen(w.pair.srv4), false);
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!);
      assert.equal(await w.opens(w.pair.srv4), true, 'opens through nft -i');
      const check = await runTs(DAEMON, ['check', '--config', w.configPath], { prefix: w.pair.wrap(w.pair.srv) });
      assert.equal(check.code, 0, check.stderr);
      await new Promise((r) => setTimeout(r, 2500)); // past one heal_interval (2 s)
      assert.equal(w.daemon.events('heal', from).length, 0, 'the healer takes the plan as installed');
      assert.equal(w.daemon.events('fast-path-off', from).length, 1, 'warned once');
      const st = await runTs(DAEMON, ['status', '--config', w.configPath, '--json'], {
        prefix: w.pair.wrap(w.pair.srv),
      });
      assert.equal(st.code, 0, st.stderr);
      const fast = (JSON.parse(st.stdout) as { fast_path: { on: boolean; reason?: string } }).fast_path;
      assert.equal(fast.on, false);
      assert.match(fast.reason ?? '', new RegExp(`fast_path_port ${AUTO_TAKEN}: cannot bind`));
      // the port freed: the healer's next tick (heal_interval, 2 s) takes it and installs the fast path, no reload
      const freed = w.daemon.lines.length;
      holder.kill('SIGKILL');
      await new Promise((r) => holder?.once('exit', r));
      await w.daemon.waitFor((l) => l.event === 'fast-path-on', 5000, freed);
      assert.match((await outputChain()).stdout, new RegExp(`udp sport ${AUTO_TAKEN} update @allow4`));
      assert.equal(w.daemon.events('reload', freed).length, 0, 'no reload');
      assert.equal(w.daemon.events('heal', freed).length, 0, 'not a heal either');
      const st2 = await runTs(DAEMON, ['status', '--config', w.configPath], { prefix: w.pair.wrap(w.pair.srv) });
      assert.match(st2.stdout, /\nkernel fast path: on\n/);
      // and a knock goes through it: a counter before ours in the output hook sees the trigger
      const count = await w.pair.exec(w.pair.srv, ['nft', '-f', '-'], {
        input: `table inet gap_auto_count {\nchain before { type filter hook output priority -100; policy accept; udp sport ${AUTO_TAKEN} counter; }\n}\n`,
      });
      assert.equal(count.code, 0, count.stderr);
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!, '--close');
      await w.daemon.waitFor((l) => l.event === 'revoke', 3000, freed);
      assert.equal(await w.isOpen(w.pair.srv4), false);
      await w.knockOk(w.pair.srv4, '--key', w.keys.alice!);
      assert.equal(await w.opens(w.pair.srv4), true);
      const seen = await w.pair.exec(w.pair.srv, ['nft', 'list', 'chain', 'inet', 'gap_auto_count', 'before']);
      assert.match(seen.stdout, /counter packets 1 /, 'one trigger sent');
    });
  });
}
