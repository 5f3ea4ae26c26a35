/**
 * Find the line of a key in a TOML text, so a schema error can say "line 12". smol-toml does not keep positions, so
 * this walks the text the way a reader would: table headers (`[listen]`, `[[client]]`) and `key =` lines.
 * Best effort: returns undefined when it cannot tell (the error still names the key).
 * @module
 */

type Seg = string | number;

interface KeyLine {
  readonly table: string; // e.g. 'listen', 'client'
  readonly index: number; // for [[array]] tables: which element; -1 otherwise
  readonly key: string; // '' for a header line
  readonly line: number; // 1-based
}

function scan(text: string): KeyLine[] {
  const out: KeyLine[] = [];
  const counts = new Map<string, number>();
  let table = '';
  let index = -1;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = /^\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]/.exec(line))) {
      table = m[1] ?? '';
      index = counts.get(table) ?? 0;
      counts.set(table, index + 1);
      out.push({ table, index, key: '', line: i + 1 });
    } else if ((m = /^\[\s*([A-Za-z0-9_.-]+)\s*\]/.exec(line))) {
      table = m[1] ?? '';
      index = -1;
      out.push({ table, index, key: '', line: i + 1 });
    } else if ((m = /^("?)([A-Za-z0-9_-]+)\1\s*=/.exec(line))) {
      out.push({ table, index, key: m[2] ?? '', line: i + 1 });
    }
  });
  return out;
}

/** Line of the deepest part of `path` that can be found, e.g. ['client', 1, 'open', 0] → the `open =` line. */
export function lineOf(text: string, path: readonly Seg[]): number | undefined {
  const lines = scan(text);
  const [first, second, third] = path;
  if (typeof first !== 'string') return undefined;
  // top-level key
  const top = lines.find((l) => l.table === '' && l.key === first);
  if (top) return top.line;
  if (typeof second === 'number') {
    const header = lines.find((l) => l.table === first && l.index === second && l.key === '');
    if (typeof third === 'string') {
      const k = lines.find((l) => l.table === first && l.index === second && l.key === third);
      if (k) return k.line;
    }
    return header?.line;
  }
  const header = lines.find((l) => l.table === first && l.key === '');
  if (typeof second === 'string') {
    const k = lines.find((l) => l.table === first && l.key === second);
    if (k) return k.line;
  }
  return header?.line;
}
