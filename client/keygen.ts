/**
 * `spa-knock keygen [--out FILE] [--force] [--format spak1|fwknop]`: a new key on stdout, or written to FILE with mode
 * 0600 through a temporary file and a rename (shared/keyfile.ts; never overwritten without --force). The fwknop codec
 * is loaded only for `--format fwknop` (client cold start, docs/benchmarks.md).
 * @module
 */
import { writeKeyFile, writeSecretFile } from '../shared/keyfile.js';
import { formatKey, generateKey } from '../shared/keys.js';

export async function keygen(a: {
  readonly out: string | undefined;
  readonly force: boolean;
  readonly format: 'spak1' | 'fwknop';
}): Promise<void> {
  if (a.format === 'fwknop') {
    const text = (await import('../shared/fwknop/keys.js')).generateFwknopKeyText();
    if (a.out === undefined) process.stdout.write(text);
    else {
      writeSecretFile(a.out, text, { force: a.force });
      process.stderr.write(
        `wrote new fwknop keys to ${a.out} (mode 0600); the server needs the same KEY_BASE64 and HMAC_KEY_BASE64 (key_base64, hmac_key_base64)\n`,
      );
    }
    return;
  }
  const key = generateKey();
  if (a.out === undefined) {
    process.stdout.write(`${formatKey(key)}\n`);
    return;
  }
  writeKeyFile(a.out, key, { force: a.force });
  process.stderr.write(
    `wrote a new key to ${a.out} (mode 0600); the server needs the same key line in its config (key = "..." or key_file)\n`,
  );
}
