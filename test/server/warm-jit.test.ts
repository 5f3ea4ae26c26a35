/**
 * The JIT warm-up holds (server/warmup.ts): after the daemon's warm-up and the re-warm that follows its first knocks,
 * the knock path runs code V8 optimized, knock after knock. It used not to: the first real packet threw the warmed
 * code away (a Buffer where the warm-up had given Uint8Arrays, closures per verifier, objects of other shapes) and
 * the path stayed unoptimized for the daemon's life (`node --trace-deopt`).
 *
 * test/server/warm-jit-child.ts runs the daemon and asks V8 (`--allow-natives-syntax`, %GetOptimizationStatus). It is
 * bundled first and run by plain node, as spa-knockd runs: under tsx, the loader's thread invalidates optimized code
 * at moments of its own (measured: 2 runs in 12 ended unoptimized that way, none of 12 bundled).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { build } from 'esbuild';

const dir = mkdtempSync(join(tmpdir(), 'spak-warm-jit-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('after the warm-up and the first knocks, every knock runs optimized verification code', async () => {
  const out = join(dir, 'child.mjs');
  await build({
    entryPoints: [fileURLToPath(new URL('./warm-jit-child.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: out,
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  const { stdout } = await promisify(execFile)(process.execPath, ['--allow-natives-syntax', out, '6'], {
    timeout: 60_000,
  });
  const r = JSON.parse(stdout) as { grants: number; optimized: boolean[] };
  assert.equal(r.grants, 8, 'every knock granted (2 before the re-warm, 6 after)');
  assert.deepEqual(r.optimized, [true, true, true, true, true, true], 'Verifier.prototype.verify optimized after each');
});
