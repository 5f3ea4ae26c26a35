/**
 * `npm run build` / `prepack`, second step: the client as bundled, minified CommonJS files in dist/client/, for the
 * cold start of `spa-knock HOST`, which a phone shortcut or an ssh ProxyCommand pays on every connection
 * (docs/benchmarks.md):
 *
 * - `spa-knock.cjs` (package.json `bin`): client/launch.ts, which runs `knock.cjs` and, for anything but a plain
 *   knock, `spa-knock-cli.cjs`, each through a V8 code cache;
 * - `knock.cjs`: client/bin.ts — a plain knock, and only what a knock needs (no yargs; the fwknop codec, the
 *   classic sequence, `--wait` and the proxy only evaluated when the options ask for them; ipaddr.js and smol-toml
 *   through the shims in scripts/lazy/, evaluated on first use: for `--allow-ip`, IPv6, a profile file);
 * - `spa-knock-cli.cjs`: client/cli.ts, the whole command line (yargs);
 * - `knock-<node version>-<platform>-<arch>.v8cache` and `spa-knock-cli-….v8cache`: their code caches for the Node
 *   that builds, made by running the built program (a knock to 127.0.0.1 port 9, loopback only; `--version`);
 *   another Node rejects them and makes its own in the user's cache directory (client/launch.ts).
 *
 * CommonJS, because Node's ES module loader costs a few ms more to start; `import()` becomes `require()` so that a
 * lazily loaded module costs nothing until it is needed. `import.meta.url` (shared/cli.ts `packageVersion`,
 * client/launch.ts) becomes the bundle's own file URL.
 * @module
 */
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build } from 'esbuild';
import { formatKey, generateKey } from '../shared/keys.js';

const root = fileURLToPath(new URL('..', import.meta.url));

const common: BuildOptions = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'eof',
  // `import()` as `require()`: the lazily loaded modules are in the same file, evaluated when first needed
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__spakUrl' },
  // first, so that the file stays in strict mode (the modules are ES modules, which always are)
  banner: { js: "'use strict'; const __spakUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
};

/** The port of the knock that makes the build-time code cache: discard (RFC 863), on 127.0.0.1. */
const CACHE_RUN_PORT = '9';

/**
 * Bundle the client into `outdir` (relative to the repository root, or absolute): the files listed in the module
 * comment. `cache: false` leaves out the code cache (the program then makes one in the user's cache directory).
 */
export async function buildClient(outdir = 'dist/client', opts: { cache?: boolean } = {}): Promise<void> {
  const out = resolve(root, outdir);
  for (const f of readdirSafe(out)) if (f.endsWith('.v8cache')) rmSync(join(out, f)); // a stale one
  await build({
    ...common,
    entryPoints: ['client/bin.ts'],
    outfile: join(out, 'knock.cjs'),
    plugins: [
      {
        // ipaddr.js and smol-toml through scripts/lazy/: evaluated when first used, which a plain knock never does
        name: 'lazy-packages',
        setup(b) {
          b.onResolve({ filter: /^(ipaddr\.js|smol-toml)$/ }, (a) =>
            a.importer.startsWith(join(root, 'scripts', 'lazy'))
              ? undefined
              : { path: join(root, 'scripts', 'lazy', `${a.path.replace(/\.js$/, '')}.cjs`) },
          );
        },
      },
    ],
  });
  await build({ ...common, entryPoints: ['client/cli.ts'], outfile: join(out, 'spa-knock-cli.cjs') });
  await build({
    ...common,
    // `require`: the CommonJS one of this file, which sits next to knock.cjs
    stdin: { contents: "import { launch } from './launch.js';\nlaunch(require);\n", resolveDir: join(root, 'client') },
    outfile: join(out, 'spa-knock.cjs'),
    banner: { js: `#!/usr/bin/env node\n${common.banner?.['js']}` },
  });
  chmodSync(join(out, 'spa-knock.cjs'), 0o755);
  if (opts.cache !== false) await makeCache(out);
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Run the built program once with an empty cache directory; the cache it writes there goes next to knock.cjs. */
async function makeCache(out: string): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'spak-build-cache-'));
  try {
    const key = join(tmp, 'k.key');
    writeFileSync(key, `${formatKey(generateKey())}\n`, { mode: 0o600 });
    const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmp, XDG_CACHE_HOME: join(tmp, 'cache') };
    // a knock (knock.cjs), and --version (the whole CLI: spa-knock-cli.cjs, its yargs set-up)
    for (const args of [['127.0.0.1', '--port', CACHE_RUN_PORT, '--key', key], ['--version']]) {
      await new Promise<void>((res, rej) =>
        execFile(process.execPath, [join(out, 'spa-knock.cjs'), ...args], { env, timeout: 30_000 }, (e, _o, stderr) =>
          e ? rej(new Error(`the code-cache run failed: ${stderr.trim() || e.message}`)) : res(),
        ),
      );
    }
    const made = readdirSafe(join(tmp, 'cache', 'spa-knock')).filter((f) => f.endsWith('.v8cache'));
    if (made.length !== 2) throw new Error(`the code-cache runs wrote ${made.join(', ')}`);
    for (const f of made) {
      copyFileSync(join(tmp, 'cache', 'spa-knock', f), join(out, f)); // /tmp may be another file system
      chmodSync(join(out, f), 0o644); // part of the package, like the code it caches
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await buildClient();
