/**
 * `npm run bench -- --flood --trace`: where a slow legitimate knock spent its time. This is the pure part, which joins
 * three clocks' views of one knock; the capture itself and the /proc readings are in flood-capture.ts.
 *
 * - The wire, on the server's veth (tcpdump in the server namespace, the flood sender's address filtered out):
 *   when the knock arrived, when each of the probe's SYNs arrived, when the server's SYN-ACK left.
 * - The daemon (SPAK_TRACE_GRANT=1, server/grant-trace.ts): when its socket handler took the datagram (`at`, µs of
 *   CLOCK_MONOTONIC) and how long after that it sent the kernel fast path's trigger (`triggered`). A datagram that
 *   arrives between the two restarts the marks (one knock at a time is traced): such a trace is left out.
 * - The probe: knock sent → connect seen (the figure of the flood table).
 *
 * tcpdump stamps CLOCK_REALTIME; `offsetUs` (realtime − monotonic, read once by the bench) puts the daemon's marks on
 * the same axis.
 * @module
 */

/** One legitimate knock's packets on the server's veth, seconds (CLOCK_REALTIME). */
export interface WireKnock {
  knock?: number;
  readonly syns: number[];
  synAck?: number;
}

/**
 * Parse `tcpdump -n -tt --nano -r FILE` text: per client address, its knock datagrams to `udpPort`, its SYNs to
 * `tcpPort` and the server's SYN-ACKs to it. The last knock of an address is its knock (each address knocks once).
 */
export function parseCapture(text: string, udpPort: number, tcpPort: number): Map<string, WireKnock> {
  const by = new Map<string, WireKnock>();
  const get = (a: string): WireKnock => {
    let w = by.get(a);
    if (!w) by.set(a, (w = { syns: [] }));
    return w;
  };
  const addr = (hostPort: string): [string, number] => {
    const i = hostPort.lastIndexOf('.');
    return [hostPort.slice(0, i), Number(hostPort.slice(i + 1))];
  };
  for (const line of text.split('\n')) {
    const m = /^(\d+\.\d+) IP (\S+) > (\S+?):? (.*)$/.exec(line);
    if (!m) continue;
    const t = Number(m[1]);
    const [src, sport] = addr(m[2] ?? '');
    const [dst, dport] = addr(m[3] ?? '');
    const rest = m[4] ?? '';
    if (dport === udpPort && rest.startsWith('UDP')) get(src).knock = t;
    else if (dport === tcpPort && rest.includes('Flags [S],')) get(src).syns.push(t);
    else if (sport === tcpPort && rest.includes('Flags [S.]')) {
      const w = get(dst);
      if (w.knock !== undefined && w.synAck === undefined && t > w.knock) w.synAck = t;
    }
  }
  return by;
}

/** Where one knock's time went, ms. */
export interface KnockBreakdown {
  readonly from: string;
  /** The probe's figure: knock sent → connect seen. */
  readonly totalMs: number;
  /** Knock on the wire → the daemon's handler took it (undefined: no clean trace). */
  readonly wakeMs: number | undefined;
  /** The handler → the trigger sent (the port is open then). */
  readonly workMs: number | undefined;
  /** Knock on the wire → the SYN that the server answered. */
  readonly answeredSynMs: number;
  /** The longest time between two of the probe's SYNs (from the knock on), as the server saw them. */
  readonly maxSynGapMs: number;
  /** The server's SYN-ACK → the probe saw the connect (with the knock's own trip to the wire). */
  readonly probeRestMs: number;
}

export interface DaemonMarks {
  /** The handler's start, µs of CLOCK_MONOTONIC. */
  readonly at?: number;
  /** µs after `at`. */
  readonly triggered?: number;
}

export function breakdown(
  from: string,
  totalMs: number,
  w: WireKnock | undefined,
  marks: DaemonMarks | undefined,
  offsetUs: number,
): KnockBreakdown | undefined {
  if (!w || w.knock === undefined || w.synAck === undefined) return undefined;
  const k = w.knock;
  const a = w.synAck;
  const syns = w.syns.filter((t) => t > k && t <= a);
  const answered = syns.at(-1) ?? a;
  let gap = syns.length > 0 ? (syns[0] as number) - k : 0;
  for (let i = 1; i < syns.length; i++) gap = Math.max(gap, (syns[i] as number) - (syns[i - 1] as number));
  let wakeMs: number | undefined;
  let workMs: number | undefined;
  if (marks?.at !== undefined && marks.triggered !== undefined) {
    const handler = (marks.at + offsetUs) / 1e6; // s, realtime
    const trigger = handler + marks.triggered / 1e6;
    // a clean trace: taken after the knock arrived, the trigger before the SYN the server answered
    if (handler >= k && trigger <= answered) {
      wakeMs = (handler - k) * 1e3;
      workMs = marks.triggered / 1e3;
    }
  }
  return {
    from,
    totalMs,
    wakeMs,
    workMs,
    answeredSynMs: (answered - k) * 1e3,
    maxSynGapMs: gap * 1e3,
    probeRestMs: totalMs - (a - k) * 1e3,
  };
}

export function breakdownText(b: KnockBreakdown): string {
  const f = (x: number | undefined) => (x === undefined ? '   -' : x.toFixed(2).padStart(6));
  return `${f(b.totalMs)} ms: daemon woke ${f(b.wakeMs)}, worked ${f(b.workMs)}; answered SYN ${f(b.answeredSynMs)}; probe: longest SYN gap ${f(b.maxSynGapMs)}, SYN-ACK → connect seen ${f(b.probeRestMs)}  (${b.from})`;
}
