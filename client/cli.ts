#!/usr/bin/env node
/**
 * `spa-knock`: the client. One packet, then done.
 *
 *   spa-knock HOST [--key FILE] [--open tcp/22 ...] [--port 62201] [--duration S] [--allow-ip IP|auto] [--close]
 *                  [--prefix4 N] [--prefix6 N]
 *                  [-4|-6] [--dry-run] [--json] [--format spak1|fwknop] [--wait tcp/22 [--timeout S]]
 *   (a name with IPv4 and IPv6 addresses is knocked over both, each with its own packet: client/targets.ts)
 *   spa-knock HOST --sequence 8881,7777,9991:udp|auto [--key FILE] [--delay MS] [-4|-6] [--json]   (classic knocks)
 *   spa-knock proxy HOST PORT [--key FILE] [--port 62201] [--open …] [-4|-6] [--timeout S]   (ssh ProxyCommand)
 *   spa-knock sequence [--key FILE] [--json]   the current rotating sequence (client/sequence.ts)
 *   spa-knock codes [--key FILE] [--count 20] [--start N] [--nc HOST] [--json]   one-time codes (client/codes.ts)
 *   spa-knock keygen [--out FILE] [--force] [--format spak1|fwknop]
 *   spa-knock import URI [--key-file PATH] [--name PROFILE] [--force]   a spa-knock:// URI → key file + profile
 *   spa-knock completion | --help | --version
 *
 * Every error is one line on stderr, `spa-knock: [ERR_SPA_…] …`, and the exit status its code gives (2 for a
 * command-line mistake, 1 for the rest). A stdout closed early is a quiet exit 0.
 * @module
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { die, exitQuietlyOnClosedStdout } from '../shared/cli.js';
import { DEFAULT_PORT } from '../shared/constants.js';
import { printCodes } from './codes.js';
import { fastKnockArgs } from './fast-args.js';
import { runImport } from './import.js';
import { keygen } from './keygen.js';
import { formatOption, knock } from './knock.js';
import { withProfile } from './profile.js';
import { proxyArgs, proxyOptions } from './proxy.js';
import { printRotating } from './sequence.js';
import { DEFAULT_WAIT_S } from './wait.js';

const PROG = 'spa-knock';

const formatOpt = {
  type: 'string',
  default: 'spak1',
  requiresArg: true,
  describe: 'packet format: spak1, or fwknop (to knock fwknopd; the key file holds KEY_BASE64 and HMAC_KEY_BASE64)',
} as const;

export async function main(argv: readonly string[]): Promise<void> {
  exitQuietlyOnClosedStdout();
  // a plain knock without yargs (cold start); anything else, mistakes included, goes to yargs as before
  const fast = fastKnockArgs(argv);
  if (fast !== undefined) return await knock(withProfile(fast));
  const { cliParser } = await import('../shared/cli-parser.js');
  await cliParser(PROG, argv, {
    usage: '$0 HOST [options]      send one knock\n$0 keygen [--out FILE]  make a new key',
    repeatable: ['open'],
    needs: 'HOST',
  })
    .command(
      'keygen',
      'generate a new key (prints it, or writes a 0600 file with --out)',
      (y) =>
        y
          .option('out', { type: 'string', describe: 'write the key to this file (mode 0600)', requiresArg: true })
          .option('force', {
            type: 'boolean',
            default: false,
            describe: 'replace an existing --out file (a regular file only)',
          })
          .option('format', formatOpt),
      (x) => keygen({ out: x.out, force: x.force, format: formatOption(x.format) }),
    )
    .command(
      'import <uri>',
      'set up a server from a spa-knock:// URI (spa-knockd add-client): key file + profile, then `spa-knock PROFILE`',
      (y) =>
        y
          .positional('uri', { type: 'string', demandOption: true, describe: 'the spa-knock:// URI (quote it)' })
          .option('key-file', {
            type: 'string',
            requiresArg: true,
            describe: 'write the key here (default: PROFILE.key next to the profile file)',
          })
          .option('name', { type: 'string', requiresArg: true, describe: "profile name (default: the URI's host)" })
          .option('force', {
            type: 'boolean',
            default: false,
            describe: 'replace a different key in --key-file and a profile of the same name',
          }),
      (x) => runImport({ uri: x.uri, keyFile: x.keyFile, name: x.name, force: x.force }),
    )
    .command(
      'proxy <host> <tport>',
      'for ssh ProxyCommand: knock HOST, wait until TCP port TPORT connects, then relay stdin/stdout to it',
      (y) => proxyOptions(y),
      (x) => knock(withProfile(proxyArgs(x))),
    )
    .command(
      'sequence',
      'print the current rotating sequence of a key (for apps that can only send a fixed list)',
      (y) =>
        y
          .option('key', {
            type: 'string',
            default: join(homedir(), '.knock.key'),
            describe: 'key file',
            requiresArg: true,
          })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
      (x) => printRotating(x.key, x.json),
    )
    .command(
      'codes',
      'print numbered one-time codes of a key, for apps that can only send fixed bytes (docs/client.md)',
      (y) =>
        y
          .option('key', {
            type: 'string',
            default: join(homedir(), '.knock.key'),
            describe: 'key file',
            requiresArg: true,
          })
          .option('count', { type: 'string', requiresArg: true, describe: 'how many codes (20; at most 1000)' })
          .option('start', { type: 'string', requiresArg: true, describe: "the first code's number (0)" })
          .option('nc', { type: 'string', requiresArg: true, describe: 'show how to send one to this server with nc' })
          .option('port', {
            type: 'string',
            requiresArg: true,
            describe: `server's UDP port, for that line (${DEFAULT_PORT})`,
          })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' }),
      (x) => printCodes({ key: x.key, count: x.count, start: x.start, nc: x.nc, port: x.port, json: x.json }),
    )
    .command(
      '$0 <host>',
      'send one SPA packet to HOST',
      (y) =>
        y
          .positional('host', {
            type: 'string',
            demandOption: true,
            describe: 'server name or IPv4/IPv6 address, or a profile name (docs/client.md)',
          })
          .option('key', {
            type: 'string',
            describe: "key file (default: the profile's, else ~/.knock.key)",
            requiresArg: true,
          })
          // not `array: true`: that would swallow a HOST written after it (`--open tcp/22 HOST`); repeats still collect
          .option('open', {
            type: 'string',
            describe: 'access to open, e.g. tcp/22 (repeatable, or comma-separated; default: all your policy allows)',
            requiresArg: true,
          })
          .option('port', { type: 'string', describe: `server's UDP port (${DEFAULT_PORT})`, requiresArg: true })
          .option('duration', {
            type: 'string',
            default: '0',
            describe: 'seconds to keep it open (0 = server default)',
            requiresArg: true,
          })
          .option('allow-ip', {
            type: 'string',
            requiresArg: true,
            describe:
              'open for this address instead of the packet source; "auto" = the local source address of the route ' +
              'to HOST (behind NAT that is the private address: then name the public one)',
          })
          .option('prefix4', {
            type: 'string',
            requiresArg: true,
            describe:
              'open for the /N of my IPv4 address (e.g. 24), not the address alone: for carrier-grade NAT ' +
              '(the server caps it with max_prefix4)',
          })
          .option('prefix6', {
            type: 'string',
            requiresArg: true,
            describe: 'open for the /N of my IPv6 address (e.g. 64): for privacy addresses (server cap: max_prefix6)',
          })
          .option('close', { type: 'boolean', default: false, describe: 'revoke my grant now' })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe:
              'build and print the packet, do not send (the printed bytes are a live knock for the replay window)',
          })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
          .option('format', { ...formatOpt, default: undefined })
          .option('ipv4', { alias: '4', type: 'boolean', default: false, describe: 'use IPv4 only' })
          .option('ipv6', { alias: '6', type: 'boolean', default: false, describe: 'use IPv6 only' })
          .option('sequence', {
            type: 'string',
            requiresArg: true,
            describe:
              'classic knocks instead: one SYN per port, one datagram per PORT:udp, e.g. 8881,7777,9991:udp; ' +
              '"auto": the current rotating sequence of --key',
          })
          .option('delay', { type: 'string', requiresArg: true, describe: 'ms between two --sequence steps (0)' })
          .option('wait', {
            type: 'string',
            requiresArg: true,
            describe: 'then probe this TCP access (e.g. tcp/22) and re-knock with fresh packets until it connects',
          })
          .option('timeout', {
            type: 'string',
            requiresArg: true,
            describe: `--wait gives up after this many seconds (${DEFAULT_WAIT_S}); exit 1, ERR_SPA_NOT_OPEN`,
          }),
      (x) =>
        knock(
          withProfile({
            host: x.host,
            key: x.key,
            open: x.open === undefined ? [] : ([] as unknown[]).concat(x.open).map(String),
            port: x.port,
            duration: x.duration,
            allowIp: x.allowIp,
            prefix4: x.prefix4,
            prefix6: x.prefix6,
            close: x.close,
            dryRun: x.dryRun,
            json: x.json,
            ipv4: x.ipv4,
            ipv6: x.ipv6,
            sequence: x.sequence,
            delay: x.delay,
            format: x.format,
            wait: x.wait,
            timeout: x.timeout,
          }),
        ),
    )
    .parseAsync();
}

main(process.argv.slice(2)).catch((e: unknown) => die(PROG, e));
