import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isStrictIp } from '../../shared/address.js';
import { KeyFileError, readKeyFile } from '../../shared/keyfile.js';

test('strict IP syntax: no IPv4 shorthands, no zones', () => {
  for (const ok of ['1.2.3.4', '0.0.0.0', '255.255.255.255', '::', '::1', '2001:db8::1', '::ffff:192.0.2.1', 'FE80::1']) assert.equal(isStrictIp(ok), true, ok);
  for (const bad of ['010.0.0.1', '1', '1.2.3', '01.2.3.4', '1.2.3.04', '1.2.3.4.5', '256.1.1.1', 'fe80::1%eth0', '::ffff:010.1.1.1', 'gg::1', '', ' 1.2.3.4', 'localhost'])
    assert.equal(isStrictIp(bad), false, bad);
});

test('a FIFO given as key file is refused at once instead of blocking', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spak-fifo-'));
  try {
    const f = join(dir, 'k');
    execFileSync('mkfifo', ['-m', '600', f]);
    assert.throws(() => readKeyFile(f), (e: Error) => e instanceof KeyFileError && /not a regular file/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
