/**
 * A stand-in for systemd's notification socket (sd_notify(3)), for the readiness tests. Started by the test as
 *
 *   systemd-socket-activate --datagram -l /tmp/…/notify.sock node --import tsx harness/notify-listener.ts [NS TABLE]
 *
 * so systemd's own tool creates the AF_UNIX datagram socket (Node cannot) and passes it as fd 3. Each datagram read
 * becomes one JSON line on stdout: `{ t, fields }` (t: Date.now(), fields: the KEY=VALUE lines). read(2) takes no
 * ancillary data, so the pipe systemd-notify passes with BARRIER=1 is closed at once and its barrier returns, as with
 * systemd.
 *
 * With NS and TABLE, a READY=1 message freezes the sender's MAINPID (SIGSTOP), lists `nft list table inet TABLE` in
 * namespace NS, then lets it go on (SIGCONT): the line carries `gate: { code, stdout }`, what the firewall held when
 * the daemon said it was ready.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { readSync } from 'node:fs';

const [ns, table] = process.argv.slice(2);
const buf = Buffer.alloc(64 * 1024);
process.stdout.write(`${JSON.stringify({ listening: true })}\n`);
for (;;) {
  let n: number;
  try {
    n = readSync(3, buf, 0, buf.length, null);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10); // a non-blocking fd: poll, gently
      continue;
    }
    throw e;
  }
  const t = Date.now();
  const fields = Object.fromEntries(
    buf
      .subarray(0, n)
      .toString()
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  ) as Record<string, string>;
  let gate: { code: number; stdout: string } | undefined;
  const pid = Number(fields.MAINPID);
  if (fields.READY === '1' && ns && table && pid > 1) {
    process.kill(pid, 'SIGSTOP');
    try {
      const stdout = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'inet', table], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      gate = { code: 0, stdout };
    } catch (e) {
      const err = e as { status?: number; stderr?: string };
      gate = { code: err.status ?? -1, stdout: String(err.stderr ?? '') };
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }
  process.stdout.write(`${JSON.stringify({ t, fields, ...(gate ? { gate } : {}) })}\n`);
}
