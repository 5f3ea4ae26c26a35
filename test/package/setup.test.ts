/**
 * The fresh-machine path stays honest: README's first command and .ci/run install the same system packages, and
 * they are exactly the packages of the tools the tests, the harness and the scripts run.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../../harness/run.js';

function aptPackages(text: string, where: string): string[] {
  const m =
    /apt-get install -y (?:-qq )?(?:--no-install-recommends )?([a-z0-9 .+-]+?)(?: >\/dev\/null)?(?: &&|\n)/.exec(text);
  assert.ok(m, `no apt-get install line in ${where}`);
  return (m[1] ?? '').trim().split(/\s+/).sort();
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((n) => {
    const rel = join(dir, n);
    return statSync(join(ROOT, rel)).isDirectory() ? filesUnder(rel) : [rel];
  });
}

test("README's first command and .ci/run install the same packages, which cover the tools the tests run", () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const fromReadme = aptPackages(firstBlock, 'README.md (first sh block)');
  const fromCi = aptPackages(readFileSync(join(ROOT, '.ci', 'run'), 'utf8'), '.ci/run');
  assert.deepEqual(fromCi, fromReadme);
  assert.match(firstBlock, /&& npm ci && npm run demo\nnpm test\n/);
  // tool → package that provides it on Debian/Ubuntu
  const providers: Record<string, string> = {
    nft: 'nftables',
    iptables: 'iptables',
    ip6tables: 'iptables',
    ip: 'iproute2',
    faketime: 'faketime',
    knock: 'knockd',
    knockd: 'knockd',
    fwknop: 'fwknop-client',
    fwknopd: 'fwknop-server',
    ssh: 'openssh-client',
    sshd: 'openssh-server',
    'systemd-analyze': 'systemd',
    'systemd-socket-activate': 'systemd',
    'systemd-notify': 'systemd',
    nc: 'netcat-openbsd',
    nmap: 'nmap',
  };
  // code only (comments may name a tool no test runs), and not this file's own table
  const sources = ['test', 'harness', 'scripts']
    .flatMap(filesUnder)
    .filter((f) => /\.(ts|sh)$/.test(f) && f !== join('test', 'package', 'setup.test.ts'));
  const text = sources
    .map((f) => readFileSync(join(ROOT, f), 'utf8'))
    .join('\n')
    .split('\n')
    .filter((l) => !/^\s*(\/\/|\/?\*|#)/.test(l))
    .join('\n');
  const needed = new Set<string>();
  for (const [tool, pkg] of Object.entries(providers)) {
    if (new RegExp(`['"\\s(]${tool}['"\\s]`).test(text)) needed.add(pkg);
  }
  // both ways: nothing the tests need is missing, nothing is installed that no test or script needs
  assert.deepEqual(fromReadme, [...needed].sort());
});
