/**
 * One-time codes on the server (docs/codes.md): the verifier with the code format next to spak1 (each code once,
 * look-ahead and the floor, policy, fail closed), the cost of junk (counted HMACs), the floor file, the config keys,
 * and the whole receive path in-process (Daemon with a fake clock and firewall) across a restart of the floor store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { buildPacket } from '../../client/request.js';
import { configText, keyOf } from '../../harness/config.js';
import { CodeFloorFile, CodeFloors, openCodeFloors } from '../../server/code-floor.js';
import { parseConfig } from '../../server/config.js';
import { Daemon } from '../../server/daemon.js';
import { verifierFor } from '../../server/daemon-parts.js';
import { FakeBackend } from '../../server/firewall/fake.js';
import { CodeFormat } from '../../server/formats/code.js';
import type { openUdpListener } from '../../server/listener.js';
import { SpaError } from '../../shared/errors.js';
import { codeFloorId, codeKeyOf, codeText } from '../../shared/codes.js';
import { formatKey } from '../../shared/keys.js';
import { ReplayGuard } from '../../shared/replay.js';
import { FakeClock } from '../helpers/clock.js';
import { logSink } from '../helpers/logsink.js';

const stateRoot = mkdtempSync(join(tmpdir(), 'spak-codes-'));
after(() => rmSync(stateRoot, { recursive: true, force: true }));

const ALICE = keyOf(1);
const BOB = keyOf(2);
const CAROL = keyOf(3);
const T0 = Date.UTC(2026, 10, 27, 12, 0, 30);
const SRC = '203.0.113.9';
const enc = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const code = (key: Uint8Array, c: number) => enc(codeText(codeKeyOf(key), c));
const floorIdOf = (key: Uint8Array) => codeFloorId(codeKeyOf(key));

/** alice takes codes (window 5), bob takes codes from 192.0.2.0/24 only, carol does not take codes. */
function configWith(stateDir = '/tmp/spak-codes-unused', window = 5) {
  return parseConfig(
    [
      configText({
        stateDir,
        protect: ['tcp/22', 'tcp/443'],
        duration: 30,
        maxDuration: 120,
        clients: [{ name: 'carol', key: CAROL, open: ['tcp/22'] }],
      }),
      '[[client]]',
      'name = "alice"',
      `key = "${formatKey(ALICE)}"`,
      'open = ["tcp/22", "tcp/443"]',
      'codes = true',
      `codes_window = ${window}`,
      'max_duration = 10',
      '[[client]]',
      'name = "bob"',
      `key = "${formatKey(BOB)}"`,
      'open = ["tcp/443"]',
      'sources = ["192.0.2.0/24"]',
      'codes = true',
      '',
    ].join('\n'),
    'test.toml',
  );
}

function verifier(floors = new CodeFloors(), config = configWith()) {
  return verifierFor(config, new ReplayGuard({ windowMs: 60_000 }), new Set(), floors);
}

const reason = (v: { ok: boolean; code?: string }) => (v.ok ? 'ok' : v.code);

