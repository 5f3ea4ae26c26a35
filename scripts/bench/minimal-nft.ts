/**
 * The floor, part 1 (docs/benchmarks.md): the least a knock daemon can do on nftables. A UDP message on 62201 →
 * `add element … timeout 2s` for its source address, written to one long-lived `nft -i`. No verification, no
 * confirmation read. The table is installed (`nft -f -`) before `ready` is printed. Run inside a namespace by
 * scripts/bench/floor.ts: `node --import tsx minimal-nft.ts`.
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';

const rules = `table inet mini {
  set g4 { type ipv4_addr . inet_service; flags timeout; }
  chain in { type filter hook input priority filter - 10; ip saddr . tcp dport @g4 accept; tcp dport 22 drop; }
}\n`;
if (spawnSync('nft', ['-f', '-'], { input: rules, stdio: ['pipe', 'inherit', 'inherit'] }).status !== 0)
  process.exit(1);
const nft = spawn('nft', ['-i'], { stdio: ['pipe', 'ignore', 'inherit'], env: { ...process.env, HOME: '/dev/null' } });
const sock = createSocket('udp4');
sock.on('message', (_m, r) => nft.stdin.write(`add element inet mini g4 { ${r.address} . 22 timeout 2s }\n`));
sock.bind(62201, () => process.stdout.write('ready\n'));
