/**
 * Kernel drops of the knock socket: the `drops` column of /proc/net/udp and /proc/net/udp6 (proc(5)), i.e.
 * datagrams the kernel discarded because the socket's receive buffer was full. The daemon never sees those packets,
 * so this counter is the only trace of them; the reject summary reports how many since the last one.
 * @module
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface UdpSocketLine {
  /** Local port. */
  readonly port: number;
  readonly inode: number;
  readonly drops: number;
}

/**
 * Parse /proc/net/udp or /proc/net/udp6 text. Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when
 * retrnsmt uid timeout inode ref pointer drops. Unparseable lines are skipped.
 */
export function parseProcNetUdp(text: string): UdpSocketLine[] {
  const out: UdpSocketLine[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const local = f[1] ?? '';
    const colon = local.lastIndexOf(':');
    const port = Number.parseInt(local.slice(colon + 1), 16);
    const inode = Number(f[9]);
    const drops = Number(f[12]);
    if (colon < 0 || !Number.isInteger(port) || !Number.isInteger(inode) || !Number.isInteger(drops)) continue;
    out.push({ port, inode, drops });
  }
  return out;
}

/** Inodes of this process's sockets (from /proc/self/fd links `socket:[N]`). */
export function ownSocketInodes(fdDir = '/proc/self/fd'): Set<number> {
  const out = new Set<number>();
  let names: string[] = [];
  try {
    names = readdirSync(fdDir);
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`${fdDir}/${n}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // the fd was closed meanwhile
    }
  }
  return out;
}

export type DropReader = (port: number) => number | undefined;

/**
 * A reader of the total kernel drops of this process's UDP sockets on `port` since they were opened; undefined when
 * /proc cannot be read. `read` and `inodes` are seams for tests.
 */
export function procDropReader(
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
  inodes: () => Set<number> = ownSocketInodes,
): DropReader {
  return (port) => {
    let total = 0;
    let seen = false;
    const own = inodes();
    for (const path of ['/proc/net/udp', '/proc/net/udp6']) {
      let text: string;
      try {
        text = read(path);
      } catch {
        continue;
      }
      for (const s of parseProcNetUdp(text)) {
        if (s.port !== port || (own.size > 0 && !own.has(s.inode))) continue;
        total += s.drops;
        seen = true;
      }
    }
    return seen ? total : undefined;
  };
}
