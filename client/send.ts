/**
 * Resolve the server and send one datagram. Nothing is read back: the server never answers.
 * @module
 */
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export class SendError extends Error {
  override readonly name = 'SendError';
}

export async function resolveHost(host: string, family: 0 | 4 | 6): Promise<{ address: string; family: 4 | 6 }> {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const lit = isIP(h);
  if (lit !== 0) {
    if (family !== 0 && family !== lit) throw new SendError(`${host} is an IPv${lit} address but -${family} was given`);
    return { address: h, family: lit as 4 | 6 };
  }
  try {
    const r = await lookup(h, { family, verbatim: true });
    return { address: r.address, family: r.family as 4 | 6 };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SendError(`cannot resolve host ${host}${code === 'ENOTFOUND' ? ': no such host' : code ? `: ${code}` : ''}`);
  }
}

export function sendDatagram(bytes: Uint8Array, address: string, family: 4 | 6, port: number): Promise<void> {
  const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (e: NodeJS.ErrnoException | null) => {
      if (done) return;
      done = true;
      sock.close();
      if (e) reject(new SendError(`cannot send to ${family === 6 ? `[${address}]` : address}:${port}: ${e.code ?? e.message}`));
      else resolve();
    };
    sock.once('error', finish);
    sock.send(bytes, port, address, (err) => finish(err));
  });
}
