import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { formatKey } from '../../shared/keys.js';
import { parseIp } from '../../shared/address.js';
import { SpaError } from '../../shared/errors.js';
import { MAX_CONFIG_BYTES, parseConfig } from '../../server/config.js';
import { loadConfig } from '../../server/config-file.js';
import { tableNameProblem } from '../../server/firewall/names.js';
import { configText, keyOf } from '../../harness/config.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function errorOf(text: string, path = '/etc/spa-knock/spa-knockd.toml'): string {
  try {
    parseConfig(text, path);
  } catch (e) {
    assert.ok(e instanceof SpaError && e.code === 'ERR_SPA_CONFIG', `expected ERR_SPA_CONFIG, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    return e.message;
  }
  assert.fail('expected an ERR_SPA_CONFIG error');
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
    assert.deepEqual(c.listen, { port: 62201, address: '::', receiveBuffer: 4 * 1024 * 1024 });
    assert.equal(c.firewall.backend, 'nftables');
    assert.equal(c.firewall.table, 'spa_knock');
    assert.equal(c.firewall.silencePortUnreachable, false);
    assert.deepEqual(c.grant, { duration: 30, maxDuration: 300, maxGrants: 16 });
    assert.equal(c.replay.window, 60);
    assert.equal(c.log.level, 'info');
    assert.equal(c.clients.length, 1);
    const alice = c.clients[0];
    assert.ok(alice);
    assert.deepEqual(alice.key, keyOf(1));
    assert.deepEqual(alice.open, [{ proto: 'tcp', port: 22 }]);
    assert.deepEqual(
      alice.sources.map((s) => s.text),
      ['0.0.0.0/0', '::/0'],
    );
    assert.equal(alice.maxDuration, 300);
    assert.equal(alice.maxGrants, 16);
    assert.equal(alice.requireSourceAddress, false);
    assert.deepEqual(c.inlineKeys, ['alice']);
  });

  test('iptables default chain name', () => {
    const c = parseConfig(minimal.replace('[firewall]', '[firewall]\nbackend = "iptables"'), 'x.toml');
    assert.equal(c.firewall.table, 'SPA_KNOCK');
  });

  test('the full example from the docs parses', () => {
    const c = parseConfig(
      configText({
        clients: [
          {
            name: 'bob',
            key: keyOf(2),
            open: ['tcp/22'],
            sources: ['192.0.2.0/24', '2001:db8::/32'],
            max_duration: 60,
          },
        ],
      }),
      'x.toml',
    );
    assert.equal(c.clients[0]?.maxDuration, 60);
    assert.deepEqual(
      c.clients[0]?.sources.map((s) => s.text),
      ['192.0.2.0/24', '2001:db8::/32'],
    );
  });

  test('the example in docs/config.md parses, with the values it shows', () => {
    const doc = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');
    const block = /```toml\n([\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(block, 'docs/config.md has a toml example');
    // the example names a key file on a server; give it a key inline instead
    const text = block.replace(/^key_file = .*$/m, `key = "${formatKey(keyOf(5))}"`);
    const c = parseConfig(text, 'docs/config.md');
    assert.equal(c.stateDir, '/var/lib/spa-knockd');
    assert.deepEqual(c.listen, { port: 62201, address: '::', receiveBuffer: 4 * 1024 * 1024 });
    assert.deepEqual(c.firewall.protect, [{ proto: 'tcp', port: 22 }]);
    assert.equal(c.firewall.silencePortUnreachable, false);
    assert.deepEqual(c.grant, { duration: 30, maxDuration: 300, maxGrants: 16 });
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
    assert.match(
      errorOf(`[listen]\naddress = "localhost"\n${minimal}`),
      /line 2: listen\.address: must be an IPv4 or IPv6 address/,
    );
    assert.match(errorOf(minimal.replace('[firewall]', '[firewall]\nbackend = "pf"')), /line 3: firewall\.backend/);
  });

  test('bad accesses and sources', () => {
    assert.match(
      errorOf(minimal.replace('open = ["tcp/22"]', 'open = ["tcp/22", "ssh"]')),
      /line 8: client\[0\]\.open\[1\]: "ssh" is not an access/,
    );
    assert.match(
      errorOf(minimal.replace('protect = ["tcp/22"]', 'protect = ["tcp/0"]')),
      /line 3: firewall\.protect\[0\]/,
    );
    assert.match(
      errorOf(minimal + 'sources = ["10.0.0.0/33"]\n'),
      /line 9: client\[0\]\.sources\[0\]: "10\.0\.0\.0\/33": the prefix length must be 0-32/,
    );
    assert.match(errorOf(minimal + 'sources = ["010.0.0.0/8"]\n'), /"010\.0\.0\.0\/8" is not an address or CIDR/);
    assert.match(errorOf(minimal + 'sources = ["10.0.0.0/8x"]\n'), /"10\.0\.0\.0\/8x" is not an address or CIDR/);
    assert.deepEqual(
      parseConfig(minimal + 'sources = ["192.0.2.7", "2001:db8::/32"]\n', 'x').clients[0]?.sources.map((c) => c.text),
      ['192.0.2.7/32', '2001:db8::/32'],
    );
  });

  test('a client may only open protected accesses', () => {
    assert.match(
      errorOf(minimal.replace('open = ["tcp/22"]', 'open = ["tcp/80"]')),
      /line 8: client\[0\]\.open\[0\]: tcp\/80 is not in firewall\.protect/,
    );
  });

  test('clients: at least one, unique names, unique keys, exactly one of key/key_file', () => {
    assert.match(
      errorOf('[firewall]\nprotect = ["tcp/22"]\n'),
      /^config \S+: client: at least one \[\[client\]\] section is required$/,
    );
    assert.match(errorOf('state_dir = "/x"\n'), /: firewall: is required/);
    const second = `[[client]]\nname = "alice"\nkey = "${formatKey(keyOf(2))}"\nopen = ["tcp/22"]\n`;
    assert.match(errorOf(minimal + second), /line 10: client\[1\]\.name: duplicate client name "alice"/);
    const sameKey = `[[client]]\nname = "bob"\nkey = "${formatKey(keyOf(1))}"\nopen = ["tcp/22"]\n`;
    assert.match(errorOf(minimal + sameKey), /client\[1\]\.key: same key as client "alice"/);
    assert.match(
      errorOf(minimal.replace(/key = .*/, '')),
      /line 5: client\[0\]: set exactly one of "key" or "key_file"/,
    );
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
    assert.throws(
      () => loadConfig(cfgPath),
      (e: Error) =>
        e instanceof SpaError &&
        e.code === 'ERR_SPA_CONFIG' &&
        /client\[0\]\.key_file: key file .* is readable by group or others/.test(e.message),
    );
  });

  test('firewall.table names fit the backend', () => {
    assert.match(
      errorOf(minimal.replace('[firewall]', '[firewall]\ntable = "SPA"')),
      /line 3: firewall\.table: an nftables table name must be lower case/,
    );
    assert.match(
      errorOf(minimal.replace('[firewall]', '[firewall]\nbackend = "iptables"\ntable = "input"')),
      /line 4: firewall\.table: "input" is a built-in iptables chain/,
    );
    assert.match(
      errorOf(minimal.replace('[firewall]', '[firewall]\ntable = "a b"')),
      /line 3: firewall\.table: an nftables table name must be/,
    );
    assert.match(
      errorOf(minimal.replace('[firewall]', '[firewall]\nbackend = "iptables"\ntable = "a-b"')),
      /line 4: firewall\.table: an iptables chain name must be/,
    );
    assert.equal(
      parseConfig(minimal.replace('[firewall]', '[firewall]\nbackend = "iptables"\ntable = "KNOCK_GATE"'), 'x').firewall
        .table,
      'KNOCK_GATE',
    );
  });

  test('a missing config file is one clear line', () => {
    assert.throws(
      () => loadConfig(join(dir, 'nope.toml')),
      (e: Error) =>
        e instanceof SpaError &&
        e.code === 'ERR_SPA_CONFIG' &&
        /^cannot read config \/.*nope\.toml: no such file or directory$/.test(e.message),
    );
  });

  test('grant.duration cannot exceed grant.max_duration; client max is capped by the global one', () => {
    assert.match(
      errorOf(`[grant]\nduration = 600\n${minimal}`),
      /grant\.duration: must not exceed grant\.max_duration \(300\)/,
    );
    const c = parseConfig(minimal + 'max_duration = 9000\n', 'x.toml');
    assert.equal(c.clients[0]?.maxDuration, 300);
  });
});

