/**
 * The one error vocabulary of spa-knock and spa-knockd. Every error a user or an operator can cause is a
 * {@link SpaError} with a stable `ERR_SPA_*` code from {@link ERROR_CODES}; the code decides the exit status, and
 * the one-line message shown on stderr carries the code (`spa-knockd: [ERR_SPA_CONFIG] config … line 9: …`).
 * docs/errors.md lists every code with its cause and its fix; a test keeps the two in step.
 *
 * Packets are never errors: the daemon's hot path returns reject reasons (server/reasons.ts), it does not throw.
 * @module
 */

/** Exit statuses: 2 for a command-line mistake (as getopt tools do), 1 for what the operator can fix, 70 for a bug. */
export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;
/** EX_SOFTWARE from sysexits.h: an internal error, never expected. */
export const EXIT_INTERNAL = 70;

/** Every code, with its exit status and a one-line summary (docs/errors.md has cause and fix for each). */
export const ERROR_CODES = {
  ERR_SPA_USAGE: { exit: EXIT_USAGE, summary: 'a command-line option or argument is wrong' },
  ERR_SPA_CONFIG: { exit: EXIT_FAILURE, summary: 'the config file cannot be read, is not TOML, or breaks a rule' },
  ERR_SPA_CONFIG_PERMS: { exit: EXIT_FAILURE, summary: 'the config file holds keys but others may read or change it' },
  ERR_SPA_KEYFILE_READ: { exit: EXIT_FAILURE, summary: 'a key file cannot be read or is not a regular file' },
  ERR_SPA_KEYFILE_PERMS: { exit: EXIT_FAILURE, summary: 'a key file is readable by group or others' },
  ERR_SPA_KEYFILE_INVALID: { exit: EXIT_FAILURE, summary: 'a key file does not hold exactly one valid key line' },
  ERR_SPA_KEYFILE_EXISTS: {
    exit: EXIT_FAILURE,
    summary: 'a key file to write exists (keygen --out, import without --force, add-client --key-file)',
  },
  ERR_SPA_KEYFILE_WRITE: { exit: EXIT_FAILURE, summary: 'a key file cannot be written' },
  ERR_SPA_STATE_DIR: { exit: EXIT_FAILURE, summary: 'the state directory cannot be created, read or written' },
  ERR_SPA_LISTEN: { exit: EXIT_FAILURE, summary: 'the UDP port cannot be bound' },
  ERR_SPA_CONTROL: {
    exit: EXIT_FAILURE,
    summary: 'the control socket (spa-knockd status) cannot be created, reached or read',
  },
  ERR_SPA_INSTALL: {
    exit: EXIT_FAILURE,
    summary: 'install-systemd: a unit file differs (no --force), or a unit or directory cannot be written',
  },
  ERR_SPA_FIREWALL: { exit: EXIT_FAILURE, summary: 'an nft or iptables command failed or is missing' },
  ERR_SPA_RESOLVE: { exit: EXIT_FAILURE, summary: 'the server name cannot be resolved' },
  ERR_SPA_SEND: { exit: EXIT_FAILURE, summary: 'the knock datagram cannot be sent' },
  ERR_SPA_NOT_OPEN: { exit: EXIT_FAILURE, summary: 'spa-knock --wait: the port did not open before the deadline' },
  ERR_SPA_URI: { exit: EXIT_USAGE, summary: 'a spa-knock:// URI is malformed or carries a bad value' },
  ERR_SPA_INTERNAL: { exit: EXIT_INTERNAL, summary: 'a bug: an error nobody expected (the daemon logs the stack)' },
} as const satisfies Record<string, { readonly exit: number; readonly summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An expected error: one line for the person at the terminal, a stable code, an exit status. */
export class SpaError extends Error {
  override readonly name = 'SpaError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

export const isSpaError = (e: unknown): e is SpaError => e instanceof SpaError;

/** The stderr line for an error: `prog: [CODE] message` — a SpaError's own, anything else as ERR_SPA_INTERNAL. */
export function errorLine(prog: string, e: unknown): string {
  if (e instanceof SpaError) return `${prog}: [${e.code}] ${firstLine(e.message)}`;
  const msg = e instanceof Error ? e.message : String(e);
  return `${prog}: [ERR_SPA_INTERNAL] internal error: ${firstLine(msg)}`;
}

/** The exit status for an error. */
export function exitCodeOf(e: unknown): number {
  return e instanceof SpaError ? e.exitCode : EXIT_INTERNAL;
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? '').trim();
}

/**
 * What went wrong with a path, in words (`no such file`, `permission denied`, …) for an errno error; the errno name
 * itself for one not listed here; the message for anything else. The one errno-to-text table of the project.
 */
export function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'ELOOP':
      return 'too many symbolic links (or a symbolic link where none is allowed)';
    case 'EEXIST':
      return 'already exists';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'EROFS':
      return 'read-only file system';
    case 'EIO':
      return 'input/output error';
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files';
    case 'ENAMETOOLONG':
      return 'file name too long';
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EADDRNOTAVAIL':
      return 'address not available on this host';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case undefined:
      break;
    default:
      return code;
  }
  if (e instanceof Error) return firstLine(e.message) || e.name;
  return String(e);
}
