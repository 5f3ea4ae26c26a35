/**
 * `spa-knockd add-client` / `remove-client` / `list-clients` (server/clients-command.ts, server/config-edit.ts,
 * shared/atomic-file.ts) on config files in a temporary directory: comments and layout kept, the result loads, the
 * printed key and URI are the ones written, refusals leave the file untouched, mode and owner kept; the real CLI
 * once for its one-line errors and exit statuses.
 */
import assert from 'node:assert/strict';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { formatAccess } from '../../shared/access.js';
import { keyOf } from '../../harness/config.js';
import { DAEMON, runTs } from '../../harness/run.js';
import { replaceFileAtomic } from '../../shared/atomic-file.js';
import type { SpaError } from '../../shared/errors.js';
import { formatKey, parseKey } from '../../shared/keys.js';
import { parseUri } from '../../shared/uri.js';
import {
  type AddClientArgs,
  type Io,
  addClient,
  listClients,
  parseExpires,
  parseHostOption,
  removeClient,
} from '../../server/clients-command.js';
import { loadConfig } from '../../server/config-file.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-clients-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const NOW = Date.UTC(2026, 11, 5, 12);

const CONFIG = `# spa-knockd on the gateway
state_dir = "${dir}/state"   # replay records

[listen]
port = 62299

[firewall]
backend = "nftables"
protect = ["tcp/22", "tcp/443"]

# the admin's laptop
[[client]]
name = "admin"
key = "${formatKey(keyOf(1))}"
open = ["tcp/22"]   # ssh only

# keep this comment at the end
`;

let n = 0;
function file(text = CONFIG, mode = 0o600): string {
  const p = join(dir, `c${++n}.toml`);
  writeFileSync(p, text, { mode });
  return p;
}

function io(now = NOW): Io & { stdout: string; stderr: string; kills: [number, string][] } {
  const o = {
    stdout: '',
    stderr: '',
    kills: [] as [number, string][],
    out: (s: string) => {
      o.stdout += s;
    },
    err: (s: string) => {
      o.stderr += s;
    },
    now: () => now,
    hostname: () => 'gw.example',
    kill: (pid: number, sig: string) => {
      o.kills.push([pid, sig]);
    },
  };
  return o;
}

const args = (config: string, more: Partial<AddClientArgs> = {}): AddClientArgs => ({
  config,
  name: 'alice',
  open: [],
  sources: [],
  expires: undefined,
  host: 'knock.example.org',
  qr: true,
  json: false,
  reload: false,
  ...more,
});

const noTemp = () =>
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left',
  );

