/**
 * The published package, as a user gets it: `npm pack` (which runs the `prepack` build), a global install of the
 * tarball into a temporary prefix, and both installed binaries run from PREFIX/bin — outside the checkout, with no
 * tsx and no TypeScript source anywhere they could reach. It fails if the tarball lacks dist/, ships tests or
 * sources, or needs a devDependency at run time.
 *
 * What `check` proves: the installed daemon loads a config, builds the nftables backend and reads the firewall
 * (`nft list`) inside a namespace this test creates. It does not start the daemon (test/e2e does, from source).
 * `install-systemd` from the installed package writes units whose ExecStart= runs the installed program (not the
 * checkout), and `systemd-analyze verify` passes on them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configText } from '../../harness/config.js';
import { type NetnsPair, createPair, netnsSkip } from '../../harness/netns.js';
import { ROOT } from '../../harness/run.js';
import { deriveKeys } from '../../shared/crypto.js';
import { readKeyFile } from '../../shared/keyfile.js';
import { openPacket } from '../../shared/wire.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  private?: boolean;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};
const tmp = mkdtempSync(join(tmpdir(), 'spak-pack-'));
const prefix = join(tmp, 'prefix');
/** No npm_* variables from a surrounding `npm test`, no NODE_OPTIONS (e.g. --import tsx) leaking in. */
const cleanEnv: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_') && k !== 'NODE_OPTIONS'),
);
const binEnv: NodeJS.ProcessEnv = { ...cleanEnv, PATH: `${join(prefix, 'bin')}:/usr/sbin:/usr/bin:/sbin:/bin` };

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

