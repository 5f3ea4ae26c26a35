/**
 * Child process in the client namespace (knock-to-open.ts starts it): builds knocks with the real client code
 * (client/request.ts buildPacket), sends them with node:dgram and times TCP connects. Timing happens here, so the
 * stdio round trips to the bench process are in no figure.
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { buildPacket } from '../../client/request.js';
import { parseKey } from '../../shared/keys.js';
import { serveStdio } from '../../harness/stdio-rpc.js';
import type { E2eParams } from './options.js';

export interface KnockerOps {
  init: { req: { key: string; host: string; udpPort: number; tcpPort: number }; rep: object };
  knock: { req: { type: 'open' | 'close' }; rep: object };
  /** One TCP connect attempt on a fresh socket. */
  probe: { req: { port: number; timeoutMs: number }; rep: { ms: number } };
  /** n open knocks, each followed gapMs later by a close, gapMs between any two packets. */
  burst: { req: { n: number; gapMs: number }; rep: { sent: number } };
  /** Knock sent → first TCP connect, starting from a checked closed port. */
  e2e: { req: E2eParams; rep: { ms: number; attempts: number } };
}

interface Target {
  readonly key: Uint8Array;
  readonly host: string;
  readonly udpPort: number;
  readonly tcpPort: number;
}

let target: Target | undefined;
const udp = dgram.createSocket('udp4');
const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function mustTarget(): Target {
  if (!target) throw new Error('init first');
  return target;
}

const packet = (t: Target, type: 'open' | 'close'): Uint8Array =>
  buildPacket(t.key, { type, accesses: [{ proto: 'tcp', port: t.tcpPort }], duration: 0 }).bytes;

const send = (t: Target, bytes: Uint8Array): Promise<void> =>
  new Promise((res, rej) => udp.send(bytes, t.udpPort, t.host, (e) => (e ? rej(e) : res())));

type Attempt = { ok: boolean; error?: string; ms: number };

function attempt(host: string, port: number, timeoutMs: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const t0 = now();
    const s = net.connect({ host, port });
    const done = (r: { ok: boolean; error?: string }): void => {
      clearTimeout(t);
      s.destroy();
      resolve({ ...r, ms: now() - t0 });
    };
    const t = setTimeout(() => done({ ok: false, error: 'timeout' }), timeoutMs);
    s.once('connect', () => done({ ok: true }));
    s.once('error', (e: NodeJS.ErrnoException) => done({ ok: false, error: e.code ?? e.message }));
  });
}

/**
 * Check the port is closed, send one open knock, then start a connect attempt on a fresh socket every intervalMs
 * (each given up after attemptTimeoutMs: a SYN dropped before the rule is in would only be retried after 1 s)
 * until one connects. Resolves with the time from the send to that connect.
 */
async function e2e(m: E2eParams): Promise<{ ok: boolean; error?: string; ms: number; attempts: number }> {
  const t = mustTarget();
  const pre = await attempt(t.host, t.tcpPort, m.closedCheckMs);
  if (pre.ok) return { ok: false, error: 'the port was already open before the knock', ms: NaN, attempts: 0 };
  if (pre.error !== 'timeout')
    return {
      ok: false,
      error: `closed-check failed with ${pre.error ?? '?'} (expected a dropped SYN)`,
      ms: NaN,
      attempts: 0,
    };
  const bytes = packet(t, 'open');
  return await new Promise((resolve) => {
    const socks = new Set<net.Socket>();
    let attempts = 0;
    let finished = false;
    let next: NodeJS.Timeout | undefined;
    const finish = (r: { ok: boolean; error?: string; ms: number }): void => {
      if (finished) return;
      finished = true;
      clearTimeout(next);
      for (const s of socks) s.destroy();
      resolve({ ...r, attempts });
    };
    const t0 = now();
    const launch = (): void => {
      if (finished) return;
      if (now() - t0 > m.maxMs || attempts >= m.maxAttempts) {
        finish({ ok: false, error: `no connect within ${m.maxMs} ms`, ms: NaN });
        return;
      }
      attempts++;
      const s = net.connect({ host: t.host, port: t.tcpPort });
      socks.add(s);
      const drop = (): void => {
        clearTimeout(timer);
        socks.delete(s);
        s.destroy();
      };
      const timer = setTimeout(drop, m.attemptTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        finish({ ok: true, ms: now() - t0 });
      });
      s.once('error', drop);
      next = setTimeout(launch, m.intervalMs);
    };
    udp.send(bytes, t.udpPort, t.host, (e) => {
      if (e) finish({ ok: false, error: `send: ${e.message}`, ms: NaN });
    });
    launch();
  });
}

serveStdio<KnockerOps>({
  init: async ({ key, host, udpPort, tcpPort }) => {
    const k = parseKey(key);
    if (!k.ok) return { ok: false, error: k.reason };
    target = { key: k.key, host, udpPort, tcpPort };
    return { ok: true };
  },
  knock: async ({ type }) => {
    const t = mustTarget();
    await send(t, packet(t, type));
    return { ok: true };
  },
  probe: async ({ port, timeoutMs }) => attempt(mustTarget().host, port, timeoutMs),
  burst: async ({ n, gapMs }) => {
    const t = mustTarget();
    let sent = 0;
    for (let i = 0; i < n; i++) {
      await send(t, packet(t, 'open'));
      sent++;
      await sleep(gapMs);
      await send(t, packet(t, 'close'));
      sent++;
      await sleep(gapMs);
    }
    return { ok: true, sent };
  },
  e2e,
});