describe('add-client', () => {
  test('appends a [[client]] block; every old line is still there, in order; the result loads', async () => {
    const p = file();
    const o = io();
    await addClient(args(p, { open: ['tcp/443'], sources: ['10.0.0.0/8'], expires: '2027-01-31' }), o);
    const text = readFileSync(p, 'utf8');
    assert.ok(text.startsWith(CONFIG), 'the old text is kept byte for byte, the block comes after it');
    assert.match(
      text.slice(CONFIG.length),
      /^\n# alice: added by spa-knockd add-client on 2026-12-05\n\[\[client\]\]\nname = "alice"\nkey = "spak1_[A-Za-z0-9_-]{48}"\nopen = \["tcp\/443"\]\nsources = \["10.0.0.0\/8"\]\nexpires = 2027-01-31\n$/,
    );
    const c = loadConfig(p);
    const alice = c.clients.find((x) => x.name === 'alice');
    assert.ok(alice);
    assert.deepEqual(alice.open.map(formatAccess), ['tcp/443']);
    assert.equal(alice.expiresAt, Date.UTC(2027, 0, 31));
    // what was printed is what was written
    const keyLine = /key line[^\n]*\n {2}(spak1_\S+)/.exec(o.stdout)?.[1] ?? '';
    const k = parseKey(keyLine);
    assert.ok(k.ok);
    assert.deepEqual(k.key, alice.key);
    const uriText = /URI[^\n]*\n {2}(spa-knock:\/\/\S+)/.exec(o.stdout)?.[1] ?? '';
    const u = parseUri(uriText);
    assert.equal(u.host, 'knock.example.org');
    assert.equal(u.port, 62299, 'the port defaults to listen.port');
    assert.deepEqual(u.key, alice.key);
    assert.equal(u.name, 'alice');
    assert.deepEqual(u.open.map(formatAccess), ['tcp/443']);
    assert.equal(u.family, 4, 'sources are IPv4 only: families=4');
    assert.match(o.stdout, /[▀▄█]{20}/, 'a QR code');
    assert.match(o.stdout, /SIGHUP/);
    assert.match(o.stderr, /warning: the output holds the new secret key/);
    assert.ok(!o.stderr.includes(keyLine), 'the key only on stdout');
    assert.equal(statSync(p).mode & 0o777, 0o600);
    noTemp();
  });

  test('defaults: every protected access, any source (no families), host from hostname with a note; --json', async () => {
    const p = file();
    const o = io();
    await addClient(args(p, { host: undefined, json: true, qr: false }), o);
    const j = JSON.parse(o.stdout) as { key: string; uri: string; open: string[]; sources: string[]; expires: null };
    assert.deepEqual(j.open, ['tcp/22', 'tcp/443']);
    assert.deepEqual(j.sources, ['0.0.0.0/0', '::/0']);
    assert.equal(j.expires, null);
    const u = parseUri(j.uri);
    assert.equal(u.host, 'gw.example');
    assert.equal(u.family, undefined);
    assert.match(o.stderr, /the URI names the server as "gw.example"; give --host/);
    assert.equal(loadConfig(p).clients.length, 2);
  });

  test('--host forms: name, name:port, [v6]:port, bare v6, and a bad one', () => {
    assert.deepEqual(parseHostOption('a.example', 1), { host: 'a.example', port: 1 });
    assert.deepEqual(parseHostOption('a.example:5', 1), { host: 'a.example', port: 5 });
    assert.deepEqual(parseHostOption('[2001:db8::1]:7', 1), { host: '2001:db8::1', port: 7 });
    assert.deepEqual(parseHostOption('2001:db8::1', 1), { host: '2001:db8::1', port: 1 });
    assert.throws(() => parseHostOption('a_b', 1), /ERR_SPA_USAGE|--host a_b: "a_b" is not a host name/);
    assert.throws(() => parseHostOption('a:99999', 1), /--host a:99999: port/);
  });

  test('--expires: a date, a date-time with offset; refused: past, malformed, impossible date', () => {
    assert.deepEqual(parseExpires('2027-01-31', NOW), { literal: '2027-01-31', at: Date.UTC(2027, 0, 31) });
    assert.deepEqual(parseExpires('2027-01-31t18:00:00+01:00', NOW), {
      literal: '2027-01-31T18:00:00+01:00',
      at: Date.UTC(2027, 0, 31, 17),
    });
    for (const bad of ['2026-12-05', '2020-01-01T00:00:00Z', '31.01.2027', '2027-02-30', '2027-01-31T18:00:00', 'soon'])
      assert.throws(
        () => parseExpires(bad, NOW),
        (e: SpaError) => e.code === 'ERR_SPA_USAGE',
        bad,
      );
  });

  test('refusals leave the file as it was: existing name, access not protected, group-readable config', async () => {
    const p = file();
    await assert.rejects(addClient(args(p, { name: 'admin' }), io()), /a client "admin" is already there/);
    await assert.rejects(addClient(args(p, { open: ['tcp/80'] }), io()), /--open tcp\/80 is not in firewall\.protect/);
    await assert.rejects(addClient(args(p, { sources: ['10.1.2.3/8'] }), io()), /ERR_SPA_CONFIG|sources/);
    assert.equal(readFileSync(p, 'utf8'), CONFIG);
    const q = file(CONFIG.replace(/key = .*\n/, `key_file = "k1.key"\n`), 0o640);
    writeFileSync(join(dir, 'k1.key'), `${formatKey(keyOf(1))}\n`, { mode: 0o600 });
    await assert.rejects(addClient(args(q), io()), (e: SpaError) => {
      assert.equal(e.code, 'ERR_SPA_CONFIG_PERMS');
      assert.match(
        e.message,
        /holds keys \(client "alice"\) but group or others have access \(mode 0640\); run: chmod 600/,
      );
      return true;
    });
    assert.equal(readFileSync(q, 'utf8'), CONFIG.replace(/key = .*\n/, `key_file = "k1.key"\n`));
    noTemp();
  });

  test('--key-file: a new 0600 key file and key_file in a 0644 config; refusals remove the key file again', async () => {
    writeFileSync(join(dir, 'k1.key'), `${formatKey(keyOf(1))}\n`, { mode: 0o600 });
    const shared = CONFIG.replace(/key = .*\n/, `key_file = "k1.key"\n`);
    const p = file(shared, 0o644);
    const kf = join(dir, 'alice.key');
    const o = io();
    await addClient(args(p, { keyFile: kf }), o);
    assert.equal(statSync(p).mode & 0o777, 0o644, 'the config keeps its mode and holds no key');
    assert.equal(statSync(kf).mode & 0o777, 0o600);
    assert.ok(readFileSync(p, 'utf8').startsWith(shared));
    assert.ok(readFileSync(p, 'utf8').includes(`key_file = "${kf}"`));
    assert.ok(!readFileSync(p, 'utf8').includes('spak1_'));
    const alice = loadConfig(p).clients.find((c) => c.name === 'alice');
    assert.deepEqual(parseUri(/ {2}(spa-knock:\S+)/.exec(o.stdout)?.[1] ?? '').key, alice?.key);
    await assert.rejects(
      addClient(args(p, { name: 'bob', keyFile: kf }), io()),
      /--key-file .* already exists; name a new file/,
    );
    const kf2 = join(dir, 'dup.key');
    await assert.rejects(addClient(args(p, { name: 'admin', keyFile: kf2 }), io()), /already there/);
    assert.equal(existsSync(kf2), false, 'the key file of a refused client is removed');
    noTemp();
  });

  test('a config the text scan would misread is refused, not corrupted', async () => {
    // a header-like line inside a multi-line string: the scan counts one [[client]] too many
    const tricky = CONFIG.replace(`state_dir = "${dir}/state"`, `state_dir = """\n${dir}/state\n[[client]]\n"""`);
    const p = file(tricky);
    await addClient(args(p), io());
    const before = readFileSync(p, 'utf8');
    await assert.rejects(
      removeClient({ config: p, name: 'admin', reload: false }, io()),
      /cannot edit it safely as text .*; edit it by hand/,
    );
    assert.equal(readFileSync(p, 'utf8'), before);
    noTemp();
  });

  test('the owner (uid:gid) and mode of the file are kept', async () => {
    assert.equal(process.getuid?.(), 0, 'this test needs root (to chown), as npm test does');
    const p = file();
    chownSync(p, 4242, 4343);
    await addClient(args(p), io());
    const st = statSync(p);
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [4242, 4343, 0o600]);
  });
});

