/**
 * Latency marks on the grant path, for the bench only (`SPAK_TRACE_GRANT=1` in the daemon's environment; off by
 * default, and then every call is one branch). `traceStart` at the socket handler, `traceMark` at each step, and the
 * grant log line carries the marks (µs since the start) as `trace`, and `at`, the start itself (µs of CLOCK_MONOTONIC: the
 * flood bench's `--trace` lines it up with a packet capture). One knock at a time is traced (the bench sends one
 * at a time); overlapping knocks would share the marks.
 * @module
 */
const enabled = process.env['SPAK_TRACE_GRANT'] === '1';
let t0 = 0n;
let marks: Record<string, number> = {};

export function traceStart(): void {
  if (!enabled) return;
  t0 = process.hrtime.bigint();
  marks = { at: Number(t0 / 1000n) };
}

export function traceMark(name: string): void {
  if (enabled) marks[name] = Number(process.hrtime.bigint() - t0) / 1000;
}

/**
 * The marks of the knock traced last, or undefined when tracing is off. With `early` (this knock's marks taken in its
 * own turn): the marks now if no other datagram restarted them since, else `early` (a flood's datagrams do, between a
 * knock's trigger and its log line).
 */
export function traceTake(early?: Record<string, number>): Record<string, number> | undefined {
  if (!enabled) return undefined;
  return early !== undefined && early['at'] !== marks['at'] ? early : { ...marks };
}
