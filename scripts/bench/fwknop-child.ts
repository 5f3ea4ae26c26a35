/**
 * Child process in the client namespace for scripts/fwknop-bench.ts: sends one packet built by the real fwknop client
 * and times knock sent → first TCP connect that succeeds, from a given local address (the packet's `-a` address).
 * Same probing as knocker-child.ts: a fresh connect every 1 ms, each given up after 3 ms (a closed port drops SYNs).
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { serveStdio } from '../../harness/stdio-rpc.js';

export interface FwknopBenchOps {
  e2e: {
    req: { hex: string; host: string; udpPort: number; tcpPort: number; from: string; maxMs: number };
    rep: { ms: number; attempts: number };
  };
}

const udp = dgram.createSocket('udp4');
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

function closedCheck(host: string, port: number, from: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, localAddress: from });
    const t = setTimeout(() => {
      s.destroy();
      resolve(true);
    }, 60);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(false);
    });
    s.once('error', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

serveStdio<FwknopBenchOps>({
  e2e: async ({ hex, host, udpPort, tcpPort, from, maxMs }) => {
    if (!(await closedCheck(host, tcpPort, from)))
      return { ok: false, error: 'open before the knock', ms: Number.NaN, attempts: 0 };
    return await new Promise((resolve) => {
      const socks = new Set<net.Socket>();
      let attempts = 0;
      let done = false;
      let next: NodeJS.Timeout | undefined;
      const finish = (r: { ok: boolean; error?: string; ms: number }) => {
        if (done) return;
        done = true;
        clearTimeout(next);
        for (const s of socks) s.destroy();
        resolve({ ...r, attempts });
      };
      const t0 = now();
      const launch = () => {
        if (done) return;
        if (now() - t0 > maxMs) return finish({ ok: false, error: `no connect within ${maxMs} ms`, ms: NaN });
        attempts++;
        const s = net.connect({ host, port: tcpPort, localAddress: from });
        socks.add(s);
        const drop = () => {
          clearTimeout(timer);
          socks.delete(s);
          s.destroy();
        };
        const timer = setTimeout(drop, 3);
        s.once('connect', () => finish({ ok: true, ms: now() - t0 }));
        s.once('error', drop);
        next = setTimeout(launch, 1);
      };
      udp.send(Buffer.from(hex, 'hex'), udpPort, host, (e) => {
        if (e) finish({ ok: false, error: `send: ${e.message}`, ms: NaN });
      });
      launch();
    });
  },
});
