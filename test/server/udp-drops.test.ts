/**
 * server/udp-drops.ts: the `drops` column of /proc/net/udp{,6}, on a sample taken from this kernel and on a live
 * socket that really drops (a receiver that never reads, with a tiny buffer).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { ownSocketInodes, parseProcNetUdp, procDropReader } from '../../server/udp-drops.js';

// taken from /proc/net/udp and /proc/net/udp6 on Linux 6.x (a receiver with SO_RCVBUF 4096 sent 200 datagrams)
const SAMPLE_V4 = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
10961: 0100007F:9981 00000000:0000 07 00000000:00001E00 00:00000000 00000000     0        0 124116 2 00000000762b3c85 194      
13693: 00000000:E42D 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 124117 2 0000000038abb497 0        
`;
const SAMPLE_V6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
12340: 00000000000000000000000000000000:9EE4 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 124119 2 000000007b145b64 0
`;

describe('kernel drop counter', () => {
  test('parses the sample: port, inode, drops', () => {
    assert.deepEqual(parseProcNetUdp(SAMPLE_V4), [
      { port: 0x9981, inode: 124116, drops: 194 },
      { port: 0xe42d, inode: 124117, drops: 0 },
    ]);
    assert.deepEqual(parseProcNetUdp(SAMPLE_V6), [{ port: 0x9ee4, inode: 124119, drops: 0 }]);
    assert.deepEqual(parseProcNetUdp('garbage\nmore garbage\n'), []);
  });

  test('the reader sums both files for our sockets on the port; undefined when nothing matches', () => {
    const files: Record<string, string> = { '/proc/net/udp': SAMPLE_V4, '/proc/net/udp6': SAMPLE_V6 };
    const read = procDropReader(
      (p) => files[p] ?? '',
      () => new Set([124116, 124119]),
    );
    assert.equal(read(0x9981), 194);
    assert.equal(read(0x9ee4), 0);
    assert.equal(read(0xe42d), undefined, 'a socket of another process on a port we do not own');
    assert.equal(read(1), undefined);
    const unreadable = procDropReader(() => {
      throw new Error('ENOENT');
    });
    assert.equal(unreadable(0x9981), undefined);
  });

  test('this process: its own UDP socket is found by port and inode in the live /proc files', async () => {
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    try {
      const port = sock.address().port;
      assert.equal(procDropReader()(port), 0);
      const lines = parseProcNetUdp(readFileSync('/proc/net/udp', 'utf8')).filter((l) => l.port === port);
      assert.equal(lines.length, 1);
      assert.ok(ownSocketInodes().has(lines[0]?.inode ?? -1));
    } finally {
      sock.close();
    }
  });

  test('a socket that really drops: the count read from /proc grows', async () => {
    // a receiver that never reads, with the smallest buffer; only its inode is "ours" for the reader
    const py = spawn(
      'python3',
      [
        '-c',
        [
          'import socket,sys',
          's=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)',
          's.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)',
          "s.bind(('127.0.0.1',0))",
          'print(s.getsockname()[1],flush=True)',
          'sys.stdin.read()',
        ].join('\n'),
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    try {
      const [out] = (await once(py.stdout, 'data')) as [Buffer];
      const port = Number(out.toString().trim());
      const inode = parseProcNetUdp(readFileSync('/proc/net/udp', 'utf8')).find((l) => l.port === port)?.inode;
      assert.ok(inode);
      const read = procDropReader(undefined, () => new Set([inode]));
      assert.equal(read(port), 0);
      const tx = createSocket('udp4');
      for (let i = 0; i < 200; i++) await new Promise((r) => tx.send(Buffer.alloc(200), port, '127.0.0.1', r));
      await new Promise((r) => tx.close(() => r(undefined)));
      const drops = read(port) ?? 0;
      assert.ok(drops > 100, `drops: ${drops}`);
    } finally {
      py.kill();
    }
  });
});
