/**
 * shared/errors.ts, and docs/errors.md kept in step with it and with server/reasons.ts: every error code and every
 * reject reason is documented, and nothing is documented that does not exist.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ROOT } from '../../harness/run.js';
import { REJECT_REASONS } from '../../server/reasons.js';
import { ERROR_CODES, type ErrorCode, SpaError, errnoText, errorLine, exitCodeOf } from '../../shared/errors.js';

const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');

/** The text of one `## ` section, from its heading to the next `## ` heading. */
function section(title: string): string {
  const start = doc.search(new RegExp(`^## ${title}`, 'm'));
  assert.ok(start >= 0, `docs/errors.md has no "## ${title}" section`);
  const rest = doc.slice(start + 3);
  const next = rest.search(/^## /m);
  return next < 0 ? rest : rest.slice(0, next);
}

/** Table rows whose first cell is a `code`: first cell → all cells. */
function rows(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^\|\s*`([^`]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (!m) continue;
    const key = m[1] ?? '';
    assert.ok(!out.has(key), `${key} documented twice`);
    out.set(
      key,
      (m[2] ?? '').split('|').map((c) => c.trim()),
    );
  }
  return out;
}

describe('docs/errors.md', () => {
  test('"Operator errors" lists every ERR_SPA_* code, with its exit status, a cause and a fix, and no other', () => {
    const documented = rows(section('Operator errors'));
    assert.deepEqual([...documented.keys()].sort(), Object.keys(ERROR_CODES).sort());
    for (const [code, [exit, cause, fix]] of documented) {
      assert.equal(Number(exit), ERROR_CODES[code as ErrorCode].exit, `${code}: exit status`);
      assert.ok((cause ?? '').length > 20, `${code}: cause`);
      assert.ok((fix ?? '').length > 10, `${code}: fix`);
    }
  });

  test('every ERR_SPA_* code named anywhere in the document exists', () => {
    for (const m of doc.matchAll(/ERR_SPA_[A-Z_]+/g))
      assert.ok(m[0] in ERROR_CODES, `${m[0]} is not in shared/errors.ts`);
  });

  test('"Reject reasons" lists every reason of server/reasons.ts, and no other', () => {
    const documented = rows(section('Reject reasons'));
    assert.deepEqual([...documented.keys()].sort(), [...REJECT_REASONS].sort());
    for (const [reason, cells] of documented)
      assert.ok(
        cells.every((c) => c !== ''),
        `${reason}: empty cell`,
      );
  });
});

describe('shared/errors.ts', () => {
  test('a SpaError is one line carrying its code; its exit status comes from the code', () => {
    const e = new SpaError('ERR_SPA_USAGE', '--port may be given only once\nsecond line');
    assert.equal(errorLine('spa-knock', e), 'spa-knock: [ERR_SPA_USAGE] --port may be given only once');
    assert.equal(exitCodeOf(e), 2);
    assert.equal(exitCodeOf(new SpaError('ERR_SPA_CONFIG', 'x')), 1);
  });

  test('anything else is an internal error, exit 70', () => {
    assert.equal(errorLine('spa-knockd', new TypeError('boom')), 'spa-knockd: [ERR_SPA_INTERNAL] internal error: boom');
    assert.equal(exitCodeOf(new TypeError('boom')), 70);
    assert.equal(exitCodeOf('a string'), 70);
  });

  test('errnoText says it in words', () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(errnoText(err('ENOENT')), 'no such file or directory');
    assert.match(errnoText(err('ELOOP')), /symbolic link/);
    assert.equal(errnoText(err('ENETUNREACH')), 'network unreachable');
    assert.equal(errnoText(new Error('plain')), 'plain');
  });
});
