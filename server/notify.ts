/**
 * Readiness for systemd's `Type=notify` (sd_notify(3)): READY=1 once the firewall is installed and the socket bound,
 * RELOADING=1 … READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM, each with a STATUS= line that
 * `systemctl status` shows. Only when systemd asked for it by setting `NOTIFY_SOCKET`; otherwise every call does
 * nothing.
 *
 * Node has no AF_UNIX datagram sockets, so the messages go through systemd's own `systemd-notify --pid=<our pid>`
 * (an argument array, never a shell). It sends from its own process, hence `NotifyAccess=all` in the unit; it then
 * waits on a barrier (BARRIER=1, sd_notify_barrier(3)) until systemd has read the message, so the sender cannot exit
 * before systemd has attributed it to our unit. `NOTIFY_SOCKET` is removed from the environment once read, so the
 * firewall tools we run do not inherit it; it is passed to `systemd-notify` alone.
 *
 * Messages are sent one after another in the order asked (RELOADING=1 must reach systemd before its READY=1). A
 * failure to notify is reported through `onError`, never thrown: it does not stop the daemon.
 * @module
 */
import { execFile } from 'node:child_process';

/** Runs one command (argument array, environment); resolves with its exit status and stderr, never rejects. */
export type NotifyExec = (
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
) => Promise<{ readonly code: number; readonly stderr: string }>;

export interface Notifier {
  /** Whether systemd asked for notifications (NOTIFY_SOCKET was set). */
  readonly enabled: boolean;
  /** READY=1 with a status line. */
  ready(status: string): Promise<void>;
  /** RELOADING=1 (then call ready() when the reload is over, whatever its outcome). */
  reloading(status: string): Promise<void>;
  /** STOPPING=1. */
  stopping(status: string): Promise<void>;
}

export interface NotifierOptions {
  /** The environment to read (and remove) NOTIFY_SOCKET from; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** The main PID reported to systemd (MAINPID=); default process.pid. */
  readonly pid?: number;
  readonly exec?: NotifyExec;
  readonly onError?: (message: string) => void;
}

/** Longer than systemd-notify's own barrier timeout (5 s), so a slow manager is not cut short. */
const NOTIFY_TIMEOUT_MS = 10_000;

export const execNotify: NotifyExec = (argv, env) =>
  new Promise((resolve) => {
    const [cmd, ...args] = argv;
    execFile(cmd as string, args, { env, timeout: NOTIFY_TIMEOUT_MS }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stderr: String(stderr || (err && code === -1 ? err.message : '')) });
    });
  });

/** A STATUS= value on one line (systemd-notify ends each assignment with a newline). */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ').slice(0, 400);

export function createNotifier(opts: NotifierOptions = {}): Notifier {
  const env = opts.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  delete env.NOTIFY_SOCKET;
  if (!socket) {
    const none = () => Promise.resolve();
    return { enabled: false, ready: none, reloading: none, stopping: none };
  }
  const exec = opts.exec ?? execNotify;
  const pid = opts.pid ?? process.pid;
  const childEnv: NodeJS.ProcessEnv = { ...env, NOTIFY_SOCKET: socket, LC_ALL: 'C' };
  let chain: Promise<void> = Promise.resolve();
  const send = (what: string, args: readonly string[], status: string): Promise<void> => {
    const argv = ['systemd-notify', `--pid=${pid}`, ...args, `--status=${oneLine(status)}`];
    const p = chain.then(async () => {
      const r = await exec(argv, childEnv);
      if (r.code !== 0)
        opts.onError?.(`systemd-notify ${what} failed (exit ${r.code}): ${oneLine(r.stderr.trim()) || 'no message'}`);
    });
    chain = p;
    return p;
  };
  return {
    enabled: true,
    ready: (status) => send('READY=1', ['--ready'], status),
    reloading: (status) => send('RELOADING=1', ['RELOADING=1'], status),
    stopping: (status) => send('STOPPING=1', ['STOPPING=1'], status),
  };
}
