/**
 * Small byte helpers shared by the protocol modules. No I/O.
 * @module
 */

const te = new TextEncoder();

export function utf8(s: string): Uint8Array {
  return te.encode(s);
}

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * Lower-case hex. A loop over the bytes, not a Buffer over `b.buffer`: the daemon's key-id lookup and replay ids run
 * it on every knock, and through the ArrayBuffer the code V8 optimized at the warm-up (on the crypto's arrays) did not
 * fit the socket's (`--trace-deopt`: "wrong map"; server/warmup.ts).
 */
export function toHex(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += HEX[b[i] as number];
  return s;
}

export function fromHex(s: string): Uint8Array | undefined {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) return undefined;
  return new Uint8Array(Buffer.from(s, 'hex'));
}

/** Big-endian unsigned 64-bit write of a non-negative safe integer (timestamps in ms, epochs). */
export function writeU64(out: Uint8Array, off: number, v: number): void {
  const hi = Math.floor(v / 0x1_0000_0000);
  const lo = v >>> 0;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  dv.setUint32(off, hi);
  dv.setUint32(off + 4, lo);
}

/** Big-endian read; returns undefined when the value does not fit a safe integer. */
export function readU64(b: Uint8Array, off: number): number | undefined {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hi = dv.getUint32(off);
  const lo = dv.getUint32(off + 4);
  if (hi > 0x1f_ffff) return undefined;
  return hi * 0x1_0000_0000 + lo;
}

export function u64be(v: number): Uint8Array {
  const b = new Uint8Array(8);
  writeU64(b, 0, v);
  return b;
}
