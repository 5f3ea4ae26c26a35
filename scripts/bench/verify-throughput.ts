/**
 * Part 1: verification throughput, in-process on one core, no sockets. Every packet is built before any timing
 * starts; every verdict is checked; each case's figure is its median round.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SubKeys } from '../../shared/crypto.js';
import { checkInterrupted, progress, type Scope, yieldToLoop } from './lifecycle.js';
import { stats } from './stats.js';
import {
  type BenchVerifier,
  SOURCE,
  buildVerifier,
  junkCodes,
  sealFor,
  strangerKeys,
  validPackets,
} from './verifier.js';

export interface VerifyCase {
  readonly name: string;
  readonly clients: number;
  readonly packetsPerRound: number;
  readonly rounds: number;
  /** Median round: packets per second and microseconds per packet. */
  readonly pps: number;
  readonly usPerPacket: number;
  /** Spread over the rounds (µs/packet). */
  readonly usMin: number;
  readonly usMax: number;
}

export interface ThroughputSizes {
  /** Valid packets per round. */
  readonly valid: number;
  /** Packets per round of the cases rejected before the replay guard. */
  readonly cheap: number;
  readonly rounds: number;
  readonly warmup: number;
}

/** Time one round (ns); every verdict is checked (also keeps the work from being optimised away). */
function timeRound(b: BenchVerifier, packets: readonly Uint8Array[], expect: string): number {
  let wrong = 0;
  const t0 = process.hrtime.bigint();
  for (const p of packets) {
    const v = b.verifier.verify(p, SOURCE, b.now);
    if ((v.ok ? 'ok' : v.code) !== expect) wrong++;
  }
  const ns = Number(process.hrtime.bigint() - t0);
  if (wrong > 0) throw new Error(`verification bench: ${wrong} of ${packets.length} packets did not give "${expect}"`);
  return ns;
}

interface Subject {
  readonly name: string;
  readonly clients: number;
  readonly bench: BenchVerifier;
  /** Round i's packets (valid packets must be fresh every round; all are built before any timing starts). */
  readonly make: (round: number) => Uint8Array[];
}

/**
 * `warmup` untimed then `rounds` timed rounds of `perRound` packets for each subject, alternating between the
 * subjects round by round, so drift (the machine, the heap) hits them alike. Reports each subject's median round.
 */
async function measure(
  subjects: readonly Subject[],
  perRound: number,
  sz: ThroughputSizes,
  expect: string,
): Promise<VerifyCase[]> {
  const total = sz.warmup + sz.rounds;
  const sets = subjects.map((s) => Array.from({ length: total }, (_, i) => s.make(i)));
  const us = subjects.map((): number[] => []);
  for (let i = 0; i < total; i++) {
    subjects.forEach((s, j) => {
      const ns = timeRound(s.bench, sets[j]?.[i] ?? [], expect);
      if (i >= sz.warmup) us[j]?.push(ns / 1000 / perRound);
    });
    await yieldToLoop();
    checkInterrupted();
  }
  return subjects.map((sub, j) => {
    const st = stats(us[j] ?? []);
    return {
      name: sub.name,
      clients: sub.clients,
      packetsPerRound: perRound,
      rounds: sz.rounds,
      pps: 1e6 / st.median,
      usPerPacket: st.median,
      usMin: st.min,
      usMax: st.max,
    };
  });
}

const flipByte = (p: Uint8Array, i: number): Uint8Array => {
  const q = p.slice();
  q[i] = (q[i] ?? 0) ^ 1;
  return q;
};

/** JIT warm-up of every path on a throwaway verifier, so the first case measured is not the one that pays for it. */
async function warmUp(valid: number): Promise<void> {
  progress('verification warm-up');
  const b = buildVerifier(10);
  const good = validPackets(b, 3 * valid);
  const bad = good.slice(0, valid).map((p) => flipByte(p, 40));
  const stranger = strangerKeys();
  const unknown = Array.from({ length: valid }, () => sealFor(stranger, b.now));
  for (let i = 0; i < 2; i++) {
    timeRound(b, good.slice(i * valid, (i + 1) * valid), 'ok');
    timeRound(b, good.slice(0, valid), 'replay');
    timeRound(b, bad, 'mac');
    timeRound(b, unknown, 'unknown-key');
    timeRound(
      b,
      Array.from({ length: valid }, () => randomBytes(40)),
      'size',
    );
    await yieldToLoop();
    checkInterrupted();
  }
}

export async function benchVerification(sz: ThroughputSizes, scope: Scope): Promise<VerifyCase[]> {
  const { valid, cheap } = sz;
  await warmUp(valid);
  progress('verification, 10 and 1000 clients');
  const replayDir = mkdtempSync(join(tmpdir(), 'spak-bench-replay-'));
  scope.defer(() => rmSync(replayDir, { recursive: true, force: true }));
  const strangers = Array.from({ length: 64 }, strangerKeys);
  const per = [10, 1000].map((n) => {
    const b = buildVerifier(n);
    // one fixed set for each stateless case: rejected before the replay guard, so reusable across rounds
    const base = validPackets(b, cheap);
    const tampered = base.map((p) => flipByte(p, 33 + 3)); // one ciphertext byte: the HMAC fails
    const unknown = base.map((_, i) => sealFor(strangers[i % strangers.length] as SubKeys, b.now));
    const short = base.map(() => new Uint8Array(randomBytes(40)));
    const accepted = validPackets(b, valid);
    for (const p of accepted) b.verifier.verify(p, SOURCE, b.now); // from now on they are replays
    return { n, b, tampered, unknown, short, accepted };
  });
  // as the daemon runs it: every accepted packet is also appended to <state_dir>/replay.log with write(2)
  const withLog = buildVerifier(10, { stateDir: replayDir });
  scope.defer(() => withLog.close());
  for (const p of per) scope.defer(() => p.b.close());
  const subjects = (name: string, make: (p: (typeof per)[number]) => Uint8Array[]): Subject[] =>
    per.map((p) => ({ name, clients: p.n, bench: p.b, make: () => make(p) }));
  const out: VerifyCase[] = [];
  const fresh: Subject[] = [
    ...per.map((p) => ({
      name: 'valid (fresh nonce)',
      clients: p.n,
      bench: p.b,
      make: () => validPackets(p.b, valid),
    })),
    { name: 'valid + replay.log write', clients: 10, bench: withLog, make: () => validPackets(withLog, valid) },
  ];
  out.push(...(await measure(fresh, valid, sz, 'ok')));
  out.push(
    ...(await measure(
      subjects('replayed (already accepted)', (p) => p.accepted),
      valid,
      sz,
      'replay',
    )),
  );
  out.push(
    ...(await measure(
      subjects('tampered (MAC fails)', (p) => p.tampered),
      cheap,
      sz,
      'mac',
    )),
  );
  out.push(
    ...(await measure(
      subjects('unknown key id', (p) => p.unknown),
      cheap,
      sz,
      'unknown-key',
    )),
  );
  out.push(
    ...(await measure(
      subjects('wrong size (40 bytes)', (p) => p.short),
      cheap,
      sz,
      'size',
    )),
  );
  // every client with codes = true (window 20): a code-shaped datagram that is no live code costs a Map lookup
  progress('verification, junk one-time codes');
  const junk = junkCodes(cheap);
  const withCodes: Subject[] = [10, 1000].map((n) => {
    const bench = buildVerifier(n, { codes: true });
    scope.defer(() => bench.close());
    return { name: 'junk one-time code (spc1-…)', clients: n, bench, make: () => junk };
  });
  out.push(...(await measure(withCodes, cheap, sz, 'code')));
  return out;
}