describe('one-time codes: the verifier', () => {
  test("a code opens all the client's accesses for the source, the default duration capped by max_duration", () => {
    const v = verifier().verify(code(ALICE, 0), SRC, T0);
    assert.ok(v.ok, JSON.stringify(v));
    assert.equal(v.oneTimeCode, 0, "the code's number, for the log");
    assert.deepEqual(v.decision, {
      client: 'alice',
      type: 'open',
      family: 4,
      address: SRC,
      source: SRC,
      accesses: [
        { proto: 'tcp', port: 22 },
        { proto: 'tcp', port: 443 },
      ],
      duration: 10,
    });
  });

  test('each code is accepted once; again it is code-used, also sent in another case or with a newline', () => {
    const v = verifier();
    for (let c = 0; c < 12; c++) {
      assert.equal(reason(v.verify(code(ALICE, c), SRC, T0)), 'ok', `code ${c}`);
      const t = codeText(codeKeyOf(ALICE), c);
      for (const again of [t, t.toUpperCase(), `${t}\n`, `${t}\r\n`])
        assert.equal(reason(v.verify(enc(again), SRC, T0 + 1000)), 'code-used', `code ${c} again`);
    }
  });

  test('look-ahead: a code up to window − 1 ahead of the floor is accepted, and every lower one dies', () => {
    const v = verifier();
    assert.equal(reason(v.verify(code(ALICE, 5), SRC, T0)), 'code', 'window 5 at floor 0: code 5 is beyond');
    assert.equal(reason(v.verify(code(ALICE, 4), SRC, T0)), 'ok', 'code 4 is the last of the window');
    for (let c = 0; c < 4; c++) assert.equal(reason(v.verify(code(ALICE, c), SRC, T0)), 'code-used', `code ${c}`);
    assert.equal(reason(v.verify(code(ALICE, 10), SRC, T0)), 'code', 'floor 5: code 10 is beyond');
    assert.equal(reason(v.verify(code(ALICE, 9), SRC, T0)), 'ok');
    assert.equal(reason(v.verify(code(ALICE, 10), SRC, T0)), 'ok', 'the next one after a skip');
    // far below the floor: no longer indexed at all
    assert.equal(reason(v.verify(code(ALICE, 0), SRC, T0)), 'code');
  });

  test('clients are independent; a client without codes = true has none; spak1 packets still verify', () => {
    const v = verifier();
    assert.equal(reason(v.verify(code(ALICE, 3), SRC, T0)), 'ok');
    assert.equal(reason(v.verify(code(BOB, 0), '192.0.2.7', T0)), 'ok', "alice's floor is not bob's");
    assert.equal(reason(v.verify(code(CAROL, 0), SRC, T0)), 'code');
    const pkt = buildPacket(CAROL, { type: 'open', accesses: [], duration: 0 }, T0).bytes;
    assert.equal(reason(v.verify(pkt, SRC, T0)), 'ok');
    assert.equal(reason(v.verify(pkt, SRC, T0)), 'replay');
  });

  test('sources and address apply; a refused code is not used up', () => {
    const floors = new CodeFloors();
    const v = verifier(floors);
    assert.equal(reason(v.verify(code(BOB, 0), SRC, T0)), 'source');
    assert.equal(reason(v.verify(code(ALICE, 0), '0.0.0.0', T0)), 'address');
    assert.equal(floors.get(floorIdOf(BOB)), 0);
    assert.equal(floors.get(floorIdOf(ALICE)), 0);
    assert.equal(reason(v.verify(code(BOB, 0), '192.0.2.7', T0)), 'ok');
    assert.equal(reason(v.verify(code(ALICE, 0), SRC, T0)), 'ok');
  });

  test('the floor cannot be written: state-write, no floor raised, and the code works once writes work again', () => {
    let failing = true;
    const written: [string, number][] = [];
    const floors = new CodeFloors(new Map(), (id, f) => {
      if (failing) throw new SpaError('ERR_SPA_STATE_DIR', 'cannot write code-floors.log: no space left on the device');
      written.push([id, f]);
    });
    const v = verifier(floors);
    const r = v.verify(code(ALICE, 2), SRC, T0);
    assert.equal(reason(r), 'state-write');
    assert.equal(floors.get(floorIdOf(ALICE)), 0);
    failing = false;
    assert.equal(reason(v.verify(code(ALICE, 2), SRC, T0)), 'ok');
    assert.deepEqual(written, [[floorIdOf(ALICE), 3]]);
    assert.equal(reason(v.verify(code(ALICE, 2), SRC, T0)), 'code-used');
  });

  test('the time does not matter: a code is good days later, and the clock going back changes nothing', () => {
    const v = verifier();
    assert.equal(reason(v.verify(code(ALICE, 0), SRC, T0 + 30 * 86_400_000)), 'ok');
    assert.equal(reason(v.verify(code(ALICE, 0), SRC, T0 - 86_400_000)), 'code-used');
  });

  test('without a code client, code-sized datagrams are `size` (the format is not loaded)', () => {
    const c = parseConfig(configText({ clients: [{ name: 'carol', key: CAROL, open: ['tcp/22'] }] }), 't.toml');
    const v = verifier(new CodeFloors(), c);
    assert.equal(reason(v.verify(code(CAROL, 0), SRC, T0)), 'size');
  });
});

