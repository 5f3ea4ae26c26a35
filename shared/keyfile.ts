/**
 * Key files: one key line, mode 0600. The only module in shared/ that touches the file system; the client and the
 * daemon both use it. Like ssh, a key file that group or others can read is refused.
 * @module
 */
import { closeSync, constants, fchmodSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { formatKey, parseKey } from './keys.js';

/** An error whose message is one line for the operator; `code` is stable (docs/errors.md). */
export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  constructor(
    readonly code: 'ERR_SPA_KEYFILE_READ' | 'ERR_SPA_KEYFILE_PERMS' | 'ERR_SPA_KEYFILE_INVALID' | 'ERR_SPA_KEYFILE_EXISTS' | 'ERR_SPA_KEYFILE_WRITE',
    message: string,
  ) {
    super(message);
  }
}

function errText(e: unknown): string {
  const c = (e as NodeJS.ErrnoException).code;
  if (c === 'ENOENT') return 'no such file';
  if (c === 'EACCES') return 'permission denied';
  if (c === 'EISDIR') return 'is a directory';
  return c ?? String((e as Error).message ?? e);
}

/** Read and check a key file. Throws KeyFileError with a one-line message. */
export function readKeyFile(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') {
      // a symlink: allowed, but the target is checked like a file
      try {
        fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      } catch (e2) {
        throw new KeyFileError('ERR_SPA_KEYFILE_READ', `cannot read key file ${path}: ${errText(e2)}`);
      }
    } else {
      throw new KeyFileError('ERR_SPA_KEYFILE_READ', `cannot read key file ${path}: ${errText(e)}`);
    }
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new KeyFileError('ERR_SPA_KEYFILE_READ', `cannot read key file ${path}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
      throw new KeyFileError(
        'ERR_SPA_KEYFILE_PERMS',
        `key file ${path} is readable by group or others (mode ${mode}); run: chmod 600 ${path}`,
      );
    }
    if (st.size > 4096) throw new KeyFileError('ERR_SPA_KEYFILE_INVALID', `key file ${path} is not a key file (too large)`);
    const text = readFileSync(fd, 'utf8');
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    if (lines.length !== 1) throw new KeyFileError('ERR_SPA_KEYFILE_INVALID', `key file ${path} must hold exactly one key line`);
    const parsed = parseKey(lines[0] ?? '');
    if (!parsed.ok) throw new KeyFileError('ERR_SPA_KEYFILE_INVALID', `key file ${path}: ${parsed.reason}`);
    return parsed.key;
  } finally {
    closeSync(fd);
  }
}

/** Write a key file with mode 0600; refuses to overwrite unless `force`. */
export function writeKeyFile(path: string, key: Uint8Array, opts: { force?: boolean } = {}): void {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | (opts.force ? constants.O_TRUNC : constants.O_EXCL);
  let fd: number;
  try {
    fd = openSync(path, flags, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new KeyFileError('ERR_SPA_KEYFILE_EXISTS', `key file ${path} already exists (use --force to overwrite)`);
    }
    throw new KeyFileError('ERR_SPA_KEYFILE_WRITE', `cannot write key file ${path}: ${errText(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if ((st.mode & 0o077) !== 0) {
      // an existing file overwritten with --force keeps its mode: tighten it
      fchmodSync(fd, 0o600);
    }
    writeSync(fd, formatKey(key) + '\n');
  } finally {
    closeSync(fd);
  }
}

