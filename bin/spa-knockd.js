#!/usr/bin/env node
// spa-knockd: runs the compiled code (after `npm run build`) or, in a source checkout, the TypeScript through tsx.
import { existsSync } from 'node:fs';

const dist = new URL('../dist/server/main.js', import.meta.url);
if (existsSync(dist)) {
  await import(dist.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../server/main.ts', import.meta.url).href);
}
