/**
 * docs/config.md's reference tables cannot drift from the config schema: walk the zod schema (server/config.ts
 * `configSchema`, with the [[client]] fields of server/config-fwknop.ts and the [[sequence]] schema of
 * server/sequence-config.ts) and check that every key has a row in its section's table, with its default in the
 * default column, its numeric bounds (`MIN–MAX`) and its enum values in the type column; and that the docs list no
 * key the schema lacks. Each failure names the key path and what is missing, so a new key is quick to document.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { configSchema } from '../../server/config.js';

interface Leaf {
  /** `listen.port`, `client[].key_file`, `state_dir` */
  readonly path: string;
  /** `` (top level), `[listen]`, `[[client]]` */
  readonly section: string;
  readonly key: string;
  readonly hasDefault: boolean;
  readonly default?: unknown;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
}

interface ZodLike {
  readonly _zod: { readonly def: Record<string, unknown> & { readonly type: string } };
}
const defOf = (t: unknown) => (t as ZodLike)._zod.def;

/** Peel default/prefault/optional/pipe off a schema: the core schema and the default, if any. */
function unwrap(t: unknown): { core: ZodLike['_zod']['def']; hasDefault: boolean; dflt: unknown } {
  let d = defOf(t);
  let hasDefault = false;
  let dflt: unknown;
  for (;;) {
    if ((d.type === 'default' || d.type === 'prefault') && !hasDefault) {
      hasDefault = true;
      dflt = d.defaultValue;
      d = defOf(d.innerType);
    } else if (d.type === 'default' || d.type === 'prefault' || d.type === 'optional' || d.type === 'nullable')
      d = defOf(d.innerType);
    else if (d.type === 'pipe') d = defOf(d.in);
    else return { core: d, hasDefault, dflt };
  }
}

function leaves(shape: Record<string, unknown>, section: string, prefix: string, out: Leaf[]): Leaf[] {
  for (const [key, t] of Object.entries(shape)) {
    const { core, hasDefault, dflt } = unwrap(t);
    // a table is a section of its own, named as TOML names it: [listen], [[client]], [a.b] (section without brackets)
    const inner = section.replace(/^\[+|\]+$/g, '');
    const name = inner ? `${inner}.${key}` : key;
    if (core.type === 'object') {
      leaves(core.shape as Record<string, unknown>, `[${name}]`, `${prefix}${key}.`, out);
      continue;
    }
    if (core.type === 'array') {
      const el = unwrap(core.element).core;
      if (el.type === 'object') {
        leaves(el.shape as Record<string, unknown>, `[[${name}]]`, `${prefix}${key}[].`, out);
        continue;
      }
    }
    let min: number | undefined;
    let max: number | undefined;
    if (core.type === 'number') {
      for (const c of (core.checks ?? []) as ZodLike[]) {
        const cd = c._zod.def as { check?: string; value?: number };
        if (cd.check === 'greater_than') min = cd.value;
        if (cd.check === 'less_than') max = cd.value;
      }
    }
    const values = core.type === 'enum' ? Object.values(core.entries as Record<string, string>) : undefined;
    out.push({
      path: prefix + key,
      section,
      key,
      hasDefault,
      ...(hasDefault ? { default: dflt } : {}),
      ...(min !== undefined ? { min } : {}),
      ...(max !== undefined ? { max } : {}),
      ...(values ? { values } : {}),
    });
  }
  return out;
}

interface Row {
  readonly type: string;
  readonly dflt: string;
}

/** `## [listen]` → `[listen]`, `## Top level` → ``, other `##` headings end the reference sections. */
function docRows(md: string): Map<string, Map<string, Row>> {
  const out = new Map<string, Map<string, Row>>();
  let section: string | undefined;
  for (const line of md.split('\n')) {
    if (line.startsWith('## ')) {
      const m = /`?(\[\[?[a-z_.]+\]\]?)`?/.exec(line);
      section = m ? m[1] : line.startsWith('## Top level') ? '' : undefined;
      continue;
    }
    if (section === undefined) continue;
    const r = /^\| `([a-z0-9_]+)` \| (.*?) \| (.*?) \|/.exec(line);
    if (!r) continue;
    let rows = out.get(section);
    if (!rows) out.set(section, (rows = new Map()));
    rows.set(r[1] ?? '', { type: r[2] ?? '', dflt: r[3] ?? '' });
  }
  return out;
}

