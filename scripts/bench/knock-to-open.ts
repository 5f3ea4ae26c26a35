/**
 * Part 2: knock to open, per firewall backend, for real. A server and a client namespace (harness/netns.ts createPair:
 * names unique per pid), the real spa-knockd in the server namespace (killed by PID), knocks from one long-lived child
 * in the client namespace (knocker-child.ts), real TCP connects. Before the daemon starts, the backend's grant() alone
 * (grant-probe-child.ts) in the server namespace. Traffic only between the two namespaces made here.
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatKey, generateKey } from '../../shared/keys.js';
import { DaemonProcess } from '../../harness/daemon-process.js';
import { createPair, pairNames, removePair } from '../../harness/netns.js';
import { startChild } from './child.js';
import type { GrantProbeOps } from './grant-probe-child.js';
import type { KnockerOps } from './knocker-child.js';
import { Scope, checkInterrupted, progress, sleep } from './lifecycle.js';
import { BENCH_LIMITS, type BackendName, E2E, GAP_MS } from './options.js';
import { type Stats, r3, stats } from './stats.js';

const UDP_PORT = 62201;
const SSH = 22;
/** Not protected: reachable at all times (positive control). */
const CONTROL = 8080;
/** Grant duration, s. */
const DURATION = 3;

export interface GrantAlone {
  readonly backToBack: Stats;
  readonly afterIdle: Stats;
  /** A new address each time, nothing revoked in between. */
  readonly newAddress: Stats;
  /** nftables only: the same through oneshot mode (`nft -f -` per change). */
  readonly oneshot?: Stats;
}

export interface BackendResult {
  readonly backend: BackendName;
  /** latency_ms of the grant lines of the burst. */
  readonly daemon: Stats;
  /** latency_ms of the very first grant (warm-up, excluded above). */
  readonly firstGrantMs: number;
  /** Client side: knock sent → first TCP connect. */
  readonly e2e: Stats;
  /** Connect attempts the client side needed (median). */
  readonly e2eAttempts: number;
  /** latency_ms of the grants of the end-to-end samples. */
  readonly e2eDaemon: Stats;
  /** The backend's grant() alone, in a fresh process in the namespace. */
  readonly fwAlone: GrantAlone;
  readonly rejects: Record<string, number>;
  readonly failures: readonly string[];
  readonly samples: { readonly daemon: number[]; readonly e2e: number[] };
}

export interface KnockSizes {
  readonly knocks: number;
  readonly samples: number;
  readonly fwRuns: number;
}

function daemonConfig(dir: string, backend: BackendName): string {
  return [
    `state_dir = "${join(dir, 'state')}"`,
    `[listen]\nport = ${UDP_PORT}\naddress = "::"`,
    `[firewall]\nbackend = "${backend}"\nprotect = ["tcp/${SSH}"]\ntable = "${backend === 'nftables' ? 'spak_bench' : 'SPAK_BENCH'}"`,
    `[grant]\nduration = ${DURATION}\nmax_duration = 60`,
    BENCH_LIMITS,
    `[replay]\nwindow = 60`,
    `[log]\nreject_summary_interval = 1`,
    `[[client]]\nname = "alice"\nkey_file = "alice.key"\nopen = ["tcp/${SSH}"]`,
    '',
  ].join('\n');
}

