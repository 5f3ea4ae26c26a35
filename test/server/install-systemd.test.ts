/**
 * The shipped systemd units (systemd/) and `spa-knockd install-systemd` (server/install-systemd.ts): the units as
 * installed pass `systemd-analyze verify` and score "OK" or better in `systemd-analyze security --offline`; they carry
 * the hardening docs/systemd.md explains; install-systemd points ExecStart= at the program running it, follows the
 * config, is idempotent, refuses a unit that differs unless --force, writes nothing with --dry-run, creates the
 * config directory but never touches a config. The installed package's install-systemd: test/package/pack.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { configText } from '../../harness/config.js';
import { onPath } from '../../harness/prerequisites.js';
import { DAEMON, ROOT, runTs } from '../../harness/run.js';
import { run } from '../../server/firewall/process.js';
import { daemonCommand, quoteExecArg, renderUnits } from '../../server/install-systemd.js';

const tmp = mkdtempSync(join(tmpdir(), 'spak-sysd-inst-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const shipped = (name: string) => readFileSync(join(ROOT, 'systemd', name), 'utf8');
const install = (unitDir: string, configPath: string, ...more: string[]) =>
  runTs(DAEMON, ['install-systemd', '--unit-dir', unitDir, '--config', configPath, ...more]);
const directives = (text: string) =>
  text
    .split('\n')
    .filter((l) => /^[A-Za-z][A-Za-z0-9]*=/.test(l))
    .map((l) => l.slice(0, l.indexOf('=')));

describe('the shipped units', () => {
  const service = shipped('spa-knockd.service');
  const socket = shipped('spa-knockd.socket');

  test('the service: readiness, reload, restart and the hardening of docs/systemd.md', () => {
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'Restart=on-failure',
      'Wants=network-online.target',
      'After=network-online.target nftables.service',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'StateDirectory=spa-knockd',
      'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW',
      'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK',
      'SystemCallFilter=@system-service',
      'SystemCallErrorNumber=EPERM',
      'WantedBy=multi-user.target',
    ]) {
      assert.ok(service.split('\n').includes(line), `spa-knockd.service lacks ${line}`);
    }
    assert.doesNotMatch(
      service,
      /^(User|DynamicUser|MemoryDenyWriteExecute)=/m,
      'root for the firewall; V8 needs W^X off',
    );
  });

  test('the socket: one datagram socket on 62201, dual-stack, for spa-knockd.service', () => {
    assert.deepEqual(directives(socket), [
      'Description',
      'Documentation',
      'ListenDatagram',
      'BindIPv6Only',
      'Service',
      'WantedBy',
    ]);
    assert.match(socket, /^ListenDatagram=62201$/m);
    assert.match(socket, /^BindIPv6Only=both$/m);
    assert.doesNotMatch(socket, /^ListenStream=/m);
  });

  test('every directive of docs/systemd.md is in the units and every one in the units is in the doc', () => {
    const doc = readFileSync(join(ROOT, 'docs', 'systemd.md'), 'utf8');
    for (const d of new Set([...directives(service), ...directives(socket)]))
      assert.match(doc, new RegExp(`\`${d}=`), `docs/systemd.md does not explain ${d}=`);
  });
});

describe('spa-knockd install-systemd', () => {
  test('systemd-analyze is there (the systemd package)', () => {
    assert.ok(onPath('systemd-analyze'), 'systemd-analyze not found (fix: apt-get install -y systemd)');
  });

  test('writes both units; they pass systemd-analyze verify and differ from the shipped ones only in ExecStart and Documentation', async () => {
    const dir = join(tmp, 'fresh');
    const etc = join(tmp, 'fresh-etc');
    const r = await install(join(dir, 'units'), join(etc, 'spa-knockd.toml'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^wrote .*spa-knockd\.service\nwrote .*spa-knockd\.socket\ncreated .*fresh-etc \(mode 0700\)\n/,
    );
    assert.match(r.stdout, /\nnext:\n {2}systemctl daemon-reload\n {2}systemctl enable --now spa-knockd\.service/);
    assert.equal(statSync(etc).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(etc), [], 'no config written');
    const units = join(dir, 'units');
    for (const n of ['spa-knockd.service', 'spa-knockd.socket'])
      assert.equal(statSync(join(units, n)).mode & 0o777, 0o644);
    const service = readFileSync(join(units, 'spa-knockd.service'), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(service)?.[1] ?? '';
    // from the source checkout: this node, tsx resolved to a file (a unit runs in /), the real path of main.ts
    assert.match(
      exec,
      new RegExp(
        `^${process.execPath} --import file://\\S+ ${ROOT}server/main\\.ts --config ${etc}/spa-knockd\\.toml$`,
      ),
    );
    const changed = (a: string, b: string) => {
      const [x, y] = [a.split('\n'), b.split('\n')];
      assert.equal(x.length, y.length);
      return x.flatMap((l, i) => (l === y[i] ? [] : [l.slice(0, l.indexOf('='))]));
    };
    assert.deepEqual(changed(shipped('spa-knockd.service'), service), ['Documentation', 'ExecStart']);
    assert.match(service, new RegExp(`^Documentation=file:${ROOT}docs/systemd\\.md `, 'm'));
    const socket = readFileSync(join(units, 'spa-knockd.socket'), 'utf8');
    assert.deepEqual(changed(shipped('spa-knockd.socket'), socket), ['Documentation']);

    const v = await run([
      'systemd-analyze',
      'verify',
      join(units, 'spa-knockd.service'),
      join(units, 'spa-knockd.socket'),
    ]);
    assert.equal(v.code, 0, `systemd-analyze verify: ${v.stderr}${v.stdout}`);
    assert.equal(v.stderr.trim(), '', 'no warning either');
  });

  test('systemd-analyze security rates the service "OK" or better (exposure below 4.0 of 10)', async () => {
    const units = join(tmp, 'sec');
    const r = await install(units, join(tmp, 'sec-etc', 'spa-knockd.toml'));
    assert.equal(r.code, 0, r.stderr);
    const s = await run([
      'systemd-analyze',
      'security',
      '--offline=true',
      '--no-pager',
      join(units, 'spa-knockd.service'),
    ]);
    const m = /Overall exposure level for spa-knockd\.service: ([0-9.]+) (\w+)/.exec(s.stdout);
    assert.ok(m, `no exposure level: ${s.stdout.slice(-400)} ${s.stderr}`);
    assert.ok(Number(m[1]) < 4.0, `exposure ${m[1]} ${m[2]}`);
    assert.match(m[2] ?? '', /^(OK|SAFE)$/);
  });

  test('follows the config: its listen address and port in the socket, its state_dir writable; the config untouched', async () => {
    const etc = join(tmp, 'cfg-etc');
    mkdirSync(etc, { mode: 0o700 });
    const cfg = join(etc, 'spa-knockd.toml');
    const text = configText({ stateDir: '/srv/spak-state', port: 62290, address: '10.251.91.1' });
    writeFileSync(cfg, text, { mode: 0o600 });
    const units = join(tmp, 'cfg-units');
    const r = await install(units, cfg);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /state_dir \/srv\/spak-state is not \/var\/lib\/spa-knockd: made writable with ReadWritePaths=/,
    );
    const socket = readFileSync(join(units, 'spa-knockd.socket'), 'utf8');
    assert.match(socket, /^ListenDatagram=10\.251\.91\.1:62290$/m);
    assert.doesNotMatch(socket, /^BindIPv6Only=/m, 'an IPv4 address: no dual-stack option');
    assert.match(
      readFileSync(join(units, 'spa-knockd.service'), 'utf8'),
      /^StateDirectoryMode=0700\nReadWritePaths=\/srv\/spak-state$/m,
    );
    assert.equal(readFileSync(cfg, 'utf8'), text);
    assert.equal(statSync(cfg).mode & 0o777, 0o600);
    const v = await run([
      'systemd-analyze',
      'verify',
      join(units, 'spa-knockd.service'),
      join(units, 'spa-knockd.socket'),
    ]);
    assert.equal(v.code, 0, v.stderr);
  });

  test('idempotent; a unit that differs is refused (one line, ERR_SPA_INSTALL, exit 1) unless --force; --dry-run writes nothing', async () => {
    const units = join(tmp, 'again');
    const cfg = join(tmp, 'again-etc', 'spa-knockd.toml');
    assert.equal((await install(units, cfg)).code, 0);
    const twice = await install(units, cfg);
    assert.equal(twice.code, 0, twice.stderr);
    assert.match(twice.stdout, /^unchanged .*spa-knockd\.service\nunchanged .*spa-knockd\.socket\n/);

    const sock = join(units, 'spa-knockd.socket');
    writeFileSync(sock, `${readFileSync(sock, 'utf8')}# local edit\n`);
    const refused = await install(units, cfg);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `spa-knockd: [ERR_SPA_INSTALL] ${sock} exists with other contents; compare them (--dry-run prints the new ones) and use --force to replace\n`,
    );
    assert.match(readFileSync(sock, 'utf8'), /# local edit\n$/, 'left alone');

    const dry = await install(units, cfg, '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /^# .*spa-knockd\.service \(unchanged\)\n/);
    assert.match(dry.stdout, /\n# .*spa-knockd\.socket \(differs: refused without --force\)\n# spa-knockd\.socket: /);
    assert.match(readFileSync(sock, 'utf8'), /# local edit\n$/, '--dry-run wrote nothing');

    const forced = await install(units, cfg, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /^unchanged .*spa-knockd\.service\nreplaced .*spa-knockd\.socket\n/);
    assert.doesNotMatch(readFileSync(sock, 'utf8'), /# local edit/);
    assert.deepEqual(readdirSync(units).sort(), ['spa-knockd.service', 'spa-knockd.socket'], 'no temporary file left');
  });

  test('a relative --config is refused (a unit runs in /)', async () => {
    const r = await install(join(tmp, 'rel'), 'spa-knockd.toml');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^spa-knockd: \[ERR_SPA_INSTALL\] --config must be an absolute path for a unit/);
  });
});

describe('install-systemd pieces', () => {
  test('quoteExecArg: plain words stay, spaces and quotes are quoted, % and $ stay literal', () => {
    assert.equal(quoteExecArg('/usr/bin/node'), '/usr/bin/node');
    assert.equal(quoteExecArg('/opt/my dir/main.js'), '"/opt/my dir/main.js"');
    assert.equal(quoteExecArg('a"b\\c'), '"a\\"b\\\\c"');
    assert.equal(quoteExecArg('/etc/50%/$HOME'), '/etc/50%%/$$HOME');
    assert.throws(() => quoteExecArg('a\nb'), /cannot put/);
  });

  test('daemonCommand: the installed program is node + its real path, no node options', () => {
    assert.deepEqual(daemonCommand('/usr/bin/node', ['--inspect'], join(ROOT, 'package.json')), [
      '/usr/bin/node',
      join(ROOT, 'package.json'),
    ]);
    assert.deepEqual(
      daemonCommand('/usr/bin/node', ['--import', 'tsx'], join(ROOT, 'server', 'main.ts'), (s) => `file:///x/${s}.mjs`),
      ['/usr/bin/node', '--import', 'file:///x/tsx.mjs', join(ROOT, 'server', 'main.ts')],
    );
  });

  test('a program or config under a home directory gets ProtectHome=read-only (else systemd hides it)', () => {
    const t = {
      'spa-knockd.service': shipped('spa-knockd.service'),
      'spa-knockd.socket': shipped('spa-knockd.socket'),
    };
    const home = renderUnits(t, {
      command: ['/root/.nvm/versions/node/v20/bin/node', '/root/.nvm/lib/node_modules/spa-knock/dist/server/main.js'],
      configPath: '/etc/spa-knock/spa-knockd.toml',
      root: '/root/.nvm/lib/node_modules/spa-knock',
    });
    assert.match(home['spa-knockd.service'] ?? '', /^ProtectHome=read-only$/m);
    const usr = renderUnits(t, {
      command: ['/usr/bin/node', '/usr/local/lib/node_modules/spa-knock/dist/server/main.js'],
      configPath: '/etc/spa-knock/spa-knockd.toml',
      root: '/usr/local/lib/node_modules/spa-knock',
    });
    assert.match(usr['spa-knockd.service'] ?? '', /^ProtectHome=yes$/m);
    assert.equal(
      usr['spa-knockd.service'],
      shipped('spa-knockd.service').replace(
        'ExecStart=/usr/local/bin/spa-knockd',
        'ExecStart=/usr/bin/node /usr/local/lib/node_modules/spa-knock/dist/server/main.js',
      ),
      'the default npm -g layout changes only ExecStart=',
    );
  });
});
