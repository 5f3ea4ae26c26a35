/**
 * Resolve the server, find the local address that faces it, send one datagram. Nothing is read back: the server
 * never answers.
 * @module
 */
import { type Socket, createSocket } from 'node:dgram';
import { hostPort, ipFamilyOf } from '../shared/address.js';
import { SpaError, errnoText } from '../shared/errors.js';

/** An IP literal as HOST (`[v6]` allowed) with its family, refusing one that contradicts -4/-6; undefined for a name. */
export function hostLiteral(host: string, family: 0 | 4 | 6): { address: string; family: 4 | 6 } | undefined {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const lit = ipFamilyOf(h);
  if (lit === 0) return undefined;
  if (family !== 0 && family !== lit)
    throw new SpaError('ERR_SPA_USAGE', `${host} is an IPv${lit} address but -${family} was given`);
  return { address: h, family: lit as 4 | 6 };
}

/**
 * dgram's resolver here: every address this module binds or sends to is an IP literal (client/targets.ts resolved
 * any name before), so it only names the literal's family, as `dns.lookup` would, and `node:dns` (with its
 * resolv.conf read) is never loaded for a knock (client cold start, docs/benchmarks.md). Called back on the next
 * tick, as `dns.lookup` does.
 */
export function literalLookup(
  host: string,
  _options: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = ipFamilyOf(host);
  const err = family === 0 ? Object.assign(new Error(`${host} is not an IP address`), { code: 'EINVAL' }) : null;
  process.nextTick(callback, err, host, family);
}

function udpSocket(family: 4 | 6): Socket {
  return createSocket({ type: family === 6 ? 'udp6' : 'udp4', lookup: literalLookup });
}

/**
 * The local address this host would send from to reach `address`: a UDP socket `connect()`ed to it (connect on a
 * datagram socket only picks the route and source address; nothing is sent), then `address()`. Behind NAT this is
 * the private address, not the one the server sees.
 */
export function localAddressTowards(address: string, family: 4 | 6, port: number): Promise<string> {
  const sock = udpSocket(family);
  return new Promise((resolve, reject) => {
    const fail = (e: unknown) => {
      sock.close();
      reject(new SpaError('ERR_SPA_SEND', `--allow-ip auto: no route to ${hostPort(address, port)}: ${errnoText(e)}`));
    };
    sock.once('error', fail);
    // the callback gets connect()'s error (ENETUNREACH, …) as its argument
    sock.connect(port, address, (e?: Error) => {
      if (e) return fail(e);
      const local = sock.address().address;
      sock.close();
      resolve(local);
    });
  });
}

export function sendDatagram(bytes: Uint8Array, address: string, family: 4 | 6, port: number): Promise<void> {
  const sock = udpSocket(family);
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (e: NodeJS.ErrnoException | null) => {
      if (done) return;
      done = true;
      sock.close();
      if (e) reject(new SpaError('ERR_SPA_SEND', `cannot send to ${hostPort(address, port)}: ${errnoText(e)}`));
      else resolve();
    };
    sock.once('error', finish);
    sock.send(bytes, port, address, (err) => finish(err));
  });
}