export async function benchBackend(backend: BackendName, sz: KnockSizes): Promise<BackendResult> {
  const nft = backend === 'nftables';
  const tag = nft ? 'bench-nft' : 'bench-ipt';
  const subnet = nft ? 41 : 42;
  const scope = new Scope();
  try {
    const names = pairNames(tag);
    progress(`${backend}: namespaces ${names.srv}/-cli (10.251.${subnet}.0/24), daemon, helpers`);
    // by name first: also covers an interruption while createPair is still running
    scope.defer(() => removePair(tag));
    const pair = await createPair(tag, { subnet });
    scope.defer(() => pair.cleanup());
    checkInterrupted();
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(SSH);
    await srv.listenTcp(CONTROL);
    const dir = mkdtempSync(join(tmpdir(), `spak-${tag}-`));
    scope.defer(() => rmSync(dir, { recursive: true, force: true }));

    // the firewall change alone, from a fresh node process in the server namespace (as the daemon runs), before the
    // daemon starts; its own table/chain, removed again; the addresses are never used for traffic
    progress(
      `${backend}: firewall change alone (grant via the backend, ${sz.fwRuns} x back to back, after ${GAP_MS} ms idle, new addresses${nft ? ', oneshot' : ''})`,
    );
    const probe = await startChild<GrantProbeOps>('grant-probe-child.ts', pair.srv);
    scope.defer(() => probe.kill());
    const fwr = await probe.call('fw', { backend, subnet, n: sz.fwRuns, gaps: [0, GAP_MS], oneshot: nft }, 120_000);
    await probe.close();
    if (!fwr.ok || !fwr.samples) throw new Error(`${backend}: firewall probe: ${fwr.error ?? '?'}`);
    const fs = fwr.samples;
    const fwAlone: GrantAlone = {
      backToBack: stats(fs['gap0'] ?? []),
      afterIdle: stats(fs[`gap${GAP_MS}`] ?? []),
      newAddress: stats(fs['new'] ?? []),
      ...(fs['oneshot'] ? { oneshot: stats(fs['oneshot']) } : {}),
    };
    checkInterrupted();

    const keyText = formatKey(generateKey());
    writeFileSync(join(dir, 'alice.key'), `${keyText}\n`, { mode: 0o600 });
    const cfg = join(dir, 'spa-knockd.toml');
    writeFileSync(cfg, daemonConfig(dir, backend), { mode: 0o600 });
    const daemon = new DaemonProcess(pair.srv, cfg);
    scope.defer(async () => {
      await daemon.stop('SIGKILL'); // by PID
    });
    await daemon.start();
    checkInterrupted();
    const knocker = await startChild<KnockerOps>('knocker-child.ts', pair.cli);
    scope.defer(() => knocker.kill());
    const init = await knocker.call('init', { key: keyText, host: pair.srv4, udpPort: UDP_PORT, tcpPort: SSH }, 5000);
    if (!init.ok) throw new Error(`knock helper: ${init.error ?? '?'}`);

    // the gate is really there, and the path is really up
    const control = await knocker.call('probe', { port: CONTROL, timeoutMs: 1000 }, 5000);
    if (!control.ok)
      throw new Error(`${backend}: the unprotected control port ${CONTROL} is not reachable: ${control.error ?? '?'}`);
    const closed = await knocker.call('probe', { port: SSH, timeoutMs: 200 }, 5000);
    if (closed.ok || closed.error !== 'timeout')
      throw new Error(
        `${backend}: tcp/${SSH} is not closed before any knock (${closed.ok ? 'connected' : (closed.error ?? '?')})`,
      );

    const grantAfter = (from: number, timeoutMs = 5000) => daemon.waitFor((l) => l.event === 'grant', timeoutMs, from);
    const revokeAfter = (from: number, timeoutMs = 5000) =>
      daemon.waitFor((l) => l.event === 'revoke', timeoutMs, from);
    const knock = async (type: 'open' | 'close') => {
      const r = await knocker.call('knock', { type }, 5000);
      if (!r.ok) throw new Error(`knock: ${r.error ?? '?'}`);
    };

    // warm-up: the first grant (the nft backend starts its long-lived `nft -i` at install), then closed again
    let mark = daemon.lines.length;
    await knock('open');
    const first = await grantAfter(mark);
    mark = daemon.lines.length;
    await knock('close');
    await revokeAfter(mark);
    checkInterrupted();

    // daemon side: N open knocks, each closed again, GAP_MS between any two packets
    progress(`${backend}: ${sz.knocks} knocks (open, then close), ${GAP_MS} ms apart`);
    mark = daemon.lines.length;
    const burst = await knocker.call('burst', { n: sz.knocks, gapMs: GAP_MS }, sz.knocks * GAP_MS * 4 + 30_000);
    if (!burst.ok) throw new Error(`burst: ${burst.error ?? '?'}`);
    const end = Date.now() + 10_000;
    while (
      (daemon.events('grant', mark).length < sz.knocks || daemon.events('revoke', mark).length < sz.knocks) &&
      Date.now() < end
    )
      await sleep(20);
    const grants = daemon.events('grant', mark);
    const failures: string[] = [];
    if (grants.length < sz.knocks)
      failures.push(`${backend}: only ${grants.length} of ${sz.knocks} burst knocks were granted`);
    const lat = grants.map((l) => Number(l['latency_ms'])).filter((x) => Number.isFinite(x));
    checkInterrupted();

    // client side: knock → first TCP connect, each sample starting from a checked closed port
    progress(`${backend}: ${sz.samples} end-to-end samples (knock → TCP connect)`);
    const e2eMs: number[] = [];
    const e2eAttempts: number[] = [];
    const e2eDaemon: number[] = [];
    for (let i = 0; i < sz.samples; i++) {
      checkInterrupted();
      mark = daemon.lines.length;
      const r = await knocker.call('e2e', E2E, E2E.maxMs + 5000);
      if (!r.ok || r.ms === undefined) {
        failures.push(`${backend}: end-to-end sample ${i}: ${r.error ?? '?'}`);
      } else {
        e2eMs.push(r.ms);
        e2eAttempts.push(r.attempts ?? 0);
      }
      const g = await grantAfter(mark).catch(() => undefined);
      if (g) e2eDaemon.push(Number(g['latency_ms']));
      mark = daemon.lines.length;
      await knock('close');
      await revokeAfter(mark);
    }

    await sleep(1200); // one reject summary interval, so a reject would show
    const rejects: Record<string, number> = {};
    for (const l of daemon.events('rejects')) {
      for (const [k, v] of Object.entries(l['by'] as Record<string, number>)) rejects[k] = (rejects[k] ?? 0) + v;
    }
    const errors = daemon.events('firewall-error');
    if (errors.length > 0) failures.push(`${backend}: ${errors.length} firewall-error log lines`);
    return {
      backend,
      daemon: stats(lat),
      firstGrantMs: Number(first['latency_ms']),
      e2e: stats(e2eMs),
      e2eAttempts: stats(e2eAttempts).median,
      e2eDaemon: stats(e2eDaemon),
      fwAlone,
      rejects,
      failures,
      samples: { daemon: lat.map(r3), e2e: e2eMs.map(r3) },
    };
  } finally {
    await scope.close();
  }
}
