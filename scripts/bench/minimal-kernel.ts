/**
 * The floor, part 2 (docs/benchmarks.md): the kernel adds the element itself, no transaction. A UDP message on 62201
 * → an empty datagram from port 62202 to (its source address, port 22); the `output` rule
 * `meta skuid 0 udp sport 62202 add @g4 { ip daddr . udp dport timeout 30s } drop` turns it into a set element and
 * drops it (the send fails with EPERM; nothing leaves). Run inside a namespace by scripts/bench/floor.ts.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';

const rules = `table inet minik {
  set g4 { type ipv4_addr . inet_service; flags dynamic, timeout; }
  chain out { type filter hook output priority filter - 10; meta skuid 0 udp sport 62202 add @g4 { ip daddr . udp dport timeout 30s } drop; }
  chain in { type filter hook input priority filter - 10; ip saddr . tcp dport @g4 accept; tcp dport 22 drop; }
}\n`;
const r = spawnSync('nft', ['-f', '-'], { input: rules, stdio: ['pipe', 'inherit', 'inherit'] });
if (r.status !== 0) process.exit(1);
const out = createSocket('udp4');
out.on('error', () => undefined);
const sock = createSocket('udp4');
sock.on('message', (_m, src) => out.send(Buffer.alloc(0), 22, src.address, () => undefined)); // EPERM: by design
out.bind(62202, () => sock.bind(62201, () => process.stdout.write('ready\n')));
