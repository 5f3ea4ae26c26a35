/**
 * Random bytes for the packets the client builds (the SPA nonce), from `/dev/urandom` where the system has it: the
 * kernel's CSPRNG (random(4); the source that getrandom(2) and so Node's own crypto draw from). Reading it costs a
 * fresh process ~0.5 ms; loading Node's crypto for `getRandomValues` ~6 ms, a tenth of a knock's whole run (client
 * cold start, docs/benchmarks.md). Where the device is missing or is not a character device (Windows, a bare
 * chroot), or a read fails or comes up short, the bytes come from `node:crypto` `randomFillSync` instead.
 * @module
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/** `n` random bytes; `device` is a seam for tests (a path that is not a random device takes the fallback). */
export function randomBytesFast(n: number, device = '/dev/urandom'): Uint8Array {
  const out = new Uint8Array(n);
  let fd: number | undefined;
  try {
    fd = openSync(device, constants.O_RDONLY | constants.O_NONBLOCK);
    if (fstatSync(fd).isCharacterDevice()) {
      let got = 0;
      while (got < n) {
        const r = readSync(fd, out, got, n - got, null);
        if (r <= 0) break;
        got += r;
      }
      if (got === n) return out;
    }
  } catch {
    // no device: the fallback below
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  (process.getBuiltinModule('node:crypto') as typeof import('node:crypto')).randomFillSync(out);
  return out;
}
