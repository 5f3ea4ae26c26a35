/**
 * `spa-knock`: the client. One packet, then done.
 *
 *   spa-knock HOST [--key FILE] [--open tcp/22 ...] [--port 62201] [--duration S] [--allow-ip IP] [--close]
 *                  [-4|-6] [--dry-run] [--json]
 *   spa-knock keygen [--out FILE] [--force]
 *
 * Every error is one line on stderr and a non-zero exit (2 for usage, 1 for everything else).
 * @module
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { toHex } from '../shared/bytes.js';
import { DEFAULT_PORT } from '../shared/constants.js';
import { KeyFileError, readKeyFile, writeKeyFile } from '../shared/keyfile.js';
import { formatKey, generateKey } from '../shared/keys.js';
import { UsageError, buildPacket, checkAllowIp, describe, parseAccessList } from './request.js';
import { SendError, resolveHost, sendDatagram } from './send.js';

const PROG = 'spa-knock';

function die(e: unknown): never {
  const known = e instanceof UsageError || e instanceof KeyFileError || e instanceof SendError;
  process.stderr.write(`${PROG}: ${known ? (e as Error).message : `internal error: ${(e as Error)?.message ?? String(e)}`}\n`);
  process.exit(e instanceof UsageError ? 2 : 1);
}

interface KnockArgs {
  host: string;
  key: string;
  open: string[];
  port: number;
  duration: number;
  allowIp: string | undefined;
  close: boolean;
  dryRun: boolean;
  json: boolean;
  ipv4: boolean;
  ipv6: boolean;
}

async function knock(a: KnockArgs): Promise<void> {
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new UsageError(`--port must be 1-65535`);
  if (!Number.isInteger(a.duration) || a.duration < 0 || a.duration > 65535) throw new UsageError(`--duration must be 0-65535 seconds (0 = server default)`);
  if (a.ipv4 && a.ipv6) throw new UsageError('-4 and -6 cannot be used together');
  const accesses = parseAccessList(a.open);
  const allowAddress = a.allowIp === undefined ? undefined : checkAllowIp(a.allowIp);
  const key = readKeyFile(a.key);
  const pkt = buildPacket(key, { type: a.close ? 'close' : 'open', accesses, duration: a.duration, allowAddress });
  const fields = describe(pkt);
  if (a.dryRun) {
    const b64 = Buffer.from(pkt.bytes).toString('base64');
    if (a.json) {
      process.stdout.write(JSON.stringify({ host: a.host, port: a.port, sent: false, bytes: pkt.bytes.length, hex: toHex(pkt.bytes), base64: b64, fields }) + '\n');
    } else {
      process.stdout.write(`packet for ${a.host} udp/${a.port} (${pkt.bytes.length} bytes, not sent)\n`);
      process.stdout.write(`hex:    ${toHex(pkt.bytes)}\nbase64: ${b64}\n`);
      for (const [k, v] of Object.entries(fields)) process.stdout.write(`${k.padEnd(14)} ${Array.isArray(v) ? v.join(' ') : String(v)}\n`);
    }
    return;
  }
  const target = await resolveHost(a.host, a.ipv4 ? 4 : a.ipv6 ? 6 : 0);
  await sendDatagram(pkt.bytes, target.address, target.family, a.port);
  if (a.json) {
    process.stdout.write(JSON.stringify({ host: a.host, address: target.address, port: a.port, sent: true, bytes: pkt.bytes.length, fields }) + '\n');
  } else {
    const to = target.family === 6 ? `[${target.address}]` : target.address;
    process.stdout.write(`sent ${a.close ? 'close' : 'knock'} (${pkt.bytes.length} bytes) to ${to}:${a.port}\n`);
  }
}

function keygen(a: { out: string | undefined; force: boolean }): void {
  const key = generateKey();
  if (a.out === undefined) {
    process.stdout.write(formatKey(key) + '\n');
    return;
  }
  writeKeyFile(a.out, key, { force: a.force });
  process.stderr.write(`wrote a new key to ${a.out} (mode 0600); the server needs the same key line in its config (key = "..." or key_file)\n`);
}

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName(PROG)
    .usage('$0 HOST [options]    send one knock\n$0 keygen [--out FILE]  make a new key')
    .command(
      'keygen',
      'generate a new key (prints it, or writes a 0600 file with --out)',
      (y) =>
        y
          .option('out', { type: 'string', describe: 'write the key to this file (mode 0600)', requiresArg: true })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite an existing --out file' }),
      (x) => keygen({ out: x.out, force: x.force }),
    )
    .command(
      '$0 <host>',
      'send one SPA packet to HOST',
      (y) =>
        y
          .positional('host', { type: 'string', demandOption: true, describe: 'server name or IPv4/IPv6 address' })
          .option('key', { type: 'string', default: join(homedir(), '.knock.key'), describe: 'key file', requiresArg: true })
          // not `array: true`: that would swallow a HOST written after it (`--open tcp/22 HOST`); repeats still collect
          .option('open', { type: 'string', describe: 'access to open, e.g. tcp/22 (repeatable, or comma-separated; default: all your policy allows)', requiresArg: true })
          .option('port', { type: 'number', default: DEFAULT_PORT, describe: "server's UDP port", requiresArg: true })
          .option('duration', { type: 'number', default: 0, describe: 'seconds to keep it open (0 = server default)', requiresArg: true })
          .option('allow-ip', { type: 'string', describe: 'open for this address instead of the packet source', requiresArg: true })
          .option('close', { type: 'boolean', default: false, describe: 'revoke my grant now' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'build and print the packet, do not send' })
          .option('json', { type: 'boolean', default: false, describe: 'machine-readable output' })
          .option('ipv4', { alias: '4', type: 'boolean', default: false, describe: 'use IPv4 only' })
          .option('ipv6', { alias: '6', type: 'boolean', default: false, describe: 'use IPv6 only' }),
      (x) =>
        knock({
          host: x.host,
          key: x.key,
          open: x.open === undefined ? [] : ([] as unknown[]).concat(x.open).map(String),
          port: x.port,
          duration: x.duration,
          allowIp: x.allowIp,
          close: x.close,
          dryRun: x.dryRun,
          json: x.json,
          ipv4: x.ipv4,
          ipv6: x.ipv6,
        }),
    )
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      if (err) die(err);
      process.stderr.write(`${PROG}: ${msg} (see ${PROG} --help)\n`);
      process.exit(2);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch(die);
