/**
 * The netns agent: a long-lived node process inside a test namespace (`ip netns exec NS node --import tsx
 * harness/agent.ts`), driven over stdio by harness/netns.ts (JSON lines, harness/stdio-rpc.ts). It serves and probes
 * TCP/UDP from inside the namespace, so a test needs no process per connect.
 *
 * Run as a file only; harness/netns.ts imports its types alone (`import type`).
 * @module
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { type RpcReply, serveStdio } from './stdio-rpc.js';

/** `from`: the local address to send or connect from (one of the namespace's own addresses). */
export interface AgentOps {
  /** TCP echo server on [::]:port (dual stack). */
  listenTcp: { req: { port: number }; rep: object };
  /** UDP echo server on [::]:port (dual stack). */
  listenUdp: { req: { port: number }; rep: object };
  /** Connect and one echo round trip; `ms` from the start to the echo or the failure. */
  tcpConnect: { req: { host: string; port: number; timeoutMs: number; from?: string }; rep: { ms: number } };
  /** One datagram and its echo. */
  udpProbe: { req: { host: string; port: number; timeoutMs: number }; rep: { ms: number } };
  /** Connect, one echo, and keep the connection under `handle`. */
  hold: { req: { host: string; port: number; timeoutMs: number }; rep: { ms: number; handle: number } };
  ping: { req: { handle: number; timeoutMs: number }; rep: { ms: number } };
  release: { req: { handle: number }; rep: object };
  /** Send the bytes `hex` as one UDP datagram (no reply expected); resolves once the kernel took it. */
  udpSend: { req: { host: string; port: number; hex: string; from?: string }; rep: object };
}

type Outcome = RpcReply;

const held = new Map<number, net.Socket>();
let nextHandle = 1;

const errCode = (e: unknown): string => {
  const err = e as NodeJS.ErrnoException;
  return err.code ?? err.message;
};

function echoOnce(sock: net.Socket, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const token = `ping-${Math.random().toString(36).slice(2)}\n`;
    let buf = '';
    const done = (r: Outcome): void => {
      clearTimeout(t);
      sock.off('data', onData).off('error', onErr).off('close', onClose);
      resolve(r);
    };
    const onData = (d: Buffer): void => {
      buf += d.toString();
      if (buf.includes(token)) done({ ok: true });
    };
    const onErr = (e: Error): void => done({ ok: false, error: errCode(e) });
    const onClose = (): void => done({ ok: false, error: 'closed' });
    const t = setTimeout(() => done({ ok: false, error: 'timeout' }), timeoutMs);
    sock.on('data', onData).on('error', onErr).on('close', onClose);
    sock.write(token);
  });
}

type Connected = { ok: true; sock: net.Socket } | { ok: false; error: string };

function connect(host: string, port: number, timeoutMs: number, from?: string): Promise<Connected> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port, ...(from !== undefined ? { localAddress: from } : {}) });
    sock.on('error', () => undefined);
    const t = setTimeout(() => {
      sock.destroy();
      resolve({ ok: false, error: 'timeout' });
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(t);
      resolve({ ok: true, sock });
    });
    sock.once('error', (e) => {
      clearTimeout(t);
      sock.destroy();
      resolve({ ok: false, error: errCode(e) });
    });
  });
}

function timer(): () => number {
  const t0 = performance.now();
  return () => Math.round((performance.now() - t0) * 10) / 10;
}

function udpSocket(host: string): dgram.Socket {
  return dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
}

serveStdio<AgentOps>({
  listenTcp: async ({ port }) => {
    const srv = net.createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((res, rej) => {
      srv.once('error', rej);
      srv.listen({ port, host: '::', ipv6Only: false }, res);
    });
    return { ok: true };
  },
  listenUdp: async ({ port }) => {
    const s = dgram.createSocket({ type: 'udp6', ipv6Only: false });
    s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind(port, '::', res);
    });
    return { ok: true };
  },
  tcpConnect: async ({ host, port, timeoutMs, from }) => {
    const ms = timer();
    const c = await connect(host, port, timeoutMs, from);
    if (!c.ok) return { ok: false, error: c.error, ms: ms() };
    const r = await echoOnce(c.sock, timeoutMs);
    c.sock.destroy();
    return { ...r, ms: ms() };
  },
  udpProbe: async ({ host, port, timeoutMs }) => {
    const ms = timer();
    const s = udpSocket(host);
    const r = await new Promise<Outcome>((resolve) => {
      const token = Buffer.from(`ping-${Math.random().toString(36).slice(2)}`);
      const t = setTimeout(() => resolve({ ok: false, error: 'timeout' }), timeoutMs);
      s.on('message', (msg) => {
        if (!msg.equals(token)) return;
        clearTimeout(t);
        resolve({ ok: true });
      });
      s.on('error', (e) => {
        clearTimeout(t);
        resolve({ ok: false, error: errCode(e) });
      });
      s.send(token, port, host);
    });
    s.close();
    return { ...r, ms: ms() };
  },
  hold: async ({ host, port, timeoutMs }) => {
    const ms = timer();
    const c = await connect(host, port, timeoutMs);
    if (!c.ok) return { ok: false, error: c.error, ms: ms(), handle: 0 };
    const r = await echoOnce(c.sock, timeoutMs);
    if (!r.ok) {
      c.sock.destroy();
      return { ...r, ms: ms(), handle: 0 };
    }
    const handle = nextHandle++;
    held.set(handle, c.sock);
    return { ok: true, handle, ms: ms() };
  },
  ping: async ({ handle, timeoutMs }) => {
    const ms = timer();
    const s = held.get(handle);
    if (!s) return { ok: false, error: 'no such handle', ms: 0 };
    return { ...(await echoOnce(s, timeoutMs)), ms: ms() };
  },
  release: async ({ handle }) => {
    held.get(handle)?.destroy();
    held.delete(handle);
    return { ok: true };
  },
  udpSend: async ({ host, port, hex, from }) => {
    if (!/^(?:[0-9a-f]{2})+$/i.test(hex)) return { ok: false, error: 'hex: not an even number of hex digits' };
    const s = udpSocket(host);
    try {
      if (from !== undefined)
        await new Promise<void>((res, rej) => {
          s.once('error', rej);
          s.bind(0, from, res);
        });
      await new Promise<void>((res, rej) => s.send(Buffer.from(hex, 'hex'), port, host, (e) => (e ? rej(e) : res())));
      return { ok: true };
    } catch (e) {
      return { ok: false, error: errCode(e) };
    } finally {
      s.close();
    }
  },
});