describe('one-time codes: the cost of junk', () => {
  test('junk shaped like a code computes no HMAC; only an accepted code computes the newly reached codes', () => {
    const f = new CodeFormat(configWith(undefined, 20).clients, new CodeFloors());
    // alice (20) and bob (default 20), floor 0: counters 0 … 19 each
    assert.equal(f.computed, 40);
    const real = codeText(codeKeyOf(ALICE), 7);
    const junk: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const body = Array.from(randomBytes(24), (b) => 'abcdefghijklmnopqrstuvwxyz234567'[b & 31]).join('');
      junk.push(enc(`spc1-${body}`));
    }
    // near misses: the real code with one character changed (same Map key for changes after the 8th character)
    for (let i = 5; i < 29; i++) {
      const ch = real[i] === 'a' ? 'b' : 'a';
      junk.push(enc(real.slice(0, i) + ch + real.slice(i + 1)));
    }
    for (const j of junk) {
      const r = f.authenticate(j, T0);
      assert.equal(r.ok, false);
      assert.equal((r as { code: string }).code, 'code');
    }
    assert.equal(f.computed, 40, 'no HMAC for junk');
    const hit = f.authenticate(enc(real), T0);
    assert.ok(hit.ok);
    assert.equal(f.computed, 40, 'finding a code computes nothing');
    hit.value.consume?.();
    // floor 8: alice's window is now 0 … 27 (8 below the floor, 20 from it): 8 new codes
    assert.equal(f.computed, 48);
  });

  test('hostile datagrams of code size never throw and never open: code, or version without the prefix', () => {
    const v = verifier();
    const prefix = fc.constantFrom('spc1-', 'SPC1-', 'sPc1-', 'spc1_', '');
    fc.assert(
      fc.property(prefix, fc.uint8Array({ minLength: 24, maxLength: 31 }), (p, tail) => {
        const buf = new Uint8Array([...enc(p), ...tail]).subarray(0, 31);
        const r = v.verify(buf, SRC, T0);
        assert.equal(r.ok, false);
        const expect =
          buf.length < 29
            ? 'size'
            : /^spc1-$/i.test(Buffer.from(buf.subarray(0, 5)).toString('latin1'))
              ? 'code'
              : 'version';
        assert.equal((r as { code: string }).code, expect);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('one-time codes: the floor file', () => {
  const idA = floorIdOf(ALICE);
  const idB = floorIdOf(BOB);

  test('floors survive a reopen; the highest per id wins; torn lines and garbage are skipped; compacted at load', () => {
    const dir = join(stateRoot, 'file1');
    const file = new CodeFloorFile(dir);
    const floors = openCodeFloors(file);
    floors.raise(idA, 3);
    floors.raise(idA, 2); // never lowers: not written
    floors.raise(idB, 1);
    floors.raise(idA, 7);
    file.close();
    assert.equal(readFileSync(file.path, 'utf8'), `${idA} 3\n${idB} 1\n${idA} 7\n`);
    appendFileSync(file.path, `${idB} 9`); // a torn line: no newline, cut short…
    appendFileSync(file.path, `\ngarbage\n${idA.slice(0, 8)} 99\n${idB} 4\n`);
    const again = openCodeFloors(new CodeFloorFile(dir));
    // "idB 9" was finished by the "\n" after it: a whole line, it counts
    assert.equal(again.get(idA), 7);
    assert.equal(again.get(idB), 9);
    assert.equal(again.get('0000000000000000'), 0);
    assert.equal(readFileSync(file.path, 'utf8'), `${idA} 7\n${idB} 9\n`, 'compacted at load');
  });

  test('a line cut short by a crash reads as a prefix of its number: the floor written before it stands', () => {
    const dir = join(stateRoot, 'file2');
    const file = new CodeFloorFile(dir);
    openCodeFloors(file).raise(idA, 12);
    file.close();
    appendFileSync(file.path, `${idA} 1`); // "idA 15\n" cut after "1" (that code granted nothing: no sync yet)
    const floors = openCodeFloors(new CodeFloorFile(dir));
    assert.equal(floors.get(idA), 12);
  });

  test('the file is compacted when it grows, and keeps the highest floors', () => {
    const dir = join(stateRoot, 'file4');
    const file = new CodeFloorFile(dir, { compactSlack: 10 });
    const floors = openCodeFloors(file);
    floors.raise(idB, 5);
    for (let f = 1; f <= 40; f++) floors.raise(idA, f);
    const lines = readFileSync(file.path, 'utf8').trimEnd().split('\n');
    assert.ok(lines.length <= 12, `compacted: ${lines.length} lines`);
    assert.ok(lines.includes(`${idB} 5`), "the other id's floor is kept");
    file.close();
    const again = openCodeFloors(new CodeFloorFile(dir));
    assert.equal(again.get(idA), 40);
    assert.equal(again.get(idB), 5);
  });

  test('no file is made until a code is accepted', () => {
    const dir = join(stateRoot, 'file3');
    const file = new CodeFloorFile(dir);
    openCodeFloors(file);
    assert.throws(() => readFileSync(file.path), /ENOENT/);
  });
});

describe('one-time codes: the daemon in-process, across a restart of the floor store', () => {
  const TCP22 = { proto: 'tcp', port: 22 } as const;
  const listen: typeof openUdpListener = async (o) => ({ bound: `[${o.address}]:${o.port}`, close: async () => {} });

  async function startDaemon(stateDir: string, clock: FakeClock, backend = new FakeBackend()) {
    const sink = logSink();
    const file = new CodeFloorFile(stateDir);
    const daemon = new Daemon({
      config: configWith(stateDir),
      backend,
      log: sink.log,
      now: clock.now,
      timers: clock,
      listen,
      warmUp: false,
      codeFloors: openCodeFloors(file),
    });
    await daemon.start();
    return { daemon, backend, sink, file };
  }

  test('granted once, expired, refused again after a restart; the next code works', async () => {
    const stateDir = join(stateRoot, 'daemon1');
    const clock = new FakeClock(T0);
    const a = await startDaemon(stateDir, clock);
    a.daemon.handle(code(ALICE, 0), SRC);
    await a.daemon.settled();
    assert.ok(a.backend.isOpen(4, SRC, TCP22, clock.now()), 'code 0 opens');
    assert.equal(a.sink.events('grant').length, 1);
    assert.equal(a.sink.events('grant')[0]?.one_time_code, 0, 'the grant line names the code');
    await clock.advance(11_000); // max_duration 10 s
    assert.equal(a.backend.isOpen(4, SRC, TCP22, clock.now()), false, 'the grant expired');
    a.daemon.handle(code(ALICE, 0), SRC);
    await a.daemon.settled();
    assert.equal(a.backend.isOpen(4, SRC, TCP22, clock.now()), false, 'code 0 again opens nothing');
    await a.daemon.stop();

    const b = await startDaemon(stateDir, clock);
    b.daemon.handle(code(ALICE, 0), SRC);
    await b.daemon.settled();
    assert.equal(b.backend.isOpen(4, SRC, TCP22, clock.now()), false, 'code 0 still refused after the restart');
    assert.equal(b.daemon.rejects.totals()['code-used'], 1);
    b.daemon.handle(code(ALICE, 1), SRC);
    await b.daemon.settled();
    assert.ok(b.backend.isOpen(4, SRC, TCP22, clock.now()), 'code 1 opens');
    await b.daemon.stop();
  });

  test('a reload (SIGHUP) keeps the floors', async () => {
    const stateDir = join(stateRoot, 'daemon2');
    const clock = new FakeClock(T0);
    const a = await startDaemon(stateDir, clock);
    a.daemon.handle(code(ALICE, 2), SRC);
    await a.daemon.settled();
    await a.daemon.reload(configWith(stateDir, 8));
    a.daemon.handle(code(ALICE, 2), SRC);
    a.daemon.handle(code(ALICE, 1), SRC);
    a.daemon.handle(code(ALICE, 10), SRC); // 3 + 8 = 11: inside the new window
    await a.daemon.settled();
    assert.equal(a.daemon.rejects.totals()['code-used'], 2);
    assert.equal(a.sink.events('grant').length, 2);
    await a.daemon.stop();
  });
});

describe('one-time codes: config', () => {
  const client = (lines: string[]) =>
    [
      configText({ clients: [{ name: 'carol', key: CAROL, open: ['tcp/22'] }] }),
      '[[client]]',
      'name = "alice"',
      `key = "${formatKey(ALICE)}"`,
      'open = ["tcp/22"]',
      ...lines,
      '',
    ].join('\n');
  const parse = (lines: string[]) => parseConfig(client(lines), 't.toml');

  test('off by default; codes = true gives window 20; codes_window sets it', () => {
    assert.equal(parse([]).clients[1]?.codesWindow, undefined);
    assert.equal(parse(['codes = true']).clients[1]?.codesWindow, 20);
    assert.equal(parse(['codes = true', 'codes_window = 100']).clients[1]?.codesWindow, 100);
  });

  test('conflicts and ranges are refused with the key named', () => {
    const bad: [string[], RegExp][] = [
      [['codes_window = 5'], /client\[1\]\.codes_window: needs codes = true/],
      [['codes = true', 'codes_window = 0'], /client\[1\]\.codes_window/],
      [['codes = true', 'codes_window = 1001'], /client\[1\]\.codes_window/],
      [['codes = "yes"'], /client\[1\]\.codes/],
      [['codes = true', 'require_source_address = true'], /client\[1\]\.codes: .*require_source_address/],
    ];
    for (const [lines, re] of bad) assert.throws(() => parse(lines), re, lines.join('; '));
  });
});
