/**
 * The UDP listener: node:dgram, dual-stack when bound to "::" (IPv4 senders arrive IPv4-mapped and are normalised by
 * the verifier). It only ever receives: there is no code path that sends a datagram.
 *
 * The receive buffer (SO_RCVBUF, socket(7)) is raised after bind: datagrams that arrive while it is full are dropped
 * by the kernel, unseen by the daemon (they are counted in /proc/net/udp{,6}, see server/udp-drops.ts). Linux doubles
 * the value asked for and caps it at net.core.rmem_max; the listener reports what it got.
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
  /** SO_RCVBUF to ask for, bytes; the kernel default (~208 KiB) when absent. */
  receiveBuffer?: number;
  onMessage: (buf: Buffer, source: string) => void;
  onError: (err: Error) => void;
}

export function openUdpListener(opts: ListenOptions): Promise<Listener> {
  const v6 = isIPv6(opts.address);
  const sock: Socket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: false, reuseAddr: false });
  return new Promise((resolve, reject) => {
    const onBindError = (err: NodeJS.ErrnoException) => {
      sock.close();
      reject(
        new SpaError('ERR_SPA_LISTEN', `cannot listen on udp ${hostPort(opts.address, opts.port)}: ${errnoText(err)}`),
      );
    };
    sock.once('error', onBindError);
    sock.bind({ address: opts.address, port: opts.port, exclusive: true }, () => {
      sock.off('error', onBindError);
      let receiveBuffer: number | undefined;
      try {
        if (opts.receiveBuffer !== undefined) sock.setRecvBufferSize(opts.receiveBuffer);
        receiveBuffer = sock.getRecvBufferSize();
      } catch (err) {
        sock.close();
        reject(
          new SpaError(
            'ERR_SPA_LISTEN',
            `cannot set the receive buffer of udp ${hostPort(opts.address, opts.port)}: ${errnoText(err)}`,
          ),
        );
        return;
      }
      sock.on('error', opts.onError);
      sock.on('message', (msg, rinfo) => opts.onMessage(msg, rinfo.address));
      const a = sock.address();
      resolve({
        bound: hostPort(a.address, a.port),
        port: a.port,
        receiveBuffer,
        close: () => new Promise<void>((r) => sock.close(() => r())),
      });
    });
  });
}
