/**
 * The daemon's control socket (docs/operations.md): a unix stream socket `STATE_DIR/control.sock`, mode 0600 in the
 * 0700 state directory, so only its owner (root) can connect — never a TCP port. One request per connection: a
 * command name on one line (`status`), answered with one JSON line, then the connection ends. Requests are bounded
 * (size, time); an unknown command gets `{"error": …}`.
 * @module
 */
import { lstatSync, unlinkSync, chmodSync } from 'node:fs';
import { type Server, type Socket, createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { SpaError, errnoText } from '../shared/errors.js';

export const CONTROL_SOCKET_NAME = 'control.sock';
/** Longest request line, bytes. */
const MAX_REQUEST = 256;
/** Longest reply the client reads, bytes. */
const MAX_REPLY = 16 << 20;
/** A connection that has not sent its line (or a daemon that has not answered) within this is dropped. */
export const CONTROL_TIMEOUT_MS = 2000;
/** sun_path holds 108 bytes with the terminating NUL (unix(7)). */
const MAX_PATH_BYTES = 107;

export const controlPath = (stateDir: string): string => join(stateDir, CONTROL_SOCKET_NAME);

/** Answer a command: a JSON-able value (or a Promise of one), or undefined for an unknown command. */
export type ControlHandler = (command: string) => unknown;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

const controlError = (msg: string) => new SpaError('ERR_SPA_CONTROL', msg);

/** Is something answering on this socket path? */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Listen on `path` (a stale socket left by a killed daemon is replaced; a live one or any other file is an error). */
export async function openControl(path: string, handle: ControlHandler): Promise<ControlServer> {
  if (Buffer.byteLength(path) > MAX_PATH_BYTES)
    throw controlError(
      `control socket path ${path} is longer than ${MAX_PATH_BYTES} bytes: choose a shorter state_dir`,
    );
  let st: ReturnType<typeof lstatSync> | undefined;
  try {
    st = lstatSync(path);
  } catch {
    st = undefined;
  }
  if (st !== undefined) {
    if (!st.isSocket()) throw controlError(`${path} exists and is not a socket: remove it`);
    if (await answers(path))
      throw controlError(`another spa-knockd answers on ${path}: give each daemon its own state_dir`);
    unlinkSync(path);
  }
  const server: Server = createServer((sock) => serve(sock, handle));
  const old = process.umask(0o177); // the socket is created 0600: no window where others could connect
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    throw controlError(`cannot listen on ${path}: ${errnoText(e)}`);
  } finally {
    process.umask(old);
  }
  chmodSync(path, 0o600);
  server.unref();
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      }),
  };
}

function serve(sock: Socket, handle: ControlHandler): void {
  let buf = '';
  sock.setEncoding('utf8');
  sock.setTimeout(CONTROL_TIMEOUT_MS, () => sock.destroy());
  sock.on('error', () => sock.destroy());
  sock.on('data', (d: string) => {
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl < 0) {
      if (buf.length > MAX_REQUEST) sock.destroy();
      return;
    }
    sock.removeAllListeners('data');
    const command = buf.slice(0, nl).trim();
    // a handler may answer later (a Promise): the status reads the kernel prefilter's counter
    Promise.resolve()
      .then(() => (/^[a-z-]{1,32}$/.test(command) ? handle(command) : undefined))
      .then(
        (reply: unknown) => reply ?? { error: 'unknown command' },
        (e: unknown) => ({ error: String((e as Error).message ?? e) }),
      )
      .then((reply) => sock.end(`${JSON.stringify(reply)}\n`));
  });
}

/** Send one command to the daemon on `path` and parse its JSON reply. Failures are ERR_SPA_CONTROL SpaErrors. */
export function controlRequest(path: string, command: string, timeoutMs = CONTROL_TIMEOUT_MS): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path);
    let buf = '';
    const fail = (msg: string) => {
      s.destroy();
      reject(controlError(msg));
    };
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () => fail(`no answer on ${path} within ${timeoutMs} ms`));
    s.once('connect', () => s.write(`${command}\n`));
    s.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REPLY) fail(`the answer on ${path} is too large`);
    });
    s.on('end', () => {
      try {
        resolve(JSON.parse(buf));
      } catch {
        fail(`the answer on ${path} is not JSON`);
      }
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? 'no spa-knockd is running with this state_dir'
          : e.code === 'EACCES'
            ? 'permission denied: run it as root, the daemon user'
            : errnoText(e);
      fail(`cannot reach the daemon on ${path}: ${why}`);
    });
  });
}
