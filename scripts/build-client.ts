/**
 * `npm run build` / `prepack`, second step: the client as one bundled, minified CommonJS file,
 * `dist/client/spa-knock.cjs` (package.json `bin`), for the cold start of `spa-knock HOST`, which a phone shortcut or
 * an ssh ProxyCommand pays on every connection (docs/benchmarks.md): one file instead of ~60 modules to resolve and
 * load; CommonJS, because Node's ES module loader costs a few ms more to start; yargs and the fwknop codec are only
 * evaluated when the command line needs them (client/fast-args.ts, the dynamic imports in client/cli.ts).
 * `import.meta.url` (shared/cli.ts `packageVersion`) becomes the bundle's own file URL.
 * @module
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Bundle the client into `outfile` (relative to the repository root, or absolute). */
export async function buildClient(outfile = 'dist/client/spa-knock.cjs'): Promise<void> {
  await build({
    absWorkingDir: root,
    entryPoints: ['client/cli.ts'],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    minify: true,
    legalComments: 'eof',
    define: { 'import.meta.url': '__spakUrl' },
    // first, so that the file stays in strict mode (the modules are ES modules, which always are)
    banner: { js: "'use strict'; const __spakUrl = require('node:url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await buildClient();