function sh(
  argv: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<Out> {
  return new Promise((resolve) => {
    execFile(
      argv[0] as string,
      argv.slice(1),
      { cwd: opts.cwd ?? tmp, env: opts.env ?? cleanEnv, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

let files: string[] = [];

after(() => rmSync(tmp, { recursive: true, force: true }));

describe('the npm package', { timeout: 240_000 }, () => {
  before(async () => {
    const packed = await sh(['npm', 'pack', '--json', '--pack-destination', tmp], { cwd: ROOT, timeoutMs: 120_000 });
    assert.equal(packed.code, 0, packed.stderr);
    const info = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
    files = (info[0]?.files ?? []).map((f) => f.path);
    const tarball = join(tmp, info[0]?.filename ?? 'missing.tgz');
    const inst = await sh(
      ['npm', 'install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
      {
        timeoutMs: 120_000,
      },
    );
    assert.equal(inst.code, 0, inst.stderr);
  });

  test('package.json: public, bin points at compiled code, tsx is no run-time dependency', () => {
    assert.equal(pkg.private, undefined);
    assert.deepEqual(pkg.bin, { 'spa-knock': 'dist/client/cli.js', 'spa-knockd': 'dist/server/main.js' });
    assert.equal(pkg.dependencies['tsx'], undefined);
    assert.equal(pkg.dependencies['typescript'], undefined);
  });

  test('the tarball holds dist/, docs, README and LICENSE, and no sources, tests or test fakes', () => {
    for (const f of [
      'dist/client/cli.js',
      'dist/server/main.js',
      'dist/shared/cli.js',
      'README.md',
      'LICENSE',
      'package.json',
      'docs/errors.md',
      'docs/systemd.md',
      'systemd/spa-knockd.service',
      'systemd/spa-knockd.socket',
    ]) {
      assert.ok(files.includes(f), `${f} missing from ${files.join(' ')}`);
    }
    const unwanted = files.filter(
      (f) =>
        f.endsWith('.ts') ||
        /^(test|harness|scripts|client|server|shared|bin)\//.test(f) ||
        (f.startsWith('systemd/') && !/^systemd\/spa-knockd\.(service|socket)$/.test(f)) ||
        f.endsWith('firewall/fake.js'),
    );
    assert.deepEqual(unwanted, []);
    assert.match(readFileSync(join(ROOT, 'dist/client/cli.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
    assert.match(readFileSync(join(ROOT, 'dist/server/main.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
  });

  test('the installed binaries run from the prefix, where no tsx can be found', async () => {
    const installed = join(prefix, 'lib', 'node_modules', pkg.name);
    assert.ok(existsSync(join(installed, 'dist', 'client', 'cli.js')));
    assert.ok(
      !existsSync(join(installed, 'node_modules', 'tsx')) && !existsSync(join(prefix, 'lib', 'node_modules', 'tsx')),
    );
    for (const bin of ['spa-knock', 'spa-knockd']) {
      const r = await sh([join(prefix, 'bin', bin), '--version'], { env: binEnv });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${pkg.version}\n`);
    }
  });

  test('installed spa-knock: keygen, then a --dry-run knock that the key opens', async () => {
    const keyFile = join(tmp, 'alice.key');
    const kg = await sh([join(prefix, 'bin', 'spa-knock'), 'keygen', '--out', keyFile], { env: binEnv });
    assert.equal(kg.code, 0, kg.stderr);
    const r = await sh(
      [join(prefix, 'bin', 'spa-knock'), '192.0.2.1', '--key', keyFile, '--open', 'tcp/22', '--dry-run', '--json'],
      { env: binEnv },
    );
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { sent: boolean; hex: string };
    assert.equal(j.sent, false);
    const opened = openPacket(deriveKeys(readKeyFile(keyFile)), new Uint8Array(Buffer.from(j.hex, 'hex')));
    assert.ok(opened.ok);
    assert.deepEqual(opened.value.accesses, [{ proto: 'tcp', port: 22 }]);
    const bad = await sh([join(prefix, 'bin', 'spa-knock'), 'keygen', '--out'], { env: binEnv });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^spa-knock: \[ERR_SPA_USAGE\] --out needs a value/);
  });

  test('installed spa-knockd install-systemd: ExecStart runs the installed program; systemd-analyze verify passes', async () => {
    const units = join(tmp, 'units');
    const cfg = join(tmp, 'etc-spa-knock', 'spa-knockd.toml');
    const r = await sh([join(prefix, 'bin', 'spa-knockd'), 'install-systemd', '--unit-dir', units, '--config', cfg], {
      env: binEnv,
    });
    assert.equal(r.code, 0, r.stderr);
    const installed = realpathSync(join(prefix, 'lib', 'node_modules', pkg.name));
    const service = readFileSync(join(units, 'spa-knockd.service'), 'utf8');
    assert.equal(
      /^ExecStart=(.*)$/m.exec(service)?.[1],
      `${process.execPath} ${join(installed, 'dist', 'server', 'main.js')} --config ${cfg}`,
    );
    assert.match(service, new RegExp(`^Documentation=file:${installed}/docs/systemd\\.md `, 'm'));
    assert.ok(existsSync(join(installed, 'docs', 'systemd.md')));
    const v = await sh([
      'systemd-analyze',
      'verify',
      join(units, 'spa-knockd.service'),
      join(units, 'spa-knockd.socket'),
    ]);
    assert.equal(v.code, 0, v.stderr + v.stdout);
  });

  const skip = netnsSkip(['nft']);
  describe('installed spa-knockd check, inside a namespace', { skip }, () => {
    let pair: NetnsPair | undefined;
    before(async () => {
      pair = await createPair('pack', { subnet: 51 });
    });
    after(async () => {
      await pair?.cleanup();
    });

    test('loads a config and reads the nftables ruleset', async () => {
      const p = join(tmp, 'spa-knockd.toml');
      writeFileSync(p, configText({ stateDir: join(tmp, 'state'), table: 'spak_pack' }), { mode: 0o600 });
      const r = await sh(
        [
          ...(pair as NetnsPair).wrap((pair as NetnsPair).srv),
          join(prefix, 'bin', 'spa-knockd'),
          'check',
          '--config',
          p,
        ],
        {
          env: binEnv,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /^config .*spa-knockd\.toml: OK \(1 client, protects tcp\/22, backend nftables, udp port 62201\)\n/,
      );
      assert.match(r.stdout, /\nfirewall: not as configured yet/);
    });
  });
});
