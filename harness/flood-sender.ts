/**
 * A flood sender for the flood tests and benchmarks (issue 9), run inside a test namespace:
 *
 *   ip netns exec NS node --import tsx harness/flood-sender.ts '{"kind":"junk","host":"10.251.120.1","port":62201,
 *     "from":"10.251.120.3","seconds":3,"max":200000}'
 *
 * Kinds: `valid` — distinct valid spak1 knocks of one key (`key`: the key file's text), each with a fresh nonce;
 * `keyid` — junk that carries the key id of a real knock (`sniffed`: that knock as hex) and random bytes after it,
 * so each datagram costs the daemon one HMAC; `junk` — random bytes of a knock's size; for fwknopd, `fwknop-valid` —
 * distinct valid fwknop access requests (shared/fwknop/codec.ts encodePacket, `fwknop`: the key pair) and `b64junk`
 * — random base64 text of an fwknop packet's length (fwknopd's HMAC check runs on each). As fast as one process can
 * go (or at most `rate` per second), bounded by `seconds` and `max` datagrams (never unbounded), from the local address `from`. It sends only to
 * `host`, which the caller must make a namespace address. Prints one JSON line at the end: {sent, errors, seconds}.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { fromHex } from '../shared/bytes.js';
import { deriveKeys } from '../shared/crypto.js';
import { encodePacket } from '../shared/fwknop/codec.js';
import { parseKey } from '../shared/keys.js';
import { sealPacket } from '../shared/wire.js';

export type FloodKind = 'valid' | 'keyid' | 'junk' | 'fwknop-valid' | 'b64junk';

export interface FloodRequest {
  readonly kind: FloodKind;
  readonly host: string;
  readonly port: number;
  readonly from?: string;
  readonly seconds: number;
  readonly max: number;
  /** Datagrams per second at most (default: as fast as it goes). */
  readonly rate?: number;
  /** `valid`: the key, as the key file holds it (spak1_…). */
  readonly key?: string;
  /** `keyid`: a real knock, hex. */
  readonly sniffed?: string;
  /** `fwknop-valid`: an fwknop key pair (KEY_BASE64, HMAC_KEY_BASE64; HMAC-SHA256, fwknop's default). */
  readonly fwknop?: { readonly keyB64: string; readonly hmacB64: string };
  /** Write `flooding` on stderr once the first burst is out (the bench starts timing knocks after it). */
  readonly announce?: boolean;
}

export interface FloodResult {
  readonly sent: number;
  readonly errors: number;
  readonly seconds: number;
}

/** Datagrams sent in one go before yielding to the event loop. */
const BURST = 256;
/** Datagrams the socket may hold queued (kernel buffer full) before the sender waits: bounds its memory. */
const MAX_QUEUED = 1024;

/** Random bytes from a pool refilled when used up (one crypto call per MiB, not per datagram). */
function randomSource(): (n: number) => Buffer {
  const pool = Buffer.alloc(1 << 20);
  let off = pool.length;
  return (n) => {
    if (off + n > pool.length) {
      randomFillSync(pool);
      off = 0;
    }
    const out = Buffer.allocUnsafe(n);
    pool.copy(out, 0, off, off + n);
    off += n;
    return out;
  };
}

function packetMaker(r: FloodRequest): () => Uint8Array {
  const random = randomSource();
  if (r.kind === 'valid') {
    const k = parseKey(r.key ?? '');
    if (!k.ok) throw new Error(`flood-sender: bad key: ${k.reason}`);
    const keys = deriveKeys(k.key); // once: the client derives per knock, a flooder need not
    return () => sealPacket(keys, { type: 'open', accesses: [], duration: 0, timestamp: Date.now() }, random(24));
  }
  if (r.kind === 'keyid') {
    const sniffed = fromHex(r.sniffed ?? '');
    if (sniffed === undefined || sniffed.length < 78) throw new Error('flood-sender: keyid needs a sniffed knock');
    return () => {
      const p = random(sniffed.length);
      p.set(sniffed.subarray(0, 9), 0); // version byte and key id
      return p;
    };
  }
  if (r.kind === 'fwknop-valid') {
    const f = r.fwknop;
    if (!f) throw new Error('flood-sender: fwknop-valid needs the fwknop keys');
    const keys = {
      enc: Buffer.from(f.keyB64, 'base64'),
      hmac: Buffer.from(f.hmacB64, 'base64'),
      digest: 'sha256' as const,
    };
    return () => {
      const rand = String(random(8).readBigUInt64BE() % 10n ** 16n).padStart(16, '0');
      const text = encodePacket(
        { user: 'flood', timestamp: Math.floor(Date.now() / 1000), allowIp: undefined, accesses: TCP22, timeout: 0 },
        keys,
        random(8),
        rand,
      );
      return Buffer.from(text, 'latin1');
    };
  }
  if (r.kind === 'b64junk')
    return () => Buffer.from(random(150).toString('base64').replace(/[+/=]/g, 'A').slice(0, 190), 'latin1');
  return () => random(100);
}

const TCP22 = [{ proto: 'tcp', port: 22 }] as const;

export async function flood(r: FloodRequest): Promise<FloodResult> {
  const make = packetMaker(r);
  const sock = createSocket(isIPv6(r.host) ? 'udp6' : 'udp4');
  await new Promise<void>((res, rej) => {
    sock.once('error', rej);
    sock.bind({ port: 0, ...(r.from ? { address: r.from } : {}) }, () => res());
  });
  let errors = 0;
  sock.on('error', () => errors++);
  const t0 = performance.now();
  const end = t0 + r.seconds * 1000;
  let started = 0;
  let announced = false;
  const pause = () => new Promise((res) => setImmediate(res));
  const nap = () => new Promise((res) => setTimeout(res, 1));
  while (started < r.max && performance.now() < end) {
    const allowed = r.rate ? Math.min(r.max, Math.floor(((performance.now() - t0) / 1000) * r.rate) + 1) : r.max;
    if (started >= allowed) {
      await nap();
      continue;
    }
    for (let i = 0; i < BURST && started < allowed; i++, started++) sock.send(make(), r.port, r.host);
    if (r.announce && !announced) {
      announced = true;
      process.stderr.write('flooding\n');
    }
    await pause();
    while (sock.getSendQueueCount() > MAX_QUEUED && performance.now() < end) await pause();
  }
  while (sock.getSendQueueCount() > 0 && performance.now() < end + 1000) await pause();
  const seconds = (performance.now() - t0) / 1000;
  const unsent = sock.getSendQueueCount();
  await new Promise<void>((res) => sock.close(() => res()));
  return { sent: started - unsent - errors, errors, seconds };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const req = JSON.parse(process.argv[2] ?? '{}') as FloodRequest;
  flood(req).then(
    (res) => process.stdout.write(`${JSON.stringify(res)}\n`),
    (e: unknown) => {
      process.stderr.write(`flood-sender: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