describe('remove-client', () => {
  test('removes exactly that block and the comment above it; everything else byte for byte', async () => {
    const p = file();
    await addClient(args(p, { name: 'bob' }), io());
    const withBob = readFileSync(p, 'utf8');
    const o = io();
    await removeClient({ config: p, name: 'admin', reload: false }, o);
    const text = readFileSync(p, 'utf8');
    assert.equal(
      text,
      withBob.replace(
        /# the admin's laptop\n\[\[client\]\]\nname = "admin"\nkey = "[^"]+"\nopen = \["tcp\/22"\] {3}# ssh only\n\n/,
        '',
      ),
    );
    assert.ok(text.includes('# keep this comment at the end'));
    assert.deepEqual(
      loadConfig(p).clients.map((c) => c.name),
      ['bob'],
    );
    assert.match(o.stdout, /removed client "admin" from .*\n.*SIGHUP.*its live grants end then/);
    // add then remove gives the original back
    const q = file();
    await addClient(args(q), io());
    await removeClient({ config: q, name: 'alice', reload: false }, io());
    assert.equal(readFileSync(q, 'utf8'), CONFIG);
  });

  test('refused: unknown name, the only client; the file untouched', async () => {
    const p = file();
    await assert.rejects(
      removeClient({ config: p, name: 'bob', reload: false }, io()),
      /no client "bob" \(clients: admin\)/,
    );
    await assert.rejects(removeClient({ config: p, name: 'admin', reload: false }, io()), /its only client/);
    assert.equal(readFileSync(p, 'utf8'), CONFIG);
  });

  test('--reload sends SIGHUP to the pid the control socket reports; no daemon: ERR_SPA_CONTROL after the edit', async () => {
    const p = file();
    await addClient(args(p), io());
    await assert.rejects(
      removeClient({ config: p, name: 'alice', reload: true }, io()),
      (e: SpaError) => e.code === 'ERR_SPA_CONTROL',
    );
    assert.equal(readFileSync(p, 'utf8'), CONFIG, 'the edit itself was written');
  });
});

