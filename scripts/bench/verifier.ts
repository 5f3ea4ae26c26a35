/**
 * A Verifier built as server/daemon.ts builds it (config parsed by server/config.ts, Spak1Format, ReplayGuard, and
 * optionally a real replay.log and one-time codes), and packets for it. Used in-process (verify-throughput.ts) and in a fresh process
 * (cold-verify-child.ts).
 * @module
 */
import { randomBytes } from 'node:crypto';
import { deriveKeys, type SubKeys } from '../../shared/crypto.js';
import { generateKey } from '../../shared/keys.js';
import { ReplayGuard } from '../../shared/replay.js';
import { type KnockRequest, sealPacket } from '../../shared/wire.js';
import { parseConfig } from '../../server/config.js';
import { CodeFloors } from '../../server/code-floor.js';
import { CodeFormat } from '../../server/formats/code.js';
import { Spak1Format } from '../../server/formats/spak1.js';
import { ReplayFile } from '../../server/replay-file.js';
import { Verifier } from '../../server/verify.js';
import { configText } from '../../harness/config.js';

/** The packets' source address (documentation range, RFC 5737; no packet is sent). */
export const SOURCE = '203.0.113.9';
const ACCESS = [{ proto: 'tcp', port: 22 }] as const;

export interface BenchVerifier {
  readonly verifier: Verifier;
  readonly keys: readonly SubKeys[];
  /** The clock every packet is sealed and verified with. */
  readonly now: number;
  readonly close: () => void;
}

export interface BuildOptions {
  /** With a state directory: a real ReplayFile, every accepted packet appended to replay.log. */
  readonly stateDir?: string;
  /** Build the key-id index (3 epochs x n clients HMACs) now, so no timed packet pays for it. Default true. */
  readonly prime?: boolean;
  /** Every client also takes one-time codes (`codes = true`, the default window; server/formats/code.ts). */
  readonly codes?: boolean;
}

/** A verifier for `n` clients with random keys. */
export function buildVerifier(n: number, opts: BuildOptions = {}): BenchVerifier {
  const clients = Array.from({ length: n }, (_, i) => ({
    name: `client${i}`,
    key: generateKey(),
    open: ['tcp/22'],
    ...(opts.codes ? { codes: true } : {}),
  }));
  const { stateDir } = opts;
  const config = parseConfig(
    configText({ protect: ['tcp/22'], duration: 30, clients, ...(stateDir ? { stateDir } : {}) }),
    'bench.toml',
  );
  const now = Date.now();
  const windowMs = config.replay.window * 1000;
  const rf = stateDir ? new ReplayFile(config.stateDir) : undefined;
  const replay = new ReplayGuard({
    windowMs,
    initial: rf ? rf.load(now) : [],
    ...(rf ? { persist: rf } : {}),
  });
  const verifier = new Verifier({
    formats: [
      new Spak1Format(config.clients, windowMs),
      ...(opts.codes ? [new CodeFormat(config.clients, new CodeFloors())] : []),
    ],
    replay,
    defaultDuration: config.grant.duration,
  });
  if (opts.prime ?? true) verifier.verify(new Uint8Array(81).fill(1), SOURCE, now);
  return { verifier, keys: config.clients.map((c) => deriveKeys(c.key)), now, close: () => rf?.close() };
}

/** One valid open packet for tcp/22 sealed at `now`, with a fresh random nonce. */
export function sealFor(keys: SubKeys, now: number): Uint8Array {
  const req: KnockRequest = { type: 'open', timestamp: now, accesses: ACCESS, duration: 0 };
  return sealPacket(keys, req, randomBytes(24));
}

/** `count` valid packets with fresh nonces, spread over all the clients. */
export function validPackets(b: BenchVerifier, count: number): Uint8Array[] {
  const n = b.keys.length;
  return Array.from({ length: count }, (_, i) => sealFor(b.keys[(i * 7919) % n] as SubKeys, b.now));
}

/** `count` datagrams shaped like one-time codes (prefix, 24 random base32 characters) that are no client's code. */
export function junkCodes(count: number): Uint8Array[] {
  const b32 = 'abcdefghijklmnopqrstuvwxyz234567';
  return Array.from({ length: count }, () => {
    const body = Array.from(randomBytes(24), (x) => b32[x & 31]).join('');
    return new Uint8Array(Buffer.from(`spc1-${body}`, 'latin1'));
  });
}

/** A fresh key the verifiers do not know. */
export const strangerKeys = (): SubKeys => deriveKeys(generateKey());
