/**
 * Textual edits of a TOML file that keep everything else as it was — comments, blank lines, key order, quoting —
 * for `spa-knockd add-client`/`remove-client` (the daemon's config) and `spa-knock import` (the client's profiles).
 * A table is appended as text, or removed as the lines of its block; nothing is re-serialised. Callers check the
 * result by parsing it (server/config-edit.ts, client/import.ts): a file this scan misreads (a header-like line inside
 * a multi-line string) is then refused, never written.
 *
 * A block is a table header (`[a.b]`, `[[a]]`, TOML 1.0 §Table, §Array of Tables) with its lines up to the next
 * header, without the comments and blank lines that end it (they introduce the next table), and with the comment
 * lines directly above the header (no blank line between): the comment that describes it.
 * Pure text; the only dependency is the TOML parser, to read header keys exactly (quoted, dotted, spaced).
 * @module
 */
import { parse as parseToml } from 'smol-toml';

export interface TableBlock {
  /** Key path of the header: `[host."a.b"]` → ['host', 'a.b']. */
  readonly path: readonly string[];
  /** `[[…]]`: an element of an array of tables. */
  readonly array: boolean;
  /** First line of the block (0-based; its leading comments included). */
  readonly start: number;
  /** Line after the block's last line. */
  readonly end: number;
}

const isComment = (l: string) => l.trim().startsWith('#');
const isBlank = (l: string) => l.trim() === '';

/** The key path of a header line, or undefined when the line is not one. */
function headerOf(line: string): { path: string[]; array: boolean } | undefined {
  const t = line.trim();
  if (!t.startsWith('[')) return undefined;
  let v: unknown;
  try {
    v = parseToml(t);
  } catch {
    return undefined;
  }
  const path: string[] = [];
  for (;;) {
    if (Array.isArray(v)) return v.length === 1 ? { path, array: true } : undefined;
    if (typeof v !== 'object' || v === null) return undefined;
    const keys = Object.keys(v);
    if (keys.length === 0) return path.length > 0 ? { path, array: false } : undefined;
    if (keys.length !== 1) return undefined;
    const k = keys[0] as string;
    path.push(k);
    v = (v as Record<string, unknown>)[k];
  }
}

/** The lines of a text (a final newline does not make an extra line). */
export function linesOf(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** Every table block of the text, in order. */
export function tableBlocks(text: string): TableBlock[] {
  const lines = linesOf(text);
  const heads: { at: number; path: string[]; array: boolean }[] = [];
  lines.forEach((l, at) => {
    const h = headerOf(l);
    if (h) heads.push({ at, ...h });
  });
  return heads.map((h, i) => {
    const next = heads[i + 1]?.at ?? lines.length;
    let end = next;
    while (end > h.at + 1 && (isBlank(lines[end - 1] ?? '') || isComment(lines[end - 1] ?? ''))) end--;
    const floor = i > 0 ? (heads[i - 1]?.at ?? 0) + 1 : 0;
    let start = h.at;
    while (start > floor && isComment(lines[start - 1] ?? '')) start--;
    return { path: h.path, array: h.array, start, end };
  });
}

/** The text without the block's lines (and one of the blank lines around it, so no gap is left doubled). */
export function removeBlock(text: string, b: TableBlock): string {
  const lines = linesOf(text);
  let { start, end } = b;
  const blankBefore = start === 0 || isBlank(lines[start - 1] ?? '');
  if (blankBefore && end < lines.length && isBlank(lines[end] ?? '')) end++;
  else if (blankBefore && end >= lines.length && start > 0) start--;
  const out = [...lines.slice(0, start), ...lines.slice(end)];
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** The text with `block` (lines, no final newline needed) appended after a blank line. */
export function appendBlock(text: string, block: string): string {
  const body = block.endsWith('\n') ? block : `${block}\n`;
  if (text.trim() === '') return body;
  const base = text.endsWith('\n') ? text : `${text}\n`;
  return base.endsWith('\n\n') ? base + body : `${base}\n${body}`;
}

/** A TOML basic string (TOML 1.0 §String): quotes, backslashes and control characters escaped. */
export function tomlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\u${c.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** `["a", "b"]` */
export const tomlStringArray = (xs: readonly string[]): string => `[${xs.map(tomlString).join(', ')}]`;
