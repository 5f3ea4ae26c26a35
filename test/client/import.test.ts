/**
 * `spa-knock import URI` (client/import.ts): key file 0600 and a [host."NAME"] profile that `spa-knock NAME` then
 * uses (client/profile.ts withProfile); the profile file's comments kept; a different key or an existing profile
 * kept unless --force; the real CLI's one-line errors.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { importUri } from '../../client/import.js';
import { profileFor, withProfile } from '../../client/profile.js';
import { keyOf } from '../../harness/config.js';
import { CLIENT, runTs } from '../../harness/run.js';
import type { SpaError } from '../../shared/errors.js';
import { readKeyFile } from '../../shared/keyfile.js';
import { formatKey } from '../../shared/keys.js';
import { formatUri } from '../../shared/uri.js';

const root = mkdtempSync(join(tmpdir(), 'spak-import-'));
after(() => rmSync(root, { recursive: true, force: true }));
const KEY = keyOf(7);
const URI = formatUri({
  host: 'knock.example.org',
  port: 62299,
  key: KEY,
  name: 'alice',
  open: [{ proto: 'tcp', port: 22 }],
  family: 4,
  format: 'spak1',
  wait: { proto: 'tcp', port: 22 },
});
let n = 0;
const place = () => {
  const d = join(root, `h${++n}`);
  const cfg = join(d, 'spa-knock', 'config.toml');
  return { d, cfg, env: { SPA_KNOCK_CONFIG: cfg } };
};
const args = { uri: URI, keyFile: undefined, name: undefined, force: false };

const given = (host: string) => ({
  host,
  key: undefined,
  open: [],
  port: undefined,
  duration: '0',
  allowIp: undefined,
  close: false,
  dryRun: false,
  json: false,
  ipv4: false,
  ipv6: false,
  sequence: undefined,
  delay: undefined,
  format: undefined,
  wait: undefined,
  timeout: undefined,
});

describe('spa-knock import', () => {
  test('writes the key (0600) and a profile: `spa-knock NAME` then knocks with the URI defaults', () => {
    const { cfg, env } = place();
    const r = importUri({ ...args, name: 'work' }, env);
    assert.equal(r.profile, 'work');
    assert.equal(r.keyFile, join(cfg, '..', 'work.key'));
    assert.deepEqual(readKeyFile(r.keyFile), KEY);
    assert.equal(statSync(r.keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(cfg).mode & 0o777, 0o600);
    const k = withProfile(given('work'), cfg);
    assert.equal(k.host, 'knock.example.org');
    assert.equal(k.key, r.keyFile);
    assert.equal(k.port, '62299');
    assert.deepEqual(k.open, ['tcp/22']);
    assert.equal(k.ipv4, true);
    assert.equal(k.format, 'spak1');
    assert.equal(k.wait, 'tcp/22');
  });

  test('default profile name: the URI host; IPv6 host: a key file name without colons', () => {
    const { cfg, env } = place();
    assert.equal(importUri(args, env).profile, 'knock.example.org');
    assert.ok(profileFor('knock.example.org', cfg));
    const v6 = formatUri({ host: '2001:db8::1', port: 1, key: keyOf(8), open: [], format: 'spak1' });
    const r = importUri({ ...args, uri: v6 }, env);
    assert.equal(r.profile, '2001:db8::1');
    assert.match(r.keyFile, /2001_db8__1\.key$/);
    assert.equal(profileFor('2001:db8::1', cfg)?.address, '2001:db8::1');
  });

  test('an existing profile file keeps its comments and other profiles, byte for byte', () => {
    const { cfg, env, d } = place();
    const old = '# my servers\n[host.home]   # the NAS\naddress = "192.0.2.1"\nkey = "~/.knock.key"\n\n# end\n';
    importUri({ ...args, name: 'seed' }, env); // creates the directory
    writeFileSync(cfg, old);
    importUri({ ...args, name: 'work', keyFile: join(d, 'w.key') }, env);
    const text = readFileSync(cfg, 'utf8');
    assert.ok(text.startsWith(old), text);
    assert.equal(profileFor('home', cfg)?.address, '192.0.2.1');
    assert.equal(profileFor('work', cfg)?.address, 'knock.example.org');
  });

  test('the same import twice is fine; another URI for that profile needs --force, which replaces only it', () => {
    const { cfg, env } = place();
    importUri({ ...args, name: 'work' }, env);
    importUri({ ...args, name: 'other', keyFile: join(cfg, '..', 'o.key') }, env);
    const r = importUri({ ...args, name: 'work' }, env);
    assert.equal(r.unchanged, true);
    assert.equal(r.keyKept, true);
    const moved = formatUri({ host: 'new.example.org', port: 1, key: KEY, open: [], format: 'spak1' });
    assert.throws(
      () => importUri({ ...args, uri: moved, name: 'work' }, env),
      (e: SpaError) => e.code === 'ERR_SPA_CONFIG' && /a profile "work" is already there \(use --force/.test(e.message),
    );
    assert.equal(profileFor('work', cfg)?.address, 'knock.example.org');
    const f = importUri({ ...args, uri: moved, name: 'work', force: true }, env);
    assert.equal(f.replaced, true);
    assert.equal(profileFor('work', cfg)?.address, 'new.example.org');
    assert.equal(profileFor('other', cfg)?.address, 'knock.example.org', 'the other profile kept');
    assert.equal((readFileSync(cfg, 'utf8').match(/\[host\."work"\]/g) ?? []).length, 1);
  });

  test('a different key in the key file is kept unless --force; nothing else is written then', () => {
    const { cfg, env, d } = place();
    const kf = join(d, 'k.key');
    importUri({ ...args, name: 'seed' }, env);
    writeFileSync(kf, `${formatKey(keyOf(9))}\n`, { mode: 0o600 });
    assert.throws(
      () => importUri({ ...args, name: 'work', keyFile: kf }, env),
      (e: SpaError) => e.code === 'ERR_SPA_KEYFILE_EXISTS' && /holds a different key \(use --force/.test(e.message),
    );
    assert.deepEqual(readKeyFile(kf), keyOf(9));
    assert.equal(profileFor('work', cfg), undefined, 'no profile written');
    importUri({ ...args, name: 'work', keyFile: kf, force: true }, env);
    assert.deepEqual(readKeyFile(kf), KEY);
  });

  test('refused: a bad URI (ERR_SPA_URI), a bad --name; a broken profile file is not touched', () => {
    const { cfg, env } = place();
    assert.throws(
      () => importUri({ ...args, uri: 'spa-knock://h?key=x' }, env),
      (e: SpaError) => e.code === 'ERR_SPA_URI',
    );
    assert.throws(
      () => importUri({ ...args, name: 'a b' }, env),
      (e: SpaError) => e.code === 'ERR_SPA_USAGE',
    );
    importUri({ ...args, name: 'seed' }, env);
    writeFileSync(cfg, '[host.x]\nbogus = 1\n');
    assert.throws(() => importUri({ ...args, name: 'work' }, env), /unknown key "bogus"/);
    assert.equal(readFileSync(cfg, 'utf8'), '[host.x]\nbogus = 1\n');
  });

  test('the real CLI: one line on stdout without the key; errors one line with exit 2 / 1', async () => {
    const { env } = place();
    const e = { ...process.env, ...env };
    const ok = await runTs(CLIENT, ['import', URI, '--name', 'work'], { env: e });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stdout,
      /^wrote the key to .*work\.key \(mode 0600\); added profile "work" in .*: now `spa-knock work` knocks\n$/,
    );
    assert.ok(!ok.stdout.includes(formatKey(KEY)) && !ok.stderr.includes(formatKey(KEY)));
    const bad = await runTs(CLIENT, ['import', 'https://x'], { env: e });
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^spa-knock: \[ERR_SPA_URI\] spa-knock:\/\/ URI: the scheme must be "spa-knock", not "https"\n$/,
    );
    const exists = await runTs(CLIENT, ['import', URI.replace('knock.example.org', 'x.example'), '--name', 'work'], {
      env: e,
    });
    assert.equal(exists.code, 1);
    assert.match(exists.stderr, /\[ERR_SPA_CONFIG\] .*already there/);
  });
});
