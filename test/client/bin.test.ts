/**
 * The `spa-knock` program as it ships (scripts/build-client.ts → dist/client/: the launcher client/launch.ts, the
 * knock bundle client/bin.ts, the whole CLI client/cli.ts, the build-time V8 code cache), built into a temporary
 * package directory and run with node: a plain knock sends a datagram the key opens; every other command line runs
 * the whole CLI; and every way the code cache can be unusable — missing, made from another source, truncated,
 * refused by V8 (another V8 version), not the user's own, a cache directory that cannot be written, turned off —
 * gives the same output and exit status, and a usable cache is written for the next run. Loopback only.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheName, joinCache, splitCache, userCacheDir } from '../../client/launch.js';
import { ROOT } from '../../harness/run.js';
import { buildClient } from '../../scripts/build-client.js';
import { deriveKeys } from '../../shared/crypto.js';
import { readKeyFile } from '../../shared/keyfile.js';
import { formatKey, generateKey } from '../../shared/keys.js';
import { type KnockRequest, openPacket } from '../../shared/wire.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-bin-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const dist = join(dir, 'pkg', 'dist', 'client');
const bin = join(dist, 'spa-knock.cjs');
const keyFile = join(dir, 'k.key');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The cache of node without options: the one built with the package (the test itself runs with --import tsx). */
const NAME = cacheName('knock', [], {});
const CLI_NAME = cacheName('spa-knock-cli', [], {});
let pristine: Buffer;

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the bin with HOME and XDG_CACHE_HOME of its own (no profile; the user cache under `cacheHome`). */
function run(args: readonly string[], cacheHome: string, extra: NodeJS.ProcessEnv = {}): Promise<Out> {
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CACHE_HOME: cacheHome, ...extra };
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

/**
 * A knock to a UDP socket on 127.0.0.1: the datagram received (checked to open with the key), and what the program
 * printed. `args(port)`: the command line (default: `127.0.0.1 --port PORT --key KEYFILE`).
 */
async function knock(
  cacheHome: string,
  extra: NodeJS.ProcessEnv = {},
  args = (port: number): string[] => ['127.0.0.1', '--port', String(port), '--key', keyFile],
): Promise<{ out: Out; port: number; request: KnockRequest }> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const port = sock.address().port;
  const got = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
  try {
    const argv = args(port);
    const out = await run(argv, cacheHome, extra);
    assert.equal(out.code, 0, out.stderr);
    const dgram = await Promise.race([
      got,
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no datagram')), 5000)),
    ]);
    const opened = openPacket(deriveKeys(readKeyFile(keyFile)), new Uint8Array(dgram));
    assert.ok(opened.ok, 'the key opens the datagram');
    if (!argv.includes('--json')) assert.equal(out.stdout, `sent knock (${dgram.length} bytes) to 127.0.0.1:${port}\n`);
    assert.equal(out.stderr, '');
    return { out, port, request: opened.value };
  } finally {
    sock.close();
  }
}

let n = 0;
const freshCacheHome = (): string => join(dir, `cache-${++n}`);
const userCache = (home: string): string => join(home, 'spa-knock', NAME);

before(async () => {
  mkdirSync(join(dir, 'pkg'), { recursive: true });
  copyFileSync(join(ROOT, 'package.json'), join(dir, 'pkg', 'package.json'));
  await buildClient(dist);
  pristine = readFileSync(join(dist, NAME));
  writeFileSync(keyFile, `${formatKey(generateKey())}\n`, { mode: 0o600 });
});

