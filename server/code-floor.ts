/**
 * The one-time codes' counter floors (docs/codes.md): per code key, the lowest counter still good. `CodeFloors` holds
 * them in memory and raises one only after its `persist` hook returned (the file below, in the daemon), so a floor
 * that could not be written is not raised and its code grants nothing (`state-write`: fail closed).
 *
 * `CodeFloorFile` is `<state_dir>/code-floors.log`: one line `<id> <floor>` per raise, appended with a synchronous
 * write(2) and then fdatasync(2) before the grant (and an fsync of the directory when that created the file), so a code
 * accepted before a crash, `kill -9` or power loss is still refused after it. At load the highest floor per id wins and torn lines (a write cut short) are skipped; the file is
 * rewritten compactly (temporary file, fsync, rename) at load and when it holds many more lines than ids.
 * @module
 */
import {
  closeSync,
  fdatasyncSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { SpaError, errnoText } from '../shared/errors.js';

const LINE_RE = /^([0-9a-f]{16}) (\d{1,15})$/;
/** Rewrite the file when it holds more than this many lines beyond one per id (default). */
const COMPACT_SLACK = 1000;

export class CodeFloors {
  readonly #floors: Map<string, number>;
  readonly #persist: ((id: string, floor: number) => void) | undefined;
  readonly #close: (() => void) | undefined;

  constructor(
    initial: ReadonlyMap<string, number> = new Map(),
    persist?: (id: string, floor: number) => void,
    close?: () => void,
  ) {
    this.#floors = new Map(initial);
    this.#persist = persist;
    this.#close = close;
  }

  /** Release the file behind it, if any (daemon stop). */
  close(): void {
    this.#close?.();
  }

  /** The floor of this code key id (0 when none was ever raised). */
  get(id: string): number {
    return this.#floors.get(id) ?? 0;
  }

  /** Raise the floor to `floor` (never lowers it): persisted first; throws (and changes nothing) when that fails. */
  raise(id: string, floor: number): void {
    if (floor <= this.get(id)) return;
    this.#persist?.(id, floor);
    this.#floors.set(id, floor);
  }
}

/** fsync(2) a directory: makes a file created or renamed in it durable (the file's own sync does not cover that). */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class CodeFloorFile {
  readonly path: string;
  readonly #dir: string;
  readonly #slack: number;
  #fd: number | undefined;
  #lines = 0;
  #torn = false;
  /** The file's name is durable in state_dir (synced after it was created or renamed there). */
  #dirSynced = false;
  readonly #latest = new Map<string, number>();

  /** `compactSlack`: lines beyond one per id before the file is rewritten (default 1000; tests use less). */
  constructor(stateDir: string, opts: { readonly compactSlack?: number } = {}) {
    this.#slack = opts.compactSlack ?? COMPACT_SLACK;
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      if (!statSync(stateDir).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new SpaError('ERR_SPA_STATE_DIR', `state_dir ${stateDir} is not usable: ${errnoText(e)}`);
    }
    this.#dir = stateDir;
    this.path = join(stateDir, 'code-floors.log');
  }

  /** Read the floors (highest per id), rewrite the file with just those, and open it for appending. */
  load(): Map<string, number> {
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new SpaError('ERR_SPA_STATE_DIR', `cannot read ${this.path}: ${errnoText(e)}`);
      return new Map(); // nothing to compact: no file is made until a code is accepted
    }
    this.#latest.clear();
    for (const line of text.split('\n')) {
      const m = LINE_RE.exec(line);
      if (!m) continue; // a torn line after a crash, or garbage
      const id = m[1] ?? '';
      const floor = Number(m[2]);
      if (floor > (this.#latest.get(id) ?? 0)) this.#latest.set(id, floor);
    }
    this.#compact();
    return new Map(this.#latest);
  }

  #compact(): void {
    const tmp = `${this.path}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        const text = [...this.#latest].map(([id, f]) => `${id} ${f}\n`).join('');
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
      syncDir(this.#dir);
      this.#dirSynced = true;
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = openSync(this.path, 'a', 0o600);
    } catch (e) {
      throw new SpaError('ERR_SPA_STATE_DIR', `cannot write ${this.path}: ${errnoText(e)}`);
    }
    this.#torn = false;
    this.#lines = this.#latest.size;
  }

  /** Append `<id> <floor>` and sync it to disk before returning. Throws a SpaError('ERR_SPA_STATE_DIR') on failure. */
  append(id: string, floor: number): void {
    const line = Buffer.from(`${this.#torn ? '\n' : ''}${id} ${floor}\n`);
    let off = 0;
    try {
      this.#fd ??= openSync(this.path, 'a', 0o600);
      while (off < line.length) off += writeSync(this.#fd, line, off, line.length - off);
      fdatasyncSync(this.#fd);
      // the first code ever (no file at load): the file's name must survive a power loss too
      if (!this.#dirSynced) syncDir(this.#dir);
      this.#dirSynced = true;
    } catch (e) {
      if (off > 0) this.#torn = true;
      throw new SpaError('ERR_SPA_STATE_DIR', `cannot write ${this.path}: ${errnoText(e)}`);
    }
    this.#torn = false;
    this.#latest.set(id, floor);
    if (++this.#lines > this.#latest.size + this.#slack) {
      try {
        this.#compact();
      } catch {
        // the line is on disk already; compaction is tried again after the next append
      }
    }
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/** The floors of `state_dir` (loaded), raised through the file. */
export function openCodeFloors(file: CodeFloorFile): CodeFloors {
  return new CodeFloors(
    file.load(),
    (id, floor) => file.append(id, floor),
    () => file.close(),
  );
}
