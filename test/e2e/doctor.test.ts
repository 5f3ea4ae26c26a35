/**
 * `spa-knockd doctor` for real (server/doctor.ts): a server and a client namespace (test/e2e/world.ts), a real
 * spa-knockd with nftables in front of a TCP listener, and per finding the broken state set up for real in the server
 * namespace — another nft table dropping the protected port, one dropping the knock port, an iptables-legacy rule,
 * an IPv4-only listen address on a host with IPv6, the iptables backend without ip6tables, a client whose clock is
 * 75 s ahead (the real `spa-knock` under faketime), the daemon stopped and its gate deleted, a broken config — then
 * the real `spa-knockd doctor --config …` run inside the namespace must name it, and a clean setup must have none.
 * Where the finding predicts it, the real knock is shown to fail (the TCP connect stays refused).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { CLIENT, DAEMON, runTs } from '../../harness/run.js';
import { OPEN, UDP_PORT, E2eWorld } from './world.js';

const PORT = 2201;

interface Report {
  readonly ok: boolean;
  readonly findings: readonly { severity: string; code: string; message: string; fix: string }[];
}

if (requireNetns(['nft', 'iptables', 'ip6tables', 'iptables-legacy', 'faketime'])) {
  describe('spa-knockd doctor in a namespace', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'doctor',
      subnet: 94,
      clients: [{ name: 'alice', open: [`tcp/${PORT}`] }],
      protect: [PORT],
      listen: [PORT, OPEN],
    });
    let bin: string | undefined;
    before(() => w.start());
    after(async () => {
      try {
        await w.stop();
      } finally {
        if (bin) rmSync(bin, { recursive: true, force: true });
      }
    });

    const srv = (...argv: string[]) => w.pair.exec(w.pair.srv, argv);
    const must = async (...argv: string[]) => {
      const r = await srv(...argv);
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    };
    const nft = (text: string) => w.pair.exec(w.pair.srv, ['nft', '-f', '-'], { input: text });
    const doctorRun = (config = w.configPath, json = true, env?: NodeJS.ProcessEnv) =>
      runTs(DAEMON, ['doctor', '--config', config, ...(json ? ['--json'] : [])], {
        prefix: w.pair.wrap(w.pair.srv),
        timeoutMs: 60_000,
        ...(env ? { env } : {}),
      });
    const doctor = async (
      config = w.configPath,
      env?: NodeJS.ProcessEnv,
    ): Promise<Report & { code: number | null }> => {
      const r = await doctorRun(config, true, env);
      assert.equal(r.stderr, '', 'doctor writes its findings on stdout only');
      return { ...(JSON.parse(r.stdout) as Report), code: r.code };
    };
    const problems = (r: Report) => r.findings.filter((f) => f.severity !== 'note');
    const codes = (r: Report) => problems(r).map((f) => f.code);
    const knock = () => w.knockOk(w.pair.srv4, '--key', w.keys.alice ?? '');

    test('a clean setup: no findings, exit 0 — and a knock really opens the port', async () => {
      const text = await doctorRun(w.configPath, false);
      assert.equal(text.code, 0, text.stdout + text.stderr);
      assert.match(text.stdout, /^doctor: no problems found \(nftables, protects tcp\/2201, udp port 62201\)$/m);
      const r = await doctor();
      assert.deepEqual(codes(r), []);
      assert.equal(r.ok, true);
      assert.equal(await w.isOpen(w.pair.srv4, PORT), false, 'closed before the knock');
      await knock();
      assert.equal(await w.opens(w.pair.srv4, PORT), true, 'open after the knock');
    });

    test('another nft table (ip family, any priority) drops the protected port: found, and the knock does not help', async () => {
      const add = await nft(
        `table ip doctor_other {\n chain in {\n  type filter hook input priority 10; policy accept;\n  tcp dport ${PORT} drop\n }\n}\n`,
      );
      assert.equal(add.code, 0, add.stderr);
      try {
        const r = await doctor();
        assert.equal(r.code, 1);
        assert.deepEqual(codes(r), ['foreign-drop']);
        const f = problems(r)[0];
        assert.equal(f?.severity, 'error');
        assert.match(
          f?.message ?? '',
          /nft table ip doctor_other \(IPv4\) chain in rule \d+ "tcp dport 2201 drop" drops tcp\/2201/,
        );
        assert.match(f?.fix ?? '', /nft insert rule ip doctor_other in position \d+ tcp dport 2201 accept/);
        await knock();
        await w.daemon.waitFor(
          (l) => l.event === 'grant' && l.address === w.pair.cli4,
          5000,
          w.daemon.lines.length - 5,
        );
        assert.equal(
          await w.isOpen(w.pair.srv4, PORT),
          false,
          'granted by spa-knockd, still dropped by the other table',
        );
      } finally {
        await must('nft', 'delete', 'table', 'ip', 'doctor_other');
      }
      assert.deepEqual(codes(await doctor()), [], 'clean again once the table is gone');
      await knock(); // the grant above (3 s) has expired during doctor's run
      assert.equal(await w.opens(w.pair.srv4, PORT), true, 'control: with the table gone a knock opens the port');
    });

    test('a table that drops the knock port: found, and the knock never reaches the daemon', async () => {
      const add = await nft(
        `table inet doctor_knock {\n chain in {\n  type filter hook input priority -300;\n  udp dport ${UDP_PORT} counter drop\n }\n}\n`,
      );
      assert.equal(add.code, 0, add.stderr);
      try {
        const r = await doctor();
        assert.deepEqual(codes(r), ['knock-port-dropped']);
        assert.match(
          problems(r)[0]?.message ?? '',
          /nft table inet doctor_knock chain in .*drops udp\/62201: knocks never reach/,
        );
        const grants = w.grantsSoFar();
        await knock();
        await w.settle();
        assert.equal(w.grantsSoFar(), grants, 'no grant: the daemon never saw the knock');
      } finally {
        await must('nft', 'delete', 'table', 'inet', 'doctor_knock');
      }
    });

    test('an iptables-legacy rule beside nftables drops the port: found', async () => {
      await must('iptables-legacy', '-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'REJECT');
      try {
        const r = await doctor();
        assert.deepEqual(codes(r), ['foreign-drop']);
        assert.match(
          problems(r)[0]?.message ?? '',
          /^iptables-legacy table filter \(IPv4\) chain INPUT rule 1 .* drops tcp\/2201/,
        );
        assert.match(problems(r)[0]?.fix ?? '', /iptables-legacy -I INPUT 1 -p tcp --dport 2201 -j ACCEPT/);
      } finally {
        await must('iptables-legacy', '-D', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'REJECT');
      }
      assert.deepEqual(codes(await doctor()), []);
    });

    test('IPv6: listening on 0.0.0.0 while the host has IPv6 addresses; the iptables backend without ip6tables', async () => {
      const base = readFileSync(w.configPath, 'utf8');
      const v4only = join(w.dir, 'v4only.toml');
      writeFileSync(v4only, base.replace('address = "::"', 'address = "0.0.0.0"'), { mode: 0o600 });
      const r = await doctor(v4only);
      assert.deepEqual(codes(r), ['ipv6-unknockable']);
      assert.match(problems(r)[0]?.message ?? '', new RegExp(`IPv6 addresses \\(${w.pair.srv6}\\)`));

      // the tools on a PATH without ip6tables: what a host without IPv6 netfilter support looks like to the backend
      bin = mkdtempSync(join(tmpdir(), 'spak-doctor-bin-'));
      for (const t of [
        'ip',
        'nft',
        'iptables',
        'iptables-save',
        'iptables-restore',
        'iptables-legacy-save',
        'sysctl',
      ]) {
        const d = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'].find((x) => existsSync(join(x, t)));
        if (d !== undefined) symlinkSync(join(d, t), join(bin, t));
      }
      const ipt = join(w.dir, 'iptables.toml');
      writeFileSync(
        ipt,
        base
          .replace('backend = "nftables"', 'backend = "iptables"')
          .replace(/table = "[^"]*"/, 'table = "SPAK_DOCTOR"'),
        { mode: 0o600 },
      );
      const r6 = await doctor(ipt, { ...process.env, PATH: bin });
      assert.ok(codes(r6).includes('ipv6-unprotected'), JSON.stringify(r6));
      // control: with ip6tables on the PATH the same config has no IPv6 finding
      assert.ok(!codes(await doctor(ipt)).includes('ipv6-unprotected'));
    });

    test('a client clock 75 s ahead (spa-knock under faketime): doctor says who, from where and how far', async () => {
      // +75 s is outside the 60 s window; its key id is still indexed while it falls in epoch(now + 60 s), i.e. in
      // the first 45 s of a minute (docs/protocol.md §4): start early enough for a slow client start-up
      while (Date.now() % 60_000 > 25_000) await new Promise((r) => setTimeout(r, 500));
      const r = await runTs(CLIENT, [w.pair.srv4, '--port', String(UDP_PORT), '--key', w.keys.alice ?? ''], {
        prefix: [...w.pair.wrap(w.pair.cli), 'faketime', '-f', '+75s'],
        env: { ...process.env, FAKETIME_DONT_FAKE_MONOTONIC: '1' },
      });
      assert.equal(r.code, 0, r.stderr);
      await w.settle();
      const d = await doctor();
      assert.deepEqual(codes(d), ['clock-offset']);
      const m =
        /^knocks from client "alice" at (\S+) arrive ([\d.]+) s ahead of this host's clock \(replay.window is 60 s\)/.exec(
          problems(d)[0]?.message ?? '',
        );
      assert.ok(m, problems(d)[0]?.message);
      assert.equal(m[1], w.pair.cli4);
      const off = Number(m[2]);
      assert.ok(off >= 74 && off <= 77, `offset ${off}`);
      const st = await runTs(DAEMON, ['status', '--config', w.configPath, '--json'], {
        prefix: w.pair.wrap(w.pair.srv),
      });
      const stale = (JSON.parse(st.stdout) as { clock: { stale: { client: string; offset_s: number }[] } }).clock.stale;
      assert.equal(stale[0]?.client, 'alice');
    });

    test('the daemon stopped and its gate deleted: both found; a broken config is one finding', async () => {
      await w.daemon.stop('SIGTERM');
      try {
        await must('nft', 'delete', 'table', 'inet', 'spak_e2e_nft');
        const r = await doctor();
        assert.equal(r.code, 1);
        assert.deepEqual(codes(r), ['daemon-not-running', 'gate-missing']);
        assert.match(problems(r)[1]?.message ?? '', /nft table inet spak_e2e_nft is missing/);
      } finally {
        await w.daemon.start();
      }
      assert.deepEqual(codes(await doctor()), [], 'running again: clean (the clock offsets went with the old process)');
      const broken = join(w.dir, 'broken.toml');
      writeFileSync(broken, readFileSync(w.configPath, 'utf8').replace('[firewall]', '[firewall]\nprotekt = 1'), {
        mode: 0o600,
      });
      const text = await doctorRun(broken, false);
      assert.equal(text.code, 1);
      assert.match(
        text.stdout,
        /^error {3}\[config-invalid\] \[ERR_SPA_CONFIG\] config .*broken\.toml line \d+: firewall: unknown key "protekt"; fix: /m,
      );
      assert.match(text.stdout, /\ndoctor: 1 finding\n$/);
    });
  });
}
