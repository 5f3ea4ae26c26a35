/**
 * Rotating sequences without a kernel: the derivation (shared/rotating.ts), the config, the plan at a given time,
 * and the rotator that re-installs the plan at each time step (fake clock, fake backend). The kernel side, with the
 * client's `--sequence auto`, is in test/e2e/classic-rotating.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { writeKeyFile } from '../../shared/keyfile.js';
import { SpaError } from '../../shared/errors.js';
import {
  ROTATING_HIGH,
  ROTATING_LENGTH,
  ROTATING_LOW,
  ROTATING_STEP_S,
  rotatingCounter,
  rotatingSteps,
} from '../../shared/rotating.js';
import { parseConfig } from '../../server/config.js';
import { planOf } from '../../server/daemon.js';
import type { FirewallBackend, FirewallPlan } from '../../server/firewall/backend.js';
import { SequenceRotator } from '../../server/rotation.js';
import { configText, keyOf } from '../../harness/config.js';
import { FakeClock } from '../helpers/clock.js';

const dir = mkdtempSync(join(tmpdir(), 'spak-rot-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'door.key');
writeKeyFile(keyFile, keyOf(9));
const ROT = `\n[[sequence]]\nname = "door"\nrotating = true\nkey_file = ${JSON.stringify(keyFile)}\nopen = ["tcp/22"]\n`;

describe('rotating steps', () => {
  test('deterministic; 4 TCP ports in 40000-49999; never the same port twice in a row', () => {
    for (let c = 0; c < 2000; c++) {
      const s = rotatingSteps(keyOf(1), c);
      assert.equal(s.length, ROTATING_LENGTH);
      s.forEach((a, i) => {
        assert.equal(a.proto, 'tcp');
        assert.ok(a.port >= ROTATING_LOW && a.port <= ROTATING_HIGH);
        if (i > 0) assert.notEqual(a.port, s[i - 1]?.port);
      });
    }
    assert.deepEqual(rotatingSteps(keyOf(1), 7), rotatingSteps(keyOf(1), 7));
  });
  test('changes with the time step and with the key', () => {
    assert.notDeepEqual(rotatingSteps(keyOf(1), 7), rotatingSteps(keyOf(1), 8));
    assert.notDeepEqual(rotatingSteps(keyOf(1), 7), rotatingSteps(keyOf(2), 7));
  });
  test('the time step is 30 s', () => {
    assert.equal(ROTATING_STEP_S, 30);
    assert.equal(rotatingCounter(29_999), 0);
    assert.equal(rotatingCounter(30_000), 1);
  });
});

describe('rotating sequences in the config and the plan', () => {
  test('the plan holds the current and the previous step, named by parity', () => {
    const c = parseConfig(configText({ extra: ROT }), join(dir, 'k.toml'));
    assert.equal(c.rotatingSequences.length, 1);
    const t = 1_767_225_630_000;
    const k = rotatingCounter(t);
    const seqs = planOf(c, t).sequences ?? [];
    assert.deepEqual(
      seqs.map((s) => [s.name, s.steps]),
      [
        [`door_${k % 2}`, rotatingSteps(keyOf(9), k)],
        [`door_${(k - 1) % 2}`, rotatingSteps(keyOf(9), k - 1)],
      ],
    );
  });
  test('refusals: no key_file, steps given, ignore in the port range, key_file without rotating', () => {
    const bad: [string, RegExp][] = [
      ['name = "d"\nrotating = true\nopen = ["tcp/22"]', /sequence\[0\]: rotating = true needs key_file/],
      [
        `name = "d"\nrotating = true\nsteps = ["1", "2"]\nkey_file = "${keyFile}"\nopen = ["tcp/22"]`,
        /steps: a rotating sequence takes its steps from key_file/,
      ],
      [
        `name = "d"\nrotating = true\nkey_file = "${keyFile}"\nopen = ["tcp/22"]\nignore = ["tcp/45000"]`,
        /ignore\[0\]: tcp\/45000 is in the rotating port range/,
      ],
      [
        `name = "d"\nsteps = ["1", "2"]\nkey_file = "${keyFile}"\nopen = ["tcp/22"]`,
        /key_file: only a rotating sequence has a key_file/,
      ],
      [
        `name = "d"\nrotating = true\nkey_file = "${join(dir, 'none.key')}"\nopen = ["tcp/22"]`,
        /sequence\[0\]\.key_file/,
      ],
    ];
    for (const [body, re] of bad) {
      assert.throws(
        () => parseConfig(configText({ extra: `\n[[sequence]]\n${body}\n` }), 'k.toml'),
        (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_CONFIG' && re.test(e.message),
        re.source,
      );
    }
  });
});

describe('the rotator', () => {
  test('installs the new plan just after each time step boundary; stops cleanly', async () => {
    const clock = new FakeClock(30_000 * 1000 + 10_000); // 10 s into a step
    const installs: { plan: FirewallPlan; now: number }[] = [];
    const backend = {
      install: async (plan: FirewallPlan, now: number) => {
        installs.push({ plan, now });
      },
    } as unknown as FirewallBackend;
    const c = parseConfig(configText({ extra: ROT }), join(dir, 'k.toml'));
    const r = new SequenceRotator({
      backend,
      plan: (now) => planOf(c, now),
      now: clock.now,
      timers: clock,
      onRotate: () => undefined,
      onError: (e) => assert.fail(String(e)),
    });
    r.start();
    await clock.advance(19_000);
    assert.equal(installs.length, 0, 'not before the boundary');
    await clock.advance(1_100);
    await r.current;
    assert.equal(installs.length, 1);
    const k = rotatingCounter(installs[0]?.now ?? 0);
    assert.equal(k, rotatingCounter(30_000 * 1000 + 10_000) + 1, 'the next step');
    assert.deepEqual(installs[0]?.plan.sequences?.[0]?.steps, rotatingSteps(keyOf(9), k));
    await clock.advance(30_000);
    await r.current;
    assert.equal(installs.length, 2);
    await r.stop();
    await clock.advance(90_000);
    assert.equal(installs.length, 2, 'nothing after stop');
  });
  test('a failed install is reported and retried at the next boundary', async () => {
    const clock = new FakeClock(0);
    let calls = 0;
    const errors: unknown[] = [];
    const backend = {
      install: async () => {
        calls++;
        if (calls === 1) throw new SpaError('ERR_SPA_FIREWALL', 'nft install failed');
      },
    } as unknown as FirewallBackend;
    const r = new SequenceRotator({
      backend,
      plan: () => ({ protect: [] }),
      now: clock.now,
      timers: clock,
      onRotate: () => undefined,
      onError: (e) => errors.push(e),
    });
    r.start();
    await clock.advance(30_100);
    await r.current;
    await clock.advance(30_000);
    await r.current;
    assert.equal(calls, 2);
    assert.equal(errors.length, 1);
    await r.stop();
  });
});
