/**
 * The client's lines on stdout, written at once with write(2) (`fs.writeSync` on fd 1) instead of through
 * `process.stdout`, whose set-up (a stream over a file, a pipe or a terminal) a knock need not pay for (client cold
 * start, docs/benchmarks.md); in order with anything else written to stdout, which is synchronous for files, pipes
 * and terminals on Linux. A closed stdout (EPIPE) is a quiet exit 0, as with shared/cli.ts
 * `exitQuietlyOnClosedStdout`; a stdout that would block (EAGAIN: a full non-blocking pipe) gets the rest through
 * `process.stdout`, which waits for it.
 * @module
 */
import { writeSync } from 'node:fs';
import { exitQuietlyOnClosedStdout } from '../shared/cli.js';

export function writeOut(text: string, fd = 1): void {
  const buf = Buffer.from(text);
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(fd, buf, off);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') process.exit(0);
    if (code !== 'EAGAIN') throw e;
    exitQuietlyOnClosedStdout();
    process.stdout.write(buf.subarray(off));
  }
}
