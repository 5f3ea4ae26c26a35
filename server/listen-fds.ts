/**
 * Socket activation, the daemon's side of sd_listen_fds(3): systemd (spa-knockd.socket) binds the UDP port, starts
 * the service with the socket as file descriptor 3 (SD_LISTEN_FDS_START) and says so in the environment:
 * `LISTEN_PID` (the process the sockets are for), `LISTEN_FDS` (how many, from fd 3 on), `LISTEN_FDNAMES`.
 *
 * The variables count only when `LISTEN_PID` is this process (a child that inherited them must ignore them, as
 * sd_listen_fds does). spa-knockd takes exactly one socket; more is a unit mistake and is refused. Once read they are
 * removed from the environment (sd_listen_fds' `unset_environment`), so the nft/iptables children never see them.
 * @module
 */
import { SpaError } from '../shared/errors.js';

/** SD_LISTEN_FDS_START: the first passed descriptor (sd-daemon.h). */
export const LISTEN_FDS_START = 3;

const VARS = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;

/**
 * The descriptor systemd passed to this process, or undefined when it passed none (or the variables are some other
 * process's). Removes the variables from `env` either way. Throws ERR_SPA_LISTEN when they are for us but malformed
 * or name more than one socket.
 */
export function takeListenFd(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const [pidText, fdsText] = [env.LISTEN_PID, env.LISTEN_FDS];
  for (const v of VARS) delete env[v];
  if (pidText === undefined || fdsText === undefined) return undefined;
  if (!/^[0-9]{1,10}$/.test(pidText) || Number(pidText) !== pid) return undefined;
  if (!/^[0-9]{1,4}$/.test(fdsText))
    throw new SpaError('ERR_SPA_LISTEN', `LISTEN_FDS=${JSON.stringify(fdsText)} from systemd is not a number`);
  const n = Number(fdsText);
  if (n === 0) return undefined;
  if (n !== 1)
    throw new SpaError(
      'ERR_SPA_LISTEN',
      `systemd passed ${n} sockets (LISTEN_FDS=${n}); spa-knockd takes exactly one: one ListenDatagram= in spa-knockd.socket`,
    );
  return LISTEN_FDS_START;
}
