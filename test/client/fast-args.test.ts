/**
 * client/fast-args.ts: the plain knock's command line without yargs. It must give exactly what the yargs parser
 * gives for the lines it accepts, and hand every other line (commands, help, mistakes, anything unusual) to yargs.
 * The CLI tests (cli.test.ts) run both paths end to end.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { COMMANDS, fastKnockArgs } from '../../client/fast-args.js';

const base = {
  host: 'h.example',
  key: undefined,
  open: [],
  port: undefined,
  duration: '0',
  allowIp: undefined,
  close: false,
  dryRun: false,
  json: false,
  ipv4: false,
  ipv6: false,
  sequence: undefined,
  delay: undefined,
  format: undefined,
  wait: undefined,
  timeout: undefined,
};

describe('fastKnockArgs', () => {
  test('every command word of client/cli.ts is left to yargs (never read as a HOST to knock)', () => {
    const src = readFileSync(new URL('../../client/cli.ts', import.meta.url), 'utf8');
    const words = [...src.matchAll(/\.command\(\s*'([a-z-]+)/g)].map((m) => m[1]);
    assert.ok(words.length >= 5, `command words found: ${words.join(', ')}`);
    for (const w of words) {
      assert.ok(COMMANDS.has(w as string), `${w} is a command of client/cli.ts but not in fast-args COMMANDS`);
      assert.equal(fastKnockArgs([w as string, '--key', 'k.key']), undefined, w);
    }
  });

  test('a plain knock, with and without options', () => {
    assert.deepEqual(fastKnockArgs(['h.example']), base);
    assert.deepEqual(
      fastKnockArgs([
        '--open',
        'tcp/22',
        'h.example',
        '--open=udp/53,tcp/80',
        '--key',
        'k.key',
        '--port',
        '6000',
        '--duration',
        '30',
        '--allow-ip',
        '192.0.2.7',
        '--dry-run',
        '--json',
        '-4',
        '--format',
        'fwknop',
        '--wait',
        'tcp/22',
        '--timeout',
        '9',
      ]),
      {
        ...base,
        open: ['tcp/22', 'udp/53,tcp/80'],
        key: 'k.key',
        port: '6000',
        duration: '30',
        allowIp: '192.0.2.7',
        dryRun: true,
        json: true,
        ipv4: true,
        format: 'fwknop',
        wait: 'tcp/22',
        timeout: '9',
      },
    );
    assert.deepEqual(fastKnockArgs(['--close', '--ipv6', '::1']), { ...base, host: '::1', close: true, ipv6: true });
    assert.deepEqual(fastKnockArgs(['h.example', '--sequence', '1,2,3', '--delay', '5']), {
      ...base,
      sequence: '1,2,3',
      delay: '5',
    });
    // both families: parsed here, refused by knock() with the same message as after yargs
    assert.deepEqual(fastKnockArgs(['-4', '-6', 'h.example']), { ...base, ipv4: true, ipv6: true });
  });

  test('everything else goes to yargs', () => {
    for (const argv of [
      [],
      ['keygen'],
      ['keygen', '--out', 'f'],
      ['proxy', 'h', '22'],
      ['sequence'],
      ['completion'],
      ['--help'],
      ['-h'],
      ['--version'],
      ['h.example', '--help'],
      ['a', 'b'],
      ['h.example', '--bogus'],
      ['h.example', '--dryRun'],
      ['h.example', '--no-close'],
      ['h.example', '--close', 'true'],
      ['h.example', '--close=true'],
      ['h.example', '--port', '1', '--port', '2'],
      ['h.example', '--dry-run', '--dry-run'],
      ['h.example', '--key'],
      ['h.example', '--key='],
      ['h.example', '--key', '-x'],
      ['h.example', '--open', '-4'],
      ['h.example', '--', 'x'],
      [''],
    ])
      assert.equal(fastKnockArgs(argv), undefined, JSON.stringify(argv));
  });
});
