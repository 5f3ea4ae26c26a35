import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { formatKey } from '../../shared/keys.js';
import { ConfigError, loadConfig, parseConfig } from '../../server/config.js';
import { configText, keyOf } from '../../harness/config.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function errorOf(text: string, path = '/etc/spa-knock/spa-knockd.toml'): string {
  try {
    parseConfig(text, path);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    return e.message;
  }
  assert.fail('expected a ConfigError');
}

const minimal = `
[firewall]
protect = ["tcp/22"]

[[client]]
name = "alice"
key = "${formatKey(keyOf(1))}"
open = ["tcp/22"]
`;

describe('config', () => {
  test('a minimal config gets the documented defaults', () => {
    const c = parseConfig(minimal, 'x.toml');
    assert.equal(c.stateDir, '/var/lib/spa-knockd');
    assert.deepEqual(c.listen, { port: 62201, address: '::' });
    assert.equal(c.firewall.backend, 'nftables');
    assert.equal(c.firewall.table, 'spa_knock');
    assert.deepEqual(c.grant, { duration: 30, maxDuration: 300 });
    assert.equal(c.replay.window, 60);
    assert.equal(c.log.level, 'info');
    assert.equal(c.clients.length, 1);
    const alice = c.clients[0];
    assert.ok(alice);
    assert.deepEqual(alice.key, keyOf(1));
    assert.deepEqual(alice.open, [{ proto: 'tcp', port: 22 }]);
    assert.deepEqual(alice.sources.map((s) => s.text), ['0.0.0.0/0', '::/0']);
    assert.equal(alice.maxDuration, 300);
  });

  test('iptables default chain name', () => {
    const c = parseConfig(minimal.replace('[firewall]', '[firewall]\nbackend = "iptables"'), 'x.toml');
    assert.equal(c.firewall.table, 'SPA_KNOCK');
  });

  test('the full example from the docs parses', () => {
    const c = parseConfig(configText({ clients: [{ name: 'bob', key: keyOf(2), open: ['tcp/22'], sources: ['192.0.2.0/24', '2001:db8::/32'], max_duration: 60 }] }), 'x.toml');
    assert.equal(c.clients[0]?.maxDuration, 60);
    assert.deepEqual(c.clients[0]?.sources.map((s) => s.text), ['192.0.2.0/24', '2001:db8::/32']);
  });

  test('the example in docs/config.md parses, with the values it shows', () => {
    const doc = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');
    const block = /```toml\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(block, 'docs/config.md has a toml example');
    // the example names a key file on a server; give it a key inline instead
    const text = block.replace(/^key_file = .*$/m, `key = "${formatKey(keyOf(5))}"`);
    const c = parseConfig(text, 'docs/config.md');
    assert.equal(c.stateDir, '/var/lib/spa-knockd');
    assert.deepEqual(c.listen, { port: 62201, address: '::' });
    assert.deepEqual(c.firewall.protect, [{ proto: 'tcp', port: 22 }]);
    assert.deepEqual(c.grant, { duration: 30, maxDuration: 300 });
    assert.equal(c.replay.window, 60);
    assert.equal(c.clients[0]?.name, 'alice');
  });

  test('TOML syntax errors name the line', () => {
    assert.match(errorOf('state_dir = "/x"\n[listen\nport = 1\n'), /line 2: invalid TOML/);
  });

  test('unknown keys are refused with their line', () => {
    const msg = errorOf(minimal.replace('protect = ["tcp/22"]', 'protect = ["tcp/22"]\nprotekt = ["tcp/23"]'));
    assert.match(msg, /line 4: firewall: unknown key "protekt"/);
  });

  test('out-of-range values name key and line', () => {
    assert.match(errorOf(`[listen]\nport = 70000\n${minimal}`), /line 2: listen\.port: .*65535/);
    assert.match(errorOf(`[grant]\nduration = 1.5\n${minimal}`), /line 2: grant\.duration: must be a whole number/);
    assert.match(errorOf(`[replay]\nwindow = 0\n${minimal}`), /line 2: replay\.window/);
    assert.match(errorOf(`[listen]\naddress = "localhost"\n${minimal}`), /line 2: listen\.address: must be an IPv4 or IPv6 address/);
    assert.match(errorOf(minimal.replace('[firewall]', '[firewall]\nbackend = "pf"')), /line 3: firewall\.backend/);
  });

  test('bad accesses and sources', () => {
    assert.match(errorOf(minimal.replace('open = ["tcp/22"]', 'open = ["tcp/22", "ssh"]')), /line 8: client\[0\]\.open\[1\]: "ssh" is not an access/);
    assert.match(errorOf(minimal.replace('protect = ["tcp/22"]', 'protect = ["tcp/0"]')), /line 3: firewall\.protect\[0\]/);
    assert.match(errorOf(minimal + 'sources = ["10.0.0.0/33"]\n'), /line 9: client\[0\]\.sources\[0\]: "10\.0\.0\.0\/33" is not an address or CIDR/);
    assert.match(errorOf(minimal + 'sources = ["010.0.0.0/8"]\n'), /"010\.0\.0\.0\/8" is not an address or CIDR/);
    assert.match(errorOf(minimal + 'sources = ["10.0.0.0/8x"]\n'), /"10\.0\.0\.0\/8x" is not an address or CIDR/);
    assert.deepEqual(parseConfig(minimal + 'sources = ["192.0.2.7", "2001:db8::/32"]\n', 'x').clients[0]?.sources.map((c) => c.text), ['192.0.2.7/32', '2001:db8::/32']);
  });

  test('a client may only open protected accesses', () => {
    assert.match(errorOf(minimal.replace('open = ["tcp/22"]', 'open = ["tcp/80"]')), /line 8: client\[0\]\.open\[0\]: tcp\/80 is not in firewall\.protect/);
  });

  test('clients: at least one, unique names, unique keys, exactly one of key/key_file', () => {
    assert.match(errorOf('[firewall]\nprotect = ["tcp/22"]\n'), /^config \S+: client: at least one \[\[client\]\] section is required$/);
    assert.match(errorOf('state_dir = "/x"\n'), /: firewall: is required/);
    const second = `[[client]]\nname = "alice"\nkey = "${formatKey(keyOf(2))}"\nopen = ["tcp/22"]\n`;
    assert.match(errorOf(minimal + second), /line 10: client\[1\]\.name: duplicate client name "alice"/);
    const sameKey = `[[client]]\nname = "bob"\nkey = "${formatKey(keyOf(1))}"\nopen = ["tcp/22"]\n`;
    assert.match(errorOf(minimal + sameKey), /client\[1\]\.key: same key as client "alice"/);
    assert.match(errorOf(minimal.replace(/key = .*/, '')), /line 5: client\[0\]: set exactly one of "key" or "key_file"/);
  });

  test('a mistyped key is caught by its checksum', () => {
    const k = formatKey(keyOf(1));
    const typo = k.slice(0, 20) + (k[20] === 'A' ? 'B' : 'A') + k.slice(21);
    assert.match(errorOf(minimal.replace(k, typo)), /line 7: client\[0\]\.key: key checksum mismatch/);
    assert.match(errorOf(minimal.replace(k, 'hunter2')), /client\[0\]\.key: not a spa-knock key/);
  });

  test('key_file: relative to the config, permissions checked', () => {
    const kf = join(dir, 'alice.key');
    writeFileSync(kf, formatKey(keyOf(3)) + '\n', { mode: 0o600 });
    const cfgPath = join(dir, 'k.toml');
    writeFileSync(cfgPath, minimal.replace(/key = .*/, 'key_file = "alice.key"'));
    assert.deepEqual(loadConfig(cfgPath).clients[0]?.key, keyOf(3));
    chmodSync(kf, 0o644);
    assert.throws(() => loadConfig(cfgPath), (e: Error) => e instanceof ConfigError && /client\[0\]\.key_file: key file .* is readable by group or others/.test(e.message));
  });

  test('firewall.table names fit the backend', () => {
    assert.match(errorOf(minimal.replace('[firewall]', '[firewall]\ntable = "SPA"')), /line 3: firewall\.table: an nftables table name must be lower case/);
    assert.match(errorOf(minimal.replace('[firewall]', '[firewall]\nbackend = "iptables"\ntable = "input"')), /line 4: firewall\.table: "input" is a built-in iptables chain/);
    assert.match(errorOf(minimal.replace('[firewall]', '[firewall]\ntable = "a b"')), /line 3: firewall\.table: must be a letter/);
    assert.equal(parseConfig(minimal.replace('[firewall]', '[firewall]\nbackend = "iptables"\ntable = "KNOCK_GATE"'), 'x').firewall.table, 'KNOCK_GATE');
  });

  test('a missing config file is one clear line', () => {
    assert.throws(() => loadConfig(join(dir, 'nope.toml')), /cannot read config .*nope\.toml: no such file/);
  });

  test('grant.duration cannot exceed grant.max_duration; client max is capped by the global one', () => {
    assert.match(errorOf(`[grant]\nduration = 600\n${minimal}`), /grant\.duration: must not exceed grant\.max_duration \(300\)/);
    const c = parseConfig(minimal + 'max_duration = 9000\n', 'x.toml');
    assert.equal(c.clients[0]?.maxDuration, 300);
  });
});
