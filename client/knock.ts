/**
 * `spa-knock HOST [options]`: one knock (or a close, a `--dry-run`, a classic `--sequence`, a `--wait`), from options
 * already parsed (client/fast-args.ts or the yargs parser in client/cli.ts) and completed by the profile
 * (client/profile.ts). What only some command lines need — the classic sequence and the `--wait` probe (both use
 * `node:net`), the proxy relay, the fwknop codec, the resolver for `--allow-ip auto` — is imported when the options
 * ask for it, so that a plain knock evaluates none of it (client cold start, docs/benchmarks.md).
 * @module
 */
import { parseIp } from '../shared/address.js';
import { toHex } from '../shared/bytes.js';
import { intOption, usageError } from '../shared/cli.js';
import { NONCE_LEN } from '../shared/constants.js';
import { SpaError } from '../shared/errors.js';
import { readKeyFile } from '../shared/keyfile.js';
import { type RunOptions, runKnock, sendBuilt } from './knock-run.js';
import { writeOut } from './out.js';
import { buildPacket, checkAllowIp, describe, parseAccessList } from './request.js';
import { randomBytesFast } from './random.js';
import { hostLiteral, localAddressTowards } from './send.js';
import { resolveTargets } from './targets.js';

/** A fresh nonce for each packet (client/random.ts: without loading Node's crypto). */
const nonce = (): Uint8Array => randomBytesFast(NONCE_LEN);

/** The server's default `replay.window` (docs/config.md): how long a packet stays acceptable. */
const DEFAULT_WINDOW_S = 60;

export interface KnockArgs {
  host: string;
  key: string;
  open: string[];
  port: string;
  duration: string;
  allowIp: string | undefined;
  /** `--prefix4 N` / `--prefix6 N`: ask for the source's /N instead of the one address (issue 10). */
  prefix4?: string | undefined;
  prefix6?: string | undefined;
  close: boolean;
  dryRun: boolean;
  json: boolean;
  ipv4: boolean;
  ipv6: boolean;
  sequence: string | undefined;
  delay: string | undefined;
  format: string;
  wait: string | undefined;
  timeout: string | undefined;
  /** `spa-knock proxy HOST PORT`: knock, wait for tcp/PORT, then pipe stdin/stdout to it (client/proxy.ts). */
  proxy?: boolean;
}

/** `--wait tcp/PORT [--timeout S]` (client/wait.ts). */
async function waitOption(a: KnockArgs): Promise<RunOptions['wait']> {
  if (a.wait === undefined) {
    if (a.timeout !== undefined) throw usageError('--timeout needs --wait');
    return undefined;
  }
  if (a.dryRun || a.close) throw usageError(`--wait cannot be used with ${a.dryRun ? '--dry-run' : '--close'}`);
  const { DEFAULT_WAIT_S, parseWait } = await import('./wait.js');
  const port = parseWait(a.wait).port;
  const s = a.timeout === undefined ? DEFAULT_WAIT_S : intOption('--timeout', a.timeout, 1, 3600, ' seconds');
  return { port, timeoutMs: s * 1000 };
}

const FORMATS = ['spak1', 'fwknop'] as const;
/** `--format spak1|fwknop`. */
export function formatOption(v: string): 'spak1' | 'fwknop' {
  if (v === 'spak1' || v === 'fwknop') return v;
  throw usageError(`--format "${v}" is not one of ${FORMATS.join(', ')}`);
}

/** `--allow-ip auto`: the source address of the route to the server (see localAddressTowards). */
async function autoAllowIp(host: string, family: 0 | 4 | 6, port: number): Promise<string> {
  // the first address the resolver gives, as a single-family knock would use
  const [target] = await resolveTargets(host, family);
  if (target === undefined) throw new SpaError('ERR_SPA_RESOLVE', `cannot resolve host ${host}`);
  const local = await localAddressTowards(target.address, target.family, port);
  const bare = parseIp(local, { zone: 'strip' })?.text ?? local;
  return checkAllowIp(bare, `--allow-ip auto: the route to ${target.address} leaves from ${bare}, which`);
}

/**
 * `--prefix4 N` (1-32) / `--prefix6 N` (1-128): the prefix lengths the knock asks for (spak1 only: fwknop packets
 * cannot carry them). A knock to close names the same prefix as the one that opened.
 */
function prefixOptions(a: KnockArgs, format: 'spak1' | 'fwknop'): { prefix4?: number; prefix6?: number } {
  if (a.prefix4 === undefined && a.prefix6 === undefined) return {};
  if (format !== 'spak1') throw usageError(`--prefix${a.prefix4 !== undefined ? '4' : '6'} needs --format spak1`);
  return {
    ...(a.prefix4 !== undefined ? { prefix4: intOption('--prefix4', a.prefix4, 1, 32) } : {}),
    ...(a.prefix6 !== undefined ? { prefix6: intOption('--prefix6', a.prefix6, 1, 128) } : {}),
  };
}

