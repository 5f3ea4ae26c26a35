/**
 * Knock-to-open, side by side: the real `fwknop` client → spa-knockd (nftables and iptables backends) versus the real
 * `fwknop` client → the real `fwknopd` (UDP server mode, iptables), on this machine, in namespaces made here
 * (harness/netns.ts createPair; removed at the end, daemons stopped by PID). Not part of `npm test`.
 *
 *   node --import tsx scripts/fwknop-bench.ts [--n 40] [--json]
 *
 * Method (docs/fwknop.md "Speed"): for each sample the real client builds a fresh packet (`fwknop -T -B`, `-A tcp/22
 * -a ADDR`, ADDR a new address of the client namespace each time, so no sample waits for an earlier grant to expire);
 * a child in the client namespace (scripts/bench/fwknop-child.ts) checks tcp/22 is closed from ADDR, sends the packet
 * and times, with a fresh TCP connect from ADDR every 1 ms, the time from the send to the first connect that succeeds.
 * A closed port drops SYNs in both setups. Timing is client side, so each server's whole path is in the figure.
 * @module
 */
import { BENCH_LIMITS } from './bench/options.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonProcess } from '../harness/daemon-process.js';
import { type FwknopKeyText, fwknopClientToml, fwknopKeyGen, fwknopPacket } from '../harness/fwknop.js';
import { FwknopdProcess } from '../harness/fwknopd.js';
import { type NetnsPair, createPair } from '../harness/netns.js';
import { ROOT } from '../harness/run.js';
import { startRpcChild } from '../harness/stdio-rpc.js';
import type { FwknopBenchOps } from './bench/fwknop-child.js';
import { type Stats, stats } from './bench/stats.js';

const SSH = 22;
const UDP_PORT = 62201;
const argv = process.argv.slice(2);
const N = Number(argv[argv.indexOf('--n') + 1] ?? 40) || 40;
const JSON_OUT = argv.includes('--json');

type Setup = 'spa-knockd nftables' | 'spa-knockd iptables' | 'fwknopd (iptables)';

async function measure(setup: Setup, subnet: number, keys: FwknopKeyText): Promise<{ s: Stats; fails: string[] }> {
  const pair: NetnsPair = await createPair(`fwkb${subnet}`, { subnet });
  const dir = mkdtempSync(join(tmpdir(), 'fwk-bench-'));
  let daemon: DaemonProcess | undefined;
  let fwknopd: FwknopdProcess | undefined;
  const child = await startRpcChild<FwknopBenchOps>(
    [
      ...pair.wrap(pair.cli),
      process.execPath,
      '--import',
      'tsx',
      fileURLToPath(new URL('./bench/fwknop-child.ts', import.meta.url)),
    ],
    { name: 'fwknop-child', cwd: ROOT },
  );
  try {
    const srv = await pair.agent(pair.srv);
    await srv.listenTcp(SSH);
    const addrs = Array.from({ length: N }, (_, i) => `10.251.${subnet}.${10 + i}`);
    for (const a of addrs) await pair.exec(pair.cli, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'vcli']);
    if (setup === 'fwknopd (iptables)') {
      await pair.exec(pair.srv, ['iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(SSH), '-j', 'DROP']);
      fwknopd = new FwknopdProcess(pair.srv, { keys, openPorts: [`tcp/${SSH}`], accessTimeout: 60, verbose: false });
      await fwknopd.start();
    } else {
      const backend = setup === 'spa-knockd nftables' ? 'nftables' : 'iptables';
      const config = join(dir, 'spa-knockd.toml');
      writeFileSync(
        config,
        `state_dir = "${join(dir, 'state')}"\n[firewall]\nbackend = "${backend}"\nprotect = ["tcp/${SSH}"]\n` +
          `[grant]\nduration = 60\n${BENCH_LIMITS}\n${fwknopClientToml({ name: 'fk', keys, open: [`tcp/${SSH}`], extra: [`max_grants = ${N + 1}`] })}`,
        { mode: 0o600 },
      );
      daemon = new DaemonProcess(pair.srv, config);
      await daemon.start();
    }
    const ms: number[] = [];
    const fails: string[] = [];
    for (const from of addrs) {
      const text = fwknopPacket(keys, ['-A', `tcp/${SSH}`, '-a', from], pair.srv4).text;
      const hex = Buffer.from(text, 'latin1').toString('hex');
      const r = await child.call(
        'e2e',
        { hex, host: pair.srv4, udpPort: UDP_PORT, tcpPort: SSH, from, maxMs: 3000 },
        10_000,
      );
      if (r.ok && typeof r.ms === 'number') ms.push(r.ms);
      else fails.push(r.error ?? 'failed');
    }
    return { s: stats(ms), fails };
  } finally {
    await child.close().catch(() => undefined);
    await daemon?.stop('SIGTERM').catch(() => undefined);
    await fwknopd?.stop().catch(() => undefined);
    await pair.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

const keys = fwknopKeyGen();
const results: { setup: Setup; s: Stats; fails: string[] }[] = [];
const setups: [Setup, number][] = [
  ['spa-knockd nftables', 74],
  ['fwknopd (iptables)', 75],
  ['spa-knockd iptables', 76],
];
for (const [setup, subnet] of setups) {
  const r = await measure(setup, subnet, keys);
  results.push({ setup, ...r });
  if (!JSON_OUT) process.stderr.write(`${setup}: done (${r.s.n} samples, ${r.fails.length} failures)\n`);
}
if (JSON_OUT) process.stdout.write(`${JSON.stringify(results)}\n`);
else {
  const f = (x: number) => x.toFixed(2).padStart(8);
  process.stdout.write(`real fwknop client, knock sent → first TCP connect (ms), n = ${N} per setup\n`);
  process.stdout.write(`${'setup'.padEnd(22)}   median      p90      min      max  failures\n`);
  for (const r of results)
    process.stdout.write(
      `${r.setup.padEnd(22)} ${f(r.s.median)} ${f(r.s.p90)} ${f(r.s.min)} ${f(r.s.max)}  ${r.fails.length}${r.fails.length ? ` (${r.fails[0]})` : ''}\n`,
    );
}
