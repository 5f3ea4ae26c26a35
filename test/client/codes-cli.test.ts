/**
 * `spa-knock codes`, run as a user would (through tsx): the printed codes are the key's (shared/codes.ts), numbered
 * from --start; the JSON form; the nc line; every mistake one line with its code and exit status, never a stack.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLIENT, type RunResult, runTs } from '../../harness/run.js';
import { codeKeyOf, codeText } from '../../shared/codes.js';
import { readKeyFile } from '../../shared/keyfile.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-codes-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'k.key');
const codes = (...args: string[]) => runTs(CLIENT, ['codes', '--key', keyFile, ...args]);

function oneLineError(r: RunResult, code: number, re: RegExp): void {
  assert.equal(r.code, code, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.match(lines[0] ?? '', re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

before(async () => {
  const r = await runTs(CLIENT, ['keygen', '--out', keyFile]);
  assert.equal(r.code, 0, r.stderr);
});

describe('spa-knock codes', () => {
  test('prints 20 numbered codes of the key from 0 by default, after # lines that say how to send one', async () => {
    const r = await codes();
    assert.equal(r.code, 0, r.stderr);
    const k = codeKeyOf(readKeyFile(keyFile));
    const lines = r.stdout.trimEnd().split('\n');
    const numbered = lines.filter((l) => !l.startsWith('#'));
    assert.deepEqual(
      numbered,
      Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2)}  ${codeText(k, i)}`),
    );
    assert.ok(lines.includes(`# send one: printf %s ${codeText(k, 0)} | nc -u -w1 SERVER 62201`), r.stdout);
    assert.match(r.stdout, /--start 20\b/);
  });

  test('--start, --count, --nc and --port', async () => {
    const r = await codes('--start', '1000', '--count', '3', '--nc', '2001:db8::7', '--port', '4000');
    assert.equal(r.code, 0, r.stderr);
    const k = codeKeyOf(readKeyFile(keyFile));
    const numbered = r.stdout.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(
      numbered,
      [1000, 1001, 1002].map((c) => `${c}  ${codeText(k, c)}`),
    );
    assert.match(r.stdout, new RegExp(`# send one: printf %s ${codeText(k, 1000)} \\| nc -u -w1 2001:db8::7 4000\\n`));
  });

  test('--json', async () => {
    const r = await codes('--count', '2', '--start', '5', '--json');
    assert.equal(r.code, 0, r.stderr);
    const k = codeKeyOf(readKeyFile(keyFile));
    assert.deepEqual(JSON.parse(r.stdout), {
      start: 5,
      codes: [
        { counter: 5, code: codeText(k, 5) },
        { counter: 6, code: codeText(k, 6) },
      ],
      send: `printf %s ${codeText(k, 5)} | nc -u -w1 SERVER 62201`,
    });
  });

  test('usage mistakes exit 2 with one line; a missing key file exits 1', async () => {
    oneLineError(await codes('--count', '0'), 2, /\[ERR_SPA_USAGE\] --count must be a whole number 1-1000/);
    oneLineError(await codes('--count', '1001'), 2, /\[ERR_SPA_USAGE\] --count/);
    oneLineError(await codes('--start', 'x'), 2, /\[ERR_SPA_USAGE\] --start must be a whole number/);
    oneLineError(await codes('--start', '281474976710656'), 2, /\[ERR_SPA_USAGE\] --start/);
    oneLineError(await codes('--nc', 'host;rm -rf /'), 2, /\[ERR_SPA_USAGE\] --nc .* is not a host name/);
    oneLineError(await codes('--port', '70000'), 2, /\[ERR_SPA_USAGE\] --port/);
    oneLineError(
      await runTs(CLIENT, ['codes', '--key', join(dir, 'missing.key')]),
      1,
      /\[ERR_SPA_KEYFILE_READ\] cannot read key file/,
    );
  });
});
