/**
 * The knock-to-open probe at the floor (scripts/bench/floor.ts starts one per setup, in the setup's client
 * namespace). One sample: check tcp/PORT is closed from the sample's own source address, send the knock datagram(s)
 * from that address, then open a fresh TCP connect from it every `intervalMs` (≤ 0.2 ms) until one completes; the
 * figure is send → first completed connect. Between attempts the probe sleeps in a futex nap (`Atomics.wait`), not a
 * busy loop, so it does not take a core from the server under test; after each attempt it yields one event-loop turn
 * (`setImmediate`) so libuv issues the connect and reports completions. Each attempt is dropped after
 * `attemptTimeoutMs` (a dropped SYN would only be retried after 1 s). Timing happens here, so no stdio round trip to
 * the bench process is in any figure. Sockets and the source address are warmed first (`warm`: connects to an open
 * control port, so the server's neighbour entry for the address exists and the connect path is JIT-compiled).
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { serveStdio } from '../../harness/stdio-rpc.js';

export interface ProbeDatagram {
  readonly hex: string;
  readonly port: number;
}

export interface ProbeSample {
  readonly host: string;
  readonly tcpPort: number;
  /** The sample's own source address (the grant is for it). */
  readonly from: string;
  /** Sent back to back, in order (one for SPA, three for a knockd sequence). */
  readonly datagrams: readonly ProbeDatagram[];
  /** A new connect attempt this often (ms, ≤ 0.2 at the floor). */
  readonly intervalMs: number;
  /** Each attempt dropped after this long (ms). */
  readonly attemptTimeoutMs: number;
  /** Give up after this long (ms). */
  readonly maxMs: number;
  /** Before the knock, a connect from `from` must not complete within this long (ms); 0: skip (port open). */
  readonly closedCheckMs: number;
}

export interface FloorProbeOps {
  /** `n` connects from each address to the open control port (warms sockets, JIT and neighbour entries). */
  warm: { req: { host: string; port: number; from: readonly string[]; n: number }; rep: { connects: number } };
  sample: { req: ProbeSample; rep: { ms: number; attempts: number } };
}

const now = (): number => Number(process.hrtime.bigint()) / 1e6;
const napCell = new Int32Array(new SharedArrayBuffer(4));
/** Sleep in the kernel (futex), not in a spin. */
const nap = (ms: number): void => {
  if (ms > 0) Atomics.wait(napCell, 0, 0, ms);
};
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function connectOnce(host: string, port: number, from: string, timeoutMs: number): Promise<'connect' | string> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, localAddress: from });
    const done = (r: string): void => {
      clearTimeout(t);
      s.destroy();
      resolve(r);
    };
    const t = setTimeout(() => done('timeout'), timeoutMs);
    s.once('connect', () => done('connect'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

function bindUdp(from: string): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const u = dgram.createSocket('udp4');
    u.once('error', reject);
    u.bind({ address: from, port: 0 }, () => {
      u.off('error', reject);
      u.on('error', () => undefined); // ICMP errors for a datagram nobody listens to (the "port open" setup)
      resolve(u);
    });
  });
}

async function sample(p: ProbeSample): Promise<{ ok: boolean; error?: string; ms: number; attempts: number }> {
  const udp = await bindUdp(p.from);
  try {
    if (p.closedCheckMs > 0) {
      const pre = await connectOnce(p.host, p.tcpPort, p.from, p.closedCheckMs);
      if (pre !== 'timeout')
        return { ok: false, error: `tcp/${p.tcpPort} not closed before the knock (${pre})`, ms: NaN, attempts: 0 };
    }
    const packets = p.datagrams.map((d) => ({ bytes: Buffer.from(d.hex, 'hex'), port: d.port }));
    const live: { s: net.Socket; at: number }[] = [];
    let doneAt: number | undefined;
    let attempts = 0;
    const t0 = now();
    for (const d of packets) udp.send(d.bytes, d.port, p.host);
    let due = t0;
    try {
      while (doneAt === undefined) {
        const t = now();
        if (t - t0 > p.maxMs) return { ok: false, error: `no connect within ${p.maxMs} ms`, ms: NaN, attempts };
        while (live.length > 0 && t - (live[0]?.at ?? t) > p.attemptTimeoutMs) live.shift()?.s.destroy();
        attempts++;
        const s = net.connect({ host: p.host, port: p.tcpPort, localAddress: p.from });
        s.once('connect', () => {
          doneAt ??= now();
        });
        s.on('error', () => undefined);
        live.push({ s, at: t });
        await turn(); // the connect is issued (nextTick) and completions are read (poll with timeout 0)
        due += p.intervalMs;
        if (doneAt === undefined) nap(due - now());
      }
      return { ok: true, ms: doneAt - t0, attempts };
    } finally {
      for (const l of live) l.s.destroy();
    }
  } finally {
    udp.close();
  }
}

serveStdio<FloorProbeOps>({
  warm: async ({ host, port, from, n }) => {
    let connects = 0;
    for (const f of from) {
      for (let i = 0; i < n; i++) {
        const r = await connectOnce(host, port, f, 1000);
        if (r !== 'connect') return { ok: false, error: `warm-up connect from ${f} to ${port}: ${r}`, connects };
        connects++;
      }
    }
    return { ok: true, connects };
  },
  sample: async (p) => {
    const r = await sample(p);
    // started with --expose-gc (flood.ts): collect this sample's garbage now, between samples, so that no collection
    // pauses the probe inside the next one's timing
    (globalThis as { gc?: () => void }).gc?.();
    return r;
  },
});
