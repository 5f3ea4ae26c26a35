/**
 * `spa-knock proxy HOST PORT`, for ssh:
 *
 *   ssh -o ProxyCommand='spa-knock proxy %h %p' server.example.org
 *
 * Knocks HOST (every family, fresh packets, re-knocks: client/knock-run.ts with `--wait tcp/PORT`), then connects to
 * the first address (in resolver order) where PORT opened and relays stdin → socket and socket → stdout until either
 * side closes. stdout carries the connection, so nothing else is written there; errors and warnings go to stderr
 * (ssh shows them), and an unopened port ends with ERR_SPA_NOT_OPEN, exit 1, before ssh sees a byte.
 * @module
 */
import { Socket } from 'node:net';
import type { Argv } from 'yargs';
import { hostPort } from '../shared/address.js';
import { intOption } from '../shared/cli.js';
import { DEFAULT_PORT } from '../shared/constants.js';
import { SpaError, errnoText } from '../shared/errors.js';
import type { GivenArgs } from './profile.js';
import type { Target } from './targets.js';
import { DEFAULT_WAIT_S } from './wait.js';

export function proxyOptions<T>(y: Argv<T>) {
  return y
    .positional('host', { type: 'string', demandOption: true, describe: 'server name or address (ssh: %h)' })
    .positional('tport', { type: 'string', demandOption: true, describe: 'TCP port to relay to (ssh: %p)' })
    .option('key', {
      type: 'string',
      describe: "key file (default: the profile's, else ~/.knock.key)",
      requiresArg: true,
    })
    .option('open', { type: 'string', describe: 'access to open (default: all your policy allows)', requiresArg: true })
    .option('port', { type: 'string', describe: `server's UDP port (${DEFAULT_PORT})`, requiresArg: true })
    .option('duration', { type: 'string', default: '0', describe: 'seconds to keep it open', requiresArg: true })
    .option('allow-ip', { type: 'string', requiresArg: true, describe: 'as for a knock: an address, or "auto"' })
    .option('format', { type: 'string', requiresArg: true, describe: 'spak1 (default) or fwknop' })
    .option('ipv4', { alias: '4', type: 'boolean', default: false, describe: 'use IPv4 only' })
    .option('ipv6', { alias: '6', type: 'boolean', default: false, describe: 'use IPv6 only' })
    .option('timeout', {
      type: 'string',
      requiresArg: true,
      describe: `give up after this many seconds (${DEFAULT_WAIT_S}); exit 1, ERR_SPA_NOT_OPEN`,
    });
}

interface ProxyParsed {
  host: string;
  tport: string;
  key: string | undefined;
  open: unknown;
  port: string | undefined;
  duration: string;
  allowIp: string | undefined;
  format: string | undefined;
  ipv4: boolean;
  ipv6: boolean;
  timeout: string | undefined;
}

/** The proxy command line as a knock with `--wait tcp/PORT`, quiet on stdout. */
export function proxyArgs(x: ProxyParsed): GivenArgs {
  const tport = intOption('PORT', x.tport, 1, 65535);
  return {
    host: x.host,
    key: x.key,
    open: x.open === undefined ? [] : ([] as unknown[]).concat(x.open).map(String),
    port: x.port,
    duration: x.duration,
    allowIp: x.allowIp,
    close: false,
    dryRun: false,
    json: false,
    ipv4: x.ipv4,
    ipv6: x.ipv6,
    sequence: undefined,
    delay: undefined,
    format: x.format,
    wait: `tcp/${tport}`,
    timeout: x.timeout,
    proxy: true,
  };
}

/** Connect to t:port and relay stdin/stdout until the connection closes. */
export function pipeTo(t: Target, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let connected = false;
    sock.once('error', (e) => {
      if (!connected)
        reject(new SpaError('ERR_SPA_NOT_OPEN', `cannot connect to ${hostPort(t.address, port)}: ${errnoText(e)}`));
      // after the connection: the relay simply ends (ssh reports its side)
    });
    sock.once('connect', () => {
      connected = true;
      process.stdin.pipe(sock);
      sock.pipe(process.stdout);
    });
    sock.once('close', () => {
      process.stdin.unpipe(sock);
      process.stdin.destroy();
      if (connected) resolve();
    });
    sock.connect({ host: t.address, port, family: t.family });
  });
}
