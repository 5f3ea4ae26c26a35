/**
 * shared/toml-edit.ts: table blocks found as a reader sees them (quoted and dotted header keys, leading comments in,
 * trailing comments out), removal and appending that leave every other line as it was.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'smol-toml';
import { appendBlock, removeBlock, tableBlocks, tomlString } from '../../shared/toml-edit.js';

const TEXT = `# top comment
a = 1 # inline

[listen]
port = 1

# about the first client
[[client]]
name = "x"
open = [
  "tcp/22",   # ssh
]
# describes the next one
[[ client ]]   # spaced header, trailing comment
name = 'y'

[host."my.server"]
address = "10.0.0.1"
# the end
`;

describe('toml-edit', () => {
  test('blocks: paths (quoted, dotted, spaced), array flag, leading comments in, trailing ones out', () => {
    const bs = tableBlocks(TEXT);
    assert.deepEqual(
      bs.map((b) => [b.path, b.array, b.start, b.end]),
      [
        [['listen'], false, 3, 5],
        [['client'], true, 6, 12],
        [['client'], true, 12, 15],
        [['host', 'my.server'], false, 16, 18],
      ],
    );
  });

  test('removing a block removes its lines and comment, one blank line, nothing else', () => {
    const [, x, y, h] = tableBlocks(TEXT);
    const noX = removeBlock(TEXT, x as never);
    assert.equal(
      noX,
      TEXT.replace(
        /# about the first client\n\[\[client\]\]\nname = "x"\nopen = \[\n {2}"tcp\/22", {3}# ssh\n\]\n/,
        '',
      ),
    );
    assert.equal(JSON.stringify((parse(noX) as { client: unknown[] }).client), '[{"name":"y"}]');
    const noY = removeBlock(TEXT, y as never);
    assert.ok(noY.includes('# about the first client') && !noY.includes("name = 'y'"));
    assert.ok(!noY.includes('# describes the next one'), 'the comment directly above goes with its block');
    assert.ok(!noY.includes('\n\n\n'), 'no doubled gap');
    const noH = removeBlock(TEXT, h as never);
    assert.ok(noH.endsWith("name = 'y'\n# the end\n") || noH.endsWith("name = 'y'\n\n# the end\n"), noH);
  });

  test('appending: after one blank line; to an empty text; to a text without a final newline', () => {
    assert.equal(appendBlock('a = 1\n', '[b]\nc = 2'), 'a = 1\n\n[b]\nc = 2\n');
    assert.equal(appendBlock('a = 1', '[b]\n'), 'a = 1\n\n[b]\n');
    assert.equal(appendBlock('a = 1\n\n', '[b]\n'), 'a = 1\n\n[b]\n');
    assert.equal(appendBlock('', '[b]\n'), '[b]\n');
  });

  test('a header-like line inside a multi-line string fools the scan (so callers check the result by parsing)', () => {
    const t = 'a = """\n[not]\n"""\n[real]\nb = 1\n';
    assert.deepEqual(
      tableBlocks(t).map((b) => b.path),
      [['not'], ['real']],
      'the scan sees it: callers must check the result by parsing (server/config-edit.ts does)',
    );
  });

  test('tomlString escapes what TOML needs and round-trips', () => {
    for (const s of ['plain', 'q"uote', 'back\\slash', 'tab\tnl\n', 'ctl\u0001\u007f', 'ünï ✓', '#not a comment'])
      assert.equal((parse(`v = ${tomlString(s)}`) as { v: string }).v, s);
  });
});
