/**
 * spa-knock's command line, run as a user would (through tsx). Datagrams go to loopback sockets of this test only;
 * `--allow-ip auto` is tried inside a namespace pair this file creates and removes.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import {
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type NetnsPair, createPair, netnsSkip } from '../../harness/netns.js';
import { CLIENT, ROOT, type RunResult, runTs } from '../../harness/run.js';
import { deriveKeys } from '../../shared/crypto.js';
import { readKeyFile } from '../../shared/keyfile.js';
import { openPacket } from '../../shared/wire.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'k.key');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function oneLineError(r: RunResult, code: number, re: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.match(lines[0] ?? '', re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.doesNotMatch(r.stderr, /internal error/);
}

/** Receive one datagram on loopback while `run` executes. */
async function receiveOne(family: 4 | 6, run: (port: number) => Promise<unknown>): Promise<Buffer> {
  const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((r) => sock.bind(0, family === 6 ? '::1' : '127.0.0.1', r));
  const got = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
  try {
    await run(sock.address().port);
    return await Promise.race([
      got,
      new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no datagram')), 5000)),
    ]);
  } finally {
    sock.close();
  }
}

before(async () => {
  const r = await runTs(CLIENT, ['keygen', '--out', keyFile]);
  assert.equal(r.code, 0, r.stderr);
});

