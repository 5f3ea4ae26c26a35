/**
 * Persistent replay records: `<state_dir>/replay.log`, one line per accepted packet, `<expiresAt ms> <id>`, after a
 * header line `#floor <ms> window <ms>` (the replay guard's floor, and the window the expiries were computed with).
 * Each record is written with a synchronous write(2) before the grant is applied, so a packet accepted before a
 * crash or `kill -9` is still refused after the restart. An fdatasync (for power loss) follows REPLAY_SYNC_DELAY_MS
 * later, batched: run at once it competes with the firewall commit and adds ~0.4 ms to knock-to-open
 * (docs/performance.md). The log is compacted (rewritten with live records and the floor, via rename) at start and
 * when it grows.
 *
 * A failed write (disk full, I/O error) throws a SpaError('ERR_SPA_STATE_DIR'); the daemon refuses that knock
 * (`state-write`) and keeps serving. A write cut short may leave a torn line: the next append starts on a new line.
 * @module
 */
import {
  closeSync,
  fdatasync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { REPLAY_SYNC_DELAY_MS } from '../shared/constants.js';
import { SpaError, errnoText } from '../shared/errors.js';
import type { ReplayRecord, ReplayState } from '../shared/replay.js';
import { type Timers, realTimers } from './timers.js';
import { traceMark } from './grant-trace.js';

const LINE_RE = /^(\d{1,16}) ([A-Za-z0-9:_-]{1,128})$/;
const HEADER_RE = /^#floor (\d{1,16}) window (\d{1,16})$/;

export interface ReplayFileOptions {
  /** Timer seam for the batched fdatasync (default: node's). */
  readonly timers?: Timers;
  /**
   * Append to this file, as it is, instead of STATE_DIR/replay.log: no state directory is made or checked. Only for
   * appends (the JIT warm-up's `/dev/null`, server/warmup.ts): load and compact would replace the file.
   */
  readonly appendTo?: string;
}

export class ReplayFile {
  readonly path: string;
  readonly #timers: Timers;
  #fd: number | undefined;
  #lines = 0;
  #syncing = false;
  #dirty = false;
  #syncTimer: unknown;
  /** The last write failed part-way: the file may end in a torn line. */
  #torn = false;
  #windowMs = 0;
  #floor = 0;

  constructor(stateDir: string, opts: ReplayFileOptions = {}) {
    this.#timers = opts.timers ?? realTimers;
    if (opts.appendTo !== undefined) {
      this.path = opts.appendTo;
      return;
    }
    try {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      const what = (e as NodeJS.ErrnoException).code === 'EEXIST' ? 'exists and is not a directory' : errnoText(e);
      throw new SpaError('ERR_SPA_STATE_DIR', `state_dir ${stateDir} cannot be created: ${what}`);
    }
    let isDir = false;
    try {
      isDir = statSync(stateDir).isDirectory();
    } catch (e) {
      throw new SpaError('ERR_SPA_STATE_DIR', `state_dir ${stateDir} is not usable: ${errnoText(e)}`);
    }
    if (!isDir) throw new SpaError('ERR_SPA_STATE_DIR', `state_dir ${stateDir} is not usable: not a directory`);
    this.path = join(stateDir, 'replay.log');
  }

  /**
   * Read the live records (returned) and the floor ({@link floor}). Expiries written under another window are moved
   * to `windowMs` (a record made with window W at anchor A expires at A + W); a log without a header (older version)
   * keeps every record for one more window, to be safe. Expired records are dropped, raising the floor; then the file
   * is rewritten with just what is live. Without `windowMs`, expiries are taken as written.
   */
  load(nowMs: number, windowMs?: number): ReplayRecord[] {
    let text = '';
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new SpaError('ERR_SPA_STATE_DIR', `cannot read ${this.path}: ${errnoText(e)}`);
    }
    let floor = 0;
    let fileWindow: number | undefined;
    const lines = text.split('\n');
    const h = HEADER_RE.exec(lines[0] ?? '');
    if (h) {
      floor = Number(h[1]);
      fileWindow = Number(h[2]);
    }
    const w = windowMs ?? fileWindow ?? 0;
    const shift = windowMs === undefined ? 0 : fileWindow === undefined ? windowMs : windowMs - fileWindow;
    const records: ReplayRecord[] = [];
    for (const line of lines) {
      const m = LINE_RE.exec(line);
      if (!m) continue; // the header, a torn line after a crash or a full disk, or garbage
      const expiresAt = Number(m[1]) + shift;
      if (expiresAt >= nowMs) records.push({ id: m[2] ?? '', expiresAt });
      else floor = Math.max(floor, expiresAt - w);
    }
    this.#windowMs = w;
    this.#floor = floor;
    this.compact({ records, floor });
    return records;
  }

  /** The replay guard's floor as of the last load or compaction (shared/replay.ts). */
  get floor(): number {
    return this.#floor;
  }

  /** Atomically replace the log with this state and reopen it for appending. */
  compact(state: ReplayState): void {
    const tmp = this.path + '.tmp';
    const header = `#floor ${Math.max(0, Math.floor(state.floor))} window ${this.#windowMs}\n`;
    try {
      writeFileSync(tmp, header + state.records.map((r) => `${r.expiresAt} ${r.id}\n`).join(''), { mode: 0o600 });
      renameSync(tmp, this.path);
      if (this.#fd !== undefined) closeSync(this.#fd);
      this.#fd = undefined;
      this.#fd = openSync(this.path, 'a', 0o600);
    } catch (e) {
      throw new SpaError('ERR_SPA_STATE_DIR', `cannot write ${this.path}: ${errnoText(e)}`);
    }
    this.#torn = false;
    this.#floor = state.floor;
    this.#lines = state.records.length;
  }

  /** Append one record with a synchronous write (survives the process dying right after). Throws on failure. */
  append(r: ReplayRecord): void {
    const line = Buffer.from(`${this.#torn ? '\n' : ''}${r.expiresAt} ${r.id}\n`);
    let off = 0;
    traceMark('replay-write');
    try {
      this.#fd ??= openSync(this.path, 'a', 0o600);
      while (off < line.length) off += writeSync(this.#fd, line, off, line.length - off);
    } catch (e) {
      if (off > 0) this.#torn = true;
      throw new SpaError('ERR_SPA_STATE_DIR', `cannot write ${this.path}: ${errnoText(e)}`);
    }
    this.#torn = false;
    traceMark('replay-written');
    this.#lines++;
    this.#syncTimer ??= this.#timers.setTimeout(() => {
      this.#syncTimer = undefined;
      this.#sync();
    }, REPLAY_SYNC_DELAY_MS);
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
    if (this.#syncTimer !== undefined) this.#timers.clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
