/**
 * The I/O of `npm run bench -- --flood --trace` (flood.ts): tcpdump on the server's veth while the floods run, then
 * the breakdown of the slowest knocks of each flood (flood-trace.ts, the pure part). Also the /proc readings of the
 * flood table: a process's RSS, CPU time and run-queue wait.
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type DaemonMarks, breakdown, breakdownText, parseCapture } from './flood-trace.js';
import { type Scope, sleep } from './lifecycle.js';

export function rssKb(pid: number | undefined): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  } catch {
    return Number.NaN;
  }
}

/** utime + stime of a process, ms (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms: USER_HZ = 100). */
export function cpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** ms the thread PID spent ready to run but waiting for a CPU (second field of /proc/PID/schedstat, ns). */
export function runQueueMs(pid: number | undefined): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** The slowest knocks whose breakdown `--trace` prints, per flood. */
const SLOWEST = 3;

export interface Capture {
  readonly file: string;
  readonly stop: () => Promise<void>;
  /** CLOCK_REALTIME − CLOCK_MONOTONIC, µs (tcpdump stamps the one, the daemon's marks the other). */
  readonly offsetUs: number;
}

/** tcpdump on the server's veth, all but the flood sender's packets and the probe's warm-up port, to a file. */
export async function startCapture(
  scope: Scope,
  ns: string,
  dir: string,
  flooder: string,
  control: number,
): Promise<Capture> {
  const file = join(dir, 'knocks.pcap');
  const filter = `not src host ${flooder} and not port ${control}`;
  const td = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', 'vsrv', '-n', '-U', '-w', file, filter], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stopped = false;
  const exited = new Promise<void>((r) => td.once('exit', () => r()));
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    td.kill('SIGINT'); // by PID; it writes out what it holds
    await Promise.race([exited, sleep(3000)]);
  };
  scope.defer(stop);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    td.stderr?.on('data', (c: Buffer) => {
      err += c.toString();
      if (/listening on/.test(err)) resolve();
    });
    td.once('exit', () => reject(new Error(`tcpdump: ${err.trim()}`)));
  });
  const offsetUs = (performance.timeOrigin + performance.now()) * 1000 - Number(process.hrtime.bigint() / 1000n);
  return { file, stop, offsetUs };
}

/** Stop the capture and break down the SLOWEST slowest knocks of each flood (flood-trace.ts). */
export async function slowestKnocks(
  c: Capture,
  timed: readonly { flood: string; from: string; ms: number }[],
  marksOf: (from: string) => DaemonMarks | undefined,
  ports: { readonly udp: number; readonly tcp: number },
): Promise<Map<string, string[]>> {
  await c.stop();
  const r = spawnSync('tcpdump', ['-n', '-tt', '--nano', '-r', c.file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const wire = parseCapture(r.stdout ?? '', ports.udp, ports.tcp);
  const out = new Map<string, string[]>();
  for (const f of new Set(timed.map((t) => t.flood))) {
    const worst = timed.filter((t) => t.flood === f).sort((a, b) => b.ms - a.ms);
    out.set(
      f,
      worst.slice(0, SLOWEST).map((t) => {
        const b = breakdown(t.from, t.ms, wire.get(t.from), marksOf(t.from), c.offsetUs);
        return b ? breakdownText(b) : `${t.ms.toFixed(2)} ms: not in the capture (${t.from})`;
      }),
    );
  }
  return out;
}
