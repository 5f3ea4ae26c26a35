/**
 * The documentation's own links: every relative link in README.md and docs/*.md names a file of the repository, and
 * every `#anchor` a heading of its page (GitHub's slugs). A page emptied by mistake, or a heading renamed without its
 * links, fails here. Links to the web are not followed (no network in tests).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../../harness/run.js';

const PAGES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/** The text outside fenced code blocks and inline code spans (links there are examples, not links). */
function prose(md: string): string {
  return md.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchorsOf(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of md.replace(/^```[\s\S]*?^```/gm, '').split('\n')) {
    const m = /^#{1,6}\s+(.+?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

test('GitHub anchors: punctuation and code marks dropped, repeats numbered', () => {
  const a = anchorsOf('# Kernel fast path (nftables)\n## The table name (`firewall.table`)\n## Notes\n## Notes\n');
  assert.deepEqual([...a], ['kernel-fast-path-nftables', 'the-table-name-firewalltable', 'notes', 'notes-1']);
});

test('every page is there and has a heading', () => {
  for (const page of PAGES) {
    const md = readFileSync(join(ROOT, page), 'utf8');
    assert.ok(anchorsOf(md).size > 0, `${page} has no heading (${md.length} bytes)`);
  }
});

test('every relative link names a file of the repository, and every anchor a heading of its page', () => {
  const problems: string[] = [];
  let checked = 0;
  for (const page of PAGES) {
    const md = readFileSync(join(ROOT, page), 'utf8');
    for (const [, target] of prose(md).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      if (target === undefined || /^[a-z]+:/i.test(target)) continue; // https:, mailto:
      const [path = '', anchor] = target.split('#');
      const file = path === '' ? join(ROOT, page) : join(ROOT, dirname(page), decodeURIComponent(path));
      checked++;
      if (!existsSync(file)) {
        problems.push(`${page}: ${target}: no file ${relative(ROOT, file)}`);
        continue;
      }
      if (anchor !== undefined && file.endsWith('.md') && !anchorsOf(readFileSync(file, 'utf8')).has(anchor))
        problems.push(`${page}: ${target}: no heading #${anchor} in ${relative(ROOT, file)}`);
    }
  }
  assert.ok(checked > 100, `links checked: ${checked}`);
  assert.deepEqual(problems, []);
});
