/**
 * Key files: one key line, mode 0600. With shared/atomic-file.ts, the only modules in shared/ that touch the file
 * system; the client and the daemon both use it. Like ssh, a key file that group or others can read is refused.
 * Errors are SpaErrors with the ERR_SPA_KEYFILE_* codes (docs/errors.md).
 * @module
 */
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  openSync,
  readFileSync,
  renameSync,
  type Stats,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { syncDir } from './atomic-file.js';
import { SpaError, errnoText } from './errors.js';
import { formatKey, parseKey } from './keys.js';

/** Larger than any key file with a comment or two. */
const MAX_KEY_FILE_BYTES = 4096;

/** Read and check a key file. Throws SpaError (ERR_SPA_KEYFILE_READ / _PERMS / _INVALID) with a one-line message. */
export function readKeyFile(path: string): Uint8Array {
  const text = readSecretFile(path);
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1)
    throw new SpaError('ERR_SPA_KEYFILE_INVALID', `key file ${path} must hold exactly one key line`);
  const parsed = parseKey(lines[0] ?? '');
  if (!parsed.ok) throw new SpaError('ERR_SPA_KEYFILE_INVALID', `key file ${path}: ${parsed.reason}`);
  return parsed.key;
}

/** The text of a key file (any format) under the key-file rules: a regular file, 0600, small. */
export function readSecretFile(path: string): string {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO at the path must not block the open; it is refused below as not a regular file
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new SpaError('ERR_SPA_KEYFILE_READ', `cannot read key file ${path}: ${errnoText(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new SpaError('ERR_SPA_KEYFILE_READ', `cannot read key file ${path}: ${kindOf(st)}, not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new SpaError(
        'ERR_SPA_KEYFILE_PERMS',
        `key file ${path} is readable by group or others (mode ${mode}); run: chmod 600 ${path}`,
      );
    }
    if (st.size > MAX_KEY_FILE_BYTES)
      throw new SpaError('ERR_SPA_KEYFILE_INVALID', `key file ${path} is not a key file (too large)`);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Write a key file with mode 0600. The key goes to a new temporary file in the same directory (O_EXCL, 0600),
 * is fsynced, then takes the path in one step: `link()` without `force` (fails if the path exists, so nothing is
 * ever overwritten), `rename()` with it (replaces the directory entry: another hard link to the old file keeps the
 * old content). An existing path that is not a regular file (FIFO, directory, device, symbolic link) is refused.
 */
export function writeKeyFile(path: string, key: Uint8Array, opts: { force?: boolean } = {}): void {
  writeSecretFile(path, `${formatKey(key)}\n`, opts);
}

/** {@link writeKeyFile} for any key text (fwknop's two lines). */
export function writeSecretFile(path: string, text: string, opts: { force?: boolean } = {}): void {
  const existing = lstatOrUndefined(path);
  if (existing !== undefined) {
    if (!opts.force)
      throw new SpaError('ERR_SPA_KEYFILE_EXISTS', `key file ${path} already exists (use --force to overwrite)`);
    if (!existing.isFile())
      throw new SpaError(
        'ERR_SPA_KEYFILE_WRITE',
        `cannot write key file ${path}: it is ${kindOf(existing)}, not a regular file`,
      );
  }
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new SpaError(
      'ERR_SPA_KEYFILE_WRITE',
      `cannot write key file ${path}: cannot create a file in ${dir}: ${errnoText(e)}`,
    );
  }
  try {
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (opts.force) renameSync(tmp, path);
    else {
      linkSync(tmp, path);
      unlinkSync(tmp);
    }
  } catch (e) {
    unlinkQuietly(tmp);
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new SpaError('ERR_SPA_KEYFILE_EXISTS', `key file ${path} already exists (use --force to overwrite)`);
    }
    throw new SpaError('ERR_SPA_KEYFILE_WRITE', `cannot write key file ${path}: ${errnoText(e)}`);
  }
  syncDir(dir);
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SpaError('ERR_SPA_KEYFILE_WRITE', `cannot write key file ${path}: ${errnoText(e)}`);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
