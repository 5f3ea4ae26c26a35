/**
 * shared/keys.ts (key text form) and shared/keyfile.ts (key files, in a temporary directory).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KEY_TEXT_PREFIX } from '../../shared/constants.js';
import { type ErrorCode, SpaError } from '../../shared/errors.js';
import { readKeyFile, writeKeyFile } from '../../shared/keyfile.js';
import { formatKey, generateKey, parseKey } from '../../shared/keys.js';

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const seq = (n: number, start = 0): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

function parsedKey(text: string): Uint8Array {
  const p = parseKey(text);
  assert.ok(p.ok, p.ok ? '' : p.reason);
  return p.key;
}

function parseReason(text: string): string {
  const p = parseKey(text);
  assert.equal(p.ok, false, `expected ${JSON.stringify(text)} to be refused`);
  return p.ok ? '' : p.reason;
}

describe('key text form', () => {
  it('is spak1_ + base64url(key ‖ SHA-256("spak1" ‖ key)[0..4]), 54 characters', () => {
    for (const key of [new Uint8Array(32), seq(32), seq(32, 0x80)]) {
      const sum = createHash('sha256').update('spak1').update(key).digest().subarray(0, 4);
      const expected = 'spak1_' + Buffer.concat([key, sum]).toString('base64url');
      const text = formatKey(key);
      assert.equal(text, expected);
      assert.equal(text.length, 54);
      assert.ok(text.startsWith(KEY_TEXT_PREFIX));
      assert.equal(KEY_TEXT_PREFIX, 'spak1_');
    }
  });

  it('round-trips format → parse for fresh keys', () => {
    for (let i = 0; i < 50; i++) {
      const key = generateKey();
      assert.equal(key.length, 32);
      assert.equal(toHex(parsedKey(formatKey(key))), toHex(key));
    }
  });

  it('generateKey gives different keys', () => {
    assert.notEqual(toHex(generateKey()), toHex(generateKey()));
  });

  it('formatKey refuses a key that is not 32 bytes', () => {
    for (const n of [0, 16, 31, 33]) assert.throws(() => formatKey(new Uint8Array(n)), RangeError);
  });

  it('ignores leading and trailing white space', () => {
    const key = generateKey();
    const text = formatKey(key);
    for (const t of [` ${text}`, `${text}\n`, `\t ${text} \r\n`, `\n\n${text}\n\n`]) {
      assert.equal(toHex(parsedKey(t)), toHex(key));
    }
  });

  it('catches every single-character change in the body (checksum or malformed)', () => {
    for (const key of [seq(32), generateKey()]) {
      const text = formatKey(key);
      const body = text.slice(6);
      assert.equal(body.length, 48);
      for (let i = 0; i < body.length; i++) {
        for (const c of B64URL + '+/=.~ \t') {
          if (c === body[i]) continue;
          const mutated = 'spak1_' + body.slice(0, i) + c + body.slice(i + 1);
          assert.match(parseReason(mutated), /checksum|malformed/, `position ${i} → ${JSON.stringify(c)}`);
        }
      }
    }
  });

  it('says "checksum" for a well-formed body with a wrong checksum', () => {
    const text = formatKey(seq(32));
    const i = 6 + 10;
    const mutated = text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1);
    assert.match(parseReason(mutated), /checksum/);
  });

  it('refuses every truncation and an extension', () => {
    const text = formatKey(generateKey());
    for (let n = 0; n < text.length; n++) parseReason(text.slice(0, n));
    assert.match(parseReason(text + 'A'), /malformed/);
    assert.match(parseReason(text + text), /malformed/);
    assert.match(parseReason(text.slice(0, -1)), /malformed/);
  });

  it('refuses a wrong prefix with a message naming the expected one', () => {
    // a body starting with '_' would turn the 'spak1' case into a valid prefix plus a short body (1 key in 64)
    let body = formatKey(generateKey()).slice(6);
    while (!/^[A-Za-z0-9]/.test(body)) body = formatKey(generateKey()).slice(6);
    for (const p of ['', 'spak2_', 'SPAK1_', 'spak1-', 'spak_', 'pak1_', 'spak1', ' x spak1_']) {
      const reason = parseReason(p + body);
      assert.match(reason, /not a spa-knock key/);
      assert.ok(reason.includes('"spak1_"'), reason);
    }
  });

  it('never throws on junk', () => {
    for (const t of ['', ' ', 'spak1_', 'spak1_' + '='.repeat(48), 'spak1_' + '\u00e9'.repeat(48), '\0'.repeat(60)]) {
      assert.doesNotThrow(() => parseKey(t));
      assert.equal(parseKey(t).ok, false);
    }
  });
});

describe('key files', () => {
  let dir = '';
  let n = 0;
  const fresh = (): string => join(dir, `key${n++}`);
  const mode = (p: string): number => statSync(p).mode & 0o777;

  function keyFileError(fn: () => unknown, code: ErrorCode): SpaError {
    try {
      fn();
    } catch (e) {
      assert.ok(e instanceof SpaError, `expected a SpaError, got ${String(e)}`);
      assert.equal(e.code, code, e.message);
      assert.ok(!e.message.includes('\n'), 'one-line message');
      return e;
    }
    assert.fail(`expected ${code}`);
  }

  /** Write `text` with exactly `m` as mode (independent of the umask). */
  function put(text: string, m = 0o600): string {
    const p = fresh();
    writeFileSync(p, text);
    chmodSync(p, m);
    return p;
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spa-knock-keys-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writeKeyFile creates the file with mode 0600 and one key line; readKeyFile reads it back', () => {
    const p = fresh();
    const key = generateKey();
    writeKeyFile(p, key);
    assert.equal(mode(p), 0o600);
    assert.equal(readFileSync(p, 'utf8'), formatKey(key) + '\n');
    assert.equal(toHex(readKeyFile(p)), toHex(key));
  });

  it('refuses to overwrite without force (ERR_SPA_KEYFILE_EXISTS), leaving the file alone', () => {
    const p = fresh();
    const key = generateKey();
    writeKeyFile(p, key);
    const e = keyFileError(() => writeKeyFile(p, generateKey()), 'ERR_SPA_KEYFILE_EXISTS');
    assert.match(e.message, /--force/);
    keyFileError(() => writeKeyFile(p, generateKey(), { force: false }), 'ERR_SPA_KEYFILE_EXISTS');
    assert.equal(toHex(readKeyFile(p)), toHex(key));
  });

  it('with force overwrites, and tightens a 0644 file to 0600', () => {
    const p = put('old content that is much longer than one key line, to check truncation '.repeat(3), 0o644);
    const key = generateKey();
    writeKeyFile(p, key, { force: true });
    assert.equal(mode(p), 0o600);
    assert.equal(readFileSync(p, 'utf8'), formatKey(key) + '\n');
    assert.equal(toHex(readKeyFile(p)), toHex(key));
    // and force on a path that does not exist yet simply creates it
    const q = fresh();
    writeKeyFile(q, key, { force: true });
    assert.equal(mode(q), 0o600);
  });

  it('reports an unwritable path as ERR_SPA_KEYFILE_WRITE', () => {
    keyFileError(() => writeKeyFile(join(dir, 'no-such-dir', 'key'), generateKey()), 'ERR_SPA_KEYFILE_WRITE');
  });

  it('readKeyFile refuses a file group or others can read (ERR_SPA_KEYFILE_PERMS, says chmod 600)', () => {
    const text = formatKey(generateKey()) + '\n';
    for (const m of [0o640, 0o644, 0o604, 0o660, 0o602, 0o610]) {
      const p = put(text, m);
      const e = keyFileError(() => readKeyFile(p), 'ERR_SPA_KEYFILE_PERMS');
      assert.ok(e.message.includes(`chmod 600 ${p}`), e.message);
      assert.ok(e.message.includes(m.toString(8)), e.message);
    }
    assert.equal(readKeyFile(put(text, 0o400)).length, 32);
  });

  it('readKeyFile: a missing file is ERR_SPA_KEYFILE_READ', () => {
    const e = keyFileError(() => readKeyFile(join(dir, 'missing')), 'ERR_SPA_KEYFILE_READ');
    assert.match(e.message, /missing: no such file or directory$/);
  });

  it('readKeyFile: a directory is refused (ERR_SPA_KEYFILE_READ, not a regular file)', () => {
    const d = fresh();
    mkdirSync(d, { mode: 0o700 });
    const e = keyFileError(() => readKeyFile(d), 'ERR_SPA_KEYFILE_READ');
    assert.match(e.message, /: a directory, not a regular file$/);
  });

  it('readKeyFile: two keys, garbage, an empty file, a bad checksum, a huge file are ERR_SPA_KEYFILE_INVALID', () => {
    const a = formatKey(generateKey());
    const b = formatKey(generateKey());
    for (const text of [
      `${a}\n${b}\n`,
      `${a}\n${a}\n`,
      'hello world\n',
      '',
      '\n\n# only a comment\n',
      a.slice(0, -1) + (a.endsWith('A') ? 'B' : 'A'),
    ]) {
      keyFileError(() => readKeyFile(put(text)), 'ERR_SPA_KEYFILE_INVALID');
    }
    assert.match(
      keyFileError(() => readKeyFile(put(`${a}\n${b}\n`)), 'ERR_SPA_KEYFILE_INVALID').message,
      /exactly one key/,
    );
    keyFileError(() => readKeyFile(put(`# pad\n${'#'.repeat(5000)}\n${a}\n`)), 'ERR_SPA_KEYFILE_INVALID');
  });

  it('readKeyFile allows # comments, blank lines, surrounding white space and CRLF', () => {
    const key = generateKey();
    const text = `# spa-knock key for laptop\n\n   ${formatKey(key)}   \r\n\n# end\n`;
    assert.equal(toHex(readKeyFile(put(text))), toHex(key));
    assert.equal(toHex(readKeyFile(put(formatKey(key)))), toHex(key)); // no final newline
  });

  it('readKeyFile follows a symlink but checks the target like a file', () => {
    const key = generateKey();
    const target = put(formatKey(key) + '\n');
    const link = fresh();
    symlinkSync(target, link);
    assert.equal(toHex(readKeyFile(link)), toHex(key));
    chmodSync(target, 0o644);
    keyFileError(() => readKeyFile(link), 'ERR_SPA_KEYFILE_PERMS');
  });

  it('readKeyFile: a FIFO is refused at once (ERR_SPA_KEYFILE_READ), never waited on', () => {
    const p = fresh();
    execFileSync('mkfifo', ['-m', '600', p]);
    assert.match(keyFileError(() => readKeyFile(p), 'ERR_SPA_KEYFILE_READ').message, /: a FIFO, not a regular file$/);
  });

  it('readKeyFile: a symlink loop and a path through a file are said in words, with the path', () => {
    const loop = fresh();
    symlinkSync(loop, loop);
    const e1 = keyFileError(() => readKeyFile(loop), 'ERR_SPA_KEYFILE_READ');
    assert.ok(e1.message.startsWith(`cannot read key file ${loop}: too many symbolic links`), e1.message);
    const file = put('x');
    const e2 = keyFileError(() => readKeyFile(join(file, 'k')), 'ERR_SPA_KEYFILE_READ');
    assert.match(e2.message, /: a part of the path is not a directory$/);
    for (const e of [e1, e2]) assert.doesNotMatch(e.message, /\bE[A-Z]{3,}\b/);
  });

  it('writeKeyFile with force replaces the name, not the file behind a hard link', () => {
    const other = put('precious\n');
    const p = fresh();
    linkSync(other, p);
    const key = generateKey();
    writeKeyFile(p, key, { force: true });
    assert.equal(readFileSync(other, 'utf8'), 'precious\n');
    assert.equal(toHex(readKeyFile(p)), toHex(key));
    assert.equal(statSync(p).nlink, 1);
  });

  // a FIFO at the path is tried in test/client/cli.test.ts: a regression would block open() in-process, where no
  // test timeout can end it; there the CLI runs as a child process with a kill timeout
  it('writeKeyFile refuses a directory and a symlink at the path (even with force) and leaves no temporary file', () => {
    const sub = mkdtempSync(join(dir, 'odd-'));
    const d = join(sub, 'dir');
    mkdirSync(d);
    const target = join(sub, 'target');
    writeFileSync(target, 'keep\n');
    const link = join(sub, 'link');
    symlinkSync(target, link);
    for (const [p, kind] of [
      [d, 'a directory'],
      [link, 'a symbolic link'],
    ] as const) {
      const e = keyFileError(() => writeKeyFile(p, generateKey(), { force: true }), 'ERR_SPA_KEYFILE_WRITE');
      assert.ok(e.message.endsWith(`: it is ${kind}, not a regular file`), e.message);
      keyFileError(() => writeKeyFile(p, generateKey()), 'ERR_SPA_KEYFILE_EXISTS');
    }
    assert.equal(readFileSync(target, 'utf8'), 'keep\n');
    assert.deepEqual(readdirSync(sub).sort(), ['dir', 'link', 'target']);
  });
});
