/** Client profiles (client/profile.ts): the file's rules, where it is, and flags over profile over defaults. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { type GivenArgs, parseProfiles, profileFor, profilePath, withProfile } from '../../client/profile.js';
import { SpaError } from '../../shared/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-profile-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const FILE = join(dir, 'config.toml');
writeFileSync(
  FILE,
  [
    '[host.myserver]',
    'address = "server.example"',
    'key = "keys/my.key"',
    'port = 40000',
    'open = ["tcp/22", "udp/53"]',
    'families = [6]',
    'format = "fwknop"',
    'wait = "tcp/22"',
    '[host.plain]',
    '',
  ].join('\n'),
);

const given = (over: Partial<GivenArgs> = {}): GivenArgs => ({
  host: 'myserver',
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
  ...over,
});

describe('profiles', () => {
  test('the path: SPA_KNOCK_CONFIG, else $XDG_CONFIG_HOME, else ~/.config', () => {
    assert.equal(profilePath({ SPA_KNOCK_CONFIG: '/x/c.toml' }, '/home/u'), '/x/c.toml');
    assert.equal(profilePath({ XDG_CONFIG_HOME: '/xdg' }, '/home/u'), '/xdg/spa-knock/config.toml');
    assert.equal(profilePath({ XDG_CONFIG_HOME: 'relative' }, '/home/u'), '/home/u/.config/spa-knock/config.toml');
    assert.equal(profilePath({}, '/home/u'), '/home/u/.config/spa-knock/config.toml');
  });

  test('a profile fills what the command line left out; key paths are relative to the file, ~ to home', () => {
    const a = withProfile(given(), FILE);
    assert.equal(a.host, 'server.example');
    assert.equal(a.key, join(dir, 'keys', 'my.key'));
    assert.equal(a.port, '40000');
    assert.deepEqual(a.open, ['tcp/22', 'udp/53']);
    assert.equal(a.ipv6, true);
    assert.equal(a.ipv4, false);
    assert.equal(a.format, 'fwknop');
    assert.equal(a.wait, 'tcp/22');
    const home = parseProfiles('[host.h]\nkey = "~/k.key"\n', FILE, '/home/u').get('h');
    assert.equal(home?.key, '/home/u/k.key');
  });

  test('flags override the profile', () => {
    const a = withProfile(
      given({ key: '/k', port: '1', open: ['tcp/80'], ipv4: true, format: 'spak1', wait: 'tcp/80' }),
      FILE,
    );
    assert.deepEqual(
      [a.key, a.port, a.open, a.ipv4, a.ipv6, a.format, a.wait],
      ['/k', '1', ['tcp/80'], true, false, 'spak1', 'tcp/80'],
    );
  });

  test("--close, --dry-run and --sequence do not take the profile's wait; --sequence not its open or format", () => {
    assert.equal(withProfile(given({ close: true }), FILE).wait, undefined);
    assert.equal(withProfile(given({ dryRun: true }), FILE).wait, undefined);
    const s = withProfile(given({ sequence: '1,2' }), FILE);
    assert.deepEqual([s.open, s.format, s.wait, s.port], [[], 'spak1', undefined, '40000']);
  });

  test('no profile, or no file: the built-in defaults, the host as typed', () => {
    for (const [host, file] of [
      ['plain', FILE],
      ['other', FILE],
      ['myserver', join(dir, 'missing.toml')],
    ] as const) {
      const a = withProfile(given({ host }), file);
      assert.equal(a.host, host);
      assert.match(a.key, /\.knock\.key$/);
      assert.deepEqual([a.port, a.format, a.wait, a.ipv4, a.ipv6], ['62201', 'spak1', undefined, false, false]);
    }
    assert.equal(profileFor('x', join(dir, 'missing.toml')), undefined);
  });

  test('prefix4 / prefix6 (issue 10): the profile asks for them, for --close too, not for --sequence; flags win', () => {
    const f = join(dir, 'prefix.toml');
    writeFileSync(f, '[host.cgnat]\nprefix4 = 24\nprefix6 = 64\n');
    const a = withProfile(given({ host: 'cgnat' }), f);
    assert.deepEqual([a.prefix4, a.prefix6], ['24', '64']);
    const c = withProfile(given({ host: 'cgnat', close: true }), f);
    assert.deepEqual([c.prefix4, c.prefix6], ['24', '64']);
    const s = withProfile(given({ host: 'cgnat', sequence: '1,2' }), f);
    assert.deepEqual([s.prefix4, s.prefix6], [undefined, undefined]);
    const o = withProfile(given({ host: 'cgnat', prefix4: '28' }), f);
    assert.deepEqual([o.prefix4, o.prefix6], ['28', '64']);
    assert.equal(withProfile(given(), FILE).prefix4, undefined);
  });

  test('a wrong file is ERR_SPA_CONFIG naming the file, the table and the key', () => {
    for (const [text, re] of [
      ['[host.a\n', /not TOML/],
      ['key = "x"\n', /unknown table or key "key"/],
      ['[host.a]\nkeyfile = "x"\n', /\[host\.a\]: unknown key "keyfile"/],
      ['[host.a]\nport = 0\n', /\[host\.a\] port must be 1-65535/],
      ['[host.a]\nport = "22"\n', /port must be/],
      ['[host.a]\nopen = ["tcp/99999"]\n', /open must be a list of accesses/],
      ['[host.a]\nfamilies = [5]\n', /families must be \[4\], \[6\] or \[4, 6\]/],
      ['[host.a]\nformat = "knockd"\n', /format must be/],
      ['[host.a]\nwait = "udp/53"\n', /wait must be a TCP access/],
      ['[host.a]\naddress = ""\n', /address must be a non-empty string/],
      ['[host.a]\nprefix4 = 33\n', /\[host\.a\] prefix4 must be a whole number 1-32/],
      ['[host.a]\nprefix6 = "64"\n', /prefix6 must be a whole number 1-128/],
      ['[host.a]\nprefix6 = 0\n', /prefix6 must be/],
    ] as const) {
      assert.throws(
        () => parseProfiles(text, FILE),
        (e: unknown) =>
          e instanceof SpaError && e.code === 'ERR_SPA_CONFIG' && e.message.includes(FILE) && re.test(e.message),
        text,
      );
    }
    assert.equal(parseProfiles('[host.a]\nfamilies = [6, 4]\n', FILE).get('a')?.family, undefined);
  });
});