describe('list-clients', () => {
  test('table and --json: accesses, sources, expiry, expired?', async () => {
    const p = file();
    await addClient(args(p, { name: 'old', expires: '2026-12-06', sources: ['2001:db8::/32'] }), io());
    const later = io(Date.UTC(2026, 11, 7));
    listClients({ config: p, json: true }, later);
    assert.deepEqual(JSON.parse(later.stdout), [
      {
        name: 'admin',
        format: 'spak1',
        open: ['tcp/22'],
        sources: ['0.0.0.0/0', '::/0'],
        expires: null,
        expired: false,
      },
      {
        name: 'old',
        format: 'spak1',
        open: ['tcp/22', 'tcp/443'],
        sources: ['2001:db8::/32'],
        expires: '2026-12-06T00:00:00.000Z',
        expired: true,
      },
    ]);
    const t = io();
    listClients({ config: p, json: false }, t);
    assert.match(
      t.stdout,
      /^NAME +OPEN +SOURCES +EXPIRES +STATE\nadmin +tcp\/22 +0\.0\.0\.0\/0,::\/0 +never +active\nold +tcp\/22,tcp\/443 +2001:db8::\/32 +2026-12-06T00:00:00\.000Z +active\n$/,
    );
  });
});

describe('atomic replace', () => {
  test('a file changed since it was read is not overwritten', () => {
    const p = file();
    assert.throws(
      () => replaceFileAtomic(p, 'new', { code: 'ERR_SPA_CONFIG', what: 'config', original: 'something else' }),
      /changed while it was being edited; nothing written/,
    );
    assert.equal(readFileSync(p, 'utf8'), CONFIG);
    assert.throws(
      () => replaceFileAtomic(p, 'new', { code: 'ERR_SPA_CONFIG', what: 'config', original: null }),
      /changed while it was being edited/,
    );
    noTemp();
  });
});

describe('the real CLI', () => {
  test('one-line errors with their codes and exit statuses', async () => {
    const p = file();
    const bad = await runTs(DAEMON, ['add-client', 'a b', '--config', p]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^spa-knockd: \[ERR_SPA_USAGE\] NAME "a b" must be/);
    const dup = await runTs(DAEMON, ['add-client', 'admin', '--config', p, '--host', 'h.example']);
    assert.equal(dup.code, 1);
    assert.equal(dup.stderr.trim().split('\n').length, 1);
    assert.match(dup.stderr, /\[ERR_SPA_CONFIG\] .*already there/);
    const ok = await runTs(DAEMON, [
      'add-client',
      'phone',
      '--config',
      p,
      '--host',
      'h.example:1',
      '--no-qr',
      '--open',
      'tcp/22',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.doesNotMatch(ok.stdout, /[▀▄█]/, '--no-qr');
    const list = await runTs(DAEMON, ['list-clients', '--config', p, '--json']);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { name: string }[]).map((c) => c.name),
      ['admin', 'phone'],
    );
    const rm = await runTs(DAEMON, ['remove-client', 'phone', '--config', p]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(readFileSync(p, 'utf8'), CONFIG);
  });
});
