/**
 * Sending a knock to every address of HOST (client/targets.ts) and, with `--wait`, confirming it (client/wait.ts).
 * `build` makes a fresh packet per call (a new nonce or random field each time); `--sequence` knocks are the same
 * on every call by nature (the server's sequence state, not the bytes, decides).
 * @module
 */
import { parseIp } from '../shared/address.js';
import { SpaError } from '../shared/errors.js';
import { writeOut } from './out.js';
import { checkAllowIp } from './request.js';
import { localAddressTowards, sendDatagram } from './send.js';
import { type Target, forEachTarget, resolveTargets, showAddress } from './targets.js';

export interface Built {
  readonly bytes: Uint8Array;
  readonly fields: Record<string, unknown>;
}

export interface RunOptions {
  readonly host: string;
  readonly family: 0 | 4 | 6;
  readonly port: number;
  readonly json: boolean;
  /** What the output line calls one send: 'knock', 'close', or 'sequence 8881,7777'. */
  readonly what: string;
  /** An explicit --allow-ip (one address: knock once, over the first family), 'auto' (per family), or none. */
  readonly allowIp: string | undefined;
  /** --wait tcp/PORT: probe and re-knock until open; with the --timeout in ms. */
  readonly wait?: { readonly port: number; readonly timeoutMs: number } | undefined;
  /** Where the output lines go (stdout by default; `spa-knock proxy` keeps stdout for the connection). */
  readonly log?: (line: string) => void;
  /** More fields for each --json line (e.g. the sequence). */
  readonly jsonExtra?: Record<string, unknown>;
}

/** `--allow-ip auto` for one target: the source address of the route to it. */
export async function autoAllowFor(t: Target, port: number): Promise<string> {
  const local = await localAddressTowards(t.address, t.family, port);
  const bare = parseIp(local, { zone: 'strip' })?.text ?? local;
  return checkAllowIp(bare, `--allow-ip auto: the route to ${t.address} leaves from ${bare}, which`);
}

const stdoutLine = (line: string): void => writeOut(`${line}\n`);

/**
 * Resolve, send to each family (each its own packet), and with `wait` re-knock until the port connects.
 * `send(t, allowAddress)` sends one knock to t and returns what it sent (for the output line), or undefined.
 * Returns the targets sent to (without `wait`) or found open (with it, in resolver order).
 */
export async function runKnock(
  o: RunOptions,
  send: (t: Target, allowAddress: string | undefined) => Promise<Built | undefined>,
): Promise<Target[]> {
  const out = o.log ?? stdoutLine;
  let targets = await resolveTargets(o.host, o.family);
  const explicit = o.allowIp !== undefined && o.allowIp !== 'auto' ? checkAllowIp(o.allowIp) : undefined;
  if (explicit !== undefined) targets = targets.slice(0, 1);
  const one = async (t: Target): Promise<void> => {
    const allow = o.allowIp === 'auto' ? await autoAllowFor(t, o.port) : explicit;
    const b = await send(t, allow);
    if (o.json) {
      const extra = b === undefined ? {} : { port: o.port, sent: true, bytes: b.bytes.length, fields: b.fields };
      out(JSON.stringify({ host: o.host, address: t.address, ...extra, ...o.jsonExtra }));
    } else if (b === undefined) out(`sent ${o.what} to ${showAddress(t)}`);
    else out(`sent ${o.what} (${b.bytes.length} bytes) to ${showAddress(t)}:${o.port}`);
  };
  const warn = (line: string): void => {
    process.stderr.write(`spa-knock: warning: ${line}\n`);
  };
  if (o.wait === undefined) {
    return forEachTarget(targets, one, warn);
  }
  // --wait: a family whose knock cannot leave while another's did is dropped with a warning (as without --wait);
  // a knock that cannot leave (network down for a moment, a firewall refusing it locally) is a lost knock,
  // tried again like one lost on the way; only what no retry can fix (a usage error, a key file) ends it
  const lost = (e: unknown): void => {
    if (!(e instanceof SpaError) || e.code !== 'ERR_SPA_SEND') throw e;
    warn(`${e.message}; trying again`);
  };
  const failed: unknown[] = [];
  const sent = await forEachTarget(
    targets,
    (t) =>
      one(t).catch((e: unknown) => {
        failed.push(e);
        throw e;
      }),
    warn,
  ).catch(() => {
    for (const e of failed) lost(e); // none could leave: all are tried again
    return targets;
  });
  const again = (t: Target): Promise<void> => one(t).catch(lost);
  // the probe (node:net) only for --wait: a plain knock does not load it (client cold start)
  const { knockUntilOpen, waitOutcome } = await import('./wait.js');
  const r = await knockUntilOpen(sent, o.wait.port, o.wait.timeoutMs, again, undefined, true);
  if (o.json) {
    const list = (ts: readonly Target[]) => ts.map((t) => t.address);
    out(
      JSON.stringify({
        host: o.host,
        wait: `tcp/${o.wait.port}`,
        open: list(r.open),
        closed: list(r.closed),
        knocks: r.knocks,
        ms: r.ms,
      }),
    );
  }
  const line = waitOutcome(o.host, o.wait.port, r); // throws ERR_SPA_NOT_OPEN when one stayed closed
  if (!o.json) out(line);
  return r.open;
}

/** Send a prebuilt datagram (the SPA and fwknop formats). */
export async function sendBuilt(t: Target, port: number, b: Built): Promise<Built> {
  await sendDatagram(b.bytes, t.address, t.family, port);
  return b;
}