describe('spa-knock keygen', () => {
  test('--out writes a 0600 key file and refuses to overwrite without --force', async () => {
    const p = join(dir, 'a.key');
    assert.equal((await runTs(CLIENT, ['keygen', '--out', p])).code, 0);
    assert.equal(statSync(p).mode & 0o777, 0o600);
    assert.match(readFileSync(p, 'utf8'), /^spak1_[A-Za-z0-9_-]{48}\n$/);
    const before = readFileSync(p, 'utf8');
    oneLineError(
      await runTs(CLIENT, ['keygen', '--out', p]),
      1,
      /^spa-knock: \[ERR_SPA_KEYFILE_EXISTS\] .*already exists \(use --force to overwrite\)$/,
    );
    assert.equal(readFileSync(p, 'utf8'), before);
    assert.equal((await runTs(CLIENT, ['keygen', '--out', p, '--force'])).code, 0);
    assert.notEqual(readFileSync(p, 'utf8'), before);
  });

  test('without --out prints a key line', async () => {
    const r = await runTs(CLIENT, ['keygen']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^spak1_[A-Za-z0-9_-]{48}\n$/);
  });

  test('--force replaces the name, not a hard-linked file, and leaves no temporary file', async () => {
    const d = join(dir, 'hard');
    mkdirSync(d);
    const other = join(d, 'other.txt');
    writeFileSync(other, 'precious\n', { mode: 0o600 });
    const target = join(d, 'k.key');
    linkSync(other, target);
    const r = await runTs(CLIENT, ['keygen', '--out', target, '--force']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(other, 'utf8'), 'precious\n', 'the other link keeps its content');
    assert.match(readFileSync(target, 'utf8'), /^spak1_/);
    assert.equal(statSync(target).nlink, 1);
    assert.deepEqual(readdirSync(d).sort(), ['k.key', 'other.txt']);
  });

  test('refuses a FIFO, a directory, a device and a symbolic link at --out, even with --force, without blocking', async () => {
    const d = join(dir, 'odd');
    mkdirSync(d);
    const fifo = join(d, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const sub = join(d, 'sub');
    mkdirSync(sub);
    const dev = join(d, 'null');
    execFileSync('mknod', [dev, 'c', '1', '3']);
    const victim = join(d, 'victim.txt');
    writeFileSync(victim, 'keep\n', { mode: 0o600 });
    const link = join(d, 'link');
    symlinkSync(victim, link);
    for (const [p, kind] of [
      [fifo, 'a FIFO'],
      [sub, 'a directory'],
      [dev, 'a device'],
      [link, 'a symbolic link'],
    ] as const) {
      const r = await runTs(CLIENT, ['keygen', '--out', p, '--force'], { timeoutMs: 8000 });
      oneLineError(
        r,
        1,
        new RegExp(
          `^spa-knock: \\[ERR_SPA_KEYFILE_WRITE\\] cannot write key file .*: it is ${kind}, not a regular file$`,
        ),
      );
      oneLineError(await runTs(CLIENT, ['keygen', '--out', p], { timeoutMs: 8000 }), 1, /\[ERR_SPA_KEYFILE_EXISTS\]/);
    }
    assert.ok(statSync(fifo).isFIFO());
    assert.ok(statSync(dev).isCharacterDevice());
    assert.equal(readFileSync(victim, 'utf8'), 'keep\n');
    assert.deepEqual(readdirSync(d).sort(), ['fifo', 'link', 'null', 'sub', 'victim.txt']);
  });

  test('a path error says what is wrong with which path, in words', async () => {
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    oneLineError(
      await runTs(CLIENT, ['keygen', '--out', join(file, 'k.key')]),
      1,
      /^spa-knock: \[ERR_SPA_KEYFILE_WRITE\] cannot write key file .*plain\/k\.key: .*not a directory$/,
    );
    oneLineError(
      await runTs(CLIENT, ['keygen', '--out', join(dir, 'no', 'such', 'k.key')]),
      1,
      /\[ERR_SPA_KEYFILE_WRITE\] cannot write key file .*no\/such\/k\.key: .*no such file or directory$/,
    );
    const loop = join(dir, 'loop');
    symlinkSync(loop, loop);
    const r = await runTs(CLIENT, ['127.0.0.1', '--key', loop, '--dry-run']);
    oneLineError(r, 1, /^spa-knock: \[ERR_SPA_KEYFILE_READ\] cannot read key file .*loop: too many symbolic links/);
    for (const e of [r.stderr]) assert.doesNotMatch(e, /\b(ELOOP|ENOENT|ENOTDIR)\b/);
  });
});

describe('spa-knock knocks', () => {
  test('a knock over IPv4 loopback is one datagram the key opens', async () => {
    const key = readKeyFile(keyFile);
    const buf = await receiveOne(4, (port) =>
      runTs(CLIENT, [
        '127.0.0.1',
        '--key',
        keyFile,
        '--port',
        String(port),
        '--open',
        'tcp/22',
        '--open',
        'udp/53',
        '--duration',
        '45',
      ]),
    );
    assert.ok(buf.length <= 160, `size ${buf.length}`);
    const r = openPacket(deriveKeys(key), new Uint8Array(buf));
    assert.ok(r.ok, 'opens');
    assert.equal(r.value.type, 'open');
    assert.deepEqual(r.value.accesses, [
      { proto: 'tcp', port: 22 },
      { proto: 'udp', port: 53 },
    ]);
    assert.equal(r.value.duration, 45);
    assert.ok(Math.abs(r.value.timestamp - Date.now()) < 30_000);
  });

  test('--open may come before HOST, repeated or comma-separated', async () => {
    const key = readKeyFile(keyFile);
    const buf = await receiveOne(4, (port) =>
      runTs(CLIENT, [
        '--open',
        'tcp/22,udp/53',
        '--open',
        'tcp/443',
        '127.0.0.1',
        '--key',
        keyFile,
        '--port',
        String(port),
      ]),
    );
    const r = openPacket(deriveKeys(key), new Uint8Array(buf));
    assert.ok(r.ok);
    assert.deepEqual(r.value.accesses, [
      { proto: 'tcp', port: 22 },
      { proto: 'udp', port: 53 },
      { proto: 'tcp', port: 443 },
    ]);
  });

  test('a host name is resolved (localhost, from /etc/hosts: loopback only)', async () => {
    const buf = await receiveOne(4, (port) =>
      runTs(CLIENT, ['localhost', '-4', '--key', keyFile, '--port', String(port)]),
    );
    assert.ok(openPacket(deriveKeys(readKeyFile(keyFile)), new Uint8Array(buf)).ok);
  });

  test('IPv6 literal, --close and --allow-ip', async () => {
    const key = readKeyFile(keyFile);
    const buf = await receiveOne(6, (port) =>
      runTs(CLIENT, ['::1', '--key', keyFile, '--port', String(port), '--close', '--allow-ip', '2001:db8::7']),
    );
    const r = openPacket(deriveKeys(key), new Uint8Array(buf));
    assert.ok(r.ok);
    assert.equal(r.value.type, 'close');
    assert.equal(r.value.allowAddress, '2001:db8::7');
  });

  test('--dry-run --json prints the packet, says it is live, and sends nothing', async () => {
    const r = await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--dry-run', '--json', '--open', 'tcp/22']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as {
      sent: boolean;
      hex: string;
      bytes: number;
      fields: { accesses: string[] };
      warning: string;
    };
    assert.equal(j.sent, false);
    assert.equal(j.hex.length, j.bytes * 2);
    assert.deepEqual(j.fields.accesses, ['tcp/22']);
    assert.match(
      j.warning,
      /LIVE knock until about \S+Z \(the server's replay window, 60 s by default\).*opens the port for their own address/,
    );
    const human = await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--dry-run']);
    assert.match(
      human.stdout,
      /^packet for 127\.0\.0\.1 udp\/62201 \(\d+ bytes, not sent\)\nhex: +[0-9a-f]+\nbase64: /,
    );
    assert.match(human.stdout, /\nwarning: this is a LIVE knock until about .*require_source_address/);
  });

  test('--prefix4 / --prefix6 travel in the packet (TLV type 1) and --dry-run shows them', async () => {
    const r = await runTs(CLIENT, [
      '127.0.0.1',
      '--key',
      keyFile,
      '--dry-run',
      '--json',
      '--prefix4',
      '24',
      '--prefix6',
      '64',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { hex: string; fields: Record<string, unknown> };
    assert.equal(j.fields['prefix4'], 24);
    assert.equal(j.fields['prefix6'], 64);
    const o = openPacket(deriveKeys(readKeyFile(keyFile)), Buffer.from(j.hex, 'hex'));
    assert.ok(o.ok);
    assert.equal(o.value.prefix4, 24);
    assert.equal(o.value.prefix6, 64);
    const plain = JSON.parse((await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--dry-run', '--json'])).stdout) as {
      fields: Record<string, unknown>;
    };
    assert.equal('prefix4' in plain.fields, false, 'no prefix asked: none shown');
  });

  test('a stdout closed early is a quiet exit 0 (no EPIPE stack trace)', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLIENT, '127.0.0.1', '--key', keyFile, '--dry-run'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // close our read end before the program (still starting up) writes: its writes then fail with EPIPE
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });
});

describe('spa-knock errors', () => {
  test('a missing, loose or junk key file is one line with its code', async () => {
    oneLineError(
      await runTs(CLIENT, ['127.0.0.1', '--key', join(dir, 'missing.key')]),
      1,
      /^spa-knock: \[ERR_SPA_KEYFILE_READ\] cannot read key file .*missing\.key: no such file or directory$/,
    );
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, readFileSync(keyFile));
    chmodSync(loose, 0o644);
    oneLineError(
      await runTs(CLIENT, ['127.0.0.1', '--key', loose]),
      1,
      /^spa-knock: \[ERR_SPA_KEYFILE_PERMS\] .*\(mode 0644\); run: chmod 600/,
    );
    const junk = join(dir, 'junk.key');
    writeFileSync(junk, 'hello\n', { mode: 0o600 });
    oneLineError(
      await runTs(CLIENT, ['127.0.0.1', '--key', junk]),
      1,
      /^spa-knock: \[ERR_SPA_KEYFILE_INVALID\] .*not a spa-knock key/,
    );
  });
});

const many = Array.from({ length: 33 }, (_, i) => `tcp/${i + 1}`).join(',');
const usage: [string, string[], RegExp][] = [
  ['keygen --out without a value', ['keygen', '--out'], /--out needs a value/],
  ['keygen --out twice', ['keygen', '--out', 'a', '--out', 'b'], /--out may be given only once/],
  ['--open without a value', ['127.0.0.1', '--open'], /--open needs a value/],
  ['33 accesses', ['127.0.0.1', '--open', many], /--open names 33 accesses; one packet holds at most 32/],
  ['--port twice', ['127.0.0.1', '--port', '1', '--port', '2'], /--port may be given only once/],
  ['--key twice', ['127.0.0.1', '--key', 'a', '--key', 'b'], /--key may be given only once/],
  [
    '--allow-ip twice',
    ['127.0.0.1', '--allow-ip', '192.0.2.1', '--allow-ip', '192.0.2.2'],
    /--allow-ip may be given only once/,
  ],
  ['--port 0', ['127.0.0.1', '--port', '0'], /--port must be a whole number 1-65535, not "0"/],
  ['--port 0x16', ['127.0.0.1', '--port', '0x16'], /--port must be a whole number 1-65535/],
  ['--port 22.5', ['127.0.0.1', '--port', '22.5'], /--port must be a whole number 1-65535/],
  ['--duration -3', ['127.0.0.1', '--duration', '-3'], /--duration must be a whole number 0-65535 seconds/],
  ['--duration 70000', ['127.0.0.1', '--duration', '70000'], /--duration must be/],
  ['--open tcp/70000', ['127.0.0.1', '--open', 'tcp/70000'], /--open "tcp\/70000" is not an access/],
  ['--open ssh', ['127.0.0.1', '--open', 'ssh'], /--open "ssh" is not an access/],
  ['--allow-ip nope', ['127.0.0.1', '--allow-ip', 'nope'], /--allow-ip "nope" is not an IPv4 or IPv6 address/],
  [
    '--allow-ip octal',
    ['127.0.0.1', '--allow-ip', '010.0.0.1'],
    /--allow-ip "010\.0\.0\.1" is not an IPv4 or IPv6 address/,
  ],
  [
    '--allow-ip broadcast',
    ['127.0.0.1', '--allow-ip', '255.255.255.255'],
    /--allow-ip 255\.255\.255\.255 is the broadcast address/,
  ],
  ['--allow-ip loopback v4', ['127.0.0.1', '--allow-ip', '127.0.0.1'], /--allow-ip 127\.0\.0\.1 is a loopback address/],
  ['--allow-ip loopback v6', ['127.0.0.1', '--allow-ip', '::1'], /--allow-ip ::1 is a loopback address/],
  [
    '--allow-ip multicast v4',
    ['127.0.0.1', '--allow-ip', '224.0.0.1'],
    /--allow-ip 224\.0\.0\.1 is a multicast address/,
  ],
  ['--allow-ip multicast v6', ['127.0.0.1', '--allow-ip', 'ff02::1'], /--allow-ip ff02::1 is a multicast address/],
  [
    '--allow-ip unspecified v4',
    ['127.0.0.1', '--allow-ip', '0.0.0.0'],
    /--allow-ip 0\.0\.0\.0 is the unspecified address/,
  ],
  ['--allow-ip unspecified v6', ['127.0.0.1', '--allow-ip', '::'], /--allow-ip :: is the unspecified address/],
  [
    '--allow-ip auto over loopback',
    ['127.0.0.1', '--allow-ip', 'auto'],
    /--allow-ip auto: the route to 127\.0\.0\.1 leaves from 127\.0\.0\.1, which is a loopback address/,
  ],
  ['-4 and -6', ['127.0.0.1', '-4', '-6'], /-4 and -6 cannot be used together/],
  ['--prefix4 0', ['127.0.0.1', '--prefix4', '0'], /--prefix4 must be a whole number 1-32, not "0"/],
  ['--prefix4 33', ['127.0.0.1', '--prefix4', '33'], /--prefix4 must be a whole number 1-32/],
  ['--prefix6 129', ['127.0.0.1', '--prefix6', '129'], /--prefix6 must be a whole number 1-128/],
  ['--prefix6 /64', ['127.0.0.1', '--prefix6', '/64'], /--prefix6 must be a whole number 1-128/],
  ['--prefix4 twice', ['127.0.0.1', '--prefix4', '24', '--prefix4', '28'], /--prefix4 may be given only once/],
  ['--prefix4 with fwknop', ['127.0.0.1', '--prefix4', '24', '--format', 'fwknop'], /--prefix4 needs --format spak1/],
  [
    '--prefix6 with --sequence',
    ['127.0.0.1', '--prefix6', '64', '--sequence', '1,2', '--key', keyFile],
    /--sequence cannot be used with --prefix6/,
  ],
  ['an IPv6 literal with -4', ['::1', '-4'], /::1 is an IPv6 address but -4 was given/],
  ['an unknown option', ['127.0.0.1', '--frobnicate'], /Unknown argument: frobnicate/],
  ['no HOST', [], /HOST is missing/],
];

// every case spawns a process: run them side by side
describe('spa-knock usage errors', { concurrency: 4 }, () => {
  for (const [name, args, re] of usage) {
    test(`usage error, exit 2, one line with ERR_SPA_USAGE: ${name}`, async () => {
      // a valid key, so that a mistake checked too late would show up as a different outcome
      const withKey = args[0] === 'keygen' || args.includes('--key') ? args : [...args, '--key', keyFile, '--dry-run'];
      const r = await runTs(CLIENT, withKey);
      oneLineError(r, 2, /^spa-knock: \[ERR_SPA_USAGE\] /);
      assert.match(r.stderr, re);
    });
  }

  test('--version, -V, -h, --help and completion work', async () => {
    for (const v of ['--version', '-V']) {
      const r = await runTs(CLIENT, [v]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${VERSION}\n`);
    }
    for (const h of ['-h', '--help']) {
      const r = await runTs(CLIENT, [h]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /spa-knock HOST \[options\]/);
      assert.match(r.stdout, /--allow-ip[\s\S]*"auto"[\s\S]*NAT/);
      assert.match(r.stdout, /--version/);
    }
    const c = await runTs(CLIENT, ['completion']);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, /###-begin-spa-knock-completions-###/);
  });
});

const nsSkip = netnsSkip([]);
describe('--allow-ip auto names the source address of the route to the server', { skip: nsSkip }, () => {
  let pair: NetnsPair;
  before(async () => {
    pair = await createPair('cli-auto', { subnet: 52 });
  });
  after(async () => {
    await pair?.cleanup();
  });

  for (const fam of [4, 6] as const) {
    test(`IPv${fam}: from the client namespace, --dry-run --json shows the client's own address`, async () => {
      const srv = fam === 4 ? pair.srv4 : pair.srv6;
      const r = await runTs(CLIENT, [srv, '--key', keyFile, '--dry-run', '--json', '--allow-ip', 'auto'], {
        prefix: pair.wrap(pair.cli),
      });
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout) as { fields: { allow_address: string } };
      assert.equal(j.fields.allow_address, fam === 4 ? pair.cli4 : pair.cli6);
    });
  }

  test('no route to the server is one line naming it', async () => {
    const r = await runTs(CLIENT, ['192.0.2.1', '--key', keyFile, '--dry-run', '--allow-ip', 'auto'], {
      prefix: pair.wrap(pair.cli),
    });
    oneLineError(
      r,
      1,
      /^spa-knock: \[ERR_SPA_SEND\] --allow-ip auto: no route to 192\.0\.2\.1:62201: network unreachable$/,
    );
  });
});
