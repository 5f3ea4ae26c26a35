/** `[[sequence]]` in the daemon's config (server/sequence-config.ts): defaults, every refusal names file, line, key. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SpaError } from '../../shared/errors.js';
import { parseConfig } from '../../server/config.js';
import { parseStep } from '../../shared/knock-steps.js';
import { configText } from '../../harness/config.js';

const base = configText({ protect: ['tcp/22', 'tcp/2222'] });
const seq = (body: string): string => `${base}\n[[sequence]]\n${body}\n`;
const SEED = 'name = "seed"\nsteps = ["8881", "7777", "9991"]\nopen = ["tcp/22"]';

function refuses(text: string, re: RegExp): void {
  assert.throws(
    () => parseConfig(text, 'k.toml'),
    (e: unknown) => e instanceof SpaError && e.code === 'ERR_SPA_CONFIG' && re.test(e.message),
    re.source,
  );
}

describe('[[sequence]] config', () => {
  test('steps: "port" is tcp, "port:udp" udp; nothing else', () => {
    assert.deepEqual(parseStep('8881'), { proto: 'tcp', port: 8881 });
    assert.deepEqual(parseStep('9991:udp'), { proto: 'udp', port: 9991 });
    assert.deepEqual(parseStep('7777:tcp'), { proto: 'tcp', port: 7777 });
    for (const bad of ['0', '65536', '80:sctp', 'tcp/80', ' 80', '80:', '+80', '1e3']) {
      assert.equal(parseStep(bad), undefined, bad);
    }
  });

  test('no [[sequence]]: none; the seed example resolves with defaults (gap 5, duration = grant.duration)', () => {
    assert.deepEqual(parseConfig(base, 'k.toml').sequences, []);
    const c = parseConfig(seq(`${SEED}\nignore = ["tcp/80", "tcp/443"]`), 'k.toml');
    assert.deepEqual(c.sequences, [
      {
        name: 'seed',
        steps: [
          { proto: 'tcp', port: 8881 },
          { proto: 'tcp', port: 7777 },
          { proto: 'tcp', port: 9991 },
        ],
        gapS: 5,
        open: [{ proto: 'tcp', port: 22 }],
        durationS: 30,
        ignore: [
          { proto: 'tcp', port: 80 },
          { proto: 'tcp', port: 443 },
        ],
      },
    ]);
    const ipt = parseConfig(seq(SEED).replace('backend = "nftables"', 'backend = "iptables"'), 'k.toml');
    assert.equal(ipt.sequences.length, 1, 'both backends');
    const d = parseConfig(seq(`${SEED}\ngap = 2\nduration = 60`), 'k.toml').sequences[0];
    assert.equal(d?.gapS, 2);
    assert.equal(d?.durationS, 60);
  });

  test('refusals name the file, line and key', () => {
    refuses(
      seq('name = "seed"\nsteps = ["8881", "x"]\nopen = ["tcp/22"]'),
      /k\.toml line \d+: sequence\[0\]\.steps\[1\]: "x" is not a step/,
    );
    refuses(seq('name = "seed"\nsteps = ["8881"]\nopen = ["tcp/22"]'), /sequence\[0\]\.steps: needs at least 2 steps/);
    refuses(seq('name = "seed"\nsteps = ["8881", "8881", "1"]\nopen = ["tcp/22"]'), /steps: step 2 repeats step 1/);
    refuses(seq(`${SEED}\nignore = ["tcp/7777"]`), /step tcp\/7777 is also in ignore/);
    refuses(
      seq('name = "seed"\nsteps = ["1", "2"]\nopen = ["tcp/23"]'),
      /sequence\[0\]\.open\[0\]: tcp\/23 is not in firewall\.protect/,
    );
    refuses(seq(`${SEED}\nduration = 301`), /sequence\[0\]\.duration: must not exceed grant\.max_duration \(300\)/);
    refuses(seq(`${SEED}\ngap = 0`), /sequence\[0\]\.gap/);
    refuses(seq(`${SEED}\nrotating = true`), /sequence\[0\]\.steps: a rotating sequence takes its steps from key_file/);
    refuses(seq(`${SEED}\nrotate = true`), /unknown key "rotate"/);
    refuses(seq('name = "Seed"\nsteps = ["1", "2"]\nopen = ["tcp/22"]'), /sequence\[0\]\.name/);
    refuses(`${seq(SEED)}\n[[sequence]]\n${SEED}\n`, /sequence\[1\]\.name: duplicate sequence name "seed"/);
  });
});
