/**
 * Reading a config file from disk: a regular file of bounded size, never a FIFO or a device, and the permission rules
 * (writable by others: refused; inline keys: no access for group or others). Parsing and validation are
 * server/config.ts; this is the part that touches the file system.
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { SpaError, errnoText } from '../shared/errors.js';
import { type Config, MAX_CONFIG_BYTES, parseConfig } from './config.js';

const configError = (msg: string) => new SpaError('ERR_SPA_CONFIG', msg);

/**
 * Read a config file: a regular file only (opened O_NONBLOCK, so a FIFO cannot block the daemon; `/dev/zero` is
 * refused instead of read without end), at most MAX_CONFIG_BYTES. Returns the text and the file's mode.
 */
function readConfigFile(path: string): { text: string; mode: number } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw configError(`cannot read config ${path}: ${errnoText(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw configError(`cannot read config ${path}: not a regular file`);
    if (st.size > MAX_CONFIG_BYTES)
      throw configError(`cannot read config ${path}: larger than ${MAX_CONFIG_BYTES} bytes; not a config file`);
    // read at most one byte more than the cap: a file that grows while being read is caught too
    const buf = Buffer.alloc(MAX_CONFIG_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_CONFIG_BYTES)
        throw configError(`cannot read config ${path}: larger than ${MAX_CONFIG_BYTES} bytes; not a config file`);
    }
    return { text: buf.subarray(0, n).toString('utf8'), mode: st.mode & 0o7777 };
  } catch (e) {
    if (e instanceof SpaError) throw e;
    throw configError(`cannot read config ${path}: ${errnoText(e)}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Read and parse a config file. A config that others may change is refused (anyone who can write it can add a
 * client); one that holds inline keys is held to the key-file rule: no access for group or others.
 */
export function loadConfig(path: string): Config {
  return loadConfigText(path).config;
}

/** {@link loadConfig}, with the text and mode it read (for the commands that edit the file: server/config-edit.ts). */
export function loadConfigText(path: string): { config: Config; text: string; mode: number } {
  const { text, mode } = readConfigFile(path);
  checkWritableByOthers(path, mode);
  const config = parseConfig(text, path);
  checkConfigMode(path, mode, config);
  return { config, text, mode };
}

/** A config that others may change is refused: anyone who can write it can add a client. */
function checkWritableByOthers(path: string, mode: number): void {
  if ((mode & 0o002) !== 0) {
    const octal = mode.toString(8).padStart(4, '0');
    throw new SpaError(
      'ERR_SPA_CONFIG_PERMS',
      `config ${path} is writable by others (mode ${octal}); run: chmod o-w ${path}`,
    );
  }
}

/** The mode rules of {@link loadConfig} for a config with this mode (also for a config about to be written). */
export function checkConfigMode(path: string, mode: number, config: Config): void {
  checkWritableByOthers(path, mode);
  if (config.inlineKeys.length > 0 && (mode & 0o077) !== 0) {
    const octal = mode.toString(8).padStart(4, '0');
    throw new SpaError(
      'ERR_SPA_CONFIG_PERMS',
      `config ${path} holds keys (client "${config.inlineKeys[0]}") but group or others have access (mode ${octal}); run: chmod 600 ${path}`,
    );
  }
}
