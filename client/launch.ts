/**
 * The installed `spa-knock` program (package.json `bin`: dist/client/spa-knock.cjs, bundled by
 * scripts/build-client.ts): it runs the knock bundle next to it (dist/client/knock.cjs, made from client/bin.ts),
 * and for any command line that is not a plain knock the whole CLI (dist/client/spa-knock-cli.cjs, client/cli.ts),
 * each through a V8 code cache, so that their code is not compiled again on every start (client cold start,
 * docs/benchmarks.md). Node 20 has no compile cache of its own for CommonJS (`module.enableCompileCache` is
 * Node 22), so this uses `vm.Script` with `cachedData` (https://nodejs.org/api/vm.html#new-vmscriptcode-options).
 *
 * A cache file is `SPAKV8C1`, the length of the bundle's source (u32 LE), that source, then V8's data. It is named
 * after the bundle, the Node version, platform and architecture (and node's options: {@link cacheName}), and used
 * only when the source it holds is byte for byte the bundle's (V8 itself checks only the source's length) and V8
 * accepts it (V8 also refuses data from another V8 version or other V8 flags). Looked for in the user's cache directory first (`$XDG_CACHE_HOME/spa-knock`, else
 * `~/.cache/spa-knock`; a file there must be the user's own and writable by nobody else), then next to the bundle
 * (one made at build time). When neither is usable, the bundle is compiled as usual and, after a run that exits 0,
 * a fresh cache is written to the user's cache directory (mode 0600, through a rename). Anything wrong with a cache
 * — missing, truncated, another bundle, another Node, unreadable, a directory that cannot be written — only means
 * a compile without it: same output, same exit status. `SPA_KNOCK_CODE_CACHE=0` turns all of it off.
 * @module
 */
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

const MAGIC = 'SPAKV8C1';
const WRAP_HEAD = Buffer.from('(function (exports, require, module, __filename, __dirname) { ');
const WRAP_TAIL = Buffer.from('\n})');
const HASHBANG_AS_COMMENT = Buffer.from('//');
const HEADER_LEN = MAGIC.length + 4;

/**
 * The cache file's name for this Node: V8 data is only good for the V8 (and platform) that made it, and with the
 * same V8 flags. Options given to node (`node --… spa-knock.cjs`, NODE_OPTIONS) may change those flags, so a run
 * with options has a file of its own (a short hash of them in the name): runs with and without them do not keep
 * replacing each other's cache. The cache built with the package is for node without options.
 */
export function cacheName(
  bundle: string,
  execArgv: readonly string[] = process.execArgv,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const opts = [...execArgv, env['NODE_OPTIONS'] ?? ''].join('\0');
  const tag = opts === '' ? '' : `-${fnv1a(opts)}`;
  return `${bundle}-${process.version}-${process.platform}-${process.arch}${tag}.v8cache`;
}

/** FNV-1a, 32 bits, as 8 hex digits: a file-name tag, not a security measure. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** `$XDG_CACHE_HOME/spa-knock` (when absolute, as the XDG base directory spec asks), else `~/.cache/spa-knock`. */
export function userCacheDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const xdg = env['XDG_CACHE_HOME'];
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, 'spa-knock');
  const home = env['HOME'];
  return home !== undefined && isAbsolute(home) ? join(home, '.cache', 'spa-knock') : undefined;
}

/** A cache file's bytes as [source, V8 data], or undefined when it is not one. */
export function splitCache(buf: Buffer): { source: Buffer; data: Buffer } | undefined {
  if (buf.length < HEADER_LEN || buf.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
  const len = buf.readUInt32LE(MAGIC.length);
  if (buf.length <= HEADER_LEN + len) return undefined;
  return { source: buf.subarray(HEADER_LEN, HEADER_LEN + len), data: buf.subarray(HEADER_LEN + len) };
}

export function joinCache(source: Buffer, data: Buffer): Buffer {
  const head = Buffer.alloc(HEADER_LEN);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(source.length, MAGIC.length);
  return Buffer.concat([head, source, data]);
}

/**
 * The V8 data of the cache file at `path` if it was made from `source`; undefined otherwise. `own`: the file must
 * belong to this user and be writable by nobody else (a cache is code: the user's cache directory could be shared).
 */
function readCache(path: string, source: Buffer, own: boolean): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    if (own && ((st.mode & 0o022) !== 0 || (process.getuid !== undefined && st.uid !== process.getuid())))
      return undefined;
    const c = splitCache(readFileSync(fd));
    return c?.source.equals(source) ? c.data : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Write `bytes` to dir/name through a temporary file and a rename; any failure is ignored (the cache is optional). */
function writeCache(dir: string, name: string, bytes: Buffer): void {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(tmp, bytes, { mode: 0o600, flag: 'wx' });
    renameSync(tmp, join(dir, name));
  } catch {
    try {
      rmSync(tmp, { force: true }); // a half-written temporary file; 'wx' never removes another process's
    } catch {}
  }
}

/**
 * Compile and run the CommonJS file `file` with a code cache (see the module comment); returns its exports. `req` is
 * the `require` it gets: one of a module in the same directory (`node:module` `createRequire` would load Node's ES
 * module loader).
 */
export function runCached(file: string, req: NodeJS.Require, env: NodeJS.ProcessEnv = process.env): unknown {
  const source = readFileSync(file);
  const enabled = env['SPA_KNOCK_CODE_CACHE'] !== '0';
  const bundle = basename(file, '.cjs');
  const name = cacheName(bundle, process.execArgv, env);
  const userDir = enabled ? userCacheDir(env) : undefined;
  let data: Buffer | undefined;
  if (enabled) {
    data = userDir === undefined ? undefined : readCache(join(userDir, name), source, true);
    data ??= readCache(join(dirname(file), cacheName(bundle, [], {})), source, false);
  }
  // the same wrapper as Node's own CommonJS loader: the bundle sees exports, require, module, __filename, __dirname;
  // one string, decoded once (a template would make a second copy when V8 flattens it: young-generation garbage);
  // a `#!` line (valid only at the start of a script) becomes a comment of the same length
  const body =
    source[0] === 0x23 && source[1] === 0x21 ? Buffer.concat([HASHBANG_AS_COMMENT, source.subarray(2)]) : source;
  const text = Buffer.concat([WRAP_HEAD, body, WRAP_TAIL]).toString('utf8');
  const script = new Script(text, { filename: file, ...(data !== undefined ? { cachedData: data } : {}) });
  if (userDir !== undefined && (data === undefined || script.cachedDataRejected === true)) {
    // after the run, when every function the command needed has been compiled and can go into the cache
    process.once('exit', (code) => {
      if (code !== 0) return;
      try {
        writeCache(userDir, name, joinCache(source, script.createCachedData()));
      } catch {}
    });
  }
  const module = { exports: {} as unknown };
  (script.runInThisContext() as (...a: unknown[]) => void).call(
    module.exports,
    module.exports,
    req,
    module,
    file,
    dirname(file),
  );
  return module.exports;
}

/**
 * The program: knock.cjs, next to this file, takes a plain knock; any other command line goes to the whole command
 * line, spa-knock-cli.cjs. `req`: this program's own `require`.
 */
export function launch(req: NodeJS.Require, from: string = import.meta.url): void {
  const dir = dirname(fileURLToPath(from));
  const knock = runCached(join(dir, 'knock.cjs'), req) as { fastKnock?: (argv: readonly string[]) => boolean };
  if (knock.fastKnock?.(process.argv.slice(2)) !== true) runCached(join(dir, 'spa-knock-cli.cjs'), req);
}