/** How a default is written in the docs' default column. */
function defaultText(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => JSON.stringify(x)).join(', ')}]`;
  return String(v);
}

/** Does `cell` show `text` as a whole value (`5` is not shown by `50`, nor `1–360` by `1–3600`)? */
function shows(cell: string, text: string): boolean {
  const esc = text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^0-9A-Za-z_])${esc}($|[^0-9A-Za-z_])`).test(cell);
}

const MD = readFileSync(new URL('../../docs/config.md', import.meta.url), 'utf8');
const LEAVES = leaves(configSchema.shape as Record<string, unknown>, '', '', []);
const ROWS = docRows(MD);

describe('docs/config.md against the config schema', () => {
  test('the walk finds the schema (sanity: known keys, defaults and bounds)', () => {
    const byPath = new Map(LEAVES.map((l) => [l.path, l]));
    assert.deepEqual(byPath.get('listen.port')?.default, 62201);
    assert.deepEqual(byPath.get('grant.duration'), {
      path: 'grant.duration',
      section: '[grant]',
      key: 'duration',
      hasDefault: true,
      default: 30,
      min: 1,
      max: 65535,
    });
    assert.deepEqual(byPath.get('client[].sources')?.default, ['0.0.0.0/0', '::/0']);
    assert.ok(byPath.has('client[].hmac_digest'), 'the fwknop fields are walked');
    assert.ok(byPath.has('sequence[].gap'), 'the sequence schema is walked');
    assert.ok(ROWS.get('[[client]]')?.has('name'), 'the docs tables are read');
  });

  test('every schema key has a row in its section, with its default, bounds and values', () => {
    const problems: string[] = [];
    for (const l of LEAVES) {
      const where = `docs/config.md section ${l.section || 'Top level'}`;
      const row = ROWS.get(l.section)?.get(l.key);
      const facts = [
        l.hasDefault ? `default ${defaultText(l.default)}` : 'no default',
        ...(l.min !== undefined || l.max !== undefined ? [`range ${l.min ?? ''}–${l.max ?? ''}`] : []),
        ...(l.values ? [`values ${l.values.join(' ')}`] : []),
      ].join(', ');
      if (!row) {
        problems.push(`${l.path}: no row \`${l.key}\` in ${where} (${facts})`);
        continue;
      }
      if (l.hasDefault && !shows(row.dflt, defaultText(l.default)))
        problems.push(
          `${l.path}: the default column "${row.dflt}" does not show the default ${defaultText(l.default)}`,
        );
      if (l.min !== undefined && l.max !== undefined && !shows(row.type, `${l.min}–${l.max}`))
        problems.push(`${l.path}: the type column "${row.type}" does not show the range ${l.min}–${l.max}`);
      for (const v of l.values ?? [])
        if (!shows(row.type, v)) problems.push(`${l.path}: the type column "${row.type}" does not list "${v}"`);
    }
    assert.deepEqual(problems, [], `docs/config.md is behind the schema:\n  ${problems.join('\n  ')}`);
  });

  test('the docs list no key the schema lacks', () => {
    const known = new Set(LEAVES.map((l) => `${l.section} ${l.key}`));
    const extra: string[] = [];
    for (const [section, rows] of ROWS)
      for (const key of rows.keys())
        if (!known.has(`${section} ${key}`)) extra.push(`${section || 'Top level'}: \`${key}\``);
    assert.deepEqual(extra, [], `docs/config.md documents keys the schema does not have:\n  ${extra.join('\n  ')}`);
  });
});
