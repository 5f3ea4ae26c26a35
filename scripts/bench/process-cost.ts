/**
 * What starting a process costs on this machine (it dominates the iptables backend: one iptables-restore per grant),
 * and the versions of the tools measured.
 * @module
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type Stats, stats } from './stats.js';

const execFileP = promisify(execFile);

/** `count` x execFile('true'). Run it first, while the bench process is small: fork cost grows with its memory. */
export async function processStartCost(count: number): Promise<Stats> {
  const ms: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    await execFileP('true');
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return stats(ms);
}

/** First line of `argv`'s output, or 'not available'. */
export async function toolVersion(argv: readonly [string, ...string[]]): Promise<string> {
  try {
    const { stdout } = await execFileP(argv[0], argv.slice(1));
    return stdout.trim().split('\n')[0] ?? '?';
  } catch {
    return 'not available';
  }
}