function liveWarning(timestamp: number): string {
  const until = new Date(timestamp + DEFAULT_WINDOW_S * 1000).toISOString();
  return (
    `this is a LIVE knock until about ${until} (the server's replay window, ${DEFAULT_WINDOW_S} s by default): ` +
    'whoever sends these bytes first opens the port for their own address, unless the server sets ' +
    'require_source_address for this client and the packet names your address (--allow-ip)'
  );
}

export async function knock(a: KnockArgs): Promise<void> {
  const port = intOption('--port', a.port, 1, 65535);
  const duration = intOption('--duration', a.duration, 0, 65535, ' seconds (0 = server default)');
  if (a.ipv4 && a.ipv6) throw usageError('-4 and -6 cannot be used together');
  const family: 0 | 4 | 6 = a.ipv4 ? 4 : a.ipv6 ? 6 : 0;
  hostLiteral(a.host, family); // a literal that contradicts -4/-6 is a mistake even with --dry-run
  const wait = await waitOption(a);
  if (a.sequence !== undefined) return (await import('./sequence.js')).knockSequence(a, a.sequence, family, wait);
  if (a.delay !== undefined) throw usageError('--delay needs --sequence');
  const accesses = parseAccessList(a.open);
  const format = formatOption(a.format);
  const prefix = prefixOptions(a, format);
  // the fwknop codec (AES tables, SHA-512/SHA-3/MD5/SHA-1) only when asked for: its module set-up is most of what a
  // plain knock would otherwise spend loading (client cold start, docs/benchmarks.md)
  const fw = format === 'fwknop' ? await import('./fwknop.js') : undefined;
  // the key file is read once (a knock to two families builds two packets from it)
  let key: Uint8Array | undefined;
  const build = (allowAddress: string | undefined) => {
    const req = { accesses, duration, allowAddress };
    if (fw !== undefined) return fw.buildFwknopPacket(fw.readFwknopKeyFile(a.key), { ...req, close: a.close });
    key ??= readKeyFile(a.key);
    const p = buildPacket(key, { ...req, ...prefix, type: a.close ? 'close' : 'open' }, Date.now(), nonce());
    // the fields are only printed (--json, --dry-run); their timestamp text would cost the time-zone set-up (~1 ms)
    return { bytes: p.bytes, timestamp: p.request.timestamp, fields: a.json || a.dryRun ? describe(p) : {} };
  };
  if (!a.dryRun) {
    // mistakes first: the first packet is built before anything is resolved or sent, and it is the first one sent
    // unless that needs another allow address (--allow-ip auto); every later send gets a freshly built one
    const explicit = a.allowIp === undefined || a.allowIp === 'auto' ? undefined : checkAllowIp(a.allowIp);
    let first: ReturnType<typeof build> | undefined = build(explicit);
    const next = (allow: string | undefined) => {
      const b = first !== undefined && allow === explicit ? first : build(allow);
      first = undefined;
      return b;
    };
    const what = a.close ? 'close' : 'knock';
    // the proxy writes nothing but the connection to stdout
    const log = a.proxy ? { log: () => {} } : {};
    const o = { host: a.host, family, port, json: a.json, what, allowIp: a.allowIp, wait, ...log };
    const open = await runKnock(o, (t, allow) => sendBuilt(t, port, next(allow)));
    if (a.proxy && open[0] !== undefined && wait !== undefined)
      await (await import('./proxy.js')).pipeTo(open[0], wait.port);
    return;
  }
  let allowAddress: string | undefined;
  if (a.allowIp === 'auto') allowAddress = await autoAllowIp(a.host, family, port);
  else if (a.allowIp !== undefined) allowAddress = checkAllowIp(a.allowIp);
  const pkt = build(allowAddress);
  const fields = pkt.fields;
  const b64 = Buffer.from(pkt.bytes).toString('base64');
  const warning = liveWarning(pkt.timestamp);
  if (a.json) {
    const out = {
      host: a.host,
      port,
      sent: false,
      bytes: pkt.bytes.length,
      hex: toHex(pkt.bytes),
      base64: b64,
      // an fwknop packet is text already: what `fwknop -B FILE` would save
      ...(format === 'fwknop' ? { text: Buffer.from(pkt.bytes).toString('latin1') } : {}),
      fields,
      warning,
    };
    writeOut(`${JSON.stringify(out)}\n`);
  } else {
    const lines = [`packet for ${a.host} udp/${port} (${pkt.bytes.length} bytes, not sent)`];
    if (format === 'fwknop') lines.push(`text:   ${Buffer.from(pkt.bytes).toString('latin1')}`);
    else lines.push(`hex:    ${toHex(pkt.bytes)}`, `base64: ${b64}`);
    for (const [k, v] of Object.entries(fields))
      lines.push(`${k.padEnd(14)} ${Array.isArray(v) ? v.join(' ') : String(v)}`);
    lines.push(`warning: ${warning}`);
    writeOut(`${lines.join('\n')}\n`);
  }
}
