/**
 * `spa-knock HOST --wait tcp/22 [--timeout S]`: knock, then probe the protected port with TCP connects, and knock
 * again with backoff (1 s, 2 s, 4 s, then every 8 s) until the port connects on every knocked address or the
 * deadline passes. Every knock is a freshly built packet (the caller's `knock` builds one per call): a lost
 * datagram is answered by a new one, never by the same bytes, which the server would refuse as a replay.
 *
 * The clock, the sleep and the probe are seams, so the schedule is tested without waiting (test/client/wait.test.ts).
 * @module
 */
import { Socket } from 'node:net';
import { type Access, parseAccess } from '../shared/access.js';
import { usageError } from '../shared/cli.js';
import { SpaError } from '../shared/errors.js';
import { type Target, showAddress } from './targets.js';

/** Default `--timeout`, seconds. */
export const DEFAULT_WAIT_S = 20;
/** Re-knock intervals, ms: doubling from the first, capped at the last. */
export const FIRST_INTERVAL_MS = 1000;
export const MAX_INTERVAL_MS = 8000;
/** One TCP connect attempt gives up after this long (a port the firewall drops never answers). */
export const PROBE_MS = 1000;
/**
 * Pause after a knock before the first probe: the probe's SYN then reaches the server well after the knock (same
 * path, sent later), when the daemon has installed the grant. A SYN that arrives just before would be dropped, and
 * the kernel retransmits it only after 1 s: the whole first interval.
 */
export const SETTLE_MS = 150;
/** Pause after a probe that failed at once (refused, unreachable) before the next. */
export const PAUSE_MS = 200;

/** `--wait tcp/22`: only TCP can be probed by connecting. */
export function parseWait(text: string): Access {
  const a = parseAccess(text);
  if (a?.proto !== 'tcp') throw usageError(`--wait "${text}" is not a TCP access like tcp/22`);
  return a;
}

export interface WaitSeams {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Does a TCP connect to t:port succeed within timeoutMs? */
  probe(t: Target, port: number, timeoutMs: number): Promise<boolean>;
}

/** A real TCP connect: true once connected (the socket is closed at once), false on error or after timeoutMs. */
export function tcpProbe(t: Target, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), Math.max(1, timeoutMs));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.connect({ host: t.address, port, family: t.family });
  });
}

export const realSeams: WaitSeams = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
  probe: tcpProbe,
};

export interface WaitResult {
  readonly open: Target[];
  readonly closed: Target[];
  /** Knocks sent per target, in the order of the targets. */
  readonly knocks: number[];
  readonly ms: number;
}

/**
 * Knock every target (unless `knockedOnce`: the caller has just done so), then probe and re-knock the ones still closed until all connect or `timeoutMs` has passed.
 * Never throws for a closed port: the result says which opened (see {@link waitOutcome}).
 */
export async function knockUntilOpen(
  targets: readonly Target[],
  port: number,
  timeoutMs: number,
  knock: (t: Target) => Promise<void>,
  seams: WaitSeams = realSeams,
  knockedOnce = false,
): Promise<WaitResult> {
  const start = seams.now();
  const deadline = start + timeoutMs;
  const knocks: number[] = targets.map(() => (knockedOnce ? 1 : 0));
  let first = knockedOnce;
  const isOpen = targets.map(() => false);
  const pending = (): number[] => targets.map((_, i) => i).filter((i) => !isOpen[i]);
  let interval = FIRST_INTERVAL_MS;
  for (;;) {
    for (const i of first ? [] : pending()) {
      await knock(targets[i] as Target);
      knocks[i] = (knocks[i] ?? 0) + 1;
    }
    first = false;
    const roundEnd = Math.min(seams.now() + interval, deadline);
    await seams.sleep(Math.max(0, Math.min(SETTLE_MS, roundEnd - seams.now())));
    interval = Math.min(interval * 2, MAX_INTERVAL_MS);
    while (pending().length > 0 && seams.now() < roundEnd) {
      const before = seams.now();
      const left = deadline - before;
      if (left <= 0) break;
      // the families are probed at the same time: a dropped SYN on one does not delay the other
      const results = await Promise.all(
        pending().map(async (i) => {
          const ok = await seams.probe(targets[i] as Target, port, Math.min(PROBE_MS, left));
          if (ok) isOpen[i] = true;
          return ok;
        }),
      );
      const quick = seams.now() - before < PAUSE_MS;
      if (quick && results.includes(false)) await seams.sleep(Math.max(0, Math.min(PAUSE_MS, roundEnd - seams.now())));
    }
    if (pending().length === 0 || seams.now() >= deadline) break;
  }
  return {
    open: targets.filter((_, i) => isOpen[i]),
    closed: targets.filter((_, i) => !isOpen[i]),
    knocks,
    ms: seams.now() - start,
  };
}

/** The outcome line on success; ERR_SPA_NOT_OPEN when a knocked address stayed closed. */
export function waitOutcome(host: string, port: number, r: WaitResult): string {
  const total = r.knocks.reduce((a, b) => a + b, 0);
  const secs = (r.ms / 1000).toFixed(1);
  if (r.closed.length === 0)
    return `open: tcp/${port} on ${r.open.map(showAddress).join(' and ')} after ${total} knock${total === 1 ? '' : 's'} (${secs} s)`;
  const openPart = r.open.length > 0 ? ` (open on ${r.open.map(showAddress).join(', ')})` : '';
  throw new SpaError(
    'ERR_SPA_NOT_OPEN',
    `tcp/${port} on ${host} did not open on ${r.closed.map(showAddress).join(', ')} within ${secs} s after ` +
      `${total} knock${total === 1 ? '' : 's'}${openPart}`,
  );
}