describe('config: issue 11 (sources, new keys, file hygiene)', () => {
  const errOf = (f: () => unknown): SpaError => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof SpaError, String(e));
      assert.ok(!e.message.includes('\n'), e.message);
      return e;
    }
    assert.fail('expected an error');
  };

  test('a CIDR block with host bits set is refused (it would match more than it says)', () => {
    assert.match(
      errorOf(minimal + 'sources = ["10.1.2.3/0"]\n'),
      /client\[0\]\.sources\[0\]: "10\.1\.2\.3\/0" has host bits set; the block is 0\.0\.0\.0\/0/,
    );
    assert.match(
      errorOf(minimal + 'sources = ["2001:db8::1/32"]\n'),
      /"2001:db8::1\/32" has host bits set; the block is 2001:db8::\/32/,
    );
    assert.match(errorOf(minimal + 'sources = ["::ffff:10.0.0.0/104"]\n'), /IPv4-mapped IPv6 block; write it as IPv4/);
  });

  test('the default sources cover both families; "0.0.0.0/0" alone covers no IPv6', async () => {
    const { inAnyCidr } = await import('../../shared/address.js');
    const v4 = parseIp('198.51.100.7');
    const v6 = parseIp('2001:db8::7');
    assert.ok(v4 && v6);
    const def = parseConfig(minimal, 'x').clients[0]?.sources ?? [];
    assert.ok(inAnyCidr(v4, def) && inAnyCidr(v6, def));
    const only4 = parseConfig(minimal + 'sources = ["0.0.0.0/0"]\n', 'x').clients[0]?.sources ?? [];
    assert.ok(inAnyCidr(v4, only4) && !inAnyCidr(v6, only4));
  });

  test('new keys: receive_buffer, silence_port_unreachable, max_grants, require_source_address', () => {
    const text = minimal
      .replace(
        '[firewall]',
        '[listen]\nreceive_buffer = 1048576\n[grant]\nmax_grants = 4\n[firewall]\nsilence_port_unreachable = true',
      )
      .concat(
        'require_source_address = true\nmax_grants = 2\n',
        '[[client]]\nname = "bob"\nkey = "' + formatKey(keyOf(2)) + '"\nopen = ["tcp/22"]\n',
      );
    const c = parseConfig(text, 'x');
    assert.equal(c.listen.receiveBuffer, 1048576);
    assert.equal(c.firewall.silencePortUnreachable, true);
    assert.equal(c.grant.maxGrants, 4);
    assert.deepEqual(
      c.clients.map((cl) => [cl.name, cl.maxGrants, cl.requireSourceAddress]),
      [
        ['alice', 2, true],
        ['bob', 4, false],
      ],
    );
    assert.match(errorOf(minimal + 'require_source_address = "yes"\n'), /client\[0\]\.require_source_address/);
    assert.match(errorOf(minimal + 'max_grants = 0\n'), /client\[0\]\.max_grants/);
    assert.match(errorOf(`[listen]\nreceive_buffer = 100\n${minimal}`), /line 2: listen\.receive_buffer/);
    assert.match(
      errorOf(minimal.replace('[firewall]', '[firewall]\nsilence_port_unreachable = 1')),
      /firewall\.silence_port_unreachable/,
    );
  });

  test('firewall.table: config refuses exactly what tableNameProblem (server/firewall/names.ts) refuses, with its words', () => {
    for (const [backend, name] of [
      ['nftables', 'a b'],
      ['nftables', 'a'.repeat(29)],
      ['nftables', 'Spa'],
      ['iptables', 'forward'],
      ['iptables', '1x'],
    ] as const) {
      const problem = tableNameProblem(backend, name);
      assert.ok(problem, name);
      const msg = errorOf(minimal.replace('[firewall]', `[firewall]\nbackend = "${backend}"\ntable = "${name}"`));
      assert.ok(msg.endsWith(`firewall.table: ${problem}`), msg);
    }
    assert.equal(
      parseConfig(minimal.replace('[firewall]', '[firewall]\ntable = "knock_gate"'), 'x').firewall.table,
      'knock_gate',
    );
  });

  test('only a regular file is read: /dev/zero and a FIFO are refused at once, not read without end', () => {
    const e1 = errOf(() => loadConfig('/dev/zero'));
    assert.equal(e1.code, 'ERR_SPA_CONFIG');
    assert.equal(e1.message, 'cannot read config /dev/zero: not a regular file');
    const fifo = join(dir, 'fifo.toml');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    const t0 = process.hrtime.bigint();
    assert.match(errOf(() => loadConfig(fifo)).message, /fifo\.toml: not a regular file$/);
    assert.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 2000, 'did not block');
  });

  test('a file over the size cap is refused', () => {
    const big = join(dir, 'big.toml');
    writeFileSync(big, minimal + '#'.repeat(MAX_CONFIG_BYTES), { mode: 0o600 });
    assert.match(errOf(() => loadConfig(big)).message, /big\.toml: larger than 1048576 bytes/);
  });

  test('a directory, or a path through a file: errno words that say what is wrong with which path', () => {
    assert.equal(errOf(() => loadConfig(dir)).message, `cannot read config ${dir}: not a regular file`);
    const f = join(dir, 'plain');
    writeFileSync(f, '');
    assert.equal(
      errOf(() => loadConfig(join(f, 'x.toml'))).message,
      `cannot read config ${f}/x.toml: a part of the path is not a directory`,
    );
  });

  test('a config holding inline keys is held to the key-file rule; a config others can write is refused', () => {
    const p = join(dir, 'inline.toml');
    writeFileSync(p, minimal, { mode: 0o600 });
    chmodSync(p, 0o600);
    assert.equal(loadConfig(p).clients.length, 1);
    for (const mode of [0o640, 0o604, 0o644]) {
      chmodSync(p, mode);
      const e = errOf(() => loadConfig(p));
      assert.equal(e.code, 'ERR_SPA_CONFIG_PERMS');
      assert.equal(
        e.message,
        `config ${p} holds keys (client "alice") but group or others have access (mode 0${mode.toString(8)}); run: chmod 600 ${p}`,
      );
    }
    // no inline key: readable by others is fine (the key files are checked on their own) …
    const kf = join(dir, 'k2.key');
    writeFileSync(kf, formatKey(keyOf(4)) + '\n', { mode: 0o600 });
    const q = join(dir, 'keyfile.toml');
    writeFileSync(q, minimal.replace(/key = .*/, `key_file = "${kf}"`));
    chmodSync(q, 0o644);
    assert.equal(loadConfig(q).clients.length, 1);
    // … but writable by others never is: anyone could add a client
    chmodSync(q, 0o646);
    const e = errOf(() => loadConfig(q));
    assert.equal(e.code, 'ERR_SPA_CONFIG_PERMS');
    assert.match(e.message, /is writable by others \(mode 0646\); run: chmod o-w /);
  });
});
