/**
 * issue 10: `ssh -o ProxyCommand='spa-knock proxy %h %p'` with the real OpenSSH client against a real sshd, in a
 * namespace pair with a real spa-knockd (nftables) protecting sshd's port. sshd runs with its own config, host key
 * and authorized_keys in a temporary directory (`-D -e`), and is killed by PID. The name `spak-ssh.test` exists only
 * in the client namespace (/etc/netns/<cli>/hosts, bind-mounted over /etc/hosts by `ip netns exec`).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireNetns } from '../../harness/netns.js';
import { BACKEND_TOOLS } from '../../harness/prerequisites.js';
import { CLIENT, ROOT } from '../../harness/run.js';
import { E2eWorld, OPEN, UDP_PORT } from './world.js';

const NAME = 'spak-ssh.test';
const SSHD_PORT = 2022;

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

function execOut(argv: readonly string[], timeoutMs = 30_000): Promise<Out> {
  return new Promise((resolve) => {
    execFile(argv[0] as string, argv.slice(1), { cwd: ROOT, timeout: timeoutMs }, (e, stdout, stderr) => {
      const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

if (requireNetns([...BACKEND_TOOLS.nftables, 'ssh', 'sshd', 'ssh-keygen'])) {
  describe('ssh ProxyCommand through spa-knock proxy (real ssh, real sshd, nftables)', () => {
    const w = new E2eWorld({
      backend: 'nftables',
      tag: 'cli-ssh',
      subnet: 188,
      clients: [{ name: 'alice', open: [`tcp/${SSHD_PORT}`] }],
      strangers: ['mallory'],
      protect: [SSHD_PORT],
      listen: [OPEN],
    });
    let etcDir: string | undefined;
    let sshd: ChildProcess | undefined;
    let sshdErr = '';
    const dir = () => join(w.dir, 'ssh');

    before(async () => {
      await w.start();
      etcDir = `/etc/netns/${w.pair.cli}`;
      mkdirSync(etcDir, { recursive: true });
      writeFileSync(`${etcDir}/hosts`, `127.0.0.1 localhost\n${w.pair.srv6} ${NAME}\n${w.pair.srv4} ${NAME}\n`);
      mkdirSync(dir(), { mode: 0o700 });
      mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege separation directory
      for (const [f, t] of [
        ['host', 'ed25519'],
        ['id', 'ed25519'],
      ]) {
        const r = await execOut(['ssh-keygen', '-q', '-t', t as string, '-N', '', '-f', join(dir(), f as string)]);
        assert.equal(r.code, 0, r.stderr);
      }
      writeFileSync(join(dir(), 'authorized_keys'), readFileSync(join(dir(), 'id.pub')), { mode: 0o600 });
      const hostPub = readFileSync(join(dir(), 'host.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
      const known = [NAME, 'sshbox', w.pair.srv4, w.pair.srv6].map((h) => `[${h}]:${SSHD_PORT} ${hostPub}`).join('\n');
      writeFileSync(join(dir(), 'known_hosts'), `${known}\n`);
      writeFileSync(
        join(dir(), 'sshd_config'),
        [
          `Port ${SSHD_PORT}`,
          'ListenAddress 0.0.0.0',
          'ListenAddress ::',
          `HostKey ${join(dir(), 'host')}`,
          `AuthorizedKeysFile ${join(dir(), 'authorized_keys')}`,
          `PidFile ${join(dir(), 'sshd.pid')}`,
          'StrictModes no',
          'UsePAM no',
          'PasswordAuthentication no',
          'KbdInteractiveAuthentication no',
          'PermitRootLogin prohibit-password',
          '',
        ].join('\n'),
      );
      const child = spawn(
        'ip',
        ['netns', 'exec', w.pair.srv, '/usr/sbin/sshd', '-D', '-e', '-f', join(dir(), 'sshd_config')],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      sshd = child;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`sshd did not start: ${sshdErr}`)), 10_000);
        child.stderr?.on('data', (d: Buffer) => {
          sshdErr += d.toString();
          if (/Server listening on :: port/.test(sshdErr) && /Server listening on 0\.0\.0\.0 port/.test(sshdErr)) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`sshd exited (${code}): ${sshdErr}`));
        });
      });
    });
    after(async () => {
      try {
        if (sshd?.pid !== undefined && sshd.exitCode === null) {
          const gone = new Promise((r) => sshd?.once('exit', r));
          process.kill(sshd.pid, 'SIGTERM');
          await gone;
        }
        if (etcDir !== undefined) rmSync(etcDir, { recursive: true, force: true });
      } finally {
        await w.stop();
      }
    });

    /** The real ssh client in the client namespace, its ProxyCommand the real spa-knock (paths from this checkout). */
    const ssh = (target: string, key: string | undefined, extra: readonly string[] = []): Promise<Out> => {
      const knockOpts = key === undefined ? [] : ['--key', key, '--port', String(UDP_PORT)];
      const proxy = [process.execPath, '--import', 'tsx', CLIENT, 'proxy', '%h', '%p', ...knockOpts, ...extra].join(
        ' ',
      );
      return execOut([
        ...w.pair.wrap(w.pair.cli),
        'ssh',
        '-F',
        '/dev/null',
        '-i',
        join(dir(), 'id'),
        '-o',
        `UserKnownHostsFile=${join(dir(), 'known_hosts')}`,
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        'ConnectTimeout=30',
        '-o',
        `ProxyCommand=${proxy}`,
        '-p',
        String(SSHD_PORT),
        `root@${target}`,
        'echo',
        'hello-from-sshd',
      ]);
    };

    test('sshd listens, and the gate keeps it closed before a knock', async () => {
      assert.equal(await w.isOpen(w.pair.srv4, OPEN), true, 'control');
      const r = await execOut([
        ...w.pair.wrap(w.pair.cli),
        'ssh',
        '-F',
        '/dev/null',
        '-o',
        'BatchMode=yes',
        '-o',
        'ConnectTimeout=1',
        '-p',
        String(SSHD_PORT),
        `root@${w.pair.srv4}`,
        'true',
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /timed out/i, r.stderr);
    });

    for (const [label, target] of [
      ['a name with IPv4 and IPv6 addresses', () => NAME],
      ['an IPv4 address', () => w.pair.srv4],
      ['an IPv6 address', () => w.pair.srv6],
    ] as const) {
      test(`ssh with ProxyCommand='spa-knock proxy %h %p' to ${label} runs a command on the real sshd`, async () => {
        const from = w.daemon.lines.length;
        const r = await ssh(target(), w.keys['alice']!);
        assert.equal(r.code, 0, `ssh: ${r.stderr}`);
        assert.equal(r.stdout, 'hello-from-sshd\n');
        const grants = await w.grantLines(from, 1);
        assert.ok(grants.length >= 1, 'the daemon granted');
        await w.knockOk(target(), '--key', w.keys['alice']!, '--close');
      });
    }

    test('a profile: ProxyCommand without options, ssh to the profile name (SPA_KNOCK_CONFIG)', async () => {
      const cfg = join(dir(), 'client.toml');
      const profile = `[host.sshbox]\naddress = "${w.pair.srv6}"\nkey = "${w.keys['alice']}"\nport = ${UDP_PORT}\n`;
      writeFileSync(cfg, profile);
      process.env['SPA_KNOCK_CONFIG'] = cfg; // inherited by ip netns exec, ssh, and the ProxyCommand
      try {
        const from = w.daemon.lines.length;
        const r = await ssh('sshbox', undefined);
        assert.equal(r.code, 0, `ssh: ${r.stderr}`);
        assert.equal(r.stdout, 'hello-from-sshd\n');
        assert.deepEqual(
          (await w.grantLines(from, 1)).map((g) => g.address),
          [w.pair.cli6],
        );
        await w.knockOk(w.pair.srv6, '--key', w.keys['alice']!, '--close');
      } finally {
        delete process.env['SPA_KNOCK_CONFIG'];
      }
    });

    test('a key the server does not know: ssh fails, the proxy says why (ERR_SPA_NOT_OPEN) before ssh sees a byte', async () => {
      const r = await ssh(w.pair.srv4, w.keys['mallory']!, ['--timeout', '2']);
      assert.notEqual(r.code, 0);
      assert.match(
        r.stderr,
        new RegExp(
          `spa-knock: \\[ERR_SPA_NOT_OPEN\\] tcp/${SSHD_PORT} on ${w.pair.srv4.replaceAll('.', '\\.')} did not open`,
        ),
        r.stderr,
      );
      assert.doesNotMatch(r.stderr, /hello-from-sshd/);
    });
  });
}
