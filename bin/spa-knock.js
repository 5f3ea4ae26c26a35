#!/usr/bin/env node
// spa-knock: runs the compiled code (after `npm run build`) or, in a source checkout, the TypeScript through tsx.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/client/cli.js', import.meta.url);
if (existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../client/cli.ts', import.meta.url).href);
}
