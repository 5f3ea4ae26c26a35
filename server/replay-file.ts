/**
 * Persistent replay records: `<state_dir>/replay.log`, one line per accepted packet, `<expiresAt ms> <id>`.
 * Each record is written with a synchronous write(2) before the grant is applied, so a packet accepted before a
 * crash or `kill -9` is still refused after the restart. An fdatasync (for power loss) follows 10 ms later, batched:
 * run at once it competes with the firewall commit and adds ~0.4 ms to knock-to-open (docs/performance.md).
 * The log is compacted (rewritten with live records only, via rename) at start and when it grows.
 * @module
 */
import { closeSync, fdatasync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { ReplayRecord } from '../shared/replay.js';

export class StateDirError extends Error {
  override readonly name = 'StateDirError';
  readonly code = 'ERR_SPA_STATE_DIR';
}

const SYNC_DELAY_MS = 10;
const LINE_RE = /^(\d{1,16}) ([A-Za-z0-9:_-]{1,128})$/;

export class ReplayFile {
  readonly path: string;
  #fd: number | undefined;
  #lines = 0;
  #syncing = false;
  #dirty = false;
  #syncTimer: NodeJS.Timeout | undefined;

  constructor(stateDir: string) {
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      if (!statSync(stateDir).isDirectory()) throw new Error('not a directory');
    } catch (e) {
      throw new StateDirError(`state_dir ${stateDir} is not usable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    this.path = join(stateDir, 'replay.log');
  }

  /** Read live records (expired and unreadable lines are dropped), then rewrite the file with just those. */
  load(nowMs: number): ReplayRecord[] {
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateDirError(`cannot read ${this.path}: ${(e as NodeJS.ErrnoException).code}`);
    }
    const out: ReplayRecord[] = [];
    for (const line of text.split('\n')) {
      const m = LINE_RE.exec(line);
      if (!m) continue; // a torn last line after a crash, or garbage
      const expiresAt = Number(m[1]);
      if (expiresAt >= nowMs) out.push({ id: m[2] ?? '', expiresAt });
    }
    this.compact(out);
    return out;
  }

  /** Atomically replace the log with these records and reopen it for appending. */
  compact(records: readonly ReplayRecord[]): void {
    const tmp = this.path + '.tmp';
    try {
      writeFileSync(tmp, records.map((r) => `${r.expiresAt} ${r.id}\n`).join(''), { mode: 0o600 });
      renameSync(tmp, this.path);
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = openSync(this.path, 'a', 0o600);
    } catch (e) {
      throw new StateDirError(`cannot write ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    this.#lines = records.length;
  }

  /** Append one record with a synchronous write (survives the process dying right after). */
  append(r: ReplayRecord): void {
    if (this.#fd === undefined) this.#fd = openSync(this.path, 'a', 0o600);
    writeSync(this.#fd, `${r.expiresAt} ${r.id}\n`);
    this.#lines++;
    this.#syncTimer ??= setTimeout(() => {
      this.#syncTimer = undefined;
      this.#sync();
    }, SYNC_DELAY_MS);
  }

  /** How many lines the file holds (live or not), to decide when to compact. */
  get lines(): number {
    return this.#lines;
  }

  #sync(): void {
    if (this.#syncing) {
      this.#dirty = true;
      return;
    }
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#syncing = true;
    fdatasync(fd, () => {
      this.#syncing = false;
      if (this.#dirty) {
        this.#dirty = false;
        this.#sync();
      }
    });
  }

  close(): void {
    if (this.#syncTimer !== undefined) clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
