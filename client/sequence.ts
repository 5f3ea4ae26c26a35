/**
 * `spa-knock HOST --sequence 8881,7777,9991:udp [--delay MS]`: a classic knock sequence, for servers that speak
 * classic port knocking (knockd, the seed's iptables rules, spa-knockd's `[[sequence]]`). It replaces the seed's
 * `knock.sh`, whose nmap option `--host_timeout` no longer exists (nmap 7.93 refuses it and sends nothing).
 *
 * Per TCP step exactly one SYN: a non-blocking `connect()`, then the socket is closed at once (a socket closed in
 * SYN-SENT sends nothing more: no RST, no retransmission), as the `knock` client does. Per UDP step one datagram of
 * one byte (0x00), as `knock -u` sends. Steps go in order, `delayMs` apart; nothing is read back.
 * @module
 */
import type { KnockArgs } from './knock.js';
import { type RunOptions, runKnock } from './knock-run.js';
import { createSocket } from 'node:dgram';
import { Socket } from 'node:net';
import type { Access } from '../shared/access.js';
import { hostPort } from '../shared/address.js';
import { intOption, usageError } from '../shared/cli.js';
import { SpaError, errnoText } from '../shared/errors.js';
import { readKeyFile } from '../shared/keyfile.js';
import { formatStep, parseStep } from '../shared/knock-steps.js';
import { rotatingCounter, rotatingSteps, rotatingWindow } from '../shared/rotating.js';

/** Most steps in one `--sequence` (knockd has no limit; a list longer than this is a sweep, not a knock). */
export const MAX_CLIENT_STEPS = 64;

/** `8881,7777,9991:udp` → steps; a usage error (exit 2) naming `--sequence` otherwise. */
export function parseSequence(text: string): Access[] {
  const parts = text.split(',').map((p) => p.trim());
  const steps: Access[] = [];
  for (const p of parts) {
    const a = parseStep(p);
    if (a === undefined)
      throw usageError(`--sequence: "${p.slice(0, 20)}" is not a step like 8881 (tcp) or 9991:udp (comma-separated)`);
    steps.push(a);
  }
  if (steps.length > MAX_CLIENT_STEPS) throw usageError(`--sequence: at most ${MAX_CLIENT_STEPS} steps`);
  return steps;
}

export const formatSequence = (steps: readonly Access[]): string => steps.map(formatStep).join(',');

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * One SYN: Node issues the non-blocking connect() on the next tick after `connect` (the SYN leaves inside that
 * syscall); after that turn the socket is destroyed. A connect that fails at once (no route) is an error.
 */
async function synOnce(address: string, family: 4 | 6, port: number): Promise<void> {
  const sock = new Socket();
  let failure: Error | undefined;
  sock.on('error', (e) => {
    failure ??= e;
  });
  sock.connect({ host: address, port, family });
  await nextTurn();
  sock.destroy();
  if (failure !== undefined && (failure as NodeJS.ErrnoException).code !== 'ECONNREFUSED') {
    throw new SpaError('ERR_SPA_SEND', `cannot knock on ${hostPort(address, port)}/tcp: ${errnoText(failure)}`);
  }
}

function datagramOnce(address: string, family: 4 | 6, port: number): Promise<void> {
  const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (e: NodeJS.ErrnoException | null | undefined): void => {
      if (done) return;
      done = true;
      sock.close();
      if (e) reject(new SpaError('ERR_SPA_SEND', `cannot knock on ${hostPort(address, port)}/udp: ${errnoText(e)}`));
      else resolve();
    };
    sock.once('error', finish);
    sock.send(Buffer.from([0]), port, address, (err) => finish(err));
  });
}

/** Send the steps to `address` in order, `delayMs` between two steps. */
export async function sendSequence(
  steps: readonly Access[],
  address: string,
  family: 4 | 6,
  delayMs: number,
): Promise<void> {
  for (let i = 0; i < steps.length; i++) {
    if (i > 0 && delayMs > 0) await sleep(delayMs);
    const s = steps[i] as Access;
    if (s.proto === 'tcp') await synOnce(address, family, s.port);
    else await datagramOnce(address, family, s.port);
  }
}

/** The rotating sequence of the key in `keyFile` now (shared/rotating.ts), and until when it is current. */
export function currentRotating(keyFile: string, nowMs: number = Date.now()): { steps: Access[]; until: number } {
  const counter = rotatingCounter(nowMs);
  return { steps: rotatingSteps(readKeyFile(keyFile), counter), until: rotatingWindow(counter).until };
}

/** `spa-knock sequence --key FILE`: print it (the daemon also accepts it for one step after it ends). */
export function printRotating(keyFile: string, json: boolean): void {
  const { steps, until } = currentRotating(keyFile);
  const text = formatSequence(steps);
  const untilIso = new Date(until).toISOString();
  if (json) process.stdout.write(`${JSON.stringify({ sequence: text, current_until: untilIso })}\n`);
  else process.stdout.write(`${text}\n`);
}

/**
 * `spa-knock HOST --sequence …`: the knock's targets and `--wait` as for a packet, the steps sent in place of it.
 * The options that only a packet can carry are refused (usage error).
 */
export async function knockSequence(
  a: KnockArgs,
  sequence: string,
  family: 0 | 4 | 6,
  wait: RunOptions['wait'],
): Promise<void> {
  const other = a.close
    ? '--close'
    : a.dryRun
      ? '--dry-run'
      : a.allowIp !== undefined
        ? '--allow-ip'
        : a.prefix4 !== undefined || a.prefix6 !== undefined
          ? `--prefix${a.prefix4 !== undefined ? '4' : '6'}`
          : a.format !== 'spak1'
            ? '--format'
            : undefined;
  if (other !== undefined || a.open.length > 0) throw usageError(`--sequence cannot be used with ${other ?? '--open'}`);
  const steps = sequence === 'auto' ? currentRotating(a.key).steps : parseSequence(sequence);
  const delay = a.delay === undefined ? 0 : intOption('--delay', a.delay, 0, 60_000, ' milliseconds');
  const text = formatSequence(steps);
  const o = {
    host: a.host,
    family,
    port: 0,
    json: a.json,
    what: `sequence ${text}`,
    allowIp: undefined,
    wait,
    jsonExtra: { sequence: text },
  };
  await runKnock(o, async (t) => {
    await sendSequence(steps, t.address, t.family, delay);
    return undefined;
  });
}
