/**
 * The UDP listener: node:dgram, dual-stack when bound to "::" (IPv4 senders arrive IPv4-mapped and are normalised by
 * the verifier). It only ever receives: there is no code path that sends a datagram.
 *
 * The receive buffer (SO_RCVBUF, socket(7)) is raised after bind: datagrams that arrive while it is full are dropped
 * by the kernel, unseen by the daemon (they are counted in /proc/net/udp{,6}, see server/udp-drops.ts). Linux doubles
 * the value asked for and caps it at net.core.rmem_max; the listener reports what it got.
 *
 * Each datagram goes on as a plain `Uint8Array` view of the Buffer node made (no copy). The verifier's code is warmed at
 * start (server/warmup.ts) on the Uint8Arrays the crypto makes, and V8 specialises optimized code on an object's map: a
 * Buffer made by node's C++ (its prototype set after creation) has another map, and the first real packet would throw
 * the warmed code away (`--trace-deopt`: "wrong map" in verify, splitPacket, the MAC and the cipher), leaving the
 * knock path in the interpreter for the rest of the daemon's life.
 *
 * Socket activation (sd_listen_fds(3), docs/systemd.md): with `fd` the listener adopts a UDP socket systemd has
 * already bound and passed (fd 3) instead of binding one; node:dgram wraps it (`bind({ fd })`). Anything else on
 * that fd (a stream socket, a file, nothing) is refused with ERR_SPA_LISTEN.
 * @module
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { hostPort } from '../shared/address.js';
import { SpaError, errnoText } from '../shared/errors.js';

export interface Listener {
  /** "address:port" actually bound. */
  readonly bound: string;
  /** The port actually bound (a configured port 0 picks one). */
  readonly port?: number;
  /** SO_RCVBUF as the kernel reports it after the listener asked for `receiveBuffer` (bytes). */
  readonly receiveBuffer?: number;
  close(): Promise<void>;
}

export interface ListenOptions {
  address: string;
  port: number;
  /** Adopt this already-bound UDP socket (systemd's fd 3) instead of binding `address`/`port`. */
  fd?: number;
  /** SO_RCVBUF to ask for, bytes; the kernel default (~208 KiB) when absent. */
  receiveBuffer?: number;
  /** Each datagram as a plain Uint8Array view of the socket's bytes (not a Buffer: see the module comment). */
  onMessage: (buf: Uint8Array, source: string) => void;
  onError: (err: Error) => void;
}

/** What node's `bind({ fd })` says a non-UDP descriptor is (ERR_INVALID_FD_TYPE: `Unsupported fd type: TCP`). */
function fdTypeOf(err: unknown): string {
  const m = /fd type: (\w+)/.exec(String((err as Error)?.message ?? ''));
  const t = m?.[1] ?? 'unknown';
  return t === 'UNKNOWN' ? 'not an open socket' : t === 'PIPE' ? 'a unix socket' : `a ${t} descriptor`;
}

export function openUdpListener(opts: ListenOptions): Promise<Listener> {
  const v6 = isIPv6(opts.address);
  const sock: Socket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: false, reuseAddr: false });
  const where =
    opts.fd !== undefined ? `the socket systemd passed (fd ${opts.fd})` : `udp ${hostPort(opts.address, opts.port)}`;
  return new Promise((resolve, reject) => {
    const onBindError = (err: NodeJS.ErrnoException) => {
      sock.close();
      reject(new SpaError('ERR_SPA_LISTEN', `cannot listen on ${where}: ${errnoText(err)}`));
    };
    sock.once('error', onBindError);
    const onBound = () => {
      sock.off('error', onBindError);
      let receiveBuffer: number | undefined;
      try {
        if (opts.receiveBuffer !== undefined) sock.setRecvBufferSize(opts.receiveBuffer);
        receiveBuffer = sock.getRecvBufferSize();
      } catch (err) {
        sock.close();
        reject(new SpaError('ERR_SPA_LISTEN', `cannot set the receive buffer of ${where}: ${errnoText(err)}`));
        return;
      }
      sock.on('error', opts.onError);
      sock.on('message', (msg, rinfo) =>
        opts.onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), rinfo.address),
      );
      const a = sock.address();
      resolve({
        bound: hostPort(a.address, a.port),
        port: a.port,
        receiveBuffer,
        close: () => new Promise<void>((r) => sock.close(() => r())),
      });
    };
    if (opts.fd === undefined) {
      sock.bind({ address: opts.address, port: opts.port, exclusive: true }, onBound);
      return;
    }
    try {
      // throws at once (ERR_INVALID_FD_TYPE) unless the descriptor is an AF_INET/AF_INET6 datagram socket
      sock.bind({ fd: opts.fd }, onBound);
    } catch (err) {
      sock.off('error', onBindError);
      try {
        sock.close();
      } catch {
        // never bound: nothing to close
      }
      reject(
        new SpaError(
          'ERR_SPA_LISTEN',
          `${where} is ${fdTypeOf(err)}, not a UDP socket: spa-knockd.socket needs ListenDatagram=, not ListenStream=`,
        ),
      );
    }
  });
}
