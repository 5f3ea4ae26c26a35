/**
 * The UDP listener: node:dgram, dual-stack when bound to "::" (IPv4 senders arrive IPv4-mapped and are normalised by
 * the verifier). It only ever receives: there is no code path that sends a datagram.
 * @module
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

export interface Listener {
  /** "address:port" actually bound. */
  readonly bound: string;
  close(): Promise<void>;
}

export class ListenError extends Error {
  override readonly name = 'ListenError';
  readonly code = 'ERR_SPA_LISTEN';
}

export function openUdpListener(opts: {
  address: string;
  port: number;
  onMessage: (buf: Buffer, source: string) => void;
  onError: (err: Error) => void;
}): Promise<Listener> {
  const v6 = isIPv6(opts.address);
  const sock: Socket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: false, reuseAddr: false });
  return new Promise((resolve, reject) => {
    const onBindError = (err: NodeJS.ErrnoException) => {
      sock.close();
      reject(new ListenError(`cannot listen on udp ${v6 ? `[${opts.address}]` : opts.address}:${opts.port}: ${err.code ?? err.message}`));
    };
    sock.once('error', onBindError);
    sock.bind({ address: opts.address, port: opts.port, exclusive: true }, () => {
      sock.off('error', onBindError);
      sock.on('error', opts.onError);
      sock.on('message', (msg, rinfo) => opts.onMessage(msg, rinfo.address));
      const a = sock.address();
      resolve({
        bound: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
        close: () => new Promise<void>((r) => sock.close(() => r())),
      });
    });
  });
}