describe('the built spa-knock program', { timeout: 180_000 }, () => {
  test('the build: launcher, knock bundle, whole CLI and the code cache of this Node, nothing else', () => {
    assert.deepEqual(
      readdirSync(dist).sort(),
      [NAME, CLI_NAME, 'knock.cjs', 'spa-knock-cli.cjs', 'spa-knock.cjs'].sort(),
    );
    assert.match(readFileSync(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/);
    assert.ok((statSync(bin).mode & 0o111) !== 0, 'the bin is executable');
    const c = splitCache(pristine);
    assert.ok(c?.source.equals(readFileSync(join(dist, 'knock.cjs'))), 'made from knock.cjs');
    const knockSrc = readFileSync(join(dist, 'knock.cjs'), 'utf8');
    assert.doesNotMatch(knockSrc, /\bimport\(/, 'no import(): lazily loaded modules are require()d');
  });

  test("a plain knock loads no yargs, nor Node's crypto, DNS or ES module loader (each costs ms at start)", async () => {
    const list = join(dir, 'modules.txt');
    const preload = join(dir, 'modules.cjs');
    // Node's modules loaded, and the files the launcher compiles (vm.Script, recorded by a subclass)
    writeFileSync(
      preload,
      `const vm = require('node:vm');
const compiled = [];
vm.Script = class extends vm.Script { constructor(code, o) { super(code, o); compiled.push(o && o.filename); } };
process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, [...process.moduleLoadList, ...compiled].join('\\n')));`,
    );
    await knock(freshCacheHome(), { NODE_OPTIONS: `--require ${preload}` });
    const loaded = readFileSync(list, 'utf8').split('\n');
    assert.ok(loaded.includes('NativeModule dgram'), "the list is the knock's");
    for (const m of ['NativeModule crypto', 'NativeModule internal/crypto/random', 'NativeModule dns'])
      assert.ok(!loaded.includes(m), `${m} loaded`);
    assert.ok(!loaded.includes('NativeModule internal/modules/esm/loader'), 'the ES module loader was loaded');
    assert.ok(!loaded.includes('Internal Binding cares_wrap'), 'the resolver was loaded');
    assert.ok(loaded.includes(join(dist, 'knock.cjs')), 'the knock bundle compiled');
    assert.ok(!loaded.includes(join(dist, 'spa-knock-cli.cjs')), 'the whole CLI (yargs) was compiled');
    await run(['--version'], freshCacheHome(), { NODE_OPTIONS: `--require ${preload}` });
    assert.ok(readFileSync(list, 'utf8').split('\n').includes(join(dist, 'spa-knock-cli.cjs')), 'the check sees it');
  });

  test('a plain knock: one datagram the key opens, one line, exit 0; the build-time cache serves it', async () => {
    const home = freshCacheHome();
    await knock(home);
    assert.equal(existsSync(userCache(home)), false, 'V8 took the build-time cache: nothing written');
  });

  test('what the knock bundle loads on first use: ipaddr.js (--allow-ip, IPv6) and smol-toml (a profile file)', async () => {
    const home = freshCacheHome();
    const allow = await knock(home, {}, (port) => [
      '127.0.0.1',
      '--port',
      String(port),
      '--key',
      keyFile,
      '--allow-ip',
      '192.0.2.7',
    ]);
    assert.equal(allow.request.allowAddress, '192.0.2.7');
    const bad = await run(['127.0.0.1', '--key', keyFile, '--allow-ip', '::1'], home);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^spa-knock: \[ERR_SPA_USAGE\] --allow-ip ::1 is a loopback address; no server grants it\n$/,
    );
    const cfg = join(dir, 'profiles.toml');
    const viaProfile = await knock(home, { SPA_KNOCK_CONFIG: cfg }, (port) => {
      const text = `[host.lab]\naddress = "127.0.0.1"\nport = ${port}\nkey = ${JSON.stringify(keyFile)}\nopen = ["tcp/2222"]\n`;
      writeFileSync(cfg, text);
      return ['lab'];
    });
    assert.deepEqual(viaProfile.request.accesses, [{ proto: 'tcp', port: 2222 }]);
    writeFileSync(cfg, '[host.lab\n');
    const broken = await run(['lab'], home, { SPA_KNOCK_CONFIG: cfg });
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /^spa-knock: \[ERR_SPA_CONFIG\] client config .*profiles\.toml: not TOML/);
  });

  test('every other command line runs the whole CLI (yargs), with its output and exit statuses', async () => {
    const home = freshCacheHome();
    const v = await run(['--version'], home);
    assert.deepEqual([v.code, v.stdout, v.stderr], [0, `${VERSION}\n`, '']);
    const k = await run(['keygen'], home);
    assert.equal(k.code, 0, k.stderr);
    assert.match(k.stdout, /^spak1_[A-Za-z0-9_-]{48}\n$/);
    const usage = await run(['keygen', '--out'], home);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^spa-knock: \[ERR_SPA_USAGE\] --out needs a value/);
    const bogus = await run(['127.0.0.1', '--bogus'], home);
    assert.equal(bogus.code, 2);
    assert.match(bogus.stderr, /^spa-knock: \[ERR_SPA_USAGE\] .*bogus/);
    const missing = await run(['127.0.0.1', '--key', join(dir, 'missing.key')], home);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^spa-knock: \[ERR_SPA_KEYFILE_READ\] cannot read key file .*missing\.key/);
    assert.equal(missing.stderr.split('\n').length, 2, 'one line');
  });

  test('the whole CLI runs through its own code cache: the build-time one, else one written for the next run', async () => {
    const home = freshCacheHome();
    const v = await run(['--version'], home);
    assert.deepEqual([v.code, v.stdout, v.stderr], [0, `${VERSION}\n`, '']);
    assert.equal(existsSync(join(home, 'spa-knock')), false, 'both build-time caches taken: nothing written');
    const cli = readFileSync(join(dist, CLI_NAME));
    assert.ok(splitCache(cli)?.source.equals(readFileSync(join(dist, 'spa-knock-cli.cjs'))));
    rmSync(join(dist, CLI_NAME));
    try {
      const again = await run(['--version'], home);
      assert.deepEqual([again.code, again.stdout, again.stderr], [0, `${VERSION}\n`, '']);
      assert.deepEqual(readdirSync(join(home, 'spa-knock')), [CLI_NAME], 'only the missing one is written');
      const ino = statSync(join(home, 'spa-knock', CLI_NAME)).ino;
      const usage = await run(['keygen', '--out'], home);
      assert.equal(usage.code, 2);
      assert.equal(statSync(join(home, 'spa-knock', CLI_NAME)).ino, ino, 'accepted on the next run');
      writeFileSync(join(dist, CLI_NAME), Buffer.from('garbage'));
      const k = await run(['keygen'], freshCacheHome());
      assert.equal(k.code, 0, k.stderr);
      assert.match(k.stdout, /^spak1_[A-Za-z0-9_-]{48}\n$/);
    } finally {
      writeFileSync(join(dist, CLI_NAME), cli);
    }
  });

  test('--wait through the knock bundle (its probe loaded on first use): knock, then the port connects', async () => {
    const tcp = createServer((c) => c.end());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const tport = (tcp.address() as AddressInfo).port;
    try {
      const home = freshCacheHome();
      const r = await knock(home, {}, (port) => [
        '127.0.0.1',
        '--port',
        String(port),
        '--key',
        keyFile,
        '--wait',
        `tcp/${tport}`,
        '--json',
      ]);
      const lines = r.out.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(lines.length, 2, r.out.stdout);
      assert.equal(lines[0]?.['sent'], true);
      assert.deepEqual(lines[1]?.['open'], ['127.0.0.1']);
      assert.equal(lines[1]?.['wait'], `tcp/${tport}`);
    } finally {
      tcp.close();
    }
  });

  test('spa-knock proxy (ssh ProxyCommand) through the whole CLI: knock, wait for the port, relay stdin/stdout', async () => {
    const udp = createSocket('udp4');
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
    const knocks: Buffer[] = [];
    udp.on('message', (m) => knocks.push(m));
    // an "sshd" that answers what it reads in upper case, then closes (the --wait probe's own connects carry nothing)
    const tcp = createServer((c) => c.on('data', (d) => c.end(d.toString().toUpperCase())));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    const tport = (tcp.address() as AddressInfo).port;
    try {
      const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CACHE_HOME: freshCacheHome() };
      const args = ['proxy', '127.0.0.1', String(tport), '--port', String(udp.address().port), '--key', keyFile];
      const child = spawn(process.execPath, [bin, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdin.end('hello over the knock\n');
      const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
      assert.equal(code, 0, stderr);
      assert.equal(stdout, 'HELLO OVER THE KNOCK\n', 'the connection only on stdout');
      assert.ok(knocks.length >= 1);
      assert.ok(openPacket(deriveKeys(readKeyFile(keyFile)), new Uint8Array(knocks[0] ?? [])).ok);
    } finally {
      udp.close();
      tcp.close();
    }
  });

  test('no usable cache: the same knock, and a 0600 cache in the user cache directory that the next run uses', async () => {
    rmSync(join(dist, NAME));
    try {
      const home = freshCacheHome();
      await knock(home);
      const made = statSync(userCache(home));
      assert.equal(made.mode & 0o777, 0o600);
      assert.equal(statSync(join(home, 'spa-knock')).mode & 0o777, 0o700);
      const c = splitCache(readFileSync(userCache(home)));
      assert.ok(c?.source.equals(readFileSync(join(dist, 'knock.cjs'))));
      await knock(home);
      assert.equal(statSync(userCache(home)).ino, made.ino, 'accepted: not written again');
      // a failed run writes no cache
      const other = freshCacheHome();
      const failed = await run(['127.0.0.1', '--key', join(dir, 'missing.key')], other);
      assert.equal(failed.code, 1);
      assert.equal(existsSync(userCache(other)), false);
    } finally {
      writeFileSync(join(dist, NAME), pristine);
    }
  });

  const broken: [string, (b: Buffer) => Buffer][] = [
    ['made from another source', (b) => joinCache(Buffer.from('/* another bundle */'), splitCache(b)?.data ?? b)],
    ['truncated', (b) => b.subarray(0, b.length >> 1)],
    ['not a cache', () => Buffer.from('garbage\n')],
    ['empty', () => Buffer.alloc(0)],
    [
      // bytes 4-7 of V8's code cache header are its version hash: what a cache of another Node looks like
      'refused by V8 (another V8 version)',
      (b) => {
        const c = splitCache(b);
        assert.ok(c);
        const data = Buffer.from(c.data);
        data.writeUInt32LE(data.readUInt32LE(4) ^ 0x5a5a5a5a, 4);
        return joinCache(c.source, data);
      },
    ],
  ];
  for (const [what, corrupt] of broken) {
    test(`a cache ${what}, next to the bundle or in the user cache: the same knock, the same errors`, async () => {
      try {
        writeFileSync(join(dist, NAME), corrupt(pristine));
        const home = freshCacheHome();
        mkdirSync(join(home, 'spa-knock'), { recursive: true, mode: 0o700 });
        writeFileSync(userCache(home), corrupt(pristine), { mode: 0o600 });
        await knock(home);
        const fresh = splitCache(readFileSync(userCache(home)));
        assert.ok(fresh?.source.equals(readFileSync(join(dist, 'knock.cjs'))), 'replaced by a good one');
        const usage = await run(['127.0.0.1', '--port', 'x', '--key', keyFile], freshCacheHome());
        assert.equal(usage.code, 2);
        assert.match(usage.stderr, /^spa-knock: \[ERR_SPA_USAGE\] --port must be a whole number 1-65535, not "x"\n$/);
      } finally {
        writeFileSync(join(dist, NAME), pristine);
      }
    });
  }

  test('a user cache writable by others is not used (it is code), and is replaced', async () => {
    rmSync(join(dist, NAME));
    try {
      const home = freshCacheHome();
      await knock(home);
      chmodSync(userCache(home), 0o666);
      const before = statSync(userCache(home)).ino;
      await knock(home);
      assert.notEqual(statSync(userCache(home)).ino, before, 'not taken: a new one written');
      assert.equal(statSync(userCache(home)).mode & 0o777, 0o600);
    } finally {
      writeFileSync(join(dist, NAME), pristine);
    }
  });

  test('node with options (other V8 flags) has its own cache: runs with and without do not replace each other', async () => {
    rmSync(join(dist, NAME));
    try {
      const home = freshCacheHome();
      await knock(home);
      const plain = statSync(userCache(home)).ino;
      const opts = { NODE_OPTIONS: '--max-old-space-size=96' };
      await knock(home, opts);
      const tagged = readdirSync(join(home, 'spa-knock')).filter((f) => f !== NAME);
      assert.equal(tagged.length, 1, `files: ${tagged.join(', ')}`);
      assert.equal(tagged[0], cacheName('knock', [], opts));
      const taggedIno = statSync(join(home, 'spa-knock', tagged[0] ?? '')).ino;
      await knock(home);
      await knock(home, opts);
      assert.equal(statSync(userCache(home)).ino, plain, 'each accepted on its next run');
      assert.equal(statSync(join(home, 'spa-knock', tagged[0] ?? '')).ino, taggedIno);
    } finally {
      writeFileSync(join(dist, NAME), pristine);
    }
  });

  test('a cache directory that cannot be made, or SPA_KNOCK_CODE_CACHE=0: the same knock, nothing written', async () => {
    rmSync(join(dist, NAME));
    try {
      const file = join(dir, 'not-a-dir');
      writeFileSync(file, '');
      await knock(file); // $XDG_CACHE_HOME is a file: spa-knock/ cannot be made under it
      const home = freshCacheHome();
      await knock(home, { SPA_KNOCK_CODE_CACHE: '0' });
      assert.equal(existsSync(join(home, 'spa-knock')), false);
    } finally {
      writeFileSync(join(dist, NAME), pristine);
    }
  });
});

