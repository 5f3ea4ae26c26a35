/**
 * Replace a text file all at once (the daemon's config in `spa-knockd add-client`/`remove-client`, the client's
 * profile file in `spa-knock import`): the new text goes to a temporary file in the same directory (O_EXCL), gets
 * the old file's mode and owner, is fsynced, and takes the path with rename(2) — a reader sees the old file or the
 * new one, never half of one. If the file changed since it was read (another editor, a second add-client), nothing is
 * written and the caller is told to try again. Errors are SpaErrors with the caller's code, one line.
 * @module
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { type ErrorCode, SpaError, errnoText } from './errors.js';

export interface ReplaceOptions {
  /** Error code of every failure (ERR_SPA_CONFIG for the daemon's config). */
  readonly code: ErrorCode;
  /** What the file is, for messages: "config", "client config". */
  readonly what: string;
  /** The text the file held when it was read; null: the file must not exist yet (it is created). */
  readonly original: string | null;
  /** Mode of a new file (default 0600); an existing file keeps its own mode and owner. */
  readonly mode?: number;
}

function readOrNull(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Write `text` to `path` atomically (see the module header). */
export function replaceFileAtomic(path: string, text: string, o: ReplaceOptions): void {
  const fail = (msg: string) => new SpaError(o.code, `${o.what} ${path}: ${msg}`);
  const dir = dirname(path);
  let mode = o.mode ?? 0o600;
  let owner: { uid: number; gid: number } | undefined;
  if (o.original !== null) {
    let fd: number;
    try {
      fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      throw fail(`cannot read it: ${errnoText(e)}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw fail('not a regular file');
      mode = st.mode & 0o7777;
      owner = { uid: st.uid, gid: st.gid };
    } finally {
      closeSync(fd);
    }
  }
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw fail(`cannot create a file in ${dir}: ${errnoText(e)}`);
  }
  let placed = false;
  try {
    try {
      writeSync(fd, text);
      // the owner first: chown(2) may clear set-id bits, the mode after it sets them back
      if (owner && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
        try {
          fchownSync(fd, owner.uid, owner.gid);
        } catch (e) {
          throw fail(`cannot keep its owner ${owner.uid}:${owner.gid} (${errnoText(e)}); run this as root`);
        }
      }
      fchmodSync(fd, mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    const now = readOrNull(path);
    const changed = o.original === null ? now !== null : now === null || now.toString('utf8') !== o.original;
    if (changed) throw fail('changed while it was being edited; nothing written, try again');
    try {
      if (o.original === null) linkSync(tmp, path);
      else renameSync(tmp, path);
      placed = o.original !== null;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw fail('was created while it was being edited; nothing written, try again');
      throw fail(`cannot replace it: ${errnoText(e)}`);
    }
  } finally {
    if (!placed) {
      try {
        unlinkSync(tmp);
      } catch {
        // already gone
      }
    }
  }
  syncDir(dir);
}

/** fsync the directory so a new entry or a rename survives a crash (best effort: some file systems refuse it). */
export function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // written; only its durability across a power cut is less certain (also for shared/keyfile.ts)
  }
}
