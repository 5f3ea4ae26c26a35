import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { deriveKeys } from '../../shared/crypto.js';
import { readKeyFile } from '../../shared/keyfile.js';
import { openPacket } from '../../shared/wire.js';
import { CLIENT, runTs } from '../../harness/run.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'k.key');

function oneLineError(r: { code: number | null; stderr: string; stdout: string }, code: number, re: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.match(lines[0] ?? '', re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** Receive one datagram on loopback while `run` executes. */
async function receiveOne(family: 4 | 6, run: (port: number) => Promise<unknown>): Promise<Buffer> {
  const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((r) => sock.bind(0, family === 6 ? '::1' : '127.0.0.1', r));
  const got = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
  try {
    await run(sock.address().port);
    return await Promise.race([got, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no datagram')), 5000))]);
  } finally {
    sock.close();
  }
}

describe('spa-knock CLI', () => {
  test('keygen --out writes a 0600 key file and refuses to overwrite without --force', async () => {
    const r = await runTs(CLIENT, ['keygen', '--out', keyFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(readFileSync(keyFile, 'utf8'), /^spak1_[A-Za-z0-9_-]{48}\n$/);
    const before = readFileSync(keyFile, 'utf8');
    oneLineError(await runTs(CLIENT, ['keygen', '--out', keyFile]), 1, /already exists \(use --force to overwrite\)/);
    assert.equal(readFileSync(keyFile, 'utf8'), before);
    assert.equal((await runTs(CLIENT, ['keygen', '--out', keyFile, '--force'])).code, 0);
    assert.notEqual(readFileSync(keyFile, 'utf8'), before);
  });

  test('keygen without --out prints a key line', async () => {
    const r = await runTs(CLIENT, ['keygen']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^spak1_[A-Za-z0-9_-]{48}\n$/);
  });

  test('a knock over IPv4 loopback is one datagram the key opens', async () => {
    const key = readKeyFile(keyFile);
    const buf = await receiveOne(4, (port) => runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--port', String(port), '--open', 'tcp/22', '--open', 'udp/53', '--duration', '45']));
    assert.ok(buf.length <= 160, `size ${buf.length}`);
    const r = openPacket(deriveKeys(key), new Uint8Array(buf));
    assert.ok(r.ok, 'opens');
    assert.equal(r.value.type, 'open');
    assert.deepEqual(r.value.accesses, [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }]);
    assert.equal(r.value.duration, 45);
    assert.ok(Math.abs(r.value.timestamp - Date.now()) < 30_000);
  });

  test('--open may come before HOST, repeated or comma-separated', async () => {
    const key = readKeyFile(keyFile);
    const buf = await receiveOne(4, (port) => runTs(CLIENT, ['--open', 'tcp/22,udp/53', '--open', 'tcp/443', '127.0.0.1', '--key', keyFile, '--port', String(port)]));
    const r = openPacket(deriveKeys(key), new Uint8Array(buf));
    assert.ok(r.ok);
    assert.deepEqual(r.value.accesses, [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }, { proto: 'tcp', port: 443 }]);
  });

  test('a host name is resolved (localhost, from /etc/hosts: loopback only)', async () => {
    const buf = await receiveOne(4, (port) => runTs(CLIENT, ['localhost', '-4', '--key', keyFile, '--port', String(port)]));
    assert.ok(openPacket(deriveKeys(readKeyFile(keyFile)), new Uint8Array(buf)).ok);
  });

  test('IPv6 literal, --close and --allow-ip', async () => {
    const key = readKeyFile(keyFile);
    const buf = await receiveOne(6, (port) => runTs(CLIENT, ['::1', '--key', keyFile, '--port', String(port), '--close', '--allow-ip', '2001:db8::7']));
    const r = openPacket(deriveKeys(key), new Uint8Array(buf));
    assert.ok(r.ok);
    assert.equal(r.value.type, 'close');
    assert.equal(r.value.allowAddress, '2001:db8::7');
  });

  test('--dry-run --json prints the packet and sends nothing', async () => {
    const r = await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--dry-run', '--json', '--open', 'tcp/22']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { sent: boolean; hex: string; bytes: number; fields: { accesses: string[] } };
    assert.equal(j.sent, false);
    assert.equal(j.hex.length, j.bytes * 2);
    assert.deepEqual(j.fields.accesses, ['tcp/22']);
    const human = await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--dry-run']);
    assert.match(human.stdout, /^packet for 127\.0\.0\.1 udp\/62201 \(\d+ bytes, not sent\)\nhex: +[0-9a-f]+\nbase64: /);
  });

  test('errors are one line, no stack trace, non-zero exit', async () => {
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', join(dir, 'missing.key')]), 1, /^spa-knock: cannot read key file .*missing\.key: no such file$/);
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, readFileSync(keyFile));
    chmodSync(loose, 0o644);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', loose]), 1, /readable by group or others \(mode 0644\); run: chmod 600/);
    const junk = join(dir, 'junk.key');
    writeFileSync(junk, 'hello\n', { mode: 0o600 });
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', junk]), 1, /not a spa-knock key/);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--open', 'tcp/70000']), 2, /--open "tcp\/70000" is not an access/);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--open', 'ssh']), 2, /--open "ssh" is not an access/);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--allow-ip', 'nope']), 2, /--allow-ip "nope" is not an IPv4 or IPv6 address/);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--allow-ip', '010.0.0.1']), 2, /--allow-ip "010\.0\.0\.1" is not an IPv4 or IPv6 address/);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--port', '0']), 2, /--port must be 1-65535/);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--duration', '-3']), 2, /--duration must be/);
    oneLineError(await runTs(CLIENT, ['127.0.0.1', '--key', keyFile, '--frobnicate']), 2, /Unknown argument: frobnicate/);
    oneLineError(await runTs(CLIENT, ['::1', '--key', keyFile, '-4']), 1, /is an IPv6 address but -4 was given/);
    oneLineError(await runTs(CLIENT, []), 2, /Not enough non-option arguments/);
  });
});