describe('client/launch.ts helpers', () => {
  test('a cache file is magic, source length, source, V8 data; anything else is not one', () => {
    const src = Buffer.from('let a = 1;');
    const data = Buffer.from([1, 2, 3]);
    const c = splitCache(joinCache(src, data));
    assert.deepEqual([c?.source.toString(), [...(c?.data ?? [])]], ['let a = 1;', [1, 2, 3]]);
    assert.equal(splitCache(joinCache(src, Buffer.alloc(0))), undefined, 'no V8 data');
    assert.equal(splitCache(Buffer.from('SPAKV8C1')), undefined);
    const long = joinCache(src, data);
    long.writeUInt32LE(1 << 30, 8);
    assert.equal(splitCache(long), undefined, 'a length beyond the file');
  });

  test('the user cache directory: $XDG_CACHE_HOME/spa-knock when absolute, else ~/.cache/spa-knock', () => {
    assert.equal(userCacheDir({ XDG_CACHE_HOME: '/x/c', HOME: '/h' }), '/x/c/spa-knock');
    assert.equal(userCacheDir({ XDG_CACHE_HOME: 'rel', HOME: '/h' }), '/h/.cache/spa-knock');
    assert.equal(userCacheDir({ HOME: '/h' }), '/h/.cache/spa-knock');
    assert.equal(userCacheDir({}), undefined);
    assert.equal(cacheName('knock', [], {}), `knock-${process.version}-${process.platform}-${process.arch}.v8cache`);
    const a = cacheName('knock', ['--max-old-space-size=64'], {});
    const b = cacheName('knock', [], { NODE_OPTIONS: '--max-old-space-size=64' });
    assert.match(
      a,
      new RegExp(
        `^knock-${process.version.replace(/\./g, '\\.')}-${process.platform}-${process.arch}-[0-9a-f]{8}\\.v8cache$`,
      ),
    );
    assert.notEqual(a, b);
    assert.notEqual(a, cacheName('knock', ['--max-old-space-size=65'], {}));
    assert.notEqual(cacheName('spa-knock-cli', [], {}), cacheName('knock', [], {}));
  });
});
