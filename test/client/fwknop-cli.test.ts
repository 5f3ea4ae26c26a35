/**
 * `spa-knock --format fwknop` and `spa-knock keygen --format fwknop` (client/fwknop.ts): the key file works with the
 * real fwknop client, the packets decode, and what fwknop cannot carry is a usage error naming the option.
 * (That the real fwknopd accepts our packets: test/e2e/fwknop.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLIENT, runTs } from '../../harness/run.js';
import { decodePacket } from '../../shared/fwknop/codec.js';
import { parseFwknopKeyText } from '../../shared/fwknop/keys.js';

describe('spa-knock --format fwknop', () => {
  let dir = '';
  let keyFile = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'fwk-cli-'));
    keyFile = join(dir, 'fwknop.keys');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const keys = () => {
    const k = parseFwknopKeyText(readFileSync(keyFile, 'utf8'));
    assert.ok(k.ok);
    return k.value;
  };

  test('keygen --format fwknop writes a 0600 file in fwknop --key-gen form; the real client uses its keys', async () => {
    const r = await runTs(CLIENT, ['keygen', '--format', 'fwknop', '--out', keyFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const text = readFileSync(keyFile, 'utf8');
    assert.match(text, /^KEY_BASE64: [A-Za-z0-9+/]{43}=\nHMAC_KEY_BASE64: [A-Za-z0-9+/]{86}==\n$/);
    const k = /^KEY_BASE64: (\S+)\nHMAC_KEY_BASE64: (\S+)$/m.exec(text);
    const pkt = join(dir, 'pkt');
    execFileSync(
      'fwknop',
      [
        '--no-rc-file',
        '--no-save-args',
        '-D',
        '127.0.0.1',
        '--key-base64-rijndael',
        k?.[1] ?? '',
        '--key-base64-hmac',
      ].concat([k?.[2] ?? '', '-A', 'tcp/22', '-a', '10.1.2.3', '-T', '-B', pkt]),
      { stdio: 'ignore' },
    );
    const d = decodePacket(readFileSync(pkt, 'utf8').trim(), keys());
    assert.ok(d.ok && d.value.kind === 'access' && d.value.allowIp === '10.1.2.3');
    const printed = await runTs(CLIENT, ['keygen', '--format', 'fwknop']);
    assert.match(printed.stdout, /^KEY_BASE64: .+\nHMAC_KEY_BASE64: .+\n$/);
  });

  test('--dry-run --json: a packet our decoder reads back with the asked fields, under 400 characters', async () => {
    const r = await runTs(CLIENT, [
      '192.0.2.1',
      '--format',
      'fwknop',
      '--key',
      keyFile,
      '--open',
      'tcp/22,udp/53',
      '--allow-ip',
      '198.51.100.7',
      '--duration',
      '90',
      '--dry-run',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { hex: string; text: string; bytes: number; fields: Record<string, unknown> };
    const text = Buffer.from(out.hex, 'hex').toString('latin1');
    assert.equal(out.text, text);
    assert.ok(out.bytes < 400);
    const d = decodePacket(text, keys());
    assert.ok(d.ok && d.value.kind === 'access', JSON.stringify(d));
    assert.deepEqual([d.value.allowIp, d.value.timeout, d.value.accesses.length], ['198.51.100.7', 90, 2]);
    assert.equal(out.fields.format, 'fwknop');
  });

  test('usage errors name the option; a group-readable key file is refused', async () => {
    const base = ['192.0.2.1', '--format', 'fwknop', '--key', keyFile, '--dry-run'];
    const cases: [string[], RegExp][] = [
      [[], /--open is required/],
      [['--open', 'tcp/22', '--close'], /--close/],
      [['--open', 'tcp/22', '--allow-ip', '2001:db8::1'], /--allow-ip: fwknop carries IPv4/],
      [
        ['--open', Array.from({ length: 20 }, (_, i) => `tcp/${1000 + i}`).join(',')],
        /--format fwknop: .*(400|too many)/,
      ],
    ];
    for (const [extra, re] of cases) {
      const r = await runTs(CLIENT, [...base, ...extra]);
      assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    const bad = await runTs(CLIENT, ['192.0.2.1', '--format', 'fwknopx', '--key', keyFile, '--open', 'tcp/22']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--format "fwknopx"/);
    chmodSync(keyFile, 0o640);
    const perms = await runTs(CLIENT, [...base, '--open', 'tcp/22']);
    assert.equal(perms.code, 1);
    assert.match(perms.stderr, /ERR_SPA_KEYFILE_PERMS/);
    chmodSync(keyFile, 0o600);
  });
});
