/**
 * server/import-fwknop.ts: access.conf stanzas → spa-knockd config that parses, keeps each stanza's policy, and
 * names what it could not carry over; a passphrase KEY/HMAC_KEY stanza still verifies the real client's packets.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fwknopKeyGen } from '../../harness/fwknop.js';
import { DAEMON, runTs } from '../../harness/run.js';
import { parseConfig } from '../../server/config.js';
import { FwknopFormat } from '../../server/formats/fwknop.js';
import { importAccessConf } from '../../server/import-fwknop.js';

const K = fwknopKeyGen();
const ACCESS = `# fwknopd access.conf
SOURCE ANY
KEY_BASE64 ${K.keyB64}
HMAC_KEY_BASE64 ${K.hmacB64}
OPEN_PORTS tcp/22, tcp/2222
FW_ACCESS_TIMEOUT 45
REQUIRE_SOURCE_ADDRESS Y

SOURCE 10.0.0.0/8, 192.168.1.5
KEY secretpass
HMAC_KEY hmacpass
HMAC_DIGEST_TYPE SHA512
OPEN_PORTS udp/53
FW_ACCESS_TIMEOUT 45
MAX_FW_TIMEOUT 600
REQUIRE_USERNAME bob
CMD_CYCLE_OPEN nft add element inet t s { $IP }

SOURCE ANY
KEY foo
OPEN_PORTS tcp/22

SOURCE ANY
KEY_BASE64 ${K.keyB64}
HMAC_KEY_BASE64 ${K.hmacB64}
ENCRYPTION_MODE legacy
OPEN_PORTS tcp/22

SOURCE ANY
KEY_BASE64 ${K.keyB64}
HMAC_KEY_BASE64 ${K.hmacB64}
%include /etc/fwknop/more.conf
`;

describe('import-fwknop', () => {
  const r = importAccessConf(ACCESS);
  const config = parseConfig(r.config, 'imported.toml');

  test('carried over: sources, open ports, keys, digest, timeouts, require_source_address', () => {
    assert.equal(r.clients, 2);
    const [a, b] = config.clients;
    assert.deepEqual(
      [a?.name, a?.format, a?.requireSourceAddress, a?.open.length, a?.fwknop?.digest],
      ['fwknop-1', 'fwknop', true, 2, 'sha256'],
    );
    assert.deepEqual(Buffer.from(a?.fwknop?.hmac ?? []).toString('base64'), K.hmacB64);
    assert.deepEqual(
      b?.sources.map((c) => c.text),
      ['10.0.0.0/8', '192.168.1.5/32'],
    );
    assert.equal(b?.fwknop?.digest, 'sha512');
    assert.equal(b?.maxDuration, 600);
    assert.equal(config.grant.duration, 45);
    assert.deepEqual(config.firewall.protect.map((p) => `${p.proto}/${p.port}`).sort(), [
      'tcp/22',
      'tcp/2222',
      'udp/53',
    ]);
  });

  test('says what it could not carry over, and leaves out stanzas it cannot honour', () => {
    const all = r.notes.join('\n');
    assert.match(all, /stanza 2 .*REQUIRE_USERNAME not carried over/);
    assert.match(all, /stanza 2 .*CMD_CYCLE_OPEN not carried over/);
    assert.match(all, /stanza 3 .*left out: no HMAC_KEY/);
    assert.match(all, /stanza 4 .*left out: ENCRYPTION_MODE legacy/);
    assert.match(all, /%include not followed/);
    assert.match(all, /stanza 5 .*left out: no OPEN_PORTS/);
  });

  test('a passphrase stanza (KEY, HMAC_KEY) verifies packets the real client makes with --key-rijndael', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwk-imp-'));
    try {
      const file = join(dir, 'pkt');
      const args = ['--no-rc-file', '--no-save-args', '-D', '127.0.0.1', '--key-rijndael', 'secretpass'];
      args.push('--key-hmac', 'hmacpass', '--hmac-digest-type', 'sha512', '-A', 'udp/53', '-a', '10.1.2.3');
      execFileSync('fwknop', [...args, '-T', '-B', file], { stdio: 'ignore' });
      const text = readFileSync(file, 'utf8').trim();
      const f = new FwknopFormat(config.clients);
      const v = f.authenticate(Buffer.from(text), Date.now());
      assert.ok(v.ok, JSON.stringify(v));
      assert.equal(v.value.client.name, 'fwknop-2');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('spa-knockd import-fwknop: --out writes 0600, notes on stderr; nothing to carry over is an error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fwk-imp-'));
    try {
      const access = join(dir, 'access.conf');
      writeFileSync(access, ACCESS, { mode: 0o600 });
      const out = join(dir, 'spa-knockd.toml');
      const ok = await runTs(DAEMON, ['import-fwknop', '--access-conf', access, '--out', out]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      assert.match(ok.stderr, /REQUIRE_USERNAME not carried over/);
      const check = await runTs(DAEMON, ['check', '--config', out]);
      assert.match(check.stdout, /OK \(2 clients/);
      writeFileSync(access, 'SOURCE ANY\nKEY foo\n');
      const none = await runTs(DAEMON, ['import-fwknop', '--access-conf', access]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /\[ERR_SPA_CONFIG\] .*no stanza could be carried over/);
      const usage = await runTs(DAEMON, ['import-fwknop']);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /access-conf/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
