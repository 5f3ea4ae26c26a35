/**
 * Child process in the client namespace for the scale bench (scale.ts): sequential TCP connects from a chosen local
 * address, each timed from `connect()` to the handshake (reset at once, so no TIME_WAIT piles up). One in flight at a
 * time: the figure is the per-connection cost through the server's input hook, with nothing queued.
 * @module
 */
import net from 'node:net';
import { serveStdio } from '../../harness/stdio-rpc.js';

export interface ScaleProbeOps {
  /** `n` connects to host:port from `from`; `ms` of each that completed, `failed` how many did not within timeoutMs. */
  connects: {
    req: { host: string; port: number; from: string; n: number; timeoutMs: number };
    rep: { ms: number[]; failed: number };
  };
}

function once(host: string, port: number, from: string, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const sock = net.connect({ host, port, localAddress: from });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(undefined);
    }, timeoutMs);
    sock.once('connect', () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      clearTimeout(timer);
      sock.resetAndDestroy();
      resolve(ms);
    });
    sock.on('error', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(undefined);
    });
  });
}

serveStdio<ScaleProbeOps>({
  connects: async ({ host, port, from, n, timeoutMs }) => {
    const ms: number[] = [];
    let failed = 0;
    for (let i = 0; i < n; i++) {
      const r = await once(host, port, from, timeoutMs);
      if (r === undefined) failed++;
      else ms.push(r);
    }
    return { ok: true, ms, failed };
  },
});
