/**
 * The real fwknop client (Debian `fwknop-client`) for tests and the bench: make keys with `fwknop --key-gen`, build
 * packets with `-T -B FILE` (built, not sent), or send them. Never reads or writes ~/.fwknoprc (`--no-rc-file
 * --no-save-args`). Argument arrays only.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface FwknopKeyText {
  readonly keyB64: string;
  readonly hmacB64: string;
  /** The two lines as `fwknop --key-gen` printed them. */
  readonly text: string;
}

/** A fresh key pair from the real client. */
export function fwknopKeyGen(): FwknopKeyText {
  const text = execFileSync('fwknop', ['--key-gen', '--no-rc-file', '--no-save-args'], { encoding: 'utf8' });
  const keyB64 = /^KEY_BASE64: (\S+)$/m.exec(text)?.[1];
  const hmacB64 = /^HMAC_KEY_BASE64: (\S+)$/m.exec(text)?.[1];
  if (!keyB64 || !hmacB64) throw new Error(`unexpected fwknop --key-gen output: ${text}`);
  return { keyB64, hmacB64, text };
}

/** Arguments every run needs: no rc file, the keys, the server (never a real host: an address of the test's own). */
export function fwknopArgs(keys: FwknopKeyText, server: string, extra: readonly string[]): string[] {
  return [
    '--no-rc-file',
    '--no-save-args',
    '-D',
    server,
    '--key-base64-rijndael',
    keys.keyB64,
    '--key-base64-hmac',
    keys.hmacB64,
    ...extra,
  ];
}

export interface RealPacket {
  readonly text: string;
  /** The client's own `-v` dump of what it encoded ("Timestamp", "Message String", "Client Timeout", …). */
  readonly dump: Readonly<Record<string, string>>;
}

/** Build one packet with the real client without sending it (`-T -B FILE`): its text and the client's dump. */
export function fwknopPacket(keys: FwknopKeyText, extra: readonly string[], server = '127.0.0.1'): RealPacket {
  const dir = mkdtempSync(join(tmpdir(), 'fwknop-pkt-'));
  try {
    const file = join(dir, 'pkt');
    const out = execFileSync('fwknop', [...fwknopArgs(keys, server, extra), '-T', '-v', '-B', file], {
      encoding: 'utf8',
    });
    const dump: Record<string, string> = {};
    for (const line of out.split('\n')) {
      const m = /^\s*([A-Za-z ]+): (.*)$/.exec(line);
      if (m?.[1] && m[2] !== undefined && !(m[1] in dump)) dump[m[1]] = m[2];
    }
    return { text: readFileSync(file, 'utf8').trim(), dump };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface FwknopClientToml {
  readonly name: string;
  readonly keys: FwknopKeyText;
  readonly open: readonly string[];
  readonly sources?: readonly string[];
  readonly requireSourceAddress?: boolean;
  readonly digest?: string;
  /** More TOML lines for the table, e.g. `max_grants = 100`. */
  readonly extra?: readonly string[];
}

/** A `[[client]]` table of format "fwknop", to append to harness/config.ts configText(). */
export function fwknopClientToml(c: FwknopClientToml): string {
  const q = (xs: readonly string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  return [
    '[[client]]',
    `name = ${JSON.stringify(c.name)}`,
    'format = "fwknop"',
    `key_base64 = ${JSON.stringify(c.keys.keyB64)}`,
    `hmac_key_base64 = ${JSON.stringify(c.keys.hmacB64)}`,
    ...(c.digest ? [`hmac_digest = ${JSON.stringify(c.digest)}`] : []),
    `open = ${q(c.open)}`,
    ...(c.sources ? [`sources = ${q(c.sources)}`] : []),
    ...(c.requireSourceAddress ? ['require_source_address = true'] : []),
    ...(c.extra ?? []),
    '',
  ].join('\n');
}
